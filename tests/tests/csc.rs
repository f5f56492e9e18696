//! The CSC remote-signing API judged by outside clients: pyHanko's own `CSCSigner` signs
//! PDFs at PAdES B-B and B-T (its own time-stamp client on Signet's TSA) and
//! `pyhanko sign validate` trusts them; a batch of hashes in one `signHash` verifies with
//! openssl; bad input gets CSC's error form, never a 5xx; the audit log names the client,
//! the credential and the number of hashes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use signet_e2e::pdf::{pyhanko_validate, synthetic_pdf, Trust};
use signet_e2e::{judges_python, repo_root, run, run_ok, Appliance};

const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// The SAD lifetime of this binary's appliance.
const SAD_SECS: u64 = 4;

/// One appliance for the binary. Besides the demo client (every key), `csc-limited` may
/// sign with `doc-rsa` only.
fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut app = Appliance::init_reachable(|t| {
            let limited: toml::Table = toml::from_str(
                r#"c = { name = "csc-limited", match = { subject = "CN=csc-limited,O=Signet" }, operations = ["sign"], keys = ["doc-rsa"] }"#,
            )
            .expect("toml");
            t["clients"]
                .as_array_mut()
                .expect("[[clients]]")
                .push(limited["c"].clone());
            // Short, so that the test sees a SAD expire.
            t.entry("api")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("[api]")
                .insert("csc_sad_lifetime_secs".into(), (SAD_SECS as i64).into());
        });
        app.start();
        app
    })
}

fn limited_client() -> &'static (PathBuf, PathBuf) {
    static CLIENT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CLIENT.get_or_init(|| app().issue_client("csc-limited"))
}

/// POST `body` (raw bytes, as `content_type`) as `who` (the demo client when `None`):
/// (HTTP status, Content-Type, parsed JSON).
fn post_raw(
    who: Option<&(PathBuf, PathBuf)>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Value) {
    let dir = tempfile::tempdir().expect("tmp");
    let (req, resp) = (dir.path().join("req"), dir.path().join("resp"));
    std::fs::write(&req, body).expect("write");
    let mut curl = match who {
        Some((c, k)) => app().curl_as(c, k),
        None => app().curl(),
    };
    let out = run(curl
        .arg("-o")
        .arg(&resp)
        .args(["-w", "%{http_code} %{content_type}", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", req.display()))
        .arg(app().url(path)));
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, ctype) = written.split_once(' ').unwrap_or((&written, ""));
    let bytes = std::fs::read(&resp).unwrap_or_default();
    (
        code.trim().parse().unwrap_or(0),
        ctype.trim().to_owned(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: &Value) -> (u16, Value) {
    let (code, _, v) = post_raw(None, path, "application/json", body.to_string().as_bytes());
    (code, v)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// A SAD for `hashes` (base64) with `credential`, asked in v2's spelling.
fn authorize(credential: &str, hashes: &[String]) -> String {
    let (code, v) = post(
        "/csc/v2/credentials/authorize",
        &json!({ "credentialID": credential, "numSignatures": hashes.len(), "hashes": hashes }),
    );
    assert_eq!(code, 200, "{v}");
    assert!(v["expiresIn"].as_u64().is_some_and(|s| s > 0), "{v}");
    v["SAD"].as_str().expect("SAD").to_owned()
}

/// The CSC error code of an answer, after checking it is CSC's error form.
fn csc_error(code: u16, v: &Value) -> String {
    assert!((400..500).contains(&code), "{code} {v}");
    assert!(v["error_description"].is_string(), "{code} {v}");
    v["error"].as_str().unwrap_or("").to_owned()
}

#[test]
fn pyhanko_signs_pdfs_over_csc_and_its_validator_trusts_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, synthetic_pdf(20_000, "CSC input")).expect("write");
    let trust = Trust::new(&[&app().path("pki/root-ca.pem")]);
    for (credential, level) in [("doc-rsa", "b-b"), ("doc-ec", "b-t")] {
        let output = dir.path().join(format!("{credential}-{level}.pdf"));
        let out = run(Command::new(judges_python())
            .arg(repo_root().join("tests/csc/pyhanko_csc_sign.py"))
            .arg(app().url(""))
            .arg(app().path("demo/client.pem"))
            .arg(app().path("demo/client.key"))
            .arg(app().path("pki/root-ca.pem"))
            .arg(credential)
            .arg(&input)
            .arg(&output)
            .arg(level));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "pyHanko over CSC ({credential}, {level}):\n{said}"
        );
        assert!(said.contains("hash pinning: True"), "{said}");
        eprintln!("{credential} {level}: {}", said.trim());
        let report = pyhanko_validate(&trust, &output, &[]);
        assert!(
            report.all_trusted(),
            "{credential} {level}:\n{}",
            report.text
        );
        let timestamp = report.field("Signature1").and_then(|s| s.timestamp.clone());
        match level {
            "b-t" => assert_eq!(
                timestamp.as_deref(),
                Some("INTACT:TRUSTED"),
                "{}",
                report.text
            ),
            _ => assert_eq!(timestamp, None, "{}", report.text),
        }
    }
}

/// `openssl dgst -verify` of `signature` over `data` with the key of `cert_der`.
fn openssl_verifies(dir: &Path, cert_der: &[u8], data: &[u8], signature: &[u8]) -> bool {
    let (cert, key, file, sig) = (
        dir.join("cert.der"),
        dir.join("key.pem"),
        dir.join("data"),
        dir.join("sig"),
    );
    std::fs::write(&cert, cert_der).expect("write");
    std::fs::write(&file, data).expect("write");
    std::fs::write(&sig, signature).expect("write");
    let pem = run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
            .arg(&cert),
    );
    std::fs::write(&key, pem).expect("write");
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&file))
    .status
    .success()
}

#[test]
fn info_describes_the_credentials_and_a_batch_of_hashes_verifies_with_openssl() {
    let (code, info) = post("/csc/v1/info", &json!({}));
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["authType"], json!(["TLS"]));
    assert_eq!(info["specs"], "1.0.4.0");
    let (_, info2) = post("/csc/v2/info", &json!({}));
    assert_eq!(info2["specs"], "2.0.0.2");

    let (code, list) = post("/csc/v2/credentials/list", &json!({}));
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["credentialIDs"], json!(["doc-ec", "doc-rsa"]));
    let (_, list) = post("/csc/v2/credentials/list", &json!({}));
    assert_eq!(list["credentialIDs"].as_array().map(Vec::len), Some(2));
    let (code, _, list) = post_raw(
        Some(limited_client()),
        "/csc/v1/credentials/list",
        "application/json",
        b"{}",
    );
    assert_eq!(
        (code, list["credentialIDs"].clone()),
        (200, json!(["doc-rsa"]))
    );

    let dir = tempfile::tempdir().expect("tmp");
    // v2's spelling for RSA, v1's for ECDSA: both paths take both.
    for (credential, sign_algo, path, spelling) in [
        ("doc-rsa", RSA_SHA256, "/csc/v2/signatures/signHash", "v2"),
        ("doc-ec", ECDSA_SHA256, "/csc/v1/signatures/signHash", "v1"),
    ] {
        let (code, info) = post(
            "/csc/v1/credentials/info",
            &json!({ "credentialID": credential, "certificates": "chain", "certInfo": true }),
        );
        assert_eq!(code, 200, "{info}");
        assert!(
            info["key"]["algo"]
                .as_array()
                .expect("algo")
                .contains(&json!(sign_algo)),
            "{info}"
        );
        assert_eq!(info["SCAL"], "2");
        assert_eq!(info["authMode"], "implicit");
        assert!(info["multisign"].as_u64().is_some_and(|m| m >= 3), "{info}");
        let chain = info["cert"]["certificates"]
            .as_array()
            .expect("certificates");
        assert!(chain.len() >= 2, "the chain, signer first: {info}");
        let signer = B64.decode(chain[0].as_str().expect("b64")).expect("base64");
        assert!(
            info["cert"]["subjectDN"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{info}"
        );

        let documents: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("document {i} for {credential}").into_bytes())
            .collect();
        let hashes: Vec<String> = documents.iter().map(|d| B64.encode(sha256(d))).collect();
        let sad = authorize(credential, &hashes);
        let body = match spelling {
            "v2" => {
                json!({ "credentialID": credential, "SAD": sad, "hashes": hashes, "hashAlgorithmOID": SHA256, "signAlgo": sign_algo })
            }
            _ => {
                json!({ "credentialID": credential, "SAD": sad, "hash": hashes, "hashAlgo": SHA256, "signAlgo": sign_algo })
            }
        };
        let (code, signed) = post(path, &body);
        assert_eq!(code, 200, "{signed}");
        let signatures = signed["signatures"].as_array().expect("signatures");
        assert_eq!(signatures.len(), 3);
        for (doc, sig) in documents.iter().zip(signatures) {
            let sig = B64.decode(sig.as_str().expect("b64")).expect("base64");
            assert!(
                openssl_verifies(dir.path(), &signer, doc, &sig),
                "{credential}: openssl refused a signature"
            );
        }
        // The SAD was for one call.
        let (code, v) = post(path, &body);
        assert_eq!(csc_error(code, &v), "invalid_request");
        assert_eq!(v["error_description"], "Invalid parameter SAD");
    }

    // The audit log names the client, the credential and the count.
    let out = app().ctl(&["audit", "tail", "-n", "60", "--json"]);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit json");
    let signed: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["event"]["operation"] == "csc-signatures-signHash" && r["event"]["status"] == 200
        })
        .collect();
    assert!(
        signed.iter().any(|r| r["event"]["key"] == "doc-rsa"
            && r["event"]["items"] == 3
            && r["event"]["client"] == "CN=demo-app,O=Signet"),
        "{records:#?}"
    );
}

#[test]
fn bad_csc_input_gets_csc_errors_never_a_5xx() {
    let hash = B64.encode(sha256(b"a document"));
    let one = vec![hash.clone()];
    let sign = |credential: &str, sad: &str, hashes: &[String], algo: &str| {
        post(
            "/csc/v2/signatures/signHash",
            &json!({ "credentialID": credential, "SAD": sad, "hashes": hashes, "signAlgo": algo }),
        )
    };
    let refused = |(code, v): (u16, Value), description: &str| {
        assert_eq!(csc_error(code, &v), "invalid_request", "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(description)),
            "wanted {description:?}: {v}"
        );
    };

    // Unknown credential, and one this client may not use: the same answer.
    refused(
        post(
            "/csc/v2/credentials/info",
            &json!({ "credentialID": "no-such-key" }),
        ),
        "credentialID",
    );
    let (code, _, v) = post_raw(
        Some(limited_client()),
        "/csc/v2/credentials/authorize",
        "application/json",
        json!({ "credentialID": "doc-ec", "numSignatures": 1, "hashes": [hash] })
            .to_string()
            .as_bytes(),
    );
    refused((code, v), "Invalid parameter credentialID");
    // Keys the appliance itself uses are no credential.
    refused(
        post(
            "/csc/v2/credentials/info",
            &json!({ "credentialID": "tsa" }),
        ),
        "credentialID",
    );

    // A wrong hash length, at authorize and at signHash.
    let short = B64.encode([7u8; 20]);
    let short_one = vec![short.clone()];
    refused(
        post(
            "/csc/v2/credentials/authorize",
            &json!({ "credentialID": "doc-rsa", "numSignatures": 1, "hashes": [short], "hashAlgorithmOID": SHA256 }),
        ),
        "hash length",
    );
    let sad = authorize("doc-rsa", &one);
    refused(sign("doc-rsa", &sad, &short_one, RSA_SHA256), "hash length");

    // Unsupported algorithms: SHA-1 with RSA, an unknown OID, ECDSA on an RSA key.
    for algo in [
        "1.2.840.113549.1.1.5",
        "1.2.3.4",
        ECDSA_SHA256,
        "not-an-oid",
    ] {
        let sad = authorize("doc-rsa", &one);
        refused(sign("doc-rsa", &sad, &one, algo), "signAlgo");
    }

    // A SAD is single-use, bound to its hashes, and another client's is unknown.
    let sad = authorize("doc-rsa", &one);
    let other = B64.encode(sha256(b"another document"));
    refused(sign("doc-rsa", &sad, &[other], RSA_SHA256), "SAD");
    refused(
        sign("doc-rsa", &sad, &one, RSA_SHA256),
        "Invalid parameter SAD",
    );
    let theirs = authorize("doc-rsa", &one);
    let (code, _, v) = post_raw(
        Some(limited_client()),
        "/csc/v2/signatures/signHash",
        "application/json",
        json!({ "credentialID": "doc-rsa", "SAD": theirs, "hashes": [hash], "signAlgo": RSA_SHA256 }).to_string().as_bytes(),
    );
    refused((code, v), "Invalid parameter SAD");
    // ... and stays good for its owner.
    let (code, v) = sign("doc-rsa", &theirs, &one, RSA_SHA256);
    assert_eq!(code, 200, "{v}");
    refused(sign("doc-rsa", "bm90IGEgU0FE", &one, RSA_SHA256), "SAD");
    refused(
        post(
            "/csc/v2/signatures/signHash",
            &json!({ "credentialID": "doc-rsa", "hashes": [hash], "signAlgo": RSA_SHA256 }),
        ),
        "SAD",
    );
    refused(
        post(
            "/csc/v2/credentials/authorize",
            &json!({ "credentialID": "doc-rsa", "numSignatures": 2, "hashes": [hash] }),
        ),
        "numSignatures",
    );
    refused(
        post(
            "/csc/v2/credentials/authorize",
            &json!({ "credentialID": "doc-rsa", "numSignatures": 1 }),
        ),
        "hashes",
    );

    // Malformed JSON, JSON of the wrong shape, another media type.
    for (body, ctype) in [
        (&b"{\"credentialID\": "[..], "application/json"),
        (&b"[1, 2, 3]"[..], "application/json"),
        (&b"{\"credentialID\": 7}"[..], "application/json"),
        (&b"\xff\xfe"[..], "application/json"),
    ] {
        let (code, ctype_back, v) = post_raw(None, "/csc/v2/credentials/info", ctype, body);
        assert_eq!(ctype_back, "application/json");
        assert_eq!(csc_error(code, &v), "invalid_request");
    }
    let (code, _, v) = post_raw(
        None,
        "/csc/v2/credentials/info",
        "text/plain",
        b"credentialID=doc-rsa",
    );
    assert_eq!((code, csc_error(code, &v)), (415, "invalid_request".into()));

    // Methods not served, versions not spoken, GET: CSC errors too.
    for path in [
        "/csc/v2/signatures/signDoc",
        "/csc/v2/auth/login",
        "/csc/v3/info",
    ] {
        let (code, v) = post(path, &json!({}));
        assert_eq!(
            (code, csc_error(code, &v)),
            (404, "invalid_request".into()),
            "{path}"
        );
    }
    let out = run_ok(
        app()
            .curl()
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(app().url("/csc/v2/info")),
    );
    assert_eq!(out.trim(), "405");

    // A SAD expires.
    let stale = authorize("doc-rsa", &one);
    std::thread::sleep(
        std::time::Duration::from_secs(SAD_SECS) + std::time::Duration::from_millis(500),
    );
    refused(sign("doc-rsa", &stale, &one, RSA_SHA256), "SAD expired");

    let verified = app().ctl(&["audit", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
    assert!(!app().log().contains("panicked"), "{}", app().log());
}

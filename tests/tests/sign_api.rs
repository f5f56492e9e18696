//! The signing API judged by openssl: raw signatures (PKCS#1 v1.5, PSS, ECDSA P-256 and
//! P-384) verify against the SPKI from /v1/keys; CMS B-B and B-T verify, with
//! signing-certificate-v2 and a time-stamp over the signature value; who may use which key;
//! rate limits; SIGHUP reload; bad input.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use signet_e2e::{run, run_ok, Appliance};

/// POST JSON as the given client (or the demo client); (HTTP status, parsed body).
fn post_json(
    app: &Appliance,
    who: Option<(&Path, &Path)>,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let (code, bytes) = post_raw(
        app,
        who,
        path,
        "application/json",
        body.to_string().as_bytes(),
    );
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post_raw(
    app: &Appliance,
    who: Option<(&Path, &Path)>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (req, resp) = (dir.path().join("req"), dir.path().join("resp"));
    std::fs::write(&req, body).expect("write");
    let mut curl = match who {
        Some((c, k)) => app.curl_as(c, k),
        None => app.curl(),
    };
    let out = run(curl
        .args(["-o"])
        .arg(&resp)
        .args(["-w", "%{http_code}", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", req.display()))
        .arg(app.url(path)));
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&resp).unwrap_or_default())
}

fn get_json(app: &Appliance, path: &str) -> Value {
    let out = run_ok(app.curl().arg(app.url(path)));
    serde_json::from_str(&out).expect("json")
}

fn digest(alg: &str, data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("d");
    std::fs::write(&f, data).expect("write");
    let out = run(Command::new("openssl")
        .args(["dgst", &format!("-{alg}"), "-binary"])
        .arg(&f));
    out.stdout
}

fn with_p384_key(t: &mut toml::Table) {
    let keys = t["signing_keys"].as_array_mut().expect("signing_keys");
    let mut k = toml::Table::new();
    k.insert("label".into(), "doc-p384".into());
    k.insert("algorithm".into(), "ec-p384".into());
    k.insert("certificate_chain".into(), "pki/doc-p384-chain.pem".into());
    keys.push(toml::Value::Table(k));
    let clients = t["clients"].as_array_mut().expect("clients");
    clients[0]["keys"]
        .as_array_mut()
        .expect("keys")
        .push("doc-p384".into());
}

#[test]
fn raw_signatures_verify_with_openssl_against_the_spki_from_keys() {
    let mut app = Appliance::init_with(with_p384_key);
    app.start();
    let keys = get_json(&app, "/v1/keys");
    let spki = |label: &str| -> String {
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["label"] == label)
            .unwrap_or_else(|| panic!("{label} in {keys}"))["spki_pem"]
            .as_str()
            .expect("pem")
            .to_owned()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let data = b"the contract, as agreed";
    let data_file = dir.path().join("data");
    std::fs::write(&data_file, data).expect("write");
    for (key, scheme, alg, pkeyopts) in [
        ("doc-rsa", "pkcs1v15", "sha256", vec![]),
        ("doc-rsa", "pkcs1v15", "sha512", vec![]),
        (
            "doc-rsa",
            "pss",
            "sha256",
            vec!["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"],
        ),
        (
            "doc-rsa",
            "pss",
            "sha384",
            vec!["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"],
        ),
        ("doc-ec", "ecdsa", "sha256", vec![]),
        ("doc-p384", "ecdsa", "sha384", vec![]),
    ] {
        let body = json!({
            "digest": B64.encode(digest(alg, data)),
            "digest_algorithm": alg,
            "scheme": scheme,
        });
        let (code, answer) = post_json(&app, None, &format!("/v1/sign/{key}"), &body);
        assert_eq!(code, 200, "{key} {scheme} {alg}: {answer}");
        let sig = B64
            .decode(answer["signature"].as_str().expect("signature"))
            .expect("b64");
        let (pub_file, sig_file) = (dir.path().join("pub.pem"), dir.path().join("sig"));
        std::fs::write(&pub_file, spki(key)).expect("write");
        std::fs::write(&sig_file, &sig).expect("write");
        let mut cmd = Command::new("openssl");
        cmd.args(["dgst", &format!("-{alg}"), "-verify"])
            .arg(&pub_file)
            .arg("-signature")
            .arg(&sig_file);
        for o in &pkeyopts {
            cmd.args(["-sigopt", o]);
        }
        let out = run(cmd.arg(&data_file));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Verified OK",
            "{key} {scheme} {alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Another message does not verify: the check can fail.
        std::fs::write(dir.path().join("other"), b"another text").expect("write");
        let mut cmd = Command::new("openssl");
        cmd.args(["dgst", &format!("-{alg}"), "-verify"])
            .arg(&pub_file)
            .arg("-signature")
            .arg(&sig_file);
        for o in &pkeyopts {
            cmd.args(["-sigopt", o]);
        }
        assert!(!run(cmd.arg(dir.path().join("other"))).status.success());
    }
    // A batch: one result per digest, in order, each verifying.
    let digests: Vec<String> = (0..5)
        .map(|i| B64.encode(digest("sha256", format!("item {i}").as_bytes())))
        .collect();
    let (code, answer) = post_json(
        &app,
        None,
        "/v1/sign/doc-ec/batch",
        &json!({ "digests": digests, "digest_algorithm": "sha256", "scheme": "ecdsa" }),
    );
    assert_eq!(code, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    std::fs::write(dir.path().join("pub.pem"), spki("doc-ec")).expect("write");
    for (i, r) in results.iter().enumerate() {
        let sig = B64
            .decode(r["signature"].as_str().expect("signature"))
            .expect("b64");
        std::fs::write(dir.path().join("sig"), sig).expect("write");
        std::fs::write(dir.path().join("item"), format!("item {i}")).expect("write");
        let out = run(Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(dir.path().join("pub.pem"))
            .arg("-signature")
            .arg(dir.path().join("sig"))
            .arg(dir.path().join("item")));
        assert!(out.status.success(), "batch item {i}");
    }
    app.stop();
}

/// The TimeStampToken in the first SignerInfo's unsigned attributes.
fn extract_token(cms_der: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    let ci = cms::content_info::ContentInfo::from_der(cms_der).expect("ContentInfo");
    let sd: cms::signed_data::SignedData = ci.content.decode_as().expect("SignedData");
    let si = sd.signer_infos.0.iter().next().expect("a SignerInfo");
    let attrs = si.unsigned_attrs.as_ref().expect("unsigned attributes");
    let ts = attrs
        .iter()
        .find(|a| a.oid.to_string() == "1.2.840.113549.1.9.16.2.14")
        .expect("signature-time-stamp");
    ts.values
        .iter()
        .next()
        .expect("value")
        .to_der()
        .expect("der")
}

#[test]
fn cms_b_b_and_b_t_verify_with_openssl() {
    let mut app = Appliance::init();
    app.start();
    let dir = tempfile::tempdir().expect("tmp");
    let data = b"%PDF-1.7 pretend document\n".repeat(1000);
    let data_file = dir.path().join("data");
    std::fs::write(&data_file, &data).expect("write");
    let root = app.path("pki/root-ca.pem");
    for key in ["doc-rsa", "doc-ec"] {
        for (query, streamed) in [
            ("level=B-B", true),
            ("level=B-T", true),
            ("level=B-B&profile=pades", false),
        ] {
            let (code, sig) = if streamed {
                post_raw(
                    &app,
                    None,
                    &format!("/v1/cms/{key}?{query}"),
                    "application/octet-stream",
                    &data,
                )
            } else {
                let body = json!({ "digest": B64.encode(digest("sha256", &data)), "digest_algorithm": "sha256" });
                post_raw(
                    &app,
                    None,
                    &format!("/v1/cms/{key}?{query}"),
                    "application/json",
                    body.to_string().as_bytes(),
                )
            };
            assert_eq!(
                code,
                200,
                "{key} {query}: {}",
                String::from_utf8_lossy(&sig)
            );
            let sig_file = dir.path().join("sig.p7s");
            std::fs::write(&sig_file, &sig).expect("write");
            let out = run(Command::new("openssl")
                .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
                .arg(&sig_file)
                .arg("-content")
                .arg(&data_file)
                .arg("-CAfile")
                .arg(&root)
                .args(["-out", "/dev/null"]));
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                text.contains("Verification successful"),
                "{key} {query}: {text}"
            );
            let printed = run_ok(
                Command::new("openssl")
                    .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
                    .arg(&sig_file),
            );
            assert!(printed.contains("signingCertificateV2"), "{printed}");
            assert_eq!(
                printed.contains("signingTime"),
                !query.contains("pades"),
                "{key} {query}"
            );
            if query.contains("B-T") {
                // The time-stamp is over the signature value (ETSI EN 319 122-1 5.3).
                let token = extract_token(&sig);
                let value = signet_pki::cms::cades::signature_value(&sig).expect("value");
                let token_file = dir.path().join("token.der");
                std::fs::write(&token_file, token).expect("write");
                let out = run(Command::new("openssl")
                    .args(["ts", "-verify", "-token_in", "-in"])
                    .arg(&token_file)
                    .arg("-digest")
                    .arg(hex::encode(digest("sha256", &value)))
                    .arg("-CAfile")
                    .arg(&root));
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Other content does not verify.
        std::fs::write(dir.path().join("other"), b"tampered").expect("write");
        let out = run(Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
            .arg(dir.path().join("sig.p7s"))
            .arg("-content")
            .arg(dir.path().join("other"))
            .arg("-CAfile")
            .arg(&root)
            .args(["-out", "/dev/null"]));
        assert!(!out.status.success());
    }
    app.stop();
}

fn set_clients(t: &mut toml::Table, clients: Value) {
    let v: toml::Value = serde_json::from_value(clients).expect("toml");
    t.insert("clients".into(), v);
}

#[test]
fn who_may_use_which_key_rate_limits_and_reload() {
    let policy = |a_keys: Value| {
        json!([
            { "name": "app-a", "match": { "subject": "CN=demo-app,O=Signet" },
              "operations": ["sign", "cms"], "keys": a_keys },
            { "name": "stamper", "match": { "subject": "CN=stamper,O=Signet" },
              "operations": ["tsa"], "keys": [] },
            { "name": "slow", "match": { "subject": "CN=slow,O=Signet" },
              "operations": ["sign"], "keys": ["doc-ec"],
              "rate_limit": { "per_second": 0.5, "burst": 2.0 } },
        ])
    };
    let mut app = Appliance::init_with(|t| set_clients(t, policy(json!(["doc-rsa"]))));
    let stamper = app.issue_client("stamper");
    let stranger = app.issue_client("stranger");
    let slow = app.issue_client("slow");
    app.start();
    let sign_body = json!({
        "digest": B64.encode([7u8; 32]), "digest_algorithm": "sha256", "scheme": "ecdsa",
    });
    let rsa_body = json!({
        "digest": B64.encode([7u8; 32]), "digest_algorithm": "sha256", "scheme": "pkcs1v15",
    });
    let tsq = {
        let f = app.path("q.tsq");
        std::fs::write(app.path("q.data"), b"x").expect("write");
        run_ok(
            Command::new("openssl")
                .args(["ts", "-query", "-sha256", "-cert", "-data"])
                .arg(app.path("q.data"))
                .arg("-out")
                .arg(&f),
        );
        std::fs::read(f).expect("tsq")
    };
    let as_ = |p: &(std::path::PathBuf, std::path::PathBuf)| Some((p.0.clone(), p.1.clone()));
    fn who(p: &Option<(std::path::PathBuf, std::path::PathBuf)>) -> Option<(&Path, &Path)> {
        p.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }
    let (demo, stamper, stranger, slow) = (None, as_(&stamper), as_(&stranger), as_(&slow));

    // A may use K1 (doc-rsa) and not K2 (doc-ec), and may not time-stamp.
    assert_eq!(
        post_json(&app, who(&demo), "/v1/sign/doc-rsa", &rsa_body).0,
        200
    );
    let (code, body) = post_json(&app, who(&demo), "/v1/sign/doc-ec", &sign_body);
    assert_eq!((code, body["code"].as_str()), (403, Some("forbidden")));
    let (code, _) = post_raw(
        &app,
        who(&demo),
        "/v1/tsa",
        "application/timestamp-query",
        &tsq,
    );
    assert_eq!(code, 403);
    // B may only time-stamp.
    let (code, _) = post_raw(
        &app,
        who(&stamper),
        "/v1/tsa",
        "application/timestamp-query",
        &tsq,
    );
    assert_eq!(code, 200);
    assert_eq!(
        post_json(&app, who(&stamper), "/v1/sign/doc-rsa", &rsa_body).0,
        403
    );
    // A certificate from the right CA that no client entry names: 403 everywhere.
    let (code, body) = post_json(&app, who(&stranger), "/v1/sign/doc-rsa", &rsa_body);
    assert_eq!((code, body["code"].as_str()), (403, Some("unknown-client")));
    let (code, _) = post_raw(
        &app,
        who(&stranger),
        "/v1/tsa",
        "application/timestamp-query",
        &tsq,
    );
    assert_eq!(code, 403);
    let out = run(app
        .curl_as(
            &app.path("clients/stranger.pem"),
            &app.path("clients/stranger.key"),
        )
        .arg(app.url("/v1/keys")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown-client"));

    // Over the limit: 429 with Retry-After, and the others keep being served.
    assert_eq!(
        post_json(&app, who(&slow), "/v1/sign/doc-ec", &sign_body).0,
        200
    );
    assert_eq!(
        post_json(&app, who(&slow), "/v1/sign/doc-ec", &sign_body).0,
        200
    );
    let head = run(app
        .curl_as(&app.path("clients/slow.pem"), &app.path("clients/slow.key"))
        .args([
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(sign_body.to_string())
        .arg(app.url("/v1/sign/doc-ec")));
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/") && head.contains(" 429"), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    assert_eq!(
        post_json(&app, who(&demo), "/v1/sign/doc-rsa", &rsa_body).0,
        200
    );

    // Each denial is in the log with the identity.
    let log = app.log();
    assert!(
        log.contains("not granted") && log.contains("app-a"),
        "{log}"
    );
    assert!(
        log.contains("unknown client") && log.contains("CN=stranger"),
        "{log}"
    );
    assert!(log.contains("rate limit") && log.contains("slow"), "{log}");

    // SIGHUP: A is granted doc-ec too; a connection opened before the reload keeps working.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let config = signet_e2e::client::demo_client_config(&app);
    let mut conn = rt
        .block_on(signet_e2e::client::Connection::connect(
            app.addr.expect("addr"),
            config,
        ))
        .expect("connect");
    let send = |conn: &mut signet_e2e::client::Connection| {
        rt.block_on(conn.post(
            "/v1/sign/doc-ec",
            "application/json",
            sign_body.to_string().into(),
        ))
        .expect("answer")
        .0
        .as_u16()
    };
    assert_eq!(send(&mut conn), 403);
    app.edit_config(|t| set_clients(t, policy(json!(["doc-rsa", "doc-ec"]))));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app.log().contains("client policy reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            app.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(send(&mut conn), 200, "same connection, new policy");
    app.stop();
}

#[test]
fn bad_input_gets_a_4xx_problem_with_its_code() {
    let mut app = Appliance::init();
    app.start();
    let ok_digest = B64.encode([1u8; 32]);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("/v1/sign/doc-ec", "application/json", b"{not json".to_vec(), 400, "bad-json"),
        ("/v1/sign/doc-ec", "text/plain", b"{}".to_vec(), 415, "unsupported-media-type"),
        ("/v1/sign/doc-ec", "application/json",
            json!({"digest": "!!!", "digest_algorithm": "sha256", "scheme": "ecdsa"}).to_string().into_bytes(), 400, "bad-base64"),
        ("/v1/sign/doc-ec", "application/json",
            json!({"digest": B64.encode([1u8; 20]), "digest_algorithm": "sha256", "scheme": "ecdsa"}).to_string().into_bytes(), 400, "bad-digest-length"),
        ("/v1/sign/doc-ec", "application/json",
            json!({"digest": ok_digest, "digest_algorithm": "sha256", "scheme": "pss"}).to_string().into_bytes(), 422, "scheme-mismatch"),
        ("/v1/sign/doc-ec", "application/json",
            json!({"digest": ok_digest, "digest_algorithm": "md5", "scheme": "ecdsa"}).to_string().into_bytes(), 400, "bad-json"),
        ("/v1/sign/nope", "application/json",
            json!({"digest": ok_digest, "digest_algorithm": "sha256", "scheme": "ecdsa"}).to_string().into_bytes(), 404, "unknown-key"),
        ("/v1/sign/doc-ec/batch", "application/json",
            json!({"digests": vec![ok_digest.clone(); 1001], "digest_algorithm": "sha256", "scheme": "ecdsa"}).to_string().into_bytes(), 413, "batch-too-large"),
        ("/v1/cms/doc-ec?level=B-Z", "application/octet-stream", b"data".to_vec(), 400, "bad-parameter"),
        ("/v1/cms/doc-ec", "application/json",
            json!({"digest": ok_digest, "digest_algorithm": "sha384"}).to_string().into_bytes(), 400, "bad-digest-length"),
    ];
    for (path, ct, body, want_code, want) in cases {
        let (code, answer) = post_raw(&app, None, path, ct, &body);
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        assert_eq!(
            (code, answer["code"].as_str()),
            (want_code, Some(want)),
            "{path} {ct}: {answer}"
        );
        assert_eq!(answer["status"], want_code, "{answer}");
    }
    // Still serving.
    let (code, _) = post_json(
        &app,
        None,
        "/v1/sign/doc-ec",
        &json!({"digest": ok_digest, "digest_algorithm": "sha256", "scheme": "ecdsa"}),
    );
    assert_eq!(code, 200);
    app.stop();
}

#[test]
fn a_key_generated_and_certified_by_signetctl_is_offered_once_declared() {
    let mut app = Appliance::init();
    app.start();
    let chain = app.path("pki/new-key-chain.pem");
    let out = app.ctl(&[
        "key",
        "generate",
        "--label",
        "new-key",
        "--algorithm",
        "ec-p384",
        "--issue-from",
        "root",
        "--out",
        &chain.to_string_lossy(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(made["algorithm"], "ec-p384");
    // The label is taken now.
    let again = app.ctl(&[
        "key",
        "generate",
        "--label",
        "new-key",
        "--algorithm",
        "ec-p256",
    ]);
    assert!(!again.status.success());
    // The chain verifies under the root, and OCSP knows the new certificate.
    let verify = run_ok(
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(app.path("pki/root-ca.pem"))
            .arg(&chain),
    );
    assert!(verify.contains(": OK"), "{verify}");
    app.stop();
    app.edit_config(|t| {
        let keys = t["signing_keys"].as_array_mut().expect("signing_keys");
        let mut k = toml::Table::new();
        k.insert("label".into(), "new-key".into());
        k.insert("algorithm".into(), "ec-p384".into());
        k.insert("certificate_chain".into(), "pki/new-key-chain.pem".into());
        keys.push(toml::Value::Table(k));
        t["clients"].as_array_mut().expect("clients")[0]["keys"]
            .as_array_mut()
            .expect("keys")
            .push("new-key".into());
    });
    app.start();
    let keys = get_json(&app, "/v1/keys");
    assert!(
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["label"] == "new-key"),
        "{keys}"
    );
    let (code, answer) = post_json(
        &app,
        None,
        "/v1/sign/new-key",
        &json!({
            "digest": B64.encode(digest("sha384", b"new")), "digest_algorithm": "sha384", "scheme": "ecdsa",
        }),
    );
    assert_eq!(code, 200, "{answer}");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("sig"),
        B64.decode(answer["signature"].as_str().expect("sig"))
            .expect("b64"),
    )
    .expect("write");
    std::fs::write(dir.path().join("data"), b"new").expect("write");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(&chain)
            .arg("-out")
            .arg(dir.path().join("pub.pem")),
    );
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha384", "-verify"])
        .arg(dir.path().join("pub.pem"))
        .arg("-signature")
        .arg(dir.path().join("sig"))
        .arg(dir.path().join("data")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop();
}

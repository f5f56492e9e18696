//! A token that returns wrong signatures (as an RSA-CRT fault would): signetd on the
//! test-only `signet-faulty-pkcs11` module, which forwards every call to the real token and,
//! while a file exists, flips one bit of each signature C_Sign returns. No such signature
//! may leave the appliance: JSON signing (RSA and P-256), the TSA and OCSP with a nonce
//! answer with their protocol's "unavailable", the audit log records those answers, a new
//! TLS handshake (signed by the token too) fails, and once the token is right again
//! everything signs again.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use x509_cert::Certificate;

use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::{Appliance, Launch};
use signet_pki::verify::PublicKey;
use signet_pki::{HashAlg, SignatureScheme};

/// The shim the workspace builds (`cargo build --release --workspace --lib`, as
/// `scripts/test.sh` does): beside the test binaries' `deps` directory.
fn shim_module() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let module = release.join("libsignet_faulty_pkcs11.so");
    assert!(
        module.exists(),
        "{} is missing: build it with `cargo build --release --locked -p signet-faulty-pkcs11`",
        module.display()
    );
    module
}

fn pem_cert(path: &Path) -> Certificate {
    let pem = std::fs::read_to_string(path).expect("pem");
    signet_pki::x509::certificates_from_pem(&pem)
        .expect("certificates")
        .remove(0)
}

/// The JSON signing request for `key` over `data`'s SHA-256.
fn sign_body(scheme: &str, data: &[u8]) -> Bytes {
    let digest = HashAlg::Sha256.digest(data);
    Bytes::from(
        json!({
            "digest": B64.encode(digest),
            "digest_algorithm": "sha256",
            "scheme": scheme,
        })
        .to_string(),
    )
}

/// Every answer of one round, over a connection opened while the token was right.
struct Round {
    sign_ec: (u16, Value),
    sign_rsa: (u16, Value),
    tsa: (u16, Bytes),
    ocsp: (u16, Bytes),
}

async fn round(conn: &mut Connection, ocsp_request: &Bytes, n: u8) -> Round {
    let data = [b'x', n];
    let mut json_post = async |path: &str, scheme: &str| {
        let (status, body) = conn
            .post(path, "application/json", sign_body(scheme, &data))
            .await
            .expect("answer");
        (
            status.as_u16(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    };
    let sign_ec = json_post("/v1/sign/doc-ec", "ecdsa").await;
    let sign_rsa = json_post("/v1/sign/doc-rsa", "pkcs1v15").await;
    let tsa_query = Bytes::from(signet_e2e::tsp::request(&data, u64::from(n), true));
    let (status, tsa) = conn
        .post("/v1/tsa", "application/timestamp-query", tsa_query)
        .await
        .expect("answer");
    let tsa = (status.as_u16(), tsa);
    let (status, ocsp) = conn
        .post("/ocsp", "application/ocsp-request", ocsp_request.clone())
        .await
        .expect("answer");
    Round {
        sign_ec,
        sign_rsa,
        tsa,
        ocsp: (status.as_u16(), ocsp),
    }
}

/// Every answer of round `n` signed, and each signature verifies.
fn assert_all_signed(r: &Round, (doc_ec, doc_rsa): (&PublicKey, &PublicKey), n: u8) {
    let ec = SignatureScheme::Ecdsa(HashAlg::Sha256);
    check_json_signature(&r.sign_ec, doc_ec, ec, n);
    let rsa = SignatureScheme::RsaPkcs1v15(HashAlg::Sha256);
    check_json_signature(&r.sign_rsa, doc_rsa, rsa, n);
    assert_eq!(r.tsa.0, 200);
    signet_e2e::tsp::tst_info(&r.tsa.1);
    assert_eq!(r.ocsp.0, 200);
    assert_eq!(
        signet_e2e::ocsp::status(&r.ocsp.1),
        x509_ocsp::OcspResponseStatus::Successful
    );
}

/// The signature in a JSON answer, checked with `key`.
fn check_json_signature(answer: &(u16, Value), key: &PublicKey, scheme: SignatureScheme, n: u8) {
    assert_eq!(answer.0, 200, "{answer:?}");
    let signature = B64
        .decode(answer.1["signature"].as_str().expect("signature"))
        .expect("base64");
    let digest = HashAlg::Sha256.digest(&[b'x', n]);
    key.verify_digest(scheme, &digest, &signature)
        .expect("a signature that verifies");
}

#[test]
fn no_wrong_signature_leaves_the_appliance() {
    let mut app = Appliance::init();
    let flip = app.path("flip");
    let mut real = String::new();
    app.edit_config(|t| {
        let hsm = t["hsm"].as_table_mut().expect("[hsm]");
        real = hsm["module"].as_str().expect("module").to_owned();
        hsm.insert(
            "module".into(),
            toml::Value::String(shim_module().to_string_lossy().into_owned()),
        );
    });
    app.spawn(&Launch {
        env: vec![
            ("SIGNET_FAULT_TARGET".into(), real.into()),
            ("SIGNET_FAULT_FLIP_FILE".into(), flip.clone().into()),
        ],
        ..Launch::default()
    });
    app.wait_listening().expect("signetd on the faulty module");
    let addr = app.addr.expect("listening");
    let doc_ec = PublicKey::from_spki_der(&spki(&app.path("pki/doc-ec-chain.pem"))).expect("key");
    let doc_rsa = PublicKey::from_spki_der(&spki(&app.path("pki/doc-rsa-chain.pem"))).expect("key");
    let ocsp_request = Bytes::from(signet_e2e::ocsp::request(
        &pem_cert(&app.path("pki/root-ca.pem")),
        &[&pem_cert(&app.path("pki/tsa.pem"))],
        16,
    ));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let config = demo_client_config(&app);
    let mut conn = rt
        .block_on(Connection::connect(addr, config.clone()))
        .expect("handshake while the token is right");

    // Through the module, the token is right: everything signs.
    let keys = (&doc_ec, &doc_rsa);
    assert_all_signed(&rt.block_on(round(&mut conn, &ocsp_request, 1)), keys, 1);

    // The token goes wrong: nothing it signs gets out.
    std::fs::write(&flip, b"").expect("flip file");
    let records_before = request_records(&app).len();
    let wrong = rt.block_on(round(&mut conn, &ocsp_request, 2));
    for (what, answer) in [
        ("sign doc-ec", &wrong.sign_ec),
        ("sign doc-rsa", &wrong.sign_rsa),
    ] {
        assert_eq!(answer.0, 500, "{what}: {answer:?}");
        assert_eq!(answer.1["code"], "signing-failed", "{what}: {answer:?}");
        assert!(answer.1.get("signature").is_none(), "{what}: {answer:?}");
    }
    assert_eq!(wrong.tsa.0, 503, "the TSA's systemFailure comes with 503");
    // systemFailure (RFC 3161 PKIFailureInfo bit 25), no token.
    assert_eq!(signet_e2e::tsp::fail_bits(&wrong.tsa.1), [25]);
    assert_eq!(wrong.ocsp.0, 503);
    assert_eq!(
        signet_e2e::ocsp::status(&wrong.ocsp.1),
        x509_ocsp::OcspResponseStatus::InternalError
    );
    // The answers withheld are on the audit log, as what they were.
    let records = request_records(&app);
    let statuses: Vec<(String, u64)> = records[records_before..]
        .iter()
        .map(|r| {
            (
                r["event"]["operation"].as_str().unwrap_or("").to_owned(),
                r["event"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for (op, status, n) in [("sign", 500, 2), ("tsa", 503, 1), ("ocsp", 503, 1)] {
        let withheld = statuses
            .iter()
            .filter(|(o, s)| o == op && *s == status)
            .count();
        assert_eq!(withheld, n, "{op} {status} records in {statuses:?}");
    }
    assert!(
        app.log()
            .contains("the token returned a signature that does not verify"),
        "the fault is in signetd's log"
    );
    // A full handshake needs the token's signature too: none is made with a wrong one (a
    // fresh client config, so no session to resume without a signature).
    assert!(
        rt.block_on(async {
            let mut c = Connection::connect(addr, demo_client_config(&app)).await?;
            c.post("/v1/tsa", "text/plain", Bytes::new())
                .await
                .map_err(std::io::Error::other)
        })
        .is_err(),
        "a TLS handshake completed while the token signs wrongly"
    );

    // The token is right again: so is every answer, and a fresh client's full handshake
    // succeeds (so the one above failed for the fault, not for anything else).
    std::fs::remove_file(&flip).expect("flip file gone");
    let mut conn = rt
        .block_on(Connection::connect(addr, demo_client_config(&app)))
        .expect("a full handshake once the token is right again");
    assert_all_signed(&rt.block_on(round(&mut conn, &ocsp_request, 3)), keys, 3);
    app.stop();
}

/// The DER SubjectPublicKeyInfo of the first certificate in a PEM file.
fn spki(pem: &Path) -> Vec<u8> {
    use der::Encode;
    pem_cert(pem)
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("SPKI")
}

/// The log's request records, parsed.
fn request_records(app: &Appliance) -> Vec<Value> {
    std::fs::read_to_string(app.path("audit/audit.log"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a record"))
        .filter(|r| r["event"]["kind"] == "request")
        .collect()
}

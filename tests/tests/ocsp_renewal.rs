//! The short-lived OCSP signer renews itself (a 2-minute lifetime here): openssl verifies
//! every answer across the switch, and no answer is signed outside its signer's validity.
//! A revoked signer hands over to the root at once and is replaced; a revoked TSA
//! certificate stamps nothing (503, rejection, systemFailure).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use x509_cert::Certificate;

use signet_e2e::ocsp::{basic, pki_cert};
use signet_e2e::{run, run_ok, tsp, Appliance};

const LIFETIME_SECS: i64 = 120;

/// One appliance for this binary, its signer living two minutes.
fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut a = Appliance::init_with(|t| {
            let ocsp = t
                .entry("ocsp")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(ocsp) = ocsp.as_table_mut() {
                ocsp.insert(
                    "signer_lifetime_secs".into(),
                    toml::Value::Integer(LIFETIME_SECS),
                );
            }
        });
        a.start();
        a
    })
}

fn serial_hex(cert: &Certificate) -> String {
    hex::encode(cert.tbs_certificate.serial_number.as_bytes())
        .trim_start_matches('0')
        .to_owned()
}

/// One answer as openssl got and judged it.
struct Judged {
    signer: Certificate,
    produced_at: SystemTime,
}

/// Ask openssl about the demo client's certificate (a cached answer, or a live one with a
/// nonce); assert it verified against the root alone and says good, and that its signer
/// was valid when it was produced.
fn ask(app: &Appliance, nonce: bool) -> Judged {
    let dir = tempfile::tempdir().expect("tmp");
    let resp = dir.path().join("resp.der");
    let root = app.path("pki/root-ca.pem");
    let mut cmd = Command::new("openssl");
    cmd.arg("ocsp")
        .arg("-issuer")
        .arg(&root)
        .arg("-cert")
        // A certificate the root issued (the client CA's), so the delegated signer answers.
        .arg(app.path("pki/client-ca.pem"))
        .arg("-url")
        .arg(app.public_url("/ocsp"))
        .arg("-CAfile")
        .arg(&root)
        .arg("-respout")
        .arg(&resp);
    if !nonce {
        cmd.arg("-no_nonce");
    }
    let out = run(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Response verify OK") && text.contains("client-ca.pem: good"),
        "openssl ocsp: {text}\n{}",
        app.log()
    );
    let der = std::fs::read(&resp).expect("response");
    let basic = basic(&der);
    let produced_at = basic.tbs_response_data.produced_at.0.to_system_time();
    let signer = basic
        .certs
        .and_then(|mut c| (!c.is_empty()).then(|| c.remove(0)))
        .expect("the signer's certificate in the response");
    let validity = &signer.tbs_certificate.validity;
    assert!(
        validity.not_before.to_system_time() <= produced_at
            && produced_at < validity.not_after.to_system_time(),
        "answer produced at {produced_at:?} by a signer valid {:?} .. {:?}",
        validity.not_before,
        validity.not_after
    );
    Judged {
        signer,
        produced_at,
    }
}

fn status_json(app: &Appliance) -> Value {
    let out = app.ctl(&["status", "--json"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn revoke(app: &Appliance, serial: &str) {
    let out = app.ctl(&["cert", "revoke", serial, "--reason", "keyCompromise"]);
    assert!(
        out.status.success(),
        "revoke {serial}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_ocsp_signer_renews_itself_and_a_revoked_one_hands_over_to_the_root() {
    let app = app();
    let first = pki_cert(app, "ocsp-signer.pem");
    let root = pki_cert(app, "root-ca.pem");
    let lifetime = first
        .tbs_certificate
        .validity
        .not_after
        .to_system_time()
        .duration_since(first.tbs_certificate.validity.not_before.to_system_time())
        .expect("notAfter after notBefore");
    assert_eq!(lifetime, Duration::from_secs(LIFETIME_SECS as u64));

    // Poll across the renewal (due at half the lifetime, looked for every 12 s).
    let deadline = Instant::now() + Duration::from_secs(LIFETIME_SECS as u64 + 20);
    let mut signers = Vec::<String>::new();
    let mut after_switch = 0;
    let mut polls = 0;
    while after_switch < 3 {
        assert!(
            Instant::now() < deadline,
            "no renewal within the lifetime: signers {signers:?}\n{}",
            app.log()
        );
        let judged = ask(app, polls % 2 == 1);
        polls += 1;
        let serial = serial_hex(&judged.signer);
        assert_ne!(
            judged.signer, root,
            "the root signed while the signer was fine"
        );
        if signers.last() != Some(&serial) {
            signers.push(serial);
        }
        if signers.len() > 1 {
            after_switch += 1;
        }
        assert!(judged.produced_at <= SystemTime::now() + Duration::from_secs(1));
        std::thread::sleep(Duration::from_secs(3));
    }
    assert_eq!(signers[0], serial_hex(&first), "{signers:?}");
    assert_eq!(signers.len(), 2, "one switch, never back: {signers:?}");
    let second = pki_cert(app, "ocsp-signer.pem");
    assert_eq!(
        serial_hex(&second),
        signers[1],
        "the file holds the new signer"
    );
    assert_ne!(
        second.tbs_certificate.subject_public_key_info,
        first.tbs_certificate.subject_public_key_info,
        "a new key by default"
    );
    assert!(app.log().contains("OCSP signer renewed"), "{}", app.log());
    let status = status_json(app);
    assert_eq!(
        status["ocsp_signer"]["serial"],
        signers[1].as_str(),
        "{status}"
    );
    assert_eq!(status["ocsp_signer"]["unusable"], Value::Null, "{status}");

    // Revoke the signer in use: from the answer to the operator on, the root signs, until
    // the renewal (asked for at once) puts a new signer in place.
    revoke(app, &signers[1]);
    let right_after = ask(app, false);
    assert_ne!(
        serial_hex(&right_after.signer),
        signers[1],
        "a revoked signer's cached answers are re-signed at once"
    );
    // Unless the renewal won the race already, that answer came from the root itself.
    assert!(
        app.log()
            .contains("delegated OCSP signer unusable: the CA signs OCSP answers itself"),
        "{}",
        app.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let third = loop {
        let judged = ask(app, false);
        let serial = serial_hex(&judged.signer);
        if judged.signer != root && serial != signers[1] {
            break serial;
        }
        assert_ne!(serial, signers[1], "the revoked signer signed again");
        assert!(
            Instant::now() < deadline,
            "no new signer after the revocation\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let seen: BTreeSet<_> = signers.iter().chain([&third]).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn a_revoked_tsa_certificate_stamps_nothing() {
    let app = app();
    let dir = tempfile::tempdir().expect("tmp");
    let query = dir.path().join("req.tsq");
    std::fs::write(&query, tsp::request(b"revoked TSA", 7, true)).expect("write");
    let (code, body) = app.post_tsa(&query, "application/timestamp-query");
    assert_eq!(code, 200, "a stamp before the revocation");
    tsp::tst_info(&body);

    let serial = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(app.path("pki/tsa.pem")),
    );
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    revoke(app, &serial);

    for _ in 0..2 {
        let (code, body) = app.post_tsa(&query, "application/timestamp-query");
        assert_eq!(code, 503, "{}", app.log());
        // A rejection with systemFailure (bit 25) and no token.
        assert_eq!(tsp::fail_bits(&body), [25]);
    }
    assert!(
        app.log().contains("TSA certificate unusable"),
        "{}",
        app.log()
    );
    let status = status_json(app);
    assert!(
        status["tsa_refused_certificate_unusable"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{status}"
    );
}

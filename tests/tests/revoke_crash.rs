//! `kill -9` of signetd while revocations run: after each restart, every serial whose
//! `signetctl cert revoke` reported success is revoked (in the database, in OCSP answers and
//! in the CRL), every serial never touched is still good, and a revocation interrupted
//! mid-flight is either in force everywhere or nowhere.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use signet::store::certs;
use signet_e2e::ocsp::{self, pki_cert, statuses};
use signet_e2e::{bin, run, run_ok, Appliance};
use x509_cert::Certificate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    /// The daemon died under it: no answer either way.
    Interrupted,
}

fn serial(cert: &Certificate) -> String {
    certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes())
}

fn jitter_ms(range: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % range
}

#[test]
fn a_revocation_is_in_force_exactly_when_it_was_reported_or_interrupted() {
    let mut app = Appliance::init();
    let extra = ocsp::record_certificates(&app, 60, 0x7000_0000);
    let root = pki_cert(&app, "root-ca.pem");
    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::default();
    let mut next = 0usize;
    for round in 0..3 {
        app.start();
        let stop = Arc::new(AtomicBool::new(false));
        let todo: Vec<String> = extra[next..next + 20].iter().map(serial).collect();
        next += 20;
        let revoker = {
            let (stop, outcomes, config) =
                (Arc::clone(&stop), Arc::clone(&outcomes), app.config.clone());
            std::thread::spawn(move || {
                for s in todo {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let out = run(Command::new(bin("signetctl"))
                        .args([
                            "cert",
                            "revoke",
                            &s,
                            "--reason",
                            "keyCompromise",
                            "--config",
                        ])
                        .arg(&config));
                    let outcome = if out.status.success() {
                        Outcome::Succeeded
                    } else {
                        Outcome::Interrupted
                    };
                    outcomes.lock().expect("lock").insert(s, outcome);
                }
            })
        };
        std::thread::sleep(Duration::from_millis(60 + jitter_ms(250)));
        app.kill9();
        stop.store(true, Ordering::SeqCst);
        revoker.join().expect("revoker");
        app.start();

        let listed = app.ctl(&["cert", "list", "--json"]);
        assert!(listed.status.success());
        let list: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
        let revoked_in_db: Vec<String> = list
            .as_array()
            .expect("array")
            .iter()
            .filter(|c| c["status"] == "revoked")
            .map(|c| c["serial"].as_str().expect("serial").to_owned())
            .collect();
        let crl = run(Command::new("curl").args(["-sS", &app.public_url("/crl/root.crl")]));
        let crl_text = run_ok(
            Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text"])
                .stdin(std::process::Stdio::piped())
                .arg("-in")
                .arg({
                    let p = app.path(&format!("crash-{round}.crl"));
                    std::fs::write(&p, &crl.stdout).expect("write");
                    p
                }),
        )
        .to_ascii_lowercase();
        let outcomes_now = outcomes.lock().expect("lock").clone();
        for cert in &extra {
            let s = serial(cert);
            let in_db = revoked_in_db.contains(&s);
            let body = {
                let req = ocsp::request(&root, &[cert], 0);
                let f = tempfile::NamedTempFile::new().expect("tmp");
                std::fs::write(f.path(), &req).expect("write");
                run(Command::new("curl")
                    .args([
                        "-sS",
                        "-H",
                        "Content-Type: application/ocsp-request",
                        "--data-binary",
                    ])
                    .arg(format!("@{}", f.path().display()))
                    .arg(app.public_url("/ocsp")))
                .stdout
            };
            let ocsp_says = statuses(&body)[0];
            let in_crl = crl_text.contains(&format!("serial number: {}", s.to_ascii_lowercase()))
                || crl_text.contains(&format!("serial number: 0{}", s.to_ascii_lowercase()));
            match outcomes_now.get(&s) {
                Some(Outcome::Succeeded) => {
                    assert!(
                        in_db && ocsp_says == "revoked" && in_crl,
                        "{s}: reported revoked, db {in_db} ocsp {ocsp_says} crl {in_crl}"
                    )
                }
                None => assert!(
                    !in_db && ocsp_says == "good" && !in_crl,
                    "{s}: never revoked, db {in_db} ocsp {ocsp_says} crl {in_crl}"
                ),
                Some(Outcome::Interrupted) => assert_eq!(
                    (in_db, in_crl),
                    (ocsp_says == "revoked", ocsp_says == "revoked"),
                    "{s}: interrupted, db, CRL and OCSP must agree"
                ),
            }
        }
        let succeeded = outcomes_now
            .values()
            .filter(|o| **o == Outcome::Succeeded)
            .count();
        println!(
            "round {round}: {succeeded} revocations reported so far, {} in the database",
            revoked_in_db.len()
        );
        app.stop();
    }
    let succeeded = outcomes
        .lock()
        .expect("lock")
        .values()
        .filter(|o| **o == Outcome::Succeeded)
        .count();
    assert!(succeeded > 0, "no revocation ran before the kills");
}

//! `signetctl store migrate --to postgres`: a one-box SQLite appliance with 1,000 issued
//! certificates, 100 of them revoked and 10 more on hold, moves to a real PostgreSQL server;
//! its OCSP answers are the same for every serial before and after, and its TSA serials go
//! on rising.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::SystemTime;

use der::Encode;
use x509_cert::Certificate;

use signet::store::{certs, StatusChange};
use signet_e2e::ocsp::{self, pki_cert};
use signet_e2e::postgres::PASSWORD;
use signet_e2e::{run, tsp, Appliance};

/// Every certificate's OCSP status as `app`'s public responder answers it (the DER of the
/// SingleResponse's certStatus: good, or revoked with its time and reason), by serial.
fn answers(
    app: &Appliance,
    root: &Certificate,
    certs: &[Certificate],
) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("tmp");
    let mut out = BTreeMap::new();
    for (i, chunk) in certs.chunks(100).enumerate() {
        let refs: Vec<&Certificate> = chunk.iter().collect();
        let req = dir.path().join(format!("{i}.der"));
        std::fs::write(&req, ocsp::request(root, &refs, 0)).expect("request");
        let answer = run(Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-H",
                "Content-Type: application/ocsp-request",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", req.display()))
            .arg(app.public_url("/ocsp")));
        assert!(
            answer.status.success(),
            "{}",
            String::from_utf8_lossy(&answer.stderr)
        );
        for single in ocsp::basic(&answer.stdout).tbs_response_data.responses {
            let serial = certs::serial_from_bytes(single.cert_id.serial_number.as_bytes());
            out.insert(serial, single.cert_status.to_der().expect("der"));
        }
    }
    assert_eq!(out.len(), certs.len(), "an answer for every certificate");
    out
}

/// Stamp once on the API; the token's serial.
fn stamp(app: &Appliance, nonce: u64) -> u128 {
    let dir = tempfile::tempdir().expect("tmp");
    let req = dir.path().join("q.tsq");
    std::fs::write(&req, tsp::request(b"migrate", nonce, false)).expect("query");
    let (status, body) = app.post_tsa(&req, "application/timestamp-query");
    assert_eq!(status, 200);
    tsp::serial(&body)
}

fn migrate(
    app: &Appliance,
    url: &str,
    ca_file: &std::path::Path,
    password: &std::path::Path,
) -> std::process::Output {
    run(app
        .signetctl()
        .args(["store", "migrate", "--to", "postgres", "--url", url])
        .arg("--ca-file")
        .arg(ca_file)
        .arg("--password-file")
        .arg(password)
        .arg("--config")
        .arg(&app.config))
}

#[test]
fn a_one_box_appliance_moves_to_postgres_and_answers_the_same_for_every_serial() {
    // The source is SQLite whatever this run's store is.
    let mut app = Appliance::init_with(|t| {
        t.remove("store");
    });
    let issued = ocsp::record_certificates(&app, 1000, 0x6100_0000);
    {
        let store = app.store();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Every tenth revoked; ten more on hold.
        let chosen = |i: &usize| i.is_multiple_of(10) || i % 100 == 55;
        for (i, cert) in issued.iter().enumerate().filter(|(i, _)| chosen(i)) {
            let reason = if i % 10 == 5 {
                "certificateHold"
            } else {
                "keyCompromise"
            };
            let serial = certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes());
            rt.block_on(store.change_status(
                &serial,
                StatusChange::Revoke(reason.into()),
                SystemTime::now(),
            ))
            .expect("store")
            .expect("revoked");
        }
    }
    let root = pki_cert(&app, "root-ca.pem");
    app.start();
    let before = answers(&app, &root, &issued);
    let revoked = before.values().filter(|s| s.first() == Some(&0xa1)).count();
    assert_eq!(revoked, 110, "100 revoked and 10 on hold before");
    let serial_before = stamp(&app, 1);

    let pg = signet_e2e::store::server();
    let database = pg.create_database();
    let url = pg.url(&database);
    let dir = tempfile::tempdir().expect("tmp");
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password file");

    // Not while the daemon runs: it owns the state directory.
    let refused = migrate(&app, &url, &pg.ca_file(), &password);
    assert!(!refused.status.success(), "migrated under a running daemon");
    app.stop();

    let done = migrate(&app, &url, &pg.ca_file(), &password);
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(said.contains("(100 revoked, 10 on hold)"), "{said}");
    assert!(said.contains("read them back: identical"), "{said}");
    // Once only: a schema with data is refused, and left as it was.
    let again = migrate(&app, &url, &pg.ca_file(), &password);
    let why = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && why.contains("not empty"),
        "{why}"
    );

    app.edit_config(|t| signet_e2e::store::use_postgres(t, pg, &database));
    app.start();
    assert_eq!(app.ctl(&["status", "--json"]).status.code(), Some(0));
    let after = answers(&app, &root, &issued);
    for (serial, status) in &before {
        assert_eq!(
            after.get(serial),
            Some(status),
            "serial {serial}: OCSP differs after the move"
        );
    }
    let serial_after = stamp(&app, 2);
    assert!(
        serial_after > serial_before,
        "TSA serial {serial_after} after the move, {serial_before} before"
    );
    app.stop();
}

//! Two boxes on one PostgreSQL database (a real server the test starts): what one box
//! issues or revokes, the other's OCSP answers and CRL say, without a restart, and the time
//! it takes is printed.

use std::process::Command;
use std::time::{Duration, Instant};

use signet::store::certs;
use signet_e2e::cluster::{ocsp_status, until};
use signet_e2e::ocsp::{self, pki_cert};
use signet_e2e::{run, run_ok, Appliance};
use x509_cert::Certificate;

fn serial(cert: &Certificate) -> String {
    certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes())
}

/// `signetctl status` on each box names it and lists the other, seen within seconds.
fn boxes_see_each_other(a: &Appliance, b: &Appliance) {
    for (app, me, other) in [(a, "box-a", "box-b"), (b, "box-b", "box-a")] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = app.ctl(&["status", "--json"]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(status["node"], me);
            assert_eq!(status["store_reachable"], true);
            let others = status["other_nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(seen) = others.iter().find(|n| n["node"] == other) {
                assert!(
                    seen["last_seen_secs_ago"].as_i64().unwrap() < 30,
                    "{status}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{me} never saw {other}: {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn what_one_box_issues_or_revokes_the_other_box_answers() {
    if signet_e2e::token::Backend::current() != signet_e2e::token::Backend::SoftHsm {
        // The second box copies the first one's token files: SoftHSM's shape.
        return;
    }
    let pg = signet_e2e::store::server();
    let database = pg.create_database();
    let name = |t: &mut toml::Table, node: &str| {
        let mut cluster = toml::Table::new();
        cluster.insert("node".into(), node.into());
        t.insert("cluster".into(), toml::Value::Table(cluster));
    };
    let mut a = Appliance::init_with(|t| {
        signet_e2e::store::use_postgres(t, pg, &database);
        name(t, "box-a");
    });
    let before = ocsp::record_certificates(&a, 50, 0x5100_0000);
    let mut b = a.replica();
    b.edit_config(|t| name(t, "box-b"));
    a.start();
    b.start();
    boxes_see_each_other(&a, &b);
    let root = pki_cert(&a, "root-ca.pem");
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(ocsp_status(&b, &root, &before[0], dir.path()), "good");

    // Recorded while both run (as `cert issue` on box A does): box B answers "good"
    // without a restart.
    let later = ocsp::record_certificates(&a, 3, 0x5200_0000);
    for cert in &later {
        assert!(
            until(&b, &root, cert, "good", dir.path()).is_some(),
            "box B never learnt of {}",
            serial(cert)
        );
    }

    // Revoked on box A: box B's pre-signed answer and CRL say so.
    let mut delays = Vec::new();
    for cert in &before {
        let s = serial(cert);
        let out = a.ctl(&["cert", "revoke", &s, "--reason", "keyCompromise"]);
        assert!(
            out.status.success(),
            "revoke {s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let delay = until(&b, &root, cert, "revoked", dir.path())
            .unwrap_or_else(|| panic!("box B still does not say revoked for {s}"));
        delays.push(delay);
    }
    delays.sort();
    let pct = |p: usize| delays[(delays.len() * p / 100).min(delays.len() - 1)];
    println!(
        "revocation on box A to box B's first \"revoked\" ({} revocations, OCSP polled every ~2 ms \
         with curl): p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        pct(50),
        pct(99),
        delays[delays.len() - 1]
    );
    // One box publishes the CRL (A, which started first); B serves A's very CRL from the
    // database, taken at A's notification.
    let fetch = |app: &Appliance| {
        run(Command::new("curl").args(["-sS", &app.public_url("/crl/root.crl")])).stdout
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while fetch(&a) != fetch(&b) {
        assert!(
            Instant::now() < deadline,
            "box B does not serve box A's CRL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let crl_path = dir.path().join("b.crl");
    std::fs::write(&crl_path, fetch(&b)).expect("crl");
    let crl_text = run_ok(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&crl_path),
    )
    .to_ascii_lowercase();
    for cert in &before {
        let s = serial(cert);
        assert!(crl_text.contains(&s), "box B's CRL lacks {s}");
    }
    // openssl's OCSP client agrees: a nonce (so signed live on B), verified up to the root.
    for cert in before.iter().take(3) {
        let asked = format!("0x{}", serial(cert));
        let text = ocsp::openssl_ask(&b, &b.public_url("/ocsp"), &[], &["-serial", &asked]);
        assert!(text.contains(&format!("{asked}: revoked")), "{text}");
        assert!(text.contains("Response verify OK"), "{text}");
    }
    assert!(a.log().contains("this box now publishes the CRLs"));
    assert!(!b.log().contains("this box now publishes the CRLs"));
    // A revocation is final on every box: B cannot release what A revoked.
    let s = serial(&before[0]);
    let unhold = b.ctl(&["cert", "unhold", &s]);
    assert!(
        !unhold.status.success(),
        "box B released a revoked certificate"
    );
    assert_eq!(ocsp_status(&a, &root, &before[0], dir.path()), "revoked");

    a.stop();
    b.stop();
    // Every record of each box's audit log names that box.
    for (app, node) in [(&a, "box-a"), (&b, "box-b")] {
        let log = std::fs::read_to_string(app.path("audit/audit.log")).expect("audit log");
        let named = format!(r#""node":"{node}""#);
        assert!(
            log.lines().all(|l| l.contains(&named)),
            "{node}: a record without its name"
        );
    }
    for app in [&a, &b] {
        let verified = app.ctl(&["audit", "verify"]);
        assert!(
            verified.status.success(),
            "audit verify: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

//! Two boxes on one PostgreSQL database behind real HAProxy, started with the shipped
//! `deploy/haproxy/signet.cfg`: stamps spread over both with serials never issued twice; one
//! box killed under mixed load; the database stopped under load and started again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;
use x509_cert::Certificate;

use signet::store::certs;
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::cluster::{self, mixed_load, revoke_every, Cluster, Kind, Outcome, Revocation};
use signet_e2e::ocsp::{self, pki_cert};
use signet_e2e::postgres::Postgres;
use signet_e2e::{run, tsp, Appliance};

fn serial(cert: &Certificate) -> String {
    certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes())
}

/// Behind HAProxy in TCP mode every connection comes from HAProxy's address: the
/// per-source budgets (live OCSP answers, new connections) would hold the whole load to one
/// address's share. The load here opens a connection per request.
fn lift_per_source_limits(t: &mut toml::Table) {
    let mut lift = |table: &str, keys: &[&str]| {
        let mut at = &mut *t;
        for part in table.split('.') {
            let next = at
                .entry(part)
                .or_insert(toml::Value::Table(Default::default()));
            at = next.as_table_mut().expect("a table");
        }
        for key in keys {
            at.insert((*key).into(), toml::Value::Integer(1_000_000));
        }
    };
    lift(
        "ocsp",
        &["live_per_source_per_sec", "live_per_source_burst"],
    );
    for listener in ["api.connections", "public.connections"] {
        lift(listener, &["handshakes_per_sec", "handshake_burst"]);
    }
    // Every request here pays a full handshake: the signatures' budget is not under test.
    lift(
        "api",
        &["handshake_signatures_per_sec", "handshake_signature_burst"],
    );
}

/// The second box copies the first one's token files: SoftHSM's shape.
fn softhsm() -> bool {
    signet_e2e::token::Backend::current() == signet_e2e::token::Backend::SoftHsm
}

/// The request bodies (SHA-256, hex) of the time-stamps a box answered with 200.
fn stamped_bodies(app: &Appliance) -> HashSet<String> {
    std::fs::read_to_string(app.path("audit/audit.log"))
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"]["operation"] == "tsa" && r["event"]["status"] == 200)
        .filter_map(|r| r["event"]["input_sha256"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn two_thousand_stamps_through_haproxy_reach_both_boxes_and_never_share_a_serial() {
    if !softhsm() {
        return;
    }
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 250;
    let mut c = Cluster::start(signet_e2e::store::server(), lift_per_source_limits, |_| {});
    let tls = demo_client_config(&c.a);
    let api = c.lb.api;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Each client keeps one connection through HAProxy: connections spread over the boxes.
    let stamps: Vec<(Vec<u8>, Vec<u8>)> = rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let tls = Arc::clone(&tls);
                tokio::spawn(async move {
                    let mut conn = Connection::connect(api, tls).await.expect("connect");
                    let mut out = Vec::new();
                    for i in 0..PER_CLIENT {
                        let nonce = client * 1_000_000 + i + 1;
                        let req = tsp::request(&nonce.to_be_bytes(), nonce, true);
                        let (status, body) = conn
                            .post("/v1/tsa", "application/timestamp-query", req.clone().into())
                            .await
                            .expect("answer");
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                        out.push((req, body.to_vec()));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client"));
        }
        all
    });
    assert_eq!(stamps.len() as u64, CLIENTS * PER_CLIENT);

    // Never one serial twice, across both boxes.
    let serials: Vec<u128> = stamps.iter().map(|(_, resp)| tsp::serial(resp)).collect();
    let distinct: HashSet<u128> = serials.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        serials.len(),
        "a TSA serial was issued twice"
    );

    // Both boxes answered: each stamp is in exactly one box's audit log.
    c.a.stop();
    c.b.stop();
    let (on_a, on_b) = (stamped_bodies(&c.a), stamped_bodies(&c.b));
    let mut per_box = [0usize; 2];
    for (req, _) in &stamps {
        let h = hex::encode(sha2::Sha256::digest(req));
        match (on_a.contains(&h), on_b.contains(&h)) {
            (true, false) => per_box[0] += 1,
            (false, true) => per_box[1] += 1,
            other => panic!("stamp {h} recorded on (A, B) = {other:?}"),
        }
    }
    println!(
        "{} stamps through HAProxy: box A {}, box B {}",
        stamps.len(),
        per_box[0],
        per_box[1]
    );
    assert!(
        per_box[0] > 0 && per_box[1] > 0,
        "one box got nothing: {per_box:?}"
    );

    // Every token verifies with openssl (two at a time: two cores).
    let root = c.a.path("pki/root-ca.pem");
    let dir = c.dir.path().to_owned();
    std::thread::scope(|s| {
        for part in 0..2 {
            let (stamps, root, dir) = (&stamps, &root, &dir);
            s.spawn(move || {
                for (i, (req, resp)) in stamps.iter().enumerate().skip(part).step_by(2) {
                    let (q, r) = (dir.join(format!("{i}.tsq")), dir.join(format!("{i}.tsr")));
                    std::fs::write(&q, req).unwrap();
                    std::fs::write(&r, resp).unwrap();
                    let out = run(std::process::Command::new("openssl")
                        .args(["ts", "-verify", "-queryfile"])
                        .arg(&q)
                        .arg("-in")
                        .arg(&r)
                        .arg("-CAfile")
                        .arg(root));
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        out.status.success() && text.contains("Verification: OK"),
                        "stamp {i}: {text}{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let _ = std::fs::remove_file(&q);
                    let _ = std::fs::remove_file(&r);
                }
            });
        }
    });
}

/// Every request sent at or after `from` succeeded; how many there were.
fn all_good_after(outcomes: &[Outcome], from: Instant, what: &str) -> usize {
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.sent >= from).collect();
    let failed: Vec<&&Outcome> = after.iter().filter(|o| o.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}, sent {:?} after",
        failed.len(),
        after.len(),
        failed.first(),
        failed.first().map(|o| o.sent - from)
    );
    after.len()
}

/// No TSA serial was granted twice, over the whole run.
fn serials_distinct(outcomes: &[Outcome]) {
    let serials: Vec<u128> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().copied().flatten())
        .collect();
    let distinct: HashSet<u128> = serials.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        serials.len(),
        "a TSA serial was issued twice"
    );
}

/// Each revocation either in force on both boxes (and it must be, when a box said done)
/// or on neither.
fn revocations_consistent(
    c: &Cluster,
    root: &Certificate,
    certs: &[Certificate],
    asked: &[Revocation],
) {
    let dir = c.dir.path();
    for r in asked.iter().filter(|r| r.answer.is_ok()) {
        let cert = &certs[r.index];
        for node in ["A", "B"] {
            assert!(
                cluster::until(c.node(node), root, cert, "revoked", dir).is_some(),
                "{} was reported revoked by box {} but box {node} says {}",
                serial(cert),
                r.node,
                cluster::ocsp_status(c.node(node), root, cert, dir)
            );
        }
    }
    // Not confirmed: once the feed has settled, both boxes agree.
    std::thread::sleep(Duration::from_millis(1500));
    for r in asked.iter().filter(|r| r.answer.is_err()) {
        let cert = &certs[r.index];
        let on_a = cluster::ocsp_status(&c.a, root, cert, dir);
        let on_b = cluster::ocsp_status(&c.b, root, cert, dir);
        assert_eq!(
            on_a,
            on_b,
            "{} (refused on {}: {:?})",
            serial(cert),
            r.node,
            r.answer
        );
    }
}

fn ctl_of(
    app: &Appliance,
    name: &'static str,
) -> (&'static str, std::process::Command, std::path::PathBuf) {
    (name, app.signetctl(), app.path("admin.sock"))
}

#[test]
fn a_box_killed_under_load_leaves_the_other_answering_and_loses_no_revocation() {
    if !softhsm() {
        return;
    }
    let mut to_revoke = Vec::new();
    let mut c = Cluster::start(signet_e2e::store::server(), lift_per_source_limits, |a| {
        to_revoke = ocsp::record_certificates(a, 120, 0x5300_0000);
    });
    let root = pki_cert(&c.a, "root-ca.pem");
    let stop = Arc::new(AtomicBool::new(false));
    let load = mixed_load(
        &c.a,
        (c.lb.api, c.lb.public),
        &root,
        &to_revoke[0],
        &[Kind::Tsa, Kind::OcspNonce, Kind::Sign, Kind::Tsa],
        Arc::clone(&stop),
    );
    let revoker = revoke_every(
        [ctl_of(&c.a, "A"), ctl_of(&c.b, "B")],
        to_revoke.iter().map(serial).collect(),
        Duration::from_millis(50),
        Arc::clone(&stop),
    );
    std::thread::sleep(Duration::from_secs(2));
    c.a.kill9();
    let died = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    c.a.start();
    let back = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.join().expect("load");
    let asked = revoker.join().expect("revocations");

    let after_death = all_good_after(&outcomes, died, "after box A died");
    let after_return = all_good_after(&outcomes, back, "after box A came back");
    let by_kind = |k: Kind| {
        outcomes
            .iter()
            .filter(|o| o.kind == k && o.result.is_ok())
            .count()
    };
    println!(
        "mixed load through HAProxy, box A killed: {} requests ({} TSA, {} OCSP nonce, {} sign \
         answered), {after_death} sent after A died and {after_return} after it came back, all \
         answered; {} revocations asked, {} done",
        outcomes.len(),
        by_kind(Kind::Tsa),
        by_kind(Kind::OcspNonce),
        by_kind(Kind::Sign),
        asked.len(),
        asked.iter().filter(|r| r.answer.is_ok()).count()
    );
    assert!(
        after_death > 0 && after_return > 0,
        "no load after the kill"
    );
    serials_distinct(&outcomes);
    revocations_consistent(&c, &root, &to_revoke, &asked);

    // Box B took over the CRL from the dead publisher; both boxes' CRLs list every
    // revocation reported done.
    assert!(c.b.log().contains("this box now publishes the CRLs"));
    let done: Vec<String> = asked
        .iter()
        .filter(|r| r.answer.is_ok())
        .map(|r| serial(&to_revoke[r.index]))
        .collect();
    for app in [&c.a, &c.b] {
        assert!(
            eventually(Duration::from_secs(5), || crl_lists(
                app,
                &done,
                c.dir.path()
            )),
            "a CRL lacks a revocation reported done"
        );
    }

    c.a.stop();
    c.b.stop();
    for app in [&c.a, &c.b] {
        let verified = app.ctl(&["audit", "verify"]);
        assert!(
            verified.status.success(),
            "audit verify: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

/// Whether `app`'s CRL lists every one of `serials`.
fn crl_lists(app: &Appliance, serials: &[String], dir: &std::path::Path) -> bool {
    let crl =
        run(std::process::Command::new("curl").args(["-sS", &app.public_url("/crl/root.crl")]));
    let path = dir.join(format!("{}.crl", app.pid()));
    std::fs::write(&path, &crl.stdout).expect("crl");
    let text = run(std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&path));
    let text = String::from_utf8_lossy(&text.stdout).to_ascii_lowercase();
    serials
        .iter()
        .all(|s| text.contains(&format!("serial number: {s}")))
}

/// What `GET /readyz` on a box's public listener answers: (status, body).
fn readyz(app: &Appliance) -> (u16, String) {
    let out = run(std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}"])
        .arg(app.public_url("/readyz")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Wait up to `within` for `f` to hold.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_database_stopped_under_load_stops_only_revocation_and_both_boxes_come_back_by_themselves() {
    if !softhsm() {
        return;
    }
    // A server of this test's own: it is stopped and started.
    let mut pg = Postgres::start();
    let mut to_revoke = Vec::new();
    let edit = |t: &mut toml::Table| {
        lift_per_source_limits(t);
        // Enough serials reserved ahead to stamp through a 10 s outage.
        let tsa = t
            .entry("tsa")
            .or_insert(toml::Value::Table(Default::default()));
        tsa.as_table_mut()
            .unwrap()
            .insert("serial_block".into(), toml::Value::Integer(5000));
    };
    let mut c = Cluster::start(&pg, edit, |a| {
        to_revoke = ocsp::record_certificates(a, 400, 0x5400_0000);
    });
    let root = pki_cert(&c.a, "root-ca.pem");
    let stop = Arc::new(AtomicBool::new(false));
    let load = mixed_load(
        &c.a,
        (c.lb.api, c.lb.public),
        &root,
        &to_revoke[399],
        &[Kind::Tsa, Kind::OcspNonce, Kind::Sign, Kind::Tsa],
        Arc::clone(&stop),
    );
    let revoke_stop = Arc::new(AtomicBool::new(false));
    let revoker = revoke_every(
        [ctl_of(&c.a, "A"), ctl_of(&c.b, "B")],
        to_revoke[..300].iter().map(serial).collect(),
        Duration::from_millis(50),
        Arc::clone(&revoke_stop),
    );
    std::thread::sleep(Duration::from_secs(1));
    pg.stop();
    let down = Instant::now();

    // While it is down: /readyz names it (and stays 200: HAProxy keeps both boxes), a
    // revocation is refused with the reason, and status says so.
    for app in [&c.a, &c.b] {
        assert!(
            eventually(Duration::from_secs(3), || readyz(app)
                .1
                .contains("database unreachable")),
            "readyz: {:?}",
            readyz(app)
        );
        assert_eq!(readyz(app).0, 200);
    }
    let spare = serial(&to_revoke[398]);
    let refused =
        c.b.ctl(&["cert", "revoke", &spare, "--reason", "keyCompromise"]);
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        !refused.status.success(),
        "a revocation was done without the database"
    );
    assert!(said.contains("unreachable"), "{said}");
    let status = c.a.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["store_reachable"], false, "{status}");
    let left = Duration::from_secs(10).saturating_sub(down.elapsed());
    std::thread::sleep(left);
    pg.start_again();
    let up = Instant::now();

    // Back without a restart: a revocation on each box goes through again.
    for (node, cert) in [("A", &to_revoke[396]), ("B", &to_revoke[397])] {
        let s = serial(cert);
        assert!(
            eventually(Duration::from_secs(10), || c
                .node(node)
                .ctl(&["cert", "revoke", &s, "--reason", "keyCompromise"])
                .status
                .success()),
            "box {node} never revoked again"
        );
    }
    let reconnected = up.elapsed();
    revoke_stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.join().expect("load");
    let asked = revoker.join().expect("revocations");

    let during = all_good_after(&outcomes, down, "from the database's stop on");
    let refused_while_down = asked.iter().filter(|r| r.answer.is_err()).count();
    println!(
        "database down 10 s under load: {during} requests answered from its stop on, none failed; \
         {} revocations asked, {refused_while_down} refused; revocation back {reconnected:?} after \
         the database",
        asked.len()
    );
    assert!(
        refused_while_down > 0,
        "no revocation was tried during the outage"
    );
    serials_distinct(&outcomes);
    // Nothing half-applied: the one refused above is good on both boxes.
    for app in [&c.a, &c.b] {
        assert_eq!(
            cluster::ocsp_status(app, &root, &to_revoke[398], c.dir.path()),
            "good"
        );
    }
    let last = [&to_revoke[396], &to_revoke[397]];
    for cert in last {
        for app in [&c.a, &c.b] {
            assert!(cluster::until(app, &root, cert, "revoked", c.dir.path()).is_some());
        }
    }
    revocations_consistent(&c, &root, &to_revoke, &asked);
    let mut by_node: HashMap<&str, usize> = HashMap::new();
    for r in asked.iter().filter(|r| r.answer.is_ok()) {
        *by_node.entry(r.node).or_default() += 1;
    }
    assert!(by_node.len() == 2, "revocations done per box: {by_node:?}");
    c.a.stop();
    c.b.stop();
}

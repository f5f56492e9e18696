//! `kill -9` at random moments under mixed load, twenty times. Time-stamps, signatures, OCSP
//! answers with nonces and revocations run side by side when signetd is killed; after every
//! kill, before anything repairs anything, the audit chain verifies, it holds a record of
//! every signature a client received, and SQLite's `PRAGMA integrity_check` passes; after
//! every restart, every revocation that reported success is in force, and no TSA serial was
//! ever issued twice or below one issued before the crash.
//!
//! The kill moments come from a seed printed at the start; `SIGNET_CRASH_SEED=N` replays a run.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use signet::store::certs;
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::ocsp::{self, pki_cert, statuses};
use signet_e2e::{bin, run, tsp, Appliance};
use x509_cert::Certificate;

const KILLS: usize = 20;
const TSA_CLIENTS: usize = 3;
const SIGN_CLIENTS: usize = 2;
const OCSP_CLIENTS: usize = 1;
/// Certificates made for the revoker; it never runs out in twenty short rounds.
const REVOCABLE: usize = 400;

/// A small xorshift generator: the kill moments, reproducible from the printed seed.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("SIGNET_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        println!("kill moments from SIGNET_CRASH_SEED={seed}");
        Moments(seed)
    }

    /// A delay in `[min, max)` milliseconds.
    fn next_ms(&mut self, min: u64, max: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(min + self.0 % (max - min))
    }
}

/// What the clients of one round saw answered.
#[derive(Default)]
struct Answered {
    tsa_serials: Vec<u128>,
    /// SHA-256 (hex) of each signing request body answered with a signature.
    signed_bodies: Vec<String>,
    ocsp_answers: usize,
    /// Serials whose `signetctl cert revoke` reported success.
    revoked: Vec<String>,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn sign_body(round: usize, client: usize, n: u64) -> Bytes {
    let digest = Sha256::digest(format!("round {round} client {client} document {n}"));
    Bytes::from(
        serde_json::to_vec(&json!({
            "digest": B64.encode(digest),
            "digest_algorithm": "sha256",
            "scheme": "ecdsa",
        }))
        .expect("json"),
    )
}

fn serial_hex(cert: &Certificate) -> String {
    certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes())
}

/// Run the mixed load against the running daemon until `stop` is set or the daemon dies;
/// the revoker takes serials from `to_revoke` in order.
fn mixed_load(
    app: &Appliance,
    round: usize,
    root: &Certificate,
    to_revoke: Arc<Mutex<Vec<String>>>,
    ocsp_subject: &Certificate,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Answered> {
    let addr = app.addr.expect("running");
    let tls = demo_client_config(app);
    let config_path = app.config.clone();
    let ocsp_request = Bytes::from(ocsp::request(root, &[ocsp_subject], 16));
    std::thread::spawn(move || {
        let answered = Arc::new(Mutex::new(Answered::default()));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut tasks = Vec::new();
        for c in 0..TSA_CLIENTS {
            let (tls, stop, answered) = (tls.clone(), Arc::clone(&stop), Arc::clone(&answered));
            tasks.push(rt.spawn(async move {
                let Ok(mut conn) = Connection::connect(addr, tls).await else {
                    return;
                };
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let req = tsp::request(format!("{round}/{c}/{n}").as_bytes(), n, false);
                    let Ok((status, body)) = conn
                        .post("/v1/tsa", "application/timestamp-query", req.into())
                        .await
                    else {
                        return; // the daemon died under us
                    };
                    assert_eq!(status, 200);
                    answered
                        .lock()
                        .expect("lock")
                        .tsa_serials
                        .push(tsp::serial(&body));
                }
            }));
        }
        for c in 0..SIGN_CLIENTS {
            let (tls, stop, answered) = (tls.clone(), Arc::clone(&stop), Arc::clone(&answered));
            tasks.push(rt.spawn(async move {
                let Ok(mut conn) = Connection::connect(addr, tls).await else {
                    return;
                };
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let body = sign_body(round, c, n);
                    let hash = sha256_hex(&body);
                    let Ok((status, answer)) =
                        conn.post("/v1/sign/doc-ec", "application/json", body).await
                    else {
                        return;
                    };
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    answered.lock().expect("lock").signed_bodies.push(hash);
                }
            }));
        }
        for _ in 0..OCSP_CLIENTS {
            let (tls, stop, answered) = (tls.clone(), Arc::clone(&stop), Arc::clone(&answered));
            let req = ocsp_request.clone();
            tasks.push(rt.spawn(async move {
                let Ok(mut conn) = Connection::connect(addr, tls).await else {
                    return;
                };
                while !stop.load(Ordering::SeqCst) {
                    let Ok((status, answer)) = conn
                        .post("/ocsp", "application/ocsp-request", req.clone())
                        .await
                    else {
                        return;
                    };
                    assert_eq!(status, 200);
                    assert_eq!(ocsp::echoed_nonce(&answer).map(|n| n.len()), Some(16));
                    answered.lock().expect("lock").ocsp_answers += 1;
                }
            }));
        }
        // The operator revoking, one `signetctl` after the other, over the admin socket.
        let revoker = {
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(serial) = to_revoke.lock().expect("lock").pop() else {
                        return;
                    };
                    let out = run(Command::new(bin("signetctl"))
                        .args(["cert", "revoke", &serial, "--reason", "superseded"])
                        .arg("--config")
                        .arg(&config_path));
                    if out.status.success() {
                        answered.lock().expect("lock").revoked.push(serial);
                    }
                    // An operator's pace, so the certificates last all twenty rounds.
                    std::thread::sleep(Duration::from_millis(40));
                }
            })
        };
        rt.block_on(async {
            for t in tasks {
                t.await.expect("a client panicked");
            }
        });
        revoker.join().expect("revoker");
        let mut out = answered.lock().expect("lock");
        std::mem::take(&mut *out)
    })
}

/// Offline checks, with the daemon dead: the audit chain, the signatures on record, SQLite.
fn check_offline(app: &Appliance, signed_bodies: &[String]) {
    let verify = app.ctl(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "audit verify after kill -9: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // Complete lines only: a torn last line is no record (and verify said it left it out).
    let text = std::fs::read_to_string(app.path("audit/audit.log")).expect("audit log");
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let logged: HashSet<String> = complete
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a record"))
        .filter(|r| r["event"]["operation"] == "sign" && r["event"]["status"] == 200)
        .filter_map(|r| r["event"]["input_sha256"].as_str().map(str::to_owned))
        .collect();
    let missing = signed_bodies
        .iter()
        .filter(|h| !logged.contains(*h))
        .count();
    assert_eq!(missing, 0, "signatures answered without an audit record");

    let store = app.store();
    let integrity = store.integrity_check().expect("integrity_check runs");
    assert_eq!(integrity, "ok", "PRAGMA integrity_check");
}

/// With the daemon running again: every reported revocation is in the database and answered
/// `revoked` by a live (nonced) OCSP signature.
fn check_revocations_in_force(app: &Appliance, root: &Certificate, revoked: &[&Certificate]) {
    let listed = app.ctl(&["cert", "list", "--json"]);
    assert!(listed.status.success(), "cert list");
    let list: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let in_db: HashSet<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["status"] == "revoked")
        .filter_map(|c| c["serial"].as_str())
        .collect();
    for cert in revoked {
        let s = serial_hex(cert);
        assert!(
            in_db.contains(s.as_str()),
            "{s} reported revoked, not in the database"
        );
    }
    for chunk in revoked.chunks(20) {
        let req = ocsp::request(root, chunk, 8);
        let f = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(f.path(), &req).expect("write");
        let body = run(Command::new("curl")
            .args(["-sS", "-H", "Content-Type: application/ocsp-request"])
            .arg("--data-binary")
            .arg(format!("@{}", f.path().display()))
            .arg(app.public_url("/ocsp")))
        .stdout;
        let answers = statuses(&body);
        assert_eq!(answers.len(), chunk.len());
        assert!(
            answers.iter().all(|s| *s == "revoked"),
            "a reported revocation is not in force in OCSP: {answers:?}"
        );
    }
}

#[test]
fn twenty_kills_under_mixed_load_lose_nothing_that_was_answered() {
    let mut app = Appliance::init_with(|t| {
        // Small blocks and frequent checkpoints: the kills land across many of both.
        t["tsa"]["serial_block"] = toml::Value::Integer(37);
        t["audit"]["checkpoint_every"] = toml::Value::Integer(50);
    });
    let revocable = ocsp::record_certificates(&app, REVOCABLE, 0x7100_0000);
    let by_serial: std::collections::HashMap<String, &Certificate> =
        revocable.iter().map(|c| (serial_hex(c), c)).collect();
    let to_revoke = Arc::new(Mutex::new(
        revocable.iter().rev().map(serial_hex).collect::<Vec<_>>(),
    ));
    let root = pki_cert(&app, "root-ca.pem");
    let ocsp_subject = pki_cert(&app, "tsa.pem");
    let mut moments = Moments::new();

    let mut all_serials: BTreeSet<u128> = BTreeSet::new();
    let mut all_revoked: Vec<&Certificate> = Vec::new();
    let (mut signed, mut stamped, mut ocsp_answers) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for round in 0..KILLS {
        app.start();
        if round > 0 {
            check_revocations_in_force(&app, &root, &all_revoked);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let load = mixed_load(
            &app,
            round,
            &root,
            Arc::clone(&to_revoke),
            &ocsp_subject,
            Arc::clone(&stop),
        );
        std::thread::sleep(moments.next_ms(150, 1200));
        app.kill9();
        stop.store(true, Ordering::SeqCst);
        let answered = load.join().expect("load");

        let floor = all_serials.last().copied();
        for s in &answered.tsa_serials {
            assert!(all_serials.insert(*s), "TSA serial {s} issued twice");
            if let Some(floor) = floor {
                assert!(
                    *s > floor,
                    "serial {s} after a restart is not above {floor}"
                );
            }
        }
        check_offline(&app, &answered.signed_bodies);
        all_revoked.extend(answered.revoked.iter().map(|s| by_serial[s]));
        println!(
            "kill {:>2}: {:>4} stamps, {:>4} signatures, {:>4} OCSP answers, {:>2} revocations",
            round + 1,
            answered.tsa_serials.len(),
            answered.signed_bodies.len(),
            answered.ocsp_answers,
            answered.revoked.len()
        );
        stamped += answered.tsa_serials.len();
        signed += answered.signed_bodies.len();
        ocsp_answers += answered.ocsp_answers;
    }
    app.start();
    check_revocations_in_force(&app, &root, &all_revoked);
    app.stop();
    println!(
        "{KILLS} kills in {:.1?}: {stamped} stamps, {signed} signatures, {ocsp_answers} OCSP answers, {} revocations, all kept",
        started.elapsed(),
        all_revoked.len()
    );
    // The load really ran between the kills, or the checks above proved little.
    assert!(stamped > 10 * KILLS && signed > 10 * KILLS && ocsp_answers > KILLS);
    assert!(
        !all_revoked.is_empty(),
        "no revocation finished before a kill"
    );
}

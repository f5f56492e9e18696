//! The audit log end to end: every signing request leaves a durable record before its
//! answer; `signetctl audit verify` passes on an untouched log and names the first broken
//! record after each kind of tampering; exports verify offline with the audit certificate
//! alone; `kill -9` under load loses no record of an answered request.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use ring::digest::{digest, SHA256};
use serde_json::{json, Value};
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::Appliance;

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data))
}

/// A signing request body for the n-th digest of client c.
fn sign_body(c: usize, n: u64) -> Bytes {
    let d = digest(&SHA256, format!("client {c} document {n}").as_bytes());
    Bytes::from(
        serde_json::to_vec(&json!({
            "digest": B64.encode(d.as_ref()),
            "digest_algorithm": "sha256",
            "scheme": "ecdsa",
        }))
        .unwrap(),
    )
}

/// `clients` keep-alive clients signing until `per_client` answers each (or `stop` is set,
/// or the daemon dies); returns the SHA-256 (hex) of every body answered with 200.
fn sign_load(
    a: &Appliance,
    clients: usize,
    per_client: u64,
    stop: Arc<AtomicBool>,
) -> HashSet<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = a.addr.expect("running");
    let config = demo_client_config(a);
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (config, answered, stop) =
                (config.clone(), Arc::clone(&answered), Arc::clone(&stop));
            rt.spawn(async move {
                let Ok(mut conn) = Connection::connect(addr, config).await else {
                    return;
                };
                for n in 0..per_client {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let body = sign_body(c, n);
                    let hash = sha256_hex(&body);
                    let Ok((status, answer)) =
                        conn.post("/v1/sign/doc-ec", "application/json", body).await
                    else {
                        return; // the daemon died under us
                    };
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    answered.lock().unwrap().insert(hash);
                }
            })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            t.await.expect("client task");
        }
    });
    let out = answered.lock().unwrap().clone();
    out
}

/// The log's records, parsed.
fn records(a: &Appliance) -> Vec<Value> {
    std::fs::read_to_string(a.path("audit/audit.log"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

/// Input hashes of the successful `sign` request records.
fn signed_inputs(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["event"]["kind"] == "request" && r["event"]["operation"] == "sign")
        .filter(|r| r["event"]["status"] == 200)
        .map(|r| r["event"]["input_sha256"].as_str().unwrap().to_owned())
        .collect()
}

fn verify(a: &Appliance) -> std::process::Output {
    a.ctl(&["audit", "verify"])
}

fn assert_broken_at(out: &std::process::Output, seq: u64, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: audit verify passed on a tampered log"
    );
    assert!(
        stderr.contains(&format!("broken at record {seq} ")),
        "{what}: should name record {seq}: {stderr}"
    );
}

#[test]
fn ten_thousand_signing_requests_leave_ten_thousand_records_and_the_log_verifies() {
    let mut a = Appliance::init();
    a.start();
    let started = Instant::now();
    let answered = sign_load(&a, 16, 625, Arc::new(AtomicBool::new(false)));
    let elapsed = started.elapsed();
    assert_eq!(answered.len(), 10_000);
    eprintln!("10,000 audited signing requests in {elapsed:?}");

    let out = a.ctl(&["audit", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // One every 1000 records (dev.toml): nine or more over 10,000 records.
    assert!(v["checkpoints"].as_u64().unwrap() >= 9, "{v}");

    let recs = records(&a);
    let inputs = signed_inputs(&recs);
    assert_eq!(inputs.len(), 10_000, "one record per request");
    let logged: HashSet<String> = inputs.into_iter().collect();
    assert_eq!(
        logged, answered,
        "each record carries its request's input digest"
    );
    let first = recs
        .iter()
        .find(|r| r["event"]["operation"] == "sign")
        .unwrap();
    assert_eq!(first["event"]["key"], "doc-ec");
    assert_eq!(first["event"]["client"], "CN=demo-app,O=Signet");

    // `audit tail` (read backward from the end) gives the log's own last records.
    let out = a.ctl(&["audit", "tail", "-n", "25", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let now = records(&a);
    let seqs = |v: &[Value]| {
        v.iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    // The tail is itself recorded after it is answered: compare up to its last record.
    let last = tail.last().unwrap()["seq"].as_u64().unwrap() as usize;
    assert_eq!(seqs(&tail), seqs(&now[last + 1 - 25..=last]));
    assert_eq!(tail.last(), now.get(last));

    verify_reports_progress_over_the_socket(&a);
    a.stop();
}

/// A client that asks for progress gets `{"progress":{"done","total"}}` lines, rising to
/// the whole log, before the answer; `signetctl` draws them as a bar.
fn verify_reports_progress_over_the_socket(a: &Appliance) {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(a.path("admin.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let request = json!({"version": 1, "command": "audit", "action": "verify", "progress": true});
    writeln!(stream, "{request}").unwrap();
    let mut progress = Vec::new();
    let mut answer = None;
    for line in BufReader::new(&stream).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        match v.get("progress") {
            Some(p) => progress.push((p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap())),
            None => {
                answer = Some(v);
                break;
            }
        }
    }
    let answer = answer.expect("an answer after the progress");
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(progress.len() >= 5, "few progress lines: {progress:?}");
    let total = progress[0].1;
    assert!(progress.iter().all(|p| p.1 == total && p.0 <= total));
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    assert_eq!(progress.last().map(|p| p.0), Some(total));
}

#[test]
fn tampering_is_caught_and_the_first_broken_record_named() {
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_every"] = toml::Value::Integer(10);
    });
    a.start();
    sign_load(&a, 1, 60, Arc::new(AtomicBool::new(false)));

    // While it runs: an export of 20..=30 verifies offline with the audit certificate.
    let export = a.path("export.jsonl");
    let out = a.ctl(&[
        "audit",
        "export",
        "--from",
        "20",
        "--to",
        "30",
        "--out",
        &export.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = a.path("pki/audit.pem").to_string_lossy().into_owned();
    let verify_export = |file: &Path| {
        signet_e2e::run(
            std::process::Command::new(signet_e2e::bin("signetctl"))
                .args(["audit", "verify", "--cert", &cert, "--file"])
                .arg(file),
        )
    };
    let good = verify_export(&export);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("\"seq\":20,"));
    assert!(lines.last().unwrap().contains("\"kind\":\"checkpoint\""));
    let tampered = a.path("export-tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"status\":200", "\"status\":201", 1),
    )
    .unwrap();
    assert!(!verify_export(&tampered).status.success());
    std::fs::write(&tampered, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let out = verify_export(&tampered);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not end with a checkpoint"));

    a.stop();
    let log = a.path("audit/audit.log");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<String> = original.lines().map(str::to_owned).collect();
    let out = verify(&a);
    assert!(
        out.status.success(),
        "untouched: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let is_checkpoint = |l: &str| l.contains("\"kind\":\"checkpoint\"");
    // A request record well inside the log, not a checkpoint, followed by another.
    let k = (25..lines.len())
        .find(|&i| !is_checkpoint(&lines[i]) && !is_checkpoint(&lines[i + 1]))
        .unwrap();
    let write = |ls: &[String]| std::fs::write(&log, ls.join("\n") + "\n").unwrap();

    // One byte changed: the latency's first digit.
    let mut ls = lines.clone();
    let at = ls[k].find("\"latency_us\":").unwrap() + "\"latency_us\":".len();
    let mut bytes = ls[k].clone().into_bytes();
    bytes[at] = if bytes[at] == b'9' {
        b'1'
    } else {
        bytes[at] + 1
    };
    ls[k] = String::from_utf8(bytes).unwrap();
    write(&ls);
    assert_broken_at(&verify(&a), k as u64, "one byte changed");

    // A record deleted.
    let mut ls = lines.clone();
    ls.remove(k);
    write(&ls);
    assert_broken_at(&verify(&a), k as u64, "a record deleted");

    // Two records swapped.
    let mut ls = lines.clone();
    ls.swap(k, k + 1);
    write(&ls);
    assert_broken_at(&verify(&a), k as u64, "two records swapped");

    // The tail truncated past a checkpoint: the anchor says it was written.
    let last_checkpoint = lines.iter().rposition(|l| is_checkpoint(l)).unwrap();
    let cut = last_checkpoint - 3;
    write(&lines[..cut]);
    assert_broken_at(
        &verify(&a),
        cut as u64,
        "the tail truncated past a checkpoint",
    );

    // A forged checkpoint (re-hashed so the chain holds) fails its signature.
    let mut ls: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let c = ls
        .iter()
        .position(|r| r["event"]["kind"] == "checkpoint")
        .unwrap();
    let sig = ls[c]["event"]["signature"].as_str().unwrap().to_owned();
    let mut raw = B64.decode(sig).unwrap();
    let n = raw.len();
    raw[n - 2] ^= 1;
    ls[c]["event"]["signature"] = Value::String(B64.encode(raw));
    let rebuilt = rechain(&ls, c);
    write(&rebuilt);
    let out = verify(&a);
    assert_broken_at(&out, c as u64, "a forged checkpoint signature");
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));

    // Put back, it verifies again: the failures above were the tampering.
    std::fs::write(&log, &original).unwrap();
    let out = verify(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Recompute hashes and prev links from record `from` on, as a forger would, using the
/// appliance's own record type for the canonical form.
fn rechain(records: &[Value], from: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev: Option<String> = None;
    for (i, r) in records.iter().enumerate() {
        let mut rec: signet::audit::Record = serde_json::from_value(r.clone()).unwrap();
        if i >= from {
            if let Some(p) = &prev {
                rec.prev = p.clone();
            }
            rec.hash = hex::encode(rec.digest());
        }
        prev = Some(rec.hash.clone());
        out.push(rec.to_line());
    }
    out
}

/// Sign under load with `clients` clients, kill signetd with SIGKILL a few hundred records in,
/// and return the inputs of the requests that were answered.
fn answered_then_killed(a: &mut Appliance, clients: usize) -> HashSet<String> {
    let pid = a.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = Arc::clone(&stop);
        let log = a.path("audit/audit.log");
        std::thread::spawn(move || {
            // Under load: a few hundred records in, however slow the machine.
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::fs::read(&log).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count()) < 300
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("SIGKILL");
            stop.store(true, Ordering::SeqCst);
        })
    };
    let answered = sign_load(a, clients, 1_000_000, Arc::clone(&stop));
    killer.join().unwrap();
    a.kill9();
    assert!(answered.len() > 100, "load ran: {} answers", answered.len());
    answered
}

/// The inputs of the signing requests on record in the log's whole lines.
fn logged_inputs(a: &Appliance) -> HashSet<String> {
    let text = std::fs::read_to_string(a.path("audit/audit.log")).unwrap();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    signed_inputs(
        &complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .collect()
}

fn assert_all_logged(answered: &HashSet<String>, logged: &HashSet<String>, when: &str) {
    let missing = answered.difference(logged).count();
    assert_eq!(
        missing,
        0,
        "{when}: {missing} of {} answered requests have no record",
        answered.len()
    );
}

#[test]
fn kill_9_under_load_loses_no_record_of_an_answered_request() {
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_every"] = toml::Value::Integer(100);
    });
    a.start();
    let answered = answered_then_killed(&mut a, 8);

    // Offline, before anyone repairs anything: the log verifies (a torn last line, if any,
    // is reported and left out), and holds a record of every answer.
    let out = verify(&a);
    assert!(
        out.status.success(),
        "after kill -9: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_logged(&answered, &logged_inputs(&a), "after kill -9");

    // The daemon comes back on the same chain, and it still verifies.
    a.start();
    sign_load(&a, 1, 5, Arc::new(AtomicBool::new(false)));
    let out = verify(&a);
    assert!(
        out.status.success(),
        "after restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&a);
    assert_eq!(
        recs.iter()
            .filter(|r| r["event"]["kind"] == "start")
            .count(),
        2
    );
    a.stop();
}

/// Batches are made durable in the ring beside the log, and the log itself only at
/// checkpoints: a power cut can take the log's tail back to the ring's base. Done here by
/// cutting the log there after a kill -9, the most such a cut can take.
#[test]
fn a_power_cut_that_takes_the_logs_unsynced_tail_loses_no_record_of_an_answered_request() {
    // Concurrent callers: their records are group-committed by the writer's thread.
    power_cut_after_load(8);
}

#[test]
fn a_power_cut_loses_no_record_a_lone_caller_committed_on_its_own_thread() {
    // One caller: each request commits its own record, to the same ring.
    power_cut_after_load(1);
}

#[test]
fn a_record_committed_alone_is_covered_by_a_checkpoint_within_checkpoint_secs() {
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_secs"] = toml::Value::Integer(1);
        t["audit"]["checkpoint_every"] = toml::Value::Integer(1_000_000);
    });
    a.start();
    // The start's records are checkpointed first; then the writer's thread has nothing to
    // wait for.
    let checkpoints = wait_for_checkpoint_after(&a, 0);
    assert!(checkpoints.is_some(), "no checkpoint after the start");
    let answered = sign_load(&a, 1, 1, Arc::new(AtomicBool::new(false)));
    assert_eq!(answered.len(), 1);
    let request = kinds(&a)
        .iter()
        .rposition(|k| k == "request")
        .expect("the request's record");
    assert!(
        wait_for_checkpoint_after(&a, request).is_some(),
        "the lone request's record (line {request}) is still not covered: {:?}",
        kinds(&a)
    );
    a.stop();
}

/// The kinds of the log's records, in order.
fn kinds(a: &Appliance) -> Vec<String> {
    let text = std::fs::read_to_string(a.path("audit/audit.log")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["event"]["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The line of a checkpoint after line `after`, waiting up to 10 s for one.
fn wait_for_checkpoint_after(a: &Appliance, after: usize) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = kinds(a)
            .iter()
            .enumerate()
            .skip(after + 1)
            .find(|(_, k)| *k == "checkpoint")
            .map(|(i, _)| i);
        if found.is_some() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `clients` sign until a few hundred records are in; signetd is killed, and the log cut
/// back to where the ring began, the most a power cut can take from it. After a restart,
/// every answered request is on record again and the log verifies.
fn power_cut_after_load(clients: usize) {
    let mut a = Appliance::init_with(|t| {
        // No checkpoint under the load: the log is synced once, at start.
        t["audit"]["checkpoint_every"] = toml::Value::Integer(1_000_000);
    });
    a.start();
    let answered = answered_then_killed(&mut a, clients);
    let ring = std::fs::read(a.path("audit/audit.log.ring")).expect("the ring beside the log");
    let header: Value = serde_json::from_slice(ring.split(|b| *b == b'\n').next().unwrap())
        .expect("the ring's header");
    let base = header["log_bytes"].as_u64().expect("log_bytes");
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(a.path("audit/audit.log"))
        .unwrap();
    log.set_len(base).unwrap();
    drop(log);
    let lost = answered.difference(&logged_inputs(&a)).count();
    assert!(
        lost > 100,
        "the cut took {lost} answered records from the log: the ring holds them"
    );

    a.start();
    assert!(
        a.log()
            .contains("restored the records its unsynced tail lost"),
        "{}",
        a.log()
    );
    assert_all_logged(&answered, &logged_inputs(&a), "after the cut and a restart");
    let out = verify(&a);
    assert!(
        out.status.success(),
        "after the cut and a restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.stop();
}

#[test]
fn refused_handshakes_and_refused_authorizations_are_on_record() {
    let mut a = Appliance::init();
    a.start();
    let (cert, key) = a.issue_client("stranger");
    // No client certificate: the handshake is refused.
    let out = run_no_cert(&a);
    assert!(!out.status.success(), "a handshake without a certificate");
    // A certificate no client in the policy matches: 403.
    let out = signet_e2e::run(
        a.curl_as(&cert, &key)
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(String::from_utf8(sign_body(0, 0).to_vec()).unwrap())
            .arg(a.url("/v1/sign/doc-ec")),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs = records(&a);
        let handshake = recs
            .iter()
            .any(|r| r["event"]["kind"] == "handshake-refused");
        let forbidden = recs.iter().any(|r| {
            r["event"]["kind"] == "request"
                && r["event"]["status"] == 403
                && r["event"]["client"] == "CN=stranger,O=Signet"
                && r["event"]["key"] == "doc-ec"
        });
        if handshake && forbidden {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not on record (handshake {handshake}, 403 {forbidden})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.stop();
    assert!(verify(&a).status.success());
}

fn run_no_cert(a: &Appliance) -> std::process::Output {
    signet_e2e::run(
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(a.path("pki/root-ca.pem"))
            .arg(a.url("/v1/keys")),
    )
}

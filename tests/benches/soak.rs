//! A bounded soak: 256 concurrent mutual-TLS clients, each cycling through time-stamps,
//! OCSP requests with a nonce (a live signature each) and JSON signing, for minutes.
//!
//!     cargo bench -p signet-e2e --bench soak               # 5 minutes
//!     cargo bench -p signet-e2e --bench soak -- --quick    # 20 s (CI)
//!     SIGNET_SOAK_SECONDS=900 cargo bench -p signet-e2e --bench soak
//!
//! One client in eight presents a certificate whose client entry allows 5 requests a second:
//! those get 429s with Retry-After, the only refusals allowed. Any other error (another
//! status, a malformed answer, a dropped connection, no answer within 10 s) fails the run.
//! The daemon's resident memory is sampled every second; the run fails if the last quarter's
//! average is more than 10% (and 8 MiB) above the second quarter's: memory must stay flat
//! once the connections are up. Latency percentiles are printed per operation, beside the
//! raw PKCS#11 ceiling of the keys in use, measured in the same run.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use der::Decode;
use serde_json::json;
use sha2::{Digest, Sha256};
use signet_e2e::client::{client_config, demo_client_config, Connection};
use signet_e2e::{bin, ocsp, process_rss_kib, run_ok, tsp, Appliance};

const CLIENTS: usize = 256;
/// Every eighth client is the rate-limited one.
const THROTTLED_EVERY: usize = 8;
const THROTTLED_PER_SECOND: i64 = 5;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Tsa,
    Ocsp,
    Sign,
}

const OPS: [Op; 3] = [Op::Tsa, Op::Ocsp, Op::Sign];

/// What every client saw, merged.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Op, Vec<Duration>>,
    rate_limited: u64,
    errors: Vec<String>,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds: u64 = std::env::var("SIGNET_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 20 } else { 300 });
    let duration = Duration::from_secs(seconds);

    let mut app = Appliance::init_with(|t| {
        let throttled: toml::Table = format!(
            r#"name = "throttled"
            match = {{ subject = "CN=throttled,O=Signet" }}
            operations = ["sign", "tsa"]
            keys = ["doc-ec"]
            rate_limit = {{ per_second = {THROTTLED_PER_SECOND}, burst = {THROTTLED_PER_SECOND} }}"#
        )
        .parse()
        .expect("client entry");
        t["clients"]
            .as_array_mut()
            .expect("clients")
            .push(toml::Value::Table(throttled));
    });
    let (cert, key) = app.issue_client("throttled");
    let ceilings: Vec<(&str, f64)> = ["tsa", "doc-ec", "ocsp-signer"]
        .into_iter()
        .map(|label| (label, raw_ceiling(&app, label)))
        .collect();
    app.start();
    let pid = app.pid();
    let normal = demo_client_config(&app);
    let throttled = client_config(&app, &cert, &key);
    let addr = app.addr.expect("running");
    let root = ocsp::pki_cert(&app, "root-ca.pem");
    let tsa_cert = ocsp::pki_cert(&app, "tsa.pem");
    let ocsp_request = Bytes::from(ocsp::request(&root, &[&tsa_cert], 16));
    let baseline_kib = process_rss_kib(pid).expect("daemon running");

    println!(
        "soak: {CLIENTS} mTLS clients ({} rate-limited to {THROTTLED_PER_SECOND}/s), TSA + OCSP (nonce) + sign (P-256), {seconds} s",
        CLIENTS / THROTTLED_EVERY
    );
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));
    let sampler = {
        let (stop, samples) = (Arc::clone(&stop), Arc::clone(&samples));
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if let Some(kib) = process_rss_kib(pid) {
                    samples.lock().expect("lock").push((start.elapsed(), kib));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu_before = signet_e2e::process_cpu(pid);
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let tls = if i % THROTTLED_EVERY == THROTTLED_EVERY - 1 {
                    Arc::clone(&throttled)
                } else {
                    Arc::clone(&normal)
                };
                let (tally, ocsp_request) = (Arc::clone(&tally), ocsp_request.clone());
                tokio::spawn(async move {
                    let mine = client(i, addr, tls, ocsp_request, started, duration).await;
                    let mut all = tally.lock().expect("lock");
                    for (op, mut l) in mine.latencies {
                        all.latencies.entry(op).or_default().append(&mut l);
                    }
                    all.rate_limited += mine.rate_limited;
                    all.errors.extend(mine.errors);
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client task");
        }
    });
    let elapsed = started.elapsed();
    let cpu = signet_e2e::process_cpu(pid) - cpu_before;
    drop(rt);
    std::thread::sleep(Duration::from_secs(2));
    let after_kib = process_rss_kib(pid).expect("daemon survived the soak");
    stop.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    app.stop();

    let tally = tally.lock().expect("lock");
    let total: usize = tally.latencies.values().map(Vec::len).sum();
    println!(
        "{:<6} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "op", "answers", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    let mut everything = Vec::with_capacity(total);
    for (op, l) in &tally.latencies {
        print_row(&format!("{op:?}"), l, elapsed);
        everything.extend_from_slice(l);
    }
    print_row("all", &everything, elapsed);
    println!(
        "429 (rate limit): {}; other errors: {}; daemon CPU {:.0}% of one core",
        tally.rate_limited,
        tally.errors.len(),
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    for (label, rate) in &ceilings {
        println!("raw PKCS#11 ceiling, key {label}: {rate:.0} signatures/s (2 threads)");
    }
    let samples = samples.lock().expect("lock");
    let (second_quarter, last_quarter) = quarters(&samples);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "RSS KiB: idle {baseline_kib}, 2nd quarter avg {second_quarter}, last quarter avg {last_quarter}, peak {peak}, 2 s after {after_kib}"
    );

    let mut failed = Vec::new();
    if let Some(first) = tally.errors.first() {
        failed.push(format!("{} errors, the first: {first}", tally.errors.len()));
    }
    if tally.rate_limited == 0 {
        failed.push("the rate-limited client was never limited".to_owned());
    }
    for op in OPS {
        if tally.latencies.get(&op).map_or(0, Vec::len) == 0 {
            failed.push(format!("no {op:?} answered"));
        }
    }
    let allowed = (second_quarter / 10).max(8 * 1024);
    if last_quarter > second_quarter + allowed {
        failed.push(format!(
            "memory grew: {second_quarter} KiB -> {last_quarter} KiB (allowed +{allowed})"
        ));
    }
    if !failed.is_empty() {
        eprintln!("soak FAILED:\n  {}", failed.join("\n  "));
        std::process::exit(1);
    }
    println!("soak passed");
}

/// One client: a keep-alive connection, requests back to back until `duration` is over,
/// cycling through the operations from its own starting point.
async fn client(
    i: usize,
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    ocsp_request: Bytes,
    started: Instant,
    duration: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Connection> = None;
    let mut n = 0u64;
    while started.elapsed() < duration {
        n += 1;
        let op = OPS[(i + n as usize) % OPS.len()];
        let (path, content_type, body) = match op {
            Op::Tsa => (
                "/v1/tsa",
                "application/timestamp-query",
                Bytes::from(tsp::request(format!("{i}/{n}").as_bytes(), n, false)),
            ),
            Op::Ocsp => ("/ocsp", "application/ocsp-request", ocsp_request.clone()),
            Op::Sign => ("/v1/sign/doc-ec", "application/json", sign_body(i, n)),
        };
        let t = Instant::now();
        let exchange = async {
            if conn.is_none() {
                conn = Some(Connection::connect(addr, Arc::clone(&tls)).await?);
            }
            let c = conn
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no connection"))?;
            c.post(path, content_type, body)
                .await
                .map_err(std::io::Error::other)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok((status, answer))) if status == 200 => match check(op, &answer) {
                Ok(()) => tally.latencies.entry(op).or_default().push(t.elapsed()),
                Err(e) => tally.errors.push(format!("client {i} {op:?}: {e}")),
            },
            Ok(Ok((status, _))) if status == 429 => {
                tally.rate_limited += 1;
                // What a well-behaved client does with Retry-After, shortened for the soak.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok((status, answer))) => tally.errors.push(format!(
                "client {i} {op:?}: status {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            )),
            Ok(Err(e)) => {
                tally.errors.push(format!("client {i} {op:?}: {e}"));
                conn = None;
            }
            Err(_) => {
                tally.errors.push(format!(
                    "client {i} {op:?}: no answer in {REQUEST_TIMEOUT:?}"
                ));
                conn = None;
            }
        }
    }
    tally
}

fn sign_body(client: usize, n: u64) -> Bytes {
    let digest = Sha256::digest(format!("soak client {client} document {n}"));
    Bytes::from(
        serde_json::to_vec(&json!({
            "digest": B64.encode(digest),
            "digest_algorithm": "sha256",
            "scheme": "ecdsa",
        }))
        .expect("json"),
    )
}

/// A cheap check that a 200 carries what the operation promises.
fn check(op: Op, answer: &[u8]) -> Result<(), String> {
    match op {
        Op::Tsa => {
            let resp = signet_pki::tsp::status::TimeStampResp::from_der(answer)
                .map_err(|e| format!("not a TimeStampResp: {e}"))?;
            if resp.status.status != 0 || resp.time_stamp_token.is_none() {
                return Err(format!("not granted: {:?}", resp.status));
            }
        }
        Op::Ocsp => {
            if ocsp::echoed_nonce(answer).map(|n| n.len()) != Some(16) {
                return Err("OCSP answer without our nonce".into());
            }
        }
        Op::Sign => {
            let v: serde_json::Value =
                serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
            if !v["signature"].is_string() {
                return Err(format!("no signature in {v}"));
            }
        }
    }
    Ok(())
}

fn print_row(name: &str, latencies: &[Duration], elapsed: Duration) {
    let mut l = latencies.to_vec();
    l.sort_unstable();
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return 0.0;
        }
        l[((l.len() as f64 * p) as usize).min(l.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "{:<6} {:>9} {:>8.0} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
        name,
        l.len(),
        l.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        l.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

/// The average RSS of the second and of the last quarter of the samples (the first quarter
/// is the ramp-up: connections and caches filling).
fn quarters(samples: &[(Duration, u64)]) -> (u64, u64) {
    let n = samples.len();
    let avg = |s: &[(Duration, u64)]| -> u64 {
        if s.is_empty() {
            return 0;
        }
        s.iter().map(|x| x.1).sum::<u64>() / s.len() as u64
    };
    (avg(&samples[n / 4..n / 2]), avg(&samples[n * 3 / 4..]))
}

/// `signetctl hsm bench` on a key: C_Sign in a tight loop on two threads, for 2 s.
fn raw_ceiling(app: &Appliance, label: &str) -> f64 {
    let out = run_ok(
        Command::new(bin("signetctl"))
            .args(["hsm", "bench", "--label", label, "--json"])
            .args(["--threads", "2", "--seconds", "2", "--config"])
            .arg(&app.config),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["signatures_per_second"].as_f64().expect("rate")
}

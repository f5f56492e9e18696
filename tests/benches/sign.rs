//! Signing API throughput and latency over mutual TLS with keep-alive: `POST /v1/sign/{key}`
//! with 1, 8 and 32 clients and `POST /v1/sign/{key}/batch` with batches of 100 and 1000
//! digests and 1 to 4 clients, beside the raw PKCS#11 C_Sign ceiling of the same key with as
//! many threads as the daemon has HSM workers, measured in the same run.
//!
//!     cargo bench -p signet-e2e --bench sign              # 5 s per point
//!     cargo bench -p signet-e2e --bench sign -- --quick   # 1 s per point (CI)
//!
//! Only good answers count: HTTP 200 with a JSON body holding one signature (or, for a
//! batch, exactly as many signatures as digests sent, none an error item); anything else is
//! an error and adds nothing to the rate. The first signature of each point is verified
//! against the key's public key from `GET /v1/keys`.
//!
//! The load generator runs on the same machine (one thread), so it takes CPU from the
//! daemon and from SoftHSM: the ratio is a lower bound of what a remote client would see.
//! The daemon's CPU time per signature (from /proc/PID/stat) is printed beside the raw CPU
//! time per signature and the bare mTLS server's CPU per request (`signet_e2e::cost`), which
//! isolates the appliance's overhead from the generator's.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use der::Decode;
use sha2::{Digest, Sha256};
use signet_e2e::bare::Transport;
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::cost::{self, split_per_answer, thread_cpu, BareCosts, Budget, CostRow};
use signet_e2e::{bin, process_cpu, run_ok, Appliance};

/// The dev profile's document-signing keys and the scheme each is measured with: the
/// scheme `signetctl hsm bench` uses for the raw ceiling (the key's default).
const KEYS: [(&str, &str); 2] = [("doc-rsa", "pkcs1v15"), ("doc-ec", "ecdsa")];
const CLIENTS: [usize; 3] = [1, 8, 32];
const BATCHES: [usize; 2] = [100, 1000];
const BATCH_CLIENTS: [usize; 3] = [1, 2, 4];
const HSM_WORKERS: usize = 2;
/// Distinct request bodies each point cycles through.
const BODIES: usize = 16;

struct Point {
    route: &'static str,
    batch: usize,
    clients: usize,
    /// Good signatures per second.
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    first_error: Option<String>,
    /// signetd's CPU time per good signature.
    server_cpu: Duration,
    /// The same by thread (`cost::split_per_answer`).
    split: String,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 5.0 };
    println!(
        "Signing API benchmark: SoftHSM, {HSM_WORKERS} HSM worker threads, mTLS HTTP/1.1 keep-alive, {seconds} s per point"
    );
    println!("rate = good signatures per second; ratio = rate / raw C_Sign rate of the same key; p50/p99 per request");
    println!(
        "{:<8} {:<9} {:>10} {:>6} {:>8} {:>10} {:>7} {:>9} {:>9} {:>7} {:>13} {:>13}",
        "key",
        "scheme",
        "raw sig/s",
        "batch",
        "clients",
        "API sig/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "errors",
        "raw CPU/sig",
        "signetd CPU/sig"
    );
    let bare = BareCosts::measure(Transport::Mtls, &CLIENTS, Duration::from_secs_f64(seconds));
    let mut costs = Vec::new();
    let mut failures = Vec::new();
    for (label, scheme) in KEYS {
        let mut app = Appliance::init_with(|t| {
            t["hsm"]["workers"] = toml::Value::Integer(HSM_WORKERS as i64);
            // The client's rate limit is not what this measures: the dev one (10,000/s)
            // is within reach of P-256 batches on a fast machine, and a point that
            // drained it would start the next one with a 429.
            lift_rate_limits(t);
        });
        // The ceiling before and after the API points, averaged: on a shared machine the
        // two differ, and both are printed so that the drift is seen.
        let raw_before = raw_ceiling(&app, label, seconds);
        app.start();
        let verifier = Verifier::fetch(&app, label);
        let mut points = Vec::new();
        for clients in CLIENTS {
            points.push(measure(
                &app, &verifier, label, scheme, None, clients, seconds,
            ));
        }
        for batch in BATCHES {
            for clients in BATCH_CLIENTS {
                points.push(measure(
                    &app,
                    &verifier,
                    label,
                    scheme,
                    Some(batch),
                    clients,
                    seconds,
                ));
            }
        }
        app.stop();
        let raw_after = raw_ceiling(&app, label, seconds);
        let raw = (raw_before + raw_after) / 2.0;
        println!(
            "{label}: raw C_Sign with {HSM_WORKERS} threads {raw_before:.0} sig/s before the API points, {raw_after:.0} after; ratios against {raw:.0}"
        );
        // With as many threads as cores, each raw thread is busy all the time.
        let raw_cpu_us = 1e6 * HSM_WORKERS as f64 / raw;
        for p in &points {
            println!(
                "{:<8} {:<9} {:>10.0} {:>6} {:>8} {:>10.0} {:>6.1}% {:>9.2} {:>9.2} {:>7} {:>10.0} us {:>10.0} us",
                label,
                scheme,
                raw,
                if p.route == "sign" { "-".to_owned() } else { p.batch.to_string() },
                p.clients,
                p.rate,
                100.0 * p.rate / raw,
                p.p50.as_secs_f64() * 1e3,
                p.p99.as_secs_f64() * 1e3,
                p.errors,
                raw_cpu_us,
                p.server_cpu.as_secs_f64() * 1e6,
            );
            costs.push(CostRow {
                what: match p.route {
                    "sign" => format!("/v1/sign {label}"),
                    _ => format!("batch {} {label}", p.batch),
                },
                clients: p.clients,
                rate: p.rate,
                p50: p.p50,
                p99: p.p99,
                server_cpu: p.server_cpu,
                raw_cpu: Duration::from_secs_f64(raw_cpu_us / 1e6),
                budget: if label.ends_with("rsa") {
                    Budget::Rsa
                } else {
                    Budget::Ec
                },
                split: p.split.clone(),
            });
            if let Some(e) = &p.first_error {
                failures.push(format!(
                    "{label} {} batch {} clients {}: {} errors, first: {e}",
                    p.route, p.batch, p.clients, p.errors
                ));
            }
        }
    }
    println!("\nCost per signature, us of CPU (budget: ec = raw + 2 x bare+sig, rsa = raw + 10%; batches per digest)");
    println!("bare mTLS server: {}", bare.describe());
    println!("{}", cost::idle_policy());
    println!("{}", cost::header());
    for r in &costs {
        println!("{}", cost::row(r, &bare));
    }
    // Errors add nothing to a rate, but they are shown: a rate with errors beside it is
    // that of a server that refused part of the load.
    for f in &failures {
        println!("errors: {f}");
    }
}

/// `signetctl hsm bench` on `label`: C_Sign in a tight loop, one session per thread, with
/// the key's default scheme (PKCS#1 v1.5 SHA-256 for RSA, ECDSA SHA-256 for P-256).
fn raw_ceiling(app: &Appliance, label: &str, seconds: f64) -> f64 {
    let out = run_ok(
        Command::new(bin("signetctl"))
            .args(["hsm", "bench", "--label", label, "--json"])
            .arg("--threads")
            .arg(HSM_WORKERS.to_string())
            .arg("--seconds")
            .arg(seconds.to_string())
            .arg("--config")
            .arg(&app.config),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["signatures_per_second"].as_f64().expect("rate")
}

/// Checks signatures with the key's public key, as `GET /v1/keys` gives it.
struct Verifier {
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
    public_key: Vec<u8>,
}

impl Verifier {
    fn fetch(app: &Appliance, label: &str) -> Verifier {
        let out = run_ok(app.curl().arg(app.url("/v1/keys")));
        let keys: serde_json::Value = serde_json::from_str(&out).expect("keys JSON");
        let key = keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["label"] == label)
            .unwrap_or_else(|| panic!("{label} not in {out}"));
        let pem = key["spki_pem"].as_str().expect("spki_pem");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = B64.decode(b64).expect("PEM base64");
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(&der).expect("SPKI");
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
            match key["algorithm"].as_str().expect("algorithm") {
                a if a.starts_with("rsa-") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                "ec-p256" => &ring::signature::ECDSA_P256_SHA256_ASN1,
                other => panic!("no verifier for {other}"),
            };
        Verifier {
            algorithm,
            public_key: spki.subject_public_key.raw_bytes().to_vec(),
        }
    }

    /// Whether `signature` (base64) signs the message whose SHA-256 is `digest`. ring hashes
    /// the message itself, so the message is kept beside its digest.
    fn verify(&self, message: &[u8], signature: &str) -> Result<(), String> {
        let sig = B64
            .decode(signature)
            .map_err(|e| format!("signature not base64: {e}"))?;
        ring::signature::UnparsedPublicKey::new(self.algorithm, &self.public_key)
            .verify(message, &sig)
            .map_err(|_| "the signature does not verify".to_owned())
    }
}

/// A request body and the messages whose digests it carries.
struct Body {
    json: Bytes,
    messages: Vec<Vec<u8>>,
}

fn bodies(scheme: &str, batch: Option<usize>) -> Vec<Body> {
    (0..BODIES)
        .map(|b| {
            let n = batch.unwrap_or(1);
            let messages: Vec<Vec<u8>> = (0..n)
                .map(|i| format!("signet bench body {b} digest {i}").into_bytes())
                .collect();
            let digests: Vec<String> = messages
                .iter()
                .map(|m| B64.encode(Sha256::digest(m)))
                .collect();
            let json = match batch {
                None => serde_json::json!({
                    "digest": digests[0], "digest_algorithm": "sha256", "scheme": scheme
                }),
                Some(_) => serde_json::json!({
                    "digests": digests, "digest_algorithm": "sha256", "scheme": scheme
                }),
            };
            Body {
                json: Bytes::from(json.to_string()),
                messages,
            }
        })
        .collect()
}

/// The signatures of a good answer: status 200, and one signature per digest sent.
fn signatures(
    status: hyper::StatusCode,
    body: &[u8],
    batch: Option<usize>,
) -> Result<Vec<String>, String> {
    if status != 200 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer not JSON: {e}"))?;
    match batch {
        None => v["signature"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_owned()])
            .ok_or_else(|| format!("no signature in {v}")),
        Some(n) => {
            let results = v["results"].as_array().ok_or("no results")?;
            if results.len() != n {
                return Err(format!("{} results for {n} digests", results.len()));
            }
            results
                .iter()
                .map(|r| {
                    r["signature"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| format!("an item is not a signature: {r}"))
                })
                .collect()
        }
    }
}

/// `clients` keep-alive connections sending signing requests back to back for `seconds`.
///
/// Every client connects and sends one unmeasured request at the same time as the others
/// (a connection left idle longer than the daemon's header timeout would be closed), then
/// all start together. A client whose connection fails makes a new one; the failed request
/// counts as an error.
fn measure(
    app: &Appliance,
    verifier: &Verifier,
    label: &str,
    scheme: &str,
    batch: Option<usize>,
    clients: usize,
    seconds: f64,
) -> Point {
    let duration = Duration::from_secs_f64(seconds);
    let path: Arc<str> = match batch {
        None => format!("/v1/sign/{label}").into(),
        Some(_) => format!("/v1/sign/{label}/batch").into(),
    };
    let warm = bodies(scheme, batch.map(|_| 1)).swap_remove(0).json;
    let bodies = Arc::new(bodies(scheme, batch));
    let per_request = batch.unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = app.addr.expect("running");
    let pid = app.pid();
    let config = demo_client_config(app);

    // The first answer's signatures must verify.
    let first = rt.block_on(async {
        let mut conn = Connection::connect(addr, config.clone())
            .await
            .expect("connect");
        conn.post(&path, "application/json", bodies[0].json.clone())
            .await
            .expect("first request")
    });
    let sigs = signatures(first.0, &first.1, batch).expect("first answer");
    for (m, s) in bodies[0].messages.iter().zip(&sigs) {
        verifier.verify(m, s).expect("a signature from the API");
    }

    rt.block_on(async move {
        // Warm up all clients at once; the measurement starts when all are ready.
        let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let (bodies, path, config) =
                    (Arc::clone(&bodies), Arc::clone(&path), config.clone());
                let (ready, warm) = (Arc::clone(&ready), warm.clone());
                tokio::spawn(async move {
                    let mut conn = Connection::connect(addr, config.clone())
                        .await
                        .expect("connect");
                    // One digest, even on the batch route: a client done long before the
                    // others would sit idle past the header timeout.
                    let (status, answer) = conn
                        .post(&path, "application/json", warm.clone())
                        .await
                        .expect("warm-up");
                    signatures(status, &answer, batch.map(|_| 1)).expect("warm-up answer");
                    ready.wait().await;
                    let start = Instant::now();
                    let (mut latencies, mut errors, mut first_error, mut n) =
                        (Vec::new(), 0usize, None, i);
                    let mut conn = Some(conn);
                    while start.elapsed() < duration {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match Connection::connect(addr, config.clone()).await {
                                Ok(c) => conn.insert(c),
                                Err(e) => {
                                    errors += 1;
                                    first_error.get_or_insert(format!("connect: {e}"));
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                }
                            },
                        };
                        let t = Instant::now();
                        let answer = c
                            .post(&path, "application/json", bodies[n % BODIES].json.clone())
                            .await;
                        let answer = match answer {
                            Ok((status, body)) => signatures(status, &body, batch),
                            Err(e) => {
                                conn = None;
                                Err(format!("request: {e}"))
                            }
                        };
                        match answer {
                            Ok(_) => latencies.push(t.elapsed()),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                        n += clients;
                    }
                    (latencies, errors, first_error)
                })
            })
            .collect();
        ready.wait().await;
        // The clients start now: the clock and the CPU count start with them.
        let cpu_before = process_cpu(pid);
        let threads_before = thread_cpu(pid);
        let started = Instant::now();
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for t in tasks {
            let (l, e, f) = t.await.expect("client");
            latencies.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let good = latencies.len() * per_request;
        let server_cpu = process_cpu(pid).saturating_sub(cpu_before) / (good.max(1) as u32);
        let split = split_per_answer(&threads_before, &thread_cpu(pid), good as u64);
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Point {
            route: if batch.is_some() { "batch" } else { "sign" },
            batch: per_request,
            clients,
            rate: good as f64 / elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
            errors,
            first_error,
            server_cpu,
            split,
        }
    })
}

/// Give every client a rate limit far above what the token can sign.
fn lift_rate_limits(t: &mut toml::Table) {
    let Some(clients) = t.get_mut("clients").and_then(|c| c.as_array_mut()) else {
        return;
    };
    for client in clients.iter_mut().filter_map(|c| c.as_table_mut()) {
        let mut limit = toml::Table::new();
        limit.insert("per_second".into(), toml::Value::Float(1e7));
        limit.insert("burst".into(), toml::Value::Float(2e7));
        client.insert("rate_limit".into(), toml::Value::Table(limit));
    }
}

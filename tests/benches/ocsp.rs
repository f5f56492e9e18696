//! OCSP responder throughput and latency over plain HTTP/1.1, against its peers measured
//! with the same load generator in the same run: OpenSSL's responder (`openssl ocsp -index
//! ... -port`, which signs every answer live, so it can echo a nonce) and cfssl's
//! (`cfssl ocspserve`, which serves answers signed beforehand). signetd's rows come from
//! `signetd_targets` below once signetd has its responder.
//!
//!     cargo bench -p signet-e2e --bench ocsp              # 5 s per point
//!     cargo bench -p signet-e2e --bench ocsp -- --quick   # 1 s per point (CI)
//!
//! The benchmark runs in a network namespace of its own: the binary re-executes itself
//! under `unshare --net` (as root; with `--user --map-root-user` otherwise) with loopback
//! up, before it starts anything, because OpenSSL 3.0's responder listens on every address
//! of the machine whatever it is told. Doing it in the binary rather than in a wrapper
//! script means `cargo bench --bench ocsp` can never run it on the shared network.
//!
//! Every path is checked before it is measured: one answer is verified in full with the
//! openssl CLI (signature up to the CA, the leaf good, the nonce echoed or absent as
//! expected), and during the run every answer must be HTTP 200 and a DER OCSPResponse whose
//! responseStatus is successful (cfssl's must be the very bytes it was given), so that no
//! figure is the rate of error answers.
//!
//! The generator runs on one thread of the same machine, so it takes CPU from the server:
//! the figures are lower bounds of what a remote client would see, alike for every server.
//! OpenSSL's responder is one process that answers one connection at a time and closes it
//! after every answer (HTTP/1.0): its clients pay a TCP connection per request (the `conns`
//! column), which is how it is used.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use signet_e2e::bare::Transport;
use signet_e2e::cost::{self, split_per_answer, thread_cpu, BareCosts, Budget, CostRow};
use signet_e2e::load::{self, LoadReport, LoadRequest};
use signet_e2e::ocsp_peers::{
    check_ocsp_response, enter_private_netns, get_path, CfsslResponder, OcspPki, OpensslResponder,
};
use signet_e2e::{ab, bin, process_cpu, run_ok, Appliance};

const CLIENTS: [usize; 3] = [1, 8, 32];
const OCSP_REQUEST: &str = "application/ocsp-request";

/// The two requests for the leaf: without a nonce (answerable from a pre-signed response)
/// and with one (needs signing live).
struct Requests {
    plain: Vec<u8>,
    nonce: Vec<u8>,
}

/// One server path to measure.
struct Target {
    peer: &'static str,
    path: &'static str,
    addr: SocketAddr,
    /// The OCSP request sent (for the full check of one answer).
    ocsp_request: Vec<u8>,
    expect_nonce: bool,
    load: LoadRequest,
    /// Whether a failed check stops the benchmark (else the path is shown as unsupported).
    required: bool,
    /// The PKI the answer is verified against.
    pki: Rc<OcspPki>,
    /// The server's process, when its CPU time is to be reported.
    pid: Option<u32>,
}

enum Outcome {
    Measured(LoadReport),
    Unsupported,
}

fn main() {
    enter_private_netns();
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 5.0 };
    let duration = Duration::from_secs_f64(seconds);

    let dir = tempfile::Builder::new()
        .prefix("signet-ocsp-bench-")
        .tempdir()
        .expect("tempdir");
    let pki = Rc::new(OcspPki::make(dir.path()));
    let requests = Requests {
        plain: pki.request("req.der", false),
        nonce: pki.request("req-nonce.der", true),
    };
    let presigned = pki.presign("req.der", "presigned.der");
    pki.verify_response(&requests.plain, &presigned, false)
        .expect("the pre-signed response");

    let openssl = OpensslResponder::start(
        dir.path(),
        &pki.ca_pem,
        &pki.index_txt,
        &pki.signer_cert,
        &pki.signer_key,
    );
    let cfssl = CfsslResponder::start(dir.path(), std::slice::from_ref(&presigned));

    let mut targets = vec![
        Target {
            peer: "openssl",
            path: "POST, nonce",
            addr: openssl.addr,
            ocsp_request: requests.nonce.clone(),
            expect_nonce: true,
            load: LoadRequest::post("/", OCSP_REQUEST, requests.nonce.clone())
                .check(check_ocsp_response),
            required: true,
            pki: Rc::clone(&pki),
            pid: None,
        },
        Target {
            peer: "cfssl",
            path: "POST, no nonce",
            addr: cfssl.addr,
            ocsp_request: requests.plain.clone(),
            expect_nonce: false,
            load: LoadRequest::post("/", OCSP_REQUEST, requests.plain.clone())
                .check(same_as(&presigned)),
            required: true,
            pki: Rc::clone(&pki),
            pid: None,
        },
        Target {
            peer: "cfssl",
            path: "GET /base64",
            addr: cfssl.addr,
            ocsp_request: requests.plain.clone(),
            expect_nonce: false,
            load: LoadRequest::get(&get_path(&requests.plain)).check(same_as(&presigned)),
            // Debian bookworm's cfssl 1.2.0 decodes the GET path with its leading `/` as
            // base64, and so answers every GET with 400: shown as n/a, not a failure.
            required: false,
            pki: Rc::clone(&pki),
            pid: None,
        },
    ];
    // ===================================================================================
    // signetd: its rows join here, measured exactly like the peers'.
    let signetd = start_signetd(&dir.path().join("signetd"), true, "rsa-2048");
    targets.extend(signetd_targets(&signetd));
    let ceiling = raw_ceiling(&signetd.app, seconds);
    // ===================================================================================

    println!(
        "OCSP benchmark: {}; {}; RSA-2048 delegated signer; plain HTTP/1.1, one generator \
         thread, private network namespace, {seconds} s per point",
        run_ok(std::process::Command::new("openssl").arg("version")).trim(),
        run_ok(std::process::Command::new("cfssl").arg("version"))
            .lines()
            .next()
            .unwrap_or("cfssl")
            .trim()
            .replace("Version:", "cfssl")
    );

    // Check every path once before measuring anything.
    let checked: Vec<Option<String>> = targets
        .iter()
        .map(|t| {
            let problem = check_target(t)?;
            // What the server said about it, if it says anything.
            let log = match t.peer {
                "openssl" => openssl.log(),
                "cfssl" => cfssl.log(),
                _ => String::new(),
            };
            Some(match log.lines().last() {
                Some(line) => format!("{problem} ({} logs: {})", t.peer, line.trim()),
                None => problem,
            })
        })
        .collect();
    for (t, problem) in targets.iter().zip(&checked) {
        if let Some(p) = problem {
            assert!(
                !t.required,
                "{} {}: the answer is wrong, nothing to measure: {p}",
                t.peer, t.path
            );
        }
    }

    println!(
        "{:<8} {:<15} {:>7} {:>9} {:>8} {:>8} {:>7} {:>7}",
        "peer", "path", "clients", "req/s", "p50 ms", "p99 ms", "errors", "conns"
    );
    let mut results = Vec::new();
    for (t, problem) in targets.iter().zip(&checked) {
        for clients in CLIENTS {
            let mut cpu_per_answer = None;
            let outcome = match problem {
                Some(_) => Outcome::Unsupported,
                None => {
                    let cpu_before = t.pid.map(process_cpu);
                    let report = load::run(t.addr, t.load.clone(), clients, duration);
                    if let (Some(pid), Some(before)) = (t.pid, cpu_before) {
                        cpu_per_answer = Some(
                            process_cpu(pid).saturating_sub(before) / report.count.max(1) as u32,
                        );
                    }
                    Outcome::Measured(report)
                }
            };
            print_row(t, clients, &outcome);
            if let Some(per) = cpu_per_answer {
                println!("         signetd CPU per answer: {} us", per.as_micros());
            }
            results.push((t.peer, t.path, clients, outcome));
        }
    }
    for (t, problem) in targets.iter().zip(&checked) {
        if let Some(p) = problem {
            println!("n/a: {} {} gives no right answer: {p}", t.peer, t.path);
        }
    }
    print_ratios(&results);
    print_ceiling(&results, ceiling);
    drop(signetd);
    metrics_cost(dir.path(), duration);
    cost_per_answer(dir.path(), duration);

    drop(cfssl);
    drop(openssl);
}

/// What counting for Prometheus costs pre-signed answers (the path with the least work of
/// its own): two fresh daemons running at once, one with metrics and one without, 32
/// clients moved between them in alternating slices (`signet_e2e::ab`). Both run on the
/// same two cores, so whatever else the machine does falls on both alike.
fn metrics_cost(dir: &Path, slice: Duration) {
    let off = start_signetd(&dir.join("metrics-off"), false, "rsa-2048");
    let on = start_signetd(&dir.join("metrics-on"), true, "rsa-2048");
    let load = |d: &Signetd| {
        let request = LoadRequest::post(SIGNETD_OCSP_PATH, OCSP_REQUEST, d.requests.plain.clone())
            .check(check_ocsp_response);
        let pid = d.app.pid();
        let addr = d.addr;
        move || {
            let cpu_before = process_cpu(pid);
            let report = load::run(addr, request.clone(), 32, slice);
            ab::Slice {
                answers: report.count,
                elapsed: report.elapsed,
                server_cpu: process_cpu(pid).saturating_sub(cpu_before),
            }
        }
    };
    let c = ab::compare(METRICS_COST_ROUNDS, load(&off), load(&on));
    println!(
        "metrics cost (signetd pre-signed POST, 32 clients, {slice:?} slices): {}",
        c.summary(("off", "on"))
    );
}

/// signetd's nonce path (signed live) with an RSA-2048 and a P-256 signer: its CPU per
/// answer beside the raw C_Sign of the signer key and the bare plain-HTTP server's request
/// (`signet_e2e::cost`), all in this run.
fn cost_per_answer(dir: &Path, duration: Duration) {
    let bare = BareCosts::measure(Transport::Plain, &CLIENTS, duration);
    let mut rows = Vec::new();
    for signer in ["rsa-2048", "ec-p256"] {
        let s = start_signetd(&dir.join(format!("cost-{signer}")), true, signer);
        let request = LoadRequest::post(SIGNETD_OCSP_PATH, OCSP_REQUEST, s.requests.nonce.clone())
            .check(check_ocsp_response);
        let pid = s.app.pid();
        for clients in CLIENTS {
            let (cpu_before, threads_before) = (process_cpu(pid), thread_cpu(pid));
            let r = load::run(s.addr, request.clone(), clients, duration);
            assert_eq!(r.errors, 0, "{signer} nonce path: {:?}", r.first_error);
            rows.push(CostRow {
                what: format!("OCSP nonce {signer}"),
                clients,
                rate: r.rate,
                p50: r.p50,
                p99: r.p99,
                server_cpu: process_cpu(pid).saturating_sub(cpu_before) / r.count.max(1) as u32,
                raw_cpu: Duration::ZERO,
                budget: if signer.starts_with("rsa") {
                    Budget::Rsa
                } else {
                    Budget::Ec
                },
                split: split_per_answer(&threads_before, &thread_cpu(pid), r.count),
            });
        }
        let raw = raw_ceiling(&s.app, duration.as_secs_f64());
        for r in rows.iter_mut().filter(|r| r.what.ends_with(signer)) {
            r.raw_cpu = Duration::from_secs_f64(HSM_WORKERS as f64 / raw);
        }
    }
    println!("\nCost per answer, us of CPU (budget: ec = raw + 2 x bare+sig, rsa = raw + 10%)");
    println!("bare plain-HTTP server: {}", bare.describe());
    println!("{}", cost::idle_policy());
    println!("{}", cost::header());
    for r in &rows {
        println!("{}", cost::row(r, &bare));
    }
}

/// Rounds of the metrics cost comparison (one slice with metrics on, one off, each).
const METRICS_COST_ROUNDS: usize = 10;

/// A check that the answer is exactly `expected`, and a successful OCSPResponse.
fn same_as(expected: &[u8]) -> impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static {
    let expected = expected.to_vec();
    move |body| {
        check_ocsp_response(body)?;
        if body == expected.as_slice() {
            Ok(())
        } else {
            Err("not the pre-signed response".into())
        }
    }
}

/// Fetch one answer with the generator's own client and verify it in full; `Some(problem)`
/// if it is wrong.
fn check_target(t: &Target) -> Option<String> {
    let (status, body) = match load::fetch(t.addr, &t.load) {
        Ok(answer) => answer,
        Err(e) => return Some(e),
    };
    if status != t.load.expect_status {
        let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        return Some(match text.trim() {
            "" => format!("HTTP status {status}"),
            text => format!("HTTP status {status}: {text}"),
        });
    }
    if let Some(check) = &t.load.check {
        if let Err(e) = check(&body) {
            return Some(e);
        }
    }
    t.pki
        .verify_response(&t.ocsp_request, &body, t.expect_nonce)
        .err()
}

fn print_row(t: &Target, clients: usize, outcome: &Outcome) {
    match outcome {
        Outcome::Measured(r) => {
            println!(
                "{:<8} {:<15} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>7}",
                t.peer,
                t.path,
                clients,
                r.rate,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.errors,
                r.connections
            );
            if let Some(e) = &r.first_error {
                println!("         first error: {e}");
            }
        }
        Outcome::Unsupported => println!(
            "{:<8} {:<15} {:>7} {:>9} {:>8} {:>8} {:>7} {:>7}",
            t.peer, t.path, clients, "n/a", "-", "-", "-", "-"
        ),
    }
}

/// Each rate of signetd's over its peer's: the pre-signed path over cfssl's POST, the nonce
/// path over OpenSSL's (both sign live). Nothing until signetd has rows.
fn print_ratios(results: &[(&str, &str, usize, Outcome)]) {
    let rate = |peer: &str, path: &str, clients: usize| {
        results.iter().find_map(|(p, q, c, o)| match o {
            Outcome::Measured(r) if *p == peer && *q == path && *c == clients => Some(r.rate),
            _ => None,
        })
    };
    let pairs = [
        (SIGNETD_PRESIGNED, "cfssl", "POST, no nonce"),
        (SIGNETD_NONCE, "openssl", "POST, nonce"),
    ];
    let mut header = false;
    for clients in CLIENTS {
        for (ours, peer, peer_path) in pairs {
            let (Some(a), Some(b)) = (
                rate("signetd", ours, clients),
                rate(peer, peer_path, clients),
            ) else {
                continue;
            };
            if !header {
                println!("signetd / peer, req/s:");
                header = true;
            }
            println!(
                "  {clients:>2} clients: signetd {ours} / {peer} {peer_path}: {:.2}x",
                a / b.max(f64::MIN_POSITIVE)
            );
        }
    }
}

// =======================================================================================
// signetd: THE PLACE FOR SIGNETD'S OCSP RESPONDER. Nothing here runs until
// `start_signetd` returns its address; the rest of the benchmark needs no change.
// =======================================================================================

/// The `path` column of signetd's pre-signed path (the request without a nonce).
const SIGNETD_PRESIGNED: &str = "POST, no nonce";
/// The `path` column of signetd's nonce path (signed live).
const SIGNETD_NONCE: &str = "POST, nonce";
/// Where signetd's public listener takes OCSP requests.
const SIGNETD_OCSP_PATH: &str = "/ocsp";

/// HSM threads of the appliance, and of the raw ceiling measured beside it.
const HSM_WORKERS: usize = 2;

/// A running signetd, with its CA, OCSP signer and a leaf (its TSA certificate) described as
/// an `OcspPki` so that its answers are checked like the peers', and the two requests.
struct Signetd {
    app: Appliance,
    addr: SocketAddr,
    pki: Rc<OcspPki>,
    requests: Requests,
}

/// Start signetd (dev config, its OCSP signer a `signer` key in SoftHSM) with its public
/// listener, and its metrics listener if `metrics`.
fn start_signetd(dir: &Path, metrics: bool, signer: &str) -> Signetd {
    std::fs::create_dir_all(dir).expect("dir");
    let mut app = Appliance::init_with(|t| {
        t["keys"]["ocsp_signer"]["algorithm"] = toml::Value::String(signer.into());
        if !metrics {
            t.remove("metrics");
        }
        t["hsm"]["workers"] = toml::Value::Integer(HSM_WORKERS as i64);
        // The load comes from one address: lift its budget of live-signed answers, so
        // that the nonce path measures signing, not the per-source limit.
        let ocsp = t
            .entry("ocsp")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        ocsp["live_per_source_per_sec"] = toml::Value::Integer(1_000_000);
        ocsp["live_per_source_burst"] = toml::Value::Integer(1_000_000);
    });
    app.start();
    let addr = app.public_addr.expect("public listener");
    let leaf = app.path("pki/tsa.pem");
    let serial = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(&leaf),
    );
    let pki = Rc::new(OcspPki {
        dir: dir.to_owned(),
        ca_pem: app.path("pki/root-ca.pem"),
        ca_key: dir.join("in-the-token"),
        signer_cert: app.path("pki/ocsp-signer.pem"),
        signer_key: dir.join("in-the-token"),
        leaf_pem: leaf,
        index_txt: dir.join("in-sqlite"),
        leaf_serial: serial.trim().trim_start_matches("serial=").to_owned(),
    });
    let requests = Requests {
        plain: pki.request("req.der", false),
        nonce: pki.request("req-nonce.der", true),
    };
    Signetd {
        app,
        addr,
        pki,
        requests,
    }
}

/// The raw C_Sign rate of signetd's OCSP signer key, with as many threads as signetd's pool,
/// measured in the same run (`signetctl hsm bench`).
fn raw_ceiling(app: &Appliance, seconds: f64) -> f64 {
    let out = run_ok(
        Command::new(bin("signetctl"))
            .args([
                "hsm",
                "bench",
                "--label",
                "ocsp-signer",
                "--json",
                "--threads",
            ])
            .arg(HSM_WORKERS.to_string())
            .arg("--seconds")
            .arg(seconds.to_string())
            .arg("--config")
            .arg(&app.config),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["signatures_per_second"].as_f64().expect("rate")
}

/// signetd's nonce path beside the raw PKCS#11 ceiling of its signer key.
fn print_ceiling(results: &[(&str, &str, usize, Outcome)], ceiling: f64) {
    println!("raw PKCS#11 C_Sign ceiling of the RSA-2048 OCSP signer, {HSM_WORKERS} threads: {ceiling:.0}/s");
    for (peer, path, clients, outcome) in results {
        if let (&"signetd", Outcome::Measured(r)) = (peer, outcome) {
            if *path == SIGNETD_NONCE {
                println!(
                    "  {clients:>2} clients: signetd {path} / raw ceiling: {:.1}%",
                    100.0 * r.rate / ceiling.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
}

fn signetd_targets(s: &Signetd) -> Vec<Target> {
    let (addr, requests) = (s.addr, &s.requests);
    vec![
        Target {
            peer: "signetd",
            path: SIGNETD_PRESIGNED,
            addr,
            ocsp_request: requests.plain.clone(),
            expect_nonce: false,
            load: LoadRequest::post(SIGNETD_OCSP_PATH, OCSP_REQUEST, requests.plain.clone())
                .check(check_ocsp_response),
            required: true,
            pki: Rc::clone(&s.pki),
            pid: Some(s.app.pid()),
        },
        Target {
            peer: "signetd",
            path: SIGNETD_NONCE,
            addr,
            ocsp_request: requests.nonce.clone(),
            expect_nonce: true,
            load: LoadRequest::post(SIGNETD_OCSP_PATH, OCSP_REQUEST, requests.nonce.clone())
                .check(check_ocsp_response),
            required: true,
            pki: Rc::clone(&s.pki),
            pid: Some(s.app.pid()),
        },
    ]
}

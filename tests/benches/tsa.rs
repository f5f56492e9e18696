//! TSA throughput and latency over mutual TLS with keep-alive, beside the raw PKCS#11 C_Sign
//! ceiling of the same key with the same number of HSM threads, measured in the same run.
//!
//!     cargo bench -p signet-e2e --bench tsa              # 5 s per point
//!     cargo bench -p signet-e2e --bench tsa -- --quick   # 1 s per point (CI)
//!
//! The load generator runs on the same machine (one thread), so it takes CPU from the
//! daemon and from SoftHSM: the ratio is a lower bound of what a remote client would see.
//! The daemon's own CPU time per response (from /proc/PID/stat) is printed beside the raw
//! CPU time per signature and the bare mTLS server's CPU per request (`signet_e2e::cost`),
//! which isolates the appliance's overhead from the generator's; and the 1-client median
//! beside one raw C_Sign on one thread.

use std::process::Command;
use std::time::Duration;

use signet_e2e::bare::Transport;
use signet_e2e::client::demo_client_config;
use signet_e2e::cost::{self, BareCosts, Budget, CostRow};
use signet_e2e::stamp_load::{stamp_load, Point};
use signet_e2e::{ab, bin, run_ok, Appliance};

const KEYS: [&str; 2] = ["rsa-2048", "ec-p256"];
const CLIENTS: [usize; 3] = [1, 8, 32];
const HSM_WORKERS: usize = 2;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 5.0 };
    println!("TSA benchmark: SoftHSM, {HSM_WORKERS} HSM worker threads, mTLS HTTP/1.1 keep-alive, {seconds} s per point");
    println!(
        "{:<9} {:>12} {:>8} {:>11} {:>7} {:>8} {:>8} {:>7}",
        "key", "raw sign/s", "clients", "TSA resp/s", "ratio", "p50 ms", "p99 ms", "errors"
    );
    let bare = BareCosts::measure(Transport::Mtls, &CLIENTS, Duration::from_secs_f64(seconds));
    let mut costs = Vec::new();
    let mut latency = Vec::new();
    for key in KEYS {
        let mut app = Appliance::init_with(|t| {
            t["keys"]["tsa"]["algorithm"] = toml::Value::String(key.into());
            t["hsm"]["workers"] = toml::Value::Integer(HSM_WORKERS as i64);
        });
        let raw = raw_ceiling(&app, HSM_WORKERS, seconds);
        // One signature at a time: what one client waits for at the least.
        let one_raw = Duration::from_secs_f64(1.0 / raw_ceiling(&app, 1, seconds));
        app.start();
        for clients in CLIENTS {
            let p = measure(&app, clients, Duration::from_secs_f64(seconds));
            // With as many threads as cores, each HSM thread is busy all the time.
            let raw_cpu_us = 1e6 * HSM_WORKERS as f64 / raw;
            println!(
                "{:<9} {:>11.0} {:>8} {:>11.0} {:>6.1}% {:>8.2} {:>8.2} {:>7} {:>14.0} {:>12.0} us",
                key,
                raw,
                p.clients,
                p.rate,
                100.0 * p.rate / raw,
                p.p50.as_secs_f64() * 1e3,
                p.p99.as_secs_f64() * 1e3,
                p.errors,
                raw_cpu_us,
                p.server_cpu.as_secs_f64() * 1e6
            );
            if clients == 1 {
                latency.push((key, p.p50, one_raw));
            }
            costs.push(CostRow {
                what: format!("TSA {key}"),
                clients,
                rate: p.rate,
                p50: p.p50,
                p99: p.p99,
                server_cpu: p.server_cpu,
                raw_cpu: Duration::from_secs_f64(HSM_WORKERS as f64 / raw),
                budget: if key.starts_with("rsa") {
                    Budget::Rsa
                } else {
                    Budget::Ec
                },
                split: p.split,
            });
        }
        app.stop();
    }
    println!("\nCost per answer, us of CPU (budget: ec = raw + 2 x bare+sig, rsa = raw + 10%)");
    println!("bare mTLS server: {}", bare.describe());
    println!("{}", cost::idle_policy());
    println!("{}", cost::header());
    for r in &costs {
        println!("{}", cost::row(r, &bare));
    }
    let bare_p50 = bare.p50(1).unwrap_or_default();
    for (key, p50, one_raw) in latency {
        println!(
            "1 client, {key}: p50 {:.3} ms against one raw C_Sign {:.3} ms (+{:.3} ms; the bare server's p50 {:.3} ms)",
            p50.as_secs_f64() * 1e3,
            one_raw.as_secs_f64() * 1e3,
            (p50.as_secs_f64() - one_raw.as_secs_f64()) * 1e3,
            bare_p50.as_secs_f64() * 1e3
        );
    }
    metrics_cost(Duration::from_secs_f64(seconds));
}

/// What counting for Prometheus costs the hot path: ec-p256 (the fastest key, where the
/// appliance's own work weighs most) at 32 clients, on two daemons running at once, one
/// with metrics and one without, the load moved between them in alternating slices
/// (`signet_e2e::ab`), with the daemon's CPU per answer.
fn metrics_cost(slice: Duration) {
    let start = |metrics: bool| {
        let mut app = Appliance::init_with(|t| {
            t["keys"]["tsa"]["algorithm"] = toml::Value::String("ec-p256".into());
            t["hsm"]["workers"] = toml::Value::Integer(HSM_WORKERS as i64);
            if !metrics {
                t.remove("metrics");
            }
        });
        app.start();
        app
    };
    let (off, on) = (start(false), start(true));
    let load = |app: &Appliance| {
        let p = measure(app, 32, slice);
        ab::Slice {
            answers: p.answers,
            elapsed: p.elapsed,
            server_cpu: p.server_cpu * p.answers as u32,
        }
    };
    let c = ab::compare(METRICS_COST_ROUNDS, || load(&off), || load(&on));
    println!(
        "metrics cost (ec-p256, 32 clients, {slice:?} slices): {}",
        c.summary(("off", "on"))
    );
}

/// Rounds of the metrics cost comparison (one slice with metrics on, one off, each).
const METRICS_COST_ROUNDS: usize = 10;

/// `signetctl hsm bench` on the TSA key: C_Sign in a tight loop, one session per thread.
fn raw_ceiling(app: &Appliance, threads: usize, seconds: f64) -> f64 {
    let out = run_ok(
        Command::new(bin("signetctl"))
            .args(["hsm", "bench", "--label", "tsa", "--json"])
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--seconds")
            .arg(seconds.to_string())
            .arg("--config")
            .arg(&app.config),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["signatures_per_second"].as_f64().expect("rate")
}

/// `clients` keep-alive connections sending TSA requests back to back for `duration`.
fn measure(app: &Appliance, clients: usize, duration: Duration) -> Point {
    let addr = app.addr.expect("running");
    stamp_load(
        addr,
        demo_client_config(app),
        &[app.pid()],
        clients,
        duration,
    )
}

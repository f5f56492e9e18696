//! What the shared store costs: TSA and pre-signed OCSP throughput with one box on SQLite,
//! one box on PostgreSQL, and two boxes on one PostgreSQL behind HAProxy (the shipped
//! `deploy/haproxy/signet.cfg`), then the time a revocation on one box takes to reach the
//! other box's OCSP answers.
//!
//!     cargo bench -p signet-e2e --bench cluster              # 5 s per point
//!     cargo bench -p signet-e2e --bench cluster -- --quick   # 1 s per point (CI)
//!
//! On a 2-core machine two boxes are not faster than one (they share the cores, and the load
//! generator takes one): the point is the cost of the shared store and of the balancer.
//! The generator runs on one thread; CPU per answer is the boxes' together.

use std::path::Path;
use std::time::{Duration, Instant};

use x509_cert::Certificate;

use signet_e2e::client::demo_client_config;
use signet_e2e::cluster::{self, Cluster};
use signet_e2e::load::{self, LoadRequest};
use signet_e2e::ocsp::{self, pki_cert};
use signet_e2e::stamp_load::stamp_load;
use signet_e2e::{process_cpu, Appliance};

const CLIENTS: usize = 8;
const REVOCATIONS: usize = 50;

/// Where a setup is reached, and which processes serve it.
struct Setup<'a> {
    name: &'static str,
    api: std::net::SocketAddr,
    public: std::net::SocketAddr,
    app: &'a Appliance,
    pids: Vec<u32>,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = Duration::from_secs_f64(if quick { 1.0 } else { 5.0 });
    println!(
        "cluster benchmark: TSA (ec-p256, mTLS keep-alive) and pre-signed OCSP (plain HTTP), \
         {CLIENTS} clients, {seconds:?} per point"
    );
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>11} {:>11} {:>9} {:>11}",
        "setup",
        "TSA resp/s",
        "p50 ms",
        "p99 ms",
        "CPU/resp us",
        "OCSP resp/s",
        "p99 ms",
        "CPU/resp us"
    );
    let ec = |t: &mut toml::Table| {
        t["keys"]["tsa"]["algorithm"] = toml::Value::String("ec-p256".into());
    };
    let mut sqlite = Appliance::init_with(|t| {
        ec(t);
        t.remove("store");
    });
    sqlite.start();
    measure(&setup_of("one box, SQLite", &sqlite), seconds);
    sqlite.stop();

    let pg = signet_e2e::store::server();
    let database = pg.create_database();
    let mut postgres = Appliance::init_with(|t| {
        ec(t);
        signet_e2e::store::use_postgres(t, pg, &database);
    });
    postgres.start();
    measure(&setup_of("one box, PostgreSQL", &postgres), seconds);
    postgres.stop();

    let mut revocable = Vec::new();
    let c = Cluster::start(
        pg,
        |t| {
            ec(t);
            lift_per_source_limits(t);
        },
        |a| revocable = ocsp::record_certificates(a, REVOCATIONS, 0x5500_0000),
    );
    let two = Setup {
        name: "two boxes, HAProxy, PostgreSQL",
        api: c.lb.api,
        public: c.lb.public,
        app: &c.a,
        pids: vec![c.a.pid(), c.b.pid()],
    };
    measure(&two, seconds);
    propagation(&c, &revocable, c.dir.path());
}

fn setup_of<'a>(name: &'static str, app: &'a Appliance) -> Setup<'a> {
    Setup {
        name,
        api: app.addr.expect("running"),
        public: app.public_addr.expect("running"),
        app,
        pids: vec![app.pid()],
    }
}

/// Behind HAProxy every connection comes from its address: one source's budgets would
/// hold the whole load.
fn lift_per_source_limits(t: &mut toml::Table) {
    for listener in ["api", "public"] {
        let connections = t[listener]
            .as_table_mut()
            .expect("listener")
            .entry("connections")
            .or_insert(toml::Value::Table(Default::default()));
        let c = connections.as_table_mut().expect("connections");
        c.insert("handshakes_per_sec".into(), toml::Value::Integer(1_000_000));
        c.insert("handshake_burst".into(), toml::Value::Integer(1_000_000));
    }
}

fn measure(s: &Setup<'_>, seconds: Duration) {
    let tsa = stamp_load(s.api, demo_client_config(s.app), &s.pids, CLIENTS, seconds);
    let root = pki_cert(s.app, "root-ca.pem");
    let leaf = pki_cert(s.app, "tsa.pem");
    let request = LoadRequest::post(
        "/ocsp",
        "application/ocsp-request",
        ocsp::request(&root, &[&leaf], 0),
    );
    let cpu = || s.pids.iter().map(|p| process_cpu(*p)).sum::<Duration>();
    let before = cpu();
    let report = load::run(s.public, request, CLIENTS, seconds);
    let ocsp_cpu = cpu().saturating_sub(before) / (report.count.max(1) as u32);
    assert!(
        tsa.errors == 0 && report.errors == 0,
        "{}: {} TSA errors, {} OCSP errors ({:?})",
        s.name,
        tsa.errors,
        report.errors,
        report.first_error
    );
    println!(
        "{:<32} {:>10.0} {:>9.2} {:>9.2} {:>11.0} {:>11.0} {:>9.2} {:>11.0}",
        s.name,
        tsa.rate,
        tsa.p50.as_secs_f64() * 1e3,
        tsa.p99.as_secs_f64() * 1e3,
        tsa.server_cpu.as_secs_f64() * 1e6,
        report.rate,
        report.p99.as_secs_f64() * 1e3,
        ocsp_cpu.as_secs_f64() * 1e6
    );
}

/// Revoke each of `certs` on box A; the time until box B's pre-signed answer says so.
fn propagation(c: &Cluster, certs: &[Certificate], dir: &Path) {
    let root = pki_cert(&c.a, "root-ca.pem");
    let mut delays = Vec::new();
    for cert in certs {
        let serial =
            signet::store::certs::serial_from_bytes(cert.tbs_certificate.serial_number.as_bytes());
        let out =
            c.a.ctl(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
        assert!(out.status.success(), "revoke {serial}");
        let start = Instant::now();
        let delay = cluster::until(&c.b, &root, cert, "revoked", dir)
            .unwrap_or_else(|| panic!("box B never said revoked for {serial}"));
        delays.push(delay.min(start.elapsed()));
    }
    delays.sort();
    let pct = |p: usize| delays[(delays.len() * p / 100).min(delays.len() - 1)];
    println!(
        "revocation on box A to box B's first \"revoked\" ({} revocations): p50 {:.1} ms, \
         p99 {:.1} ms",
        delays.len(),
        pct(50).as_secs_f64() * 1e3,
        pct(99).as_secs_f64() * 1e3
    );
}

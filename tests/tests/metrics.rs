//! Prometheus metrics: a scrape counts what the test did and passes `promtool check
//! metrics`; the real Prometheus server scrapes signetd and answers queries for each
//! family; the metrics listener serves `/metrics` and nothing else; the shipped alert rules
//! pass their `promtool test rules` unit tests; a healthy dev start logs no ERROR or WARN.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use signet_e2e::{ocsp, repo_root, run, tsp, Appliance};

/// One plain HTTP/1.1 request to the metrics listener: (status, body).
fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` exactly as written in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Stamp `n` times through the API; each must be granted.
fn stamp(app: &Appliance, n: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    for i in 0..n {
        let req = dir.path().join(format!("{i}.tsq"));
        std::fs::write(
            &req,
            tsp::request(format!("doc {i}").as_bytes(), i as u64, true),
        )
        .expect("write request");
        let (status, body) = app.post_tsa(&req, "application/timestamp-query");
        assert_eq!(status, 200);
        // A granted answer carries a TSTInfo (this panics on a rejection).
        let _ = tsp::tst_info(&body);
    }
}

fn started() -> (Appliance, SocketAddr) {
    let mut app = Appliance::init();
    app.start();
    let addr = app
        .metrics_addr()
        .expect("the log names the metrics address");
    assert!(addr.ip().is_loopback());
    (app, addr)
}

#[test]
fn a_scrape_counts_what_happened_and_passes_promtool() {
    let (mut app, addr) = started();
    let before = scrape(addr);
    let granted = r#"signet_tsa_stamps_total{outcome="granted",reason=""}"#;
    assert_eq!(sample(&before, granted), None, "no stamp yet");
    stamp(&app, 7);
    let text = scrape(addr);
    assert_eq!(sample(&text, granted), Some(7.0), "{text}");
    let tsa_requests = r#"signet_requests_total{listener="api",route="tsa",status="2xx"}"#;
    assert_eq!(sample(&text, tsa_requests), Some(7.0));
    // Every family the issue names is there, with values that make sense.
    assert_eq!(sample(&text, "signet_hsm_token_up"), Some(1.0));
    assert_eq!(sample(&text, "signet_hsm_sessions"), Some(2.0));
    let signs = r#"signet_hsm_operation_seconds_count{operation="sign",mechanism="CKM_RSA_PKCS"}"#;
    assert!(sample(&text, signs).is_some_and(|n| n >= 7.0), "{text}");
    assert!(sample(&text, "signet_audit_records_total").is_some_and(|n| n >= 7.0));
    // One request at a time: each commits its own record, on its own thread (the first
    // may follow a write of the start's that carried more than one record, and go to the
    // writer's thread); the start's records went to the writer's thread.
    let by = |who: &str| {
        sample(
            &text,
            &format!(r#"signet_audit_commits_total{{by="{who}"}}"#),
        )
    };
    assert!(by("request").is_some_and(|n| n >= 6.0), "{text}");
    assert!(by("writer").is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.contains("signet_audit_write_seconds_bucket"));
    assert!(sample(&text, "signet_tsa_serials_reserved").is_some());
    assert!(text.contains(r#"signet_clock_sync{state="synchronised"}"#));
    let tsa_expiry = r#"signet_certificate_not_after_timestamp_seconds{certificate="tsa"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(sample(&text, tsa_expiry).is_some_and(|t| t > now), "{text}");
    for name in ["root", "tls-server", "ocsp-signer", "audit", "client-ca"] {
        let series =
            format!(r#"signet_certificate_not_after_timestamp_seconds{{certificate="{name}"}}"#);
        assert!(sample(&text, &series).is_some(), "no notAfter for {name}");
    }
    assert!(text.contains(r#"signet_crl_next_update_in_seconds{ca="root"}"#));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6));
    assert!(sample(&text, "process_open_fds").is_some_and(|n| n > 3.0));

    // OCSP on the public listener: pre-signed without a nonce, live with one.
    let root = ocsp::pki_cert(&app, "root-ca.pem");
    let tsa_cert = ocsp::pki_cert(&app, "tsa.pem");
    let public = app.public_addr.expect("the public listener");
    for nonce_len in [0, 16] {
        let body = ocsp::request(&root, &[&tsa_cert], nonce_len);
        let request =
            signet_e2e::load::LoadRequest::post("/ocsp", "application/ocsp-request", body);
        let (status, _) = signet_e2e::load::fetch(public, &request).expect("an OCSP answer");
        assert_eq!(status, 200);
    }
    let text = scrape(addr);
    for path in ["presigned", "live"] {
        let series = format!(r#"signet_ocsp_answers_total{{path="{path}"}}"#);
        assert_eq!(sample(&text, &series), Some(1.0), "{path}: {text}");
    }

    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs the prometheus package)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = check.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );
    app.stop();
}

#[test]
fn the_metrics_listener_serves_metrics_and_nothing_else() {
    let (mut app, addr) = started();
    let (status, _) = http(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404);
    let (status, _) = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    // A head larger than the listener reads: refused, not buffered.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let (status, _) = http(addr, &huge);
    assert!(status == 431 || status == 0, "a 64 KiB head got {status}");
    // Silent connections beyond the budget do not keep a scrape out for long.
    let silent: Vec<TcpStream> = (0..16)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let waited = Instant::now();
    loop {
        let (status, _) = http(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if status == 200 {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "no scrape past silent connections"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(silent);
    app.stop();
}

/// Prometheus, started here on a free port with a config that scrapes `target` every second.
struct Prometheus {
    child: Child,
    api: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
                 - job_name: signet\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write the config");
        let api: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus (scripts/install-deps.sh installs it)");
        Prometheus {
            child,
            api,
            _dir: dir,
        }
    }

    /// The value of an instant query, once it has one (within 30 s).
    fn value(&self, query: &str, want: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = run(Command::new("curl")
                .args(["-sS", "--max-time", "5", "-G"])
                .arg(format!("http://{}/api/v1/query", self.api))
                .arg("--data-urlencode")
                .arg(format!("query={query}")));
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            let value = serde_json::from_str::<serde_json::Value>(&last)
                .ok()
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(str::to_owned)
                })
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = value.filter(|v| want(*v)) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{query}: no wanted value within 30 s; last answer {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A short mixed load: time-stamps (and one rejected), signatures, OCSP answers pre-signed,
/// live and for a foreign CA.
fn mixed_load(app: &Appliance, stamps: usize) {
    stamp(app, stamps);
    let dir = tempfile::tempdir().expect("tmp");
    let garbage = dir.path().join("garbage.tsq");
    std::fs::write(&garbage, b"not a TimeStampReq").expect("write");
    let (status, body) = app.post_tsa(&garbage, "application/timestamp-query");
    assert_eq!(status, 200, "a rejection is a TimeStampResp");
    assert!(
        !tsp::fail_bits(&body).is_empty(),
        "a malformed request is rejected"
    );
    for (key, scheme) in [("doc-ec", "ecdsa"), ("doc-rsa", "pkcs1v15")] {
        let body = format!(
            r#"{{"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","digest_algorithm":"sha256","scheme":"{scheme}"}}"#
        );
        let body = body.as_str();
        let out = run(app
            .curl()
            .args(["-H", "Content-Type: application/json", "--data", body])
            .args(["-w", "\n%{http_code}"])
            .arg(app.url(&format!("/v1/sign/{key}"))));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.ends_with("\n200"), "sign with {key}: {said}");
    }
    let root = ocsp::pki_cert(app, "root-ca.pem");
    let tsa_cert = ocsp::pki_cert(app, "tsa.pem");
    let public = app.public_addr.expect("the public listener");
    for (issuer, nonce_len) in [(&root, 0), (&root, 16), (&tsa_cert, 0)] {
        // The last: a CertID under the TSA's name and key, a CA this responder is not.
        let body = ocsp::request(issuer, &[&tsa_cert], nonce_len);
        let request =
            signet_e2e::load::LoadRequest::post("/ocsp", "application/ocsp-request", body);
        signet_e2e::load::fetch(public, &request).expect("an OCSP answer");
    }
}

#[test]
fn prometheus_scrapes_signetd_and_sees_each_family() {
    let (mut app, addr) = started();
    let prometheus = Prometheus::start(addr);
    prometheus.value(r#"up{job="signet"}"#, |v| v == 1.0);
    mixed_load(&app, 5);
    let granted = r#"signet_tsa_stamps_total{outcome="granted"}"#;
    assert_eq!(
        prometheus.value(granted, |v| v >= 5.0),
        5.0,
        "stamps counted = stamps made"
    );
    type Check = fn(f64) -> bool;
    let any: Check = |v| v.is_finite();
    let one: Check = |v| v == 1.0;
    let some: Check = |v| v >= 1.0;
    let queries: [(&str, Check); 30] = [
        // Requests.
        (
            r#"sum(signet_requests_total{listener="api",route="tsa",status="2xx"})"#,
            |v| v >= 5.0,
        ),
        (
            r#"sum(signet_requests_total{listener="public",route="ocsp"})"#,
            |v| v >= 3.0,
        ),
        (
            r#"sum(signet_request_duration_seconds_count{route="sign"})"#,
            |v| v >= 2.0,
        ),
        // The HSM.
        (
            r#"sum(signet_hsm_operation_seconds_count{operation="sign"})"#,
            |v| v >= 7.0,
        ),
        (r#"count(signet_hsm_operation_seconds_count)"#, |v| v >= 2.0), // RSA and ECDSA
        ("sum(signet_hsm_queued_jobs)", any),
        ("signet_hsm_busy_workers", any),
        ("signet_hsm_sessions", |v| v == 2.0),
        ("signet_hsm_token_up", one),
        ("signet_hsm_reconnects_total", |v| v == 0.0),
        ("signet_hsm_timeouts_total", |v| v == 0.0),
        // The TSA.
        (
            r#"signet_tsa_stamps_total{outcome="rejected",reason="badRequest"}"#,
            one,
        ),
        ("sum(signet_clock_sync)", one),
        ("signet_tsa_serials_reserved", some),
        // OCSP and CRLs.
        (r#"signet_ocsp_answers_total{path="presigned"}"#, one),
        (r#"signet_ocsp_answers_total{path="live"}"#, one),
        (r#"signet_ocsp_answers_total{path="unauthorized"}"#, one),
        ("signet_ocsp_oldest_presigned_age_seconds", any),
        ("signet_ocsp_presigned_validity_seconds", |v| v > 0.0),
        ("signet_ocsp_resigned_answers_total", any),
        (r#"signet_crl_next_update_in_seconds{ca="root"}"#, |v| {
            v > 0.0
        }),
        // The signing API.
        (
            r#"signet_signatures_total{key="doc-ec",scheme="ecdsa-sha256"}"#,
            one,
        ),
        (r#"sum(signet_signatures_total{key="doc-rsa"})"#, one),
        // The audit log.
        ("signet_audit_records_total", |v| v >= 10.0),
        ("signet_audit_commit_batch_records_count", some),
        ("signet_audit_write_seconds_count", some),
        // Certificates and the process.
        (
            r#"signet_certificate_not_after_timestamp_seconds{certificate="root"} - time()"#,
            |v| v > 86_400.0,
        ),
        (
            r#"count(signet_certificate_not_after_timestamp_seconds)"#,
            |v| v >= 8.0,
        ),
        ("process_resident_memory_bytes", |v| v > 1e6),
        ("time() - process_start_time_seconds", |v| {
            (0.0..600.0).contains(&v)
        }),
    ];
    for (query, ok) in queries {
        prometheus.value(query, ok);
    }
    app.stop();
}

#[test]
fn the_shipped_alert_rules_pass_their_unit_tests() {
    let dir = repo_root().join("deploy/prometheus");
    for args in [
        ["check", "rules", "signet-rules.yml"],
        ["test", "rules", "signet-rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (scripts/install-deps.sh installs the prometheus package)");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What a healthy dev start may warn about, and why each is expected.
const DEV_WARNINGS: [&str; 3] = [
    // The documented dev-profile warning: a clear-text config, without the TPM.
    "running from the clear-text config",
    // A test machine's clock without NTP (containers, CI): the dev profile stamps and says
    // so; production refuses to stamp instead.
    "clock is not synchronised; stamping anyway",
    // Dev only: a test machine's RLIMIT_MEMLOCK; production refuses to start instead.
    "(dev profile only)",
];

#[test]
fn a_healthy_dev_start_logs_no_error_or_warning() {
    let (mut app, _) = started();
    stamp(&app, 1);
    app.stop();
    let log = app.log();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .filter(|l| !DEV_WARNINGS.iter().any(|w| l.contains(w)))
        .collect();
    assert!(
        noisy.is_empty(),
        "unexpected lines at a healthy start:\n{}",
        noisy.join("\n")
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("token mechanisms"))
            .count()
            == 1,
        "one line names the token's mechanisms:\n{log}"
    );
}

#[test]
fn a_certificate_close_to_its_end_is_flagged_at_the_console_in_the_log_and_in_metrics() {
    // Leaf certificates for ten days: the TSA's and the TLS server's are close to their end.
    let mut app = Appliance::init_with(|t| {
        if let Some(toml::Value::Table(pki)) = t.get_mut("pki") {
            pki.insert("leaf_days".into(), toml::Value::Integer(10));
        }
    });
    app.start();
    let out = app.ctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_owned()
    };
    assert!(line("tsa ").contains("RENEW"), "{text}");
    assert!(line("tls-server").contains("RENEW"), "{text}");
    assert!(!line("root").contains("RENEW"), "{text}");
    assert!(!line("ocsp-signer").contains("RENEW"), "{text}");
    let json = app.ctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status JSON");
    let tsa = v["own_certificates"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["certificate"] == "tsa"))
        .expect("the TSA certificate in status");
    assert_eq!(tsa["expiring"], true);
    assert!(tsa["days_left"].as_u64().is_some_and(|d| d <= 10));
    let log = app.log();
    assert!(
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains("close to its end") && l.contains("tsa")),
        "{log}"
    );
    let addr = app.metrics_addr().expect("metrics address");
    let scraped = scrape(addr);
    let left = sample(
        &scraped,
        r#"signet_certificate_not_after_timestamp_seconds{certificate="tsa"}"#,
    )
    .expect("the TSA's notAfter");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(left - now < 10.5 * 86_400.0, "{scraped}");
    app.stop();
}

/// The token behind `p11-kit server` (as a network HSM is reached), killed and started
/// again: Prometheus sees `signet_hsm_token_up` fall to 0 and come back, and a reconnect.
#[test]
fn prometheus_sees_the_token_lost_and_back() {
    use signet_e2e::p11kit::{client_module, P11KitServer};
    let mut app = Appliance::init();
    let mut server =
        P11KitServer::start(&app.path("p11-kit.sock"), &app.softhsm_conf(), "signet-dev");
    let module = client_module().to_string_lossy().into_owned();
    app.edit_config(|t| {
        if let Some(toml::Value::Table(hsm)) = t.get_mut("hsm") {
            hsm.insert("module".into(), toml::Value::String(module));
            hsm.insert("op_timeout_ms".into(), toml::Value::Integer(2000));
        }
    });
    let (key, value) = server.client_env();
    app.spawn(&signet_e2e::Launch {
        env: vec![(key.into(), value.into())],
        ..signet_e2e::Launch::default()
    });
    app.wait_listening().expect("signetd on p11-kit's client");
    let addr = app.metrics_addr().expect("metrics address");
    let prometheus = Prometheus::start(addr);
    prometheus.value("signet_hsm_token_up", |v| v == 1.0);
    server.kill9();
    prometheus.value("signet_hsm_token_up", |v| v == 0.0);
    server.restart();
    prometheus.value("signet_hsm_token_up", |v| v == 1.0);
    prometheus.value("signet_hsm_reconnects_total", |v| v >= 1.0);
    app.stop();
}

/// With `metrics.mtls`, a scrape needs a client certificate the API trusts and the
/// `metrics` grant: the demo client (not granted) and a caller without a certificate get
/// nothing; a client granted `metrics` scrapes.
#[test]
fn over_mutual_tls_only_a_client_granted_metrics_scrapes() {
    let mut app = Appliance::init_with(|t| {
        if let Some(toml::Value::Table(m)) = t.get_mut("metrics") {
            m.insert("mtls".into(), toml::Value::Boolean(true));
        }
        let scraper: toml::Table = toml::from_str(
            r#"
            name = "scraper"
            match = { issuer = "client-ca", subject = "CN=scraper,O=Signet" }
            operations = ["metrics"]
            "#,
        )
        .expect("a client");
        if let Some(toml::Value::Array(clients)) = t.get_mut("clients") {
            clients.push(toml::Value::Table(scraper));
        }
    });
    let (cert, key) = app.issue_client("scraper");
    app.start();
    assert!(app.log().contains("metrics at https://"), "{}", app.log());
    let addr = app.metrics_addr().expect("metrics address");
    let url = format!("https://localhost:{}/metrics", addr.port());
    let curl = |client: Option<(&Path, &Path)>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--cacert")
            .arg(app.path("pki/root-ca.pem"))
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", addr.port()));
        if let Some((cert, key)) = client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let out = run(cmd.arg(&url));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let code = text.rsplit('\n').next().unwrap_or("").trim().to_owned();
        (code, text)
    };
    let (code, text) = curl(Some((cert.as_path(), key.as_path())));
    assert_eq!(code, "200", "{text}\n{}", app.log());
    assert!(text.contains("signet_hsm_token_up 1"), "{text}");
    let (demo_cert, demo_key) = (app.path("demo/client.pem"), app.path("demo/client.key"));
    let (code, _) = curl(Some((demo_cert.as_path(), demo_key.as_path())));
    assert_ne!(code, "200", "the demo client is not granted metrics");
    let (code, _) = curl(None);
    assert_ne!(code, "200", "no client certificate, no metrics");
    app.stop();
}

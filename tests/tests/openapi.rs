//! The OpenAPI document against the live server: schemathesis (from the judges' venv, made by
//! scripts/install-deps.sh) generates requests from the document that signetd serves at
//! `/v1/openapi.json`, sends them over mutual TLS with the demo client's certificate, and
//! checks every answer: no 5xx, a documented status, the documented media type, a body that
//! fits the schema, and the documented headers (Retry-After on 429 and 503).
//!
//! Three rounds on one daemon, the policy reloaded (SIGHUP) between them: the demo client
//! granted everything (every operation, every phase), then granted one operation on one key
//! at 5 requests a second (403 `forbidden`, 429 with Retry-After), then matched by no client
//! (403 `unknown-client`). Bounded: a fixed number of examples per operation and a time
//! budget per round, about a minute in all.
//!
//! Every check failure and every error (a reset connection included) fails the test.

use std::process::Command;
use std::time::{Duration, Instant};

use signet_e2e::{repo_root, run, run_ok, Appliance};

/// The schemathesis the judges' venv pins (scripts/install-deps.sh).
fn schemathesis() -> std::path::PathBuf {
    let exe = repo_root().join(".venv/judges/bin/schemathesis");
    assert!(
        exe.exists(),
        "{} is missing: run scripts/install-deps.sh",
        exe.display()
    );
    exe
}

/// How the demo client stands in the policy during one round of schemathesis.
struct Round {
    name: &'static str,
    /// The demo client's `[[clients]]` entry.
    client: &'static str,
    /// schemathesis's time budget, in seconds.
    seconds: u32,
    /// Whether the round covers every operation (all phases), or only those the policy
    /// governs (`/v1/keys`, `/v1/sign`, `/v1/cms`, `/v1/tsa`; examples and fuzzing).
    everything: bool,
}

const ROUNDS: [Round; 3] = [
    // Everything granted: the answers of the operations themselves.
    Round {
        name: "granted",
        client: r#"{ name = "demo-app", match = { subject = "CN=demo-app,O=Signet" }, operations = ["sign", "cms", "pdf", "tsa"], keys = ["doc-rsa", "doc-ec"], rate_limit = { per_second = 10000, burst = 20000 } }"#,
        seconds: 35,
        everything: true,
    },
    // One operation on one key, at 5 requests a second: 403 forbidden, 429 with Retry-After.
    Round {
        name: "restricted",
        client: r#"{ name = "demo-app", match = { subject = "CN=demo-app,O=Signet" }, operations = ["sign"], keys = ["doc-rsa"], rate_limit = { per_second = 5, burst = 10 } }"#,
        seconds: 12,
        everything: false,
    },
    // A valid certificate no client matches: 403 unknown-client.
    Round {
        name: "unknown client",
        client: r#"{ name = "someone-else", match = { subject = "CN=someone-else,O=Signet" }, operations = ["sign", "cms", "pdf", "tsa"], keys = ["doc-rsa", "doc-ec"] }"#,
        seconds: 8,
        everything: false,
    },
];

/// Put `client` in place of the config's clients and have signetd re-read its policy.
fn set_policy(app: &Appliance, client: &str, reloads: &mut usize) {
    let entry: toml::Table = format!("c = {client}").parse().expect("client entry");
    app.edit_config(|t| {
        t.insert(
            "clients".into(),
            toml::Value::Array(vec![entry["c"].clone()]),
        );
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    *reloads += 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.log().matches("client policy reloaded").count() < *reloads {
        assert!(
            Instant::now() < deadline,
            "signetd did not reload its policy:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_live_server_conforms_to_its_openapi_document() {
    let exe = schemathesis();
    let version = run_ok(Command::new(&exe).arg("--version"));
    let mut app = Appliance::init();
    let addr = app.start();
    let test_started = Instant::now();

    // The document the server serves is the one in the repository.
    let served = run_ok(app.curl().arg(app.url("/v1/openapi.json")));
    let shipped = std::fs::read_to_string(repo_root().join("appliance/openapi.json"))
        .expect("appliance/openapi.json");
    assert_eq!(
        served, shipped,
        "the served document is not appliance/openapi.json"
    );
    let schema = app.path("openapi.json");
    std::fs::write(&schema, &served).expect("write the schema");

    let mut reloads = 0;
    for (n, round) in ROUNDS.iter().enumerate() {
        set_policy(&app, round.client, &mut reloads);
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .arg(&schema)
            .arg("--url")
            .arg(format!("https://{addr}"))
            .arg("--request-cert")
            .arg(app.path("demo/client.pem"))
            .arg("--request-cert-key")
            .arg(app.path("demo/client.key"))
            .arg("--tls-verify")
            .arg(app.path("pki/root-ca.pem"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance",
                "--mode",
                "all",
                "--max-examples",
                "40",
                "--request-timeout",
                "10",
                // One worker: hypothesis describes its strategies with `ast.parse`, which
                // CPython 3.11 can fail from two threads at once ("AST constructor
                // recursion depth mismatch"), an error of the judge, not of the server.
                "--workers",
                "1",
                "--no-color",
            ])
            .arg("--max-time")
            .arg(round.seconds.to_string())
            .arg("--seed")
            .arg((20240601 + n).to_string())
            // Its reports and caches go to the state directory, not the working tree.
            .current_dir(app.dir.path())
            // Binary media types (timestamp and OCSP requests) are sent as generated bytes.
            .env(
                "SCHEMATHESIS_HOOKS",
                repo_root().join("tests/schemathesis/hooks.py"),
            )
            .env("HYPOTHESIS_STORAGE_DIRECTORY", app.path("hypothesis"));
        if round.everything {
            cmd.args(["--phases", "examples,coverage,fuzzing"]);
        } else {
            cmd.args(["--phases", "examples,fuzzing"])
                .args(["--include-path-regex", "^/v1/(keys|sign/|cms/|pdf/|tsa)"]);
        }
        let started = Instant::now();
        let out = run(&mut cmd);
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "round {:?}: {} ran {:.1} s:\n{stdout}{stderr}",
            round.name,
            version.trim(),
            elapsed.as_secs_f64()
        );
        assert!(
            out.status.success(),
            "round {:?}: schemathesis found the server and the document disagreeing ({}); \
             the cases are above",
            round.name,
            out.status
        );
        // It really tested the operations (a schema it could not read tests nothing).
        let tested = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Tested:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no `Tested:` count in schemathesis's summary:\n{stdout}"));
        let expected = if round.everything { 18 } else { 6 };
        assert_eq!(
            tested, expected,
            "round {:?}: operations tested",
            round.name
        );
    }
    let elapsed = test_started.elapsed();
    assert!(elapsed < Duration::from_secs(100), "took {elapsed:?}");

    // The daemon is still up and well after the fuzzing.
    let health = run_ok(app.curl().arg(app.url("/healthz")));
    assert_eq!(health, "ok\n");
    app.stop();
    assert!(
        !app.log().contains("panicked"),
        "signetd panicked:\n{}",
        app.log()
    );
}

/// A batch of 900 kB to a key that does not exist, over HTTP/2: the 404 `unknown-key` goes
/// out before the body is read. Whether the client gets a reset stream instead of the 404.
fn early_refusal_resets(app: &Appliance) -> bool {
    let body = app.path("early-refusal.json");
    std::fs::write(&body, vec![b' '; 900_000]).expect("write the body");
    let out = run(app
        .curl()
        .args(["--http2", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(app.url("/v1/sign/no-such-key/batch")));
    String::from_utf8_lossy(&out.stdout).trim() != "404"
}

/// RFC 9110 15.5 and RFC 9113 8.1: a server may answer before the request body is complete,
/// and the client must get that answer: signetd reads (and drops) up to 1 MiB of a body it
/// refuses early (404 `unknown-key`, 403, 429, 415), so the stream is not reset under it.
#[test]
fn an_early_refusal_reaches_a_client_still_sending_its_body() {
    let mut app = Appliance::init();
    app.start();
    for _ in 0..3 {
        assert!(
            !early_refusal_resets(&app),
            "POST /v1/sign/no-such-key/batch with a 900 kB body: no 404"
        );
    }
}

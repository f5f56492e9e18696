//! The anonymous TSA (`[tsa] public = true`): clients that can only be given a URL stamp on
//! the public listener: openssl + curl, OpenJDK's jarsigner on a jar, osslsigncode on a
//! small PE file; each judged by its own verifier. A source over its rate gets 429 with
//! Retry-After while other sources are served; every request is audited with its address.
//! With `public = false` (the default) the route is not there.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use signet_e2e::{repo_root, run, run_ok, Appliance};

/// The appliance with the anonymous TSA on: 1 stamp a second per source, 10 at once.
fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut app = Appliance::init_reachable(|t| {
            let tsa = t["tsa"].as_table_mut().expect("[tsa]");
            tsa.insert("public".into(), true.into());
            tsa.insert("public_per_source_per_sec".into(), 1.into());
            tsa.insert("public_per_source_burst".into(), 10.into());
        });
        app.start();
        app
    })
}

fn tsa_url(app: &Appliance) -> String {
    format!("http://{}/tsa", app.public_addr.expect("public listener"))
}

/// POST a time-stamp query to `url` without any certificate, from `source` (a loopback
/// address) if given: (HTTP status, Retry-After).
fn post_query(url: &str, query: &Path, reply: &Path, source: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "30", "-o"])
        .arg(reply)
        .args(["-w", "%{http_code} %header{retry-after}"])
        .args(["-H", "Content-Type: application/timestamp-query"])
        .arg("--data-binary")
        .arg(format!("@{}", query.display()));
    if let Some(ip) = source {
        curl.args(["--interface", ip]);
    }
    let out = run_ok(curl.arg(url));
    let (code, retry) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
    (code.parse().unwrap_or(0), retry.to_owned())
}

fn query(dir: &Path, name: &str) -> std::path::PathBuf {
    let data = dir.join(format!("{name}.txt"));
    std::fs::write(&data, format!("anonymous stamp {name}")).expect("write");
    let q = dir.join(format!("{name}.tsq"));
    run_ok(
        Command::new("openssl")
            .args(["ts", "-query", "-sha256", "-cert", "-data"])
            .arg(&data)
            .arg("-out")
            .arg(&q),
    );
    q
}

fn audit_tail(app: &Appliance, n: &str) -> Vec<Value> {
    let out = app.ctl(&["audit", "tail", "-n", n, "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("audit json")
}

#[test]
fn openssl_and_curl_stamp_without_a_certificate_and_the_record_names_the_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let q = query(dir.path(), "openssl");
    let reply = dir.path().join("openssl.tsr");
    let (code, _) = post_query(&tsa_url(app()), &q, &reply, None);
    assert_eq!(code, 200);
    let out = run(Command::new("openssl")
        .args(["ts", "-verify", "-queryfile"])
        .arg(&q)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(app().path("pki/root-ca.pem")));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
        "{out:?}"
    );
    let records = audit_tail(app(), "200");
    assert!(
        records
            .iter()
            .any(|r| r["event"]["operation"] == "tsa-public"
                && r["event"]["status"] == 200
                && r["event"]["listener"] == "public"
                && r["event"]["peer"] == "127.0.0.1"),
        "{records:#?}"
    );
}

#[test]
fn jarsigner_timestamps_a_jar_and_verifies_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("hello.txt"), "signed and stamped").expect("write");
    run_ok(
        Command::new("jar")
            .current_dir(d)
            .args(["cf", "app.jar", "hello.txt"]),
    );
    run_ok(Command::new("keytool").current_dir(d).args([
        "-genkeypair",
        "-alias",
        "signer",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-dname",
        "CN=jar-signer,O=Signet test",
        "-validity",
        "2",
        "-keystore",
        "ks.p12",
        "-storetype",
        "PKCS12",
        "-storepass",
        "changeit",
        "-keypass",
        "changeit",
    ]));
    let out = run(Command::new("jarsigner")
        .current_dir(d)
        .args(["-keystore", "ks.p12", "-storepass", "changeit", "-tsa"])
        .arg(tsa_url(app()))
        .args(["app.jar", "signer"]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "jarsigner -tsa:\n{said}");
    assert!(!said.contains("No -tsa or -tsacert is provided"), "{said}");
    let out = run(Command::new("jarsigner")
        .current_dir(d)
        .args(["-verify", "-verbose", "-certs", "app.jar"]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "jarsigner -verify:\n{said}");
    assert!(said.contains("jar verified"), "{said}");
    assert!(
        said.contains("Timestamped by"),
        "jarsigner found no time-stamp:\n{said}"
    );
}

#[test]
fn osslsigncode_timestamps_a_pe_file_and_verifies_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    run_ok(Command::new("openssl").current_dir(d).args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "code.key",
        "-out",
        "code.pem",
        "-subj",
        "/CN=code-signer/O=Signet test",
        "-days",
        "2",
        "-addext",
        "extendedKeyUsage=codeSigning",
    ]));
    let pe = repo_root().join("tests/vectors/authenticode/tiny.exe");
    let out = run(Command::new("osslsigncode")
        .current_dir(d)
        .args(["sign", "-certs", "code.pem", "-key", "code.key", "-ts"])
        .arg(tsa_url(app()))
        .arg("-in")
        .arg(&pe)
        .args(["-out", "signed.exe"]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "osslsigncode sign -ts:\n{said}");
    let out = run(Command::new("osslsigncode")
        .current_dir(d)
        .args([
            "verify",
            "-in",
            "signed.exe",
            "-CAfile",
            "code.pem",
            "-TSA-CAfile",
        ])
        .arg(app().path("pki/root-ca.pem")));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "osslsigncode verify:\n{said}");
    assert!(
        said.contains("Timestamp Server Signature verification: ok"),
        "osslsigncode found no good time-stamp:\n{said}"
    );
}

#[test]
fn a_source_over_its_rate_gets_429_while_others_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let q = query(dir.path(), "flood");
    let reply = dir.path().join("flood.tsr");
    let url = tsa_url(app());
    let answers: Vec<(u16, String)> = (0..16)
        .map(|_| post_query(&url, &q, &reply, Some("127.0.0.5")))
        .collect();
    let granted = answers.iter().filter(|(c, _)| *c == 200).count();
    let limited: Vec<&(u16, String)> = answers.iter().filter(|(c, _)| *c == 429).collect();
    assert_eq!(granted + limited.len(), 16, "{answers:?}");
    assert!(
        (10..=13).contains(&granted),
        "a burst of 10 and 1 a second: {answers:?}"
    );
    assert!(
        limited
            .iter()
            .all(|(_, retry)| retry.parse::<u64>().is_ok_and(|s| s >= 1)),
        "429 says when to retry: {answers:?}"
    );
    // The limited answer is still a TimeStampResp a TSP client can read: a rejection.
    let text = run_ok(
        Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(&reply),
    );
    assert!(text.contains("Status: Rejected"), "{text}");
    // Another source is served meanwhile.
    let (code, _) = post_query(&url, &q, &dir.path().join("other.tsr"), Some("127.0.0.6"));
    assert_eq!(code, 200);
    let records = audit_tail(app(), "60");
    assert!(
        records
            .iter()
            .any(|r| r["event"]["operation"] == "tsa-public"
                && r["event"]["status"] == 429
                && r["event"]["peer"] == "127.0.0.5"),
        "{records:#?}"
    );
}

#[test]
fn without_public_the_route_is_not_there() {
    let mut app = Appliance::init_reachable(|_| {});
    app.start();
    let dir = tempfile::tempdir().expect("tmp");
    let q = query(dir.path(), "off");
    let (code, _) = post_query(&tsa_url(&app), &q, &dir.path().join("off.tsr"), None);
    assert_eq!(code, 404);
    // Nor on the API listener, even for a client with a certificate.
    let out = run_ok(
        app.curl()
            .args([
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/timestamp-query",
                "--data-binary",
            ])
            .arg(format!("@{}", q.display()))
            .arg(app.url("/tsa")),
    );
    assert_eq!(out.trim(), "404");
    app.stop();
}

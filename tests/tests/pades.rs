//! PAdES through `POST /v1/pdf/{key}` beyond the corpus (see pdf_judges.rs): `signetctl pdf
//! sign`, the limits and bad requests, and the spool that never holds a readable document.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use signet_e2e::pdf::{pyhanko_validate, synthetic_pdf, Trust};
use signet_e2e::{run, Appliance};

/// Documents over this many bytes are refused by this test binary's appliance.
const LIMIT: u64 = 4 << 20;

fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut app = Appliance::init_reachable(|t| {
            if let Some(api) = t.get_mut("api").and_then(|a| a.as_table_mut()) {
                api.insert("max_stream_bytes".into(), (LIMIT as i64).into());
            }
        });
        app.start();
        app
    })
}

/// POST `pdf` to `path` with `content_type`: (status, body).
fn post(pdf: &Path, path: &str, content_type: &str) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(app()
        .curl()
        .arg("-o")
        .arg(&out)
        .args(["-w", "%{http_code}", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", pdf.display()))
        .arg(app().url(path)));
    let code = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&out).unwrap_or_default())
}

fn write_pdf(dir: &Path, name: &str, size: usize, marker: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, synthetic_pdf(size, marker)).unwrap();
    path
}

fn problem_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["code"].as_str().unwrap_or("").to_owned()
}

#[test]
fn signetctl_pdf_sign_writes_a_valid_signed_pdf_and_nothing_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_pdf(dir.path(), "in.pdf", 2 << 20, "signetctl input");
    let output = dir.path().join("out.pdf");
    let o = run(app()
        .signetctl()
        .args(["pdf", "sign"])
        .arg(&input)
        .arg(&output)
        .arg("--config")
        .arg(&app().config)
        .args([
            "--key",
            "doc-ec",
            "--level",
            "B-T",
            "--reason",
            "Approved by the CLI",
        ])
        .arg("--url")
        .arg(app().url("")));
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("field Signature1"),
        "{o:?}"
    );
    let signed = std::fs::read(&output).unwrap();
    assert!(signed.starts_with(&std::fs::read(&input).unwrap()));
    let trust = Trust::new(&[&app().path("pki/root-ca.pem")]);
    let report = pyhanko_validate(&trust, &output, &[]);
    assert!(report.all_trusted(), "{}", report.text);
    assert_eq!(
        report
            .field("Signature1")
            .and_then(|s| s.timestamp.as_deref()),
        Some("INTACT:TRUSTED"),
        "{}",
        report.text
    );

    // A key the client may not use: an error that says why, and no output file at all.
    let refused = dir.path().join("refused.pdf");
    let o = run(app()
        .signetctl()
        .args(["pdf", "sign"])
        .arg(&input)
        .arg(&refused)
        .arg("--config")
        .arg(&app().config)
        .args(["--key", "no-such-key"])
        .arg("--url")
        .arg(app().url("")));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-key"),
        "{o:?}"
    );
    assert!(!refused.exists() && !refused.with_extension("partial").exists());
}

#[test]
fn limits_and_bad_requests_are_4xx_problems_and_the_daemon_keeps_signing() {
    let dir = tempfile::tempdir().unwrap();
    let big = write_pdf(
        dir.path(),
        "big.pdf",
        (LIMIT + (1 << 20)) as usize,
        "too big",
    );
    let small = write_pdf(dir.path(), "small.pdf", 10_000, "small");
    for (pdf, path, content_type, want, code) in [
        (
            &small,
            "/v1/pdf/doc-rsa",
            "text/plain",
            415,
            "wrong-content-type",
        ),
        (
            &small,
            "/v1/pdf/doc-rsa?level=B-Z",
            "application/pdf",
            400,
            "bad-parameter",
        ),
        (
            &small,
            "/v1/pdf/doc-rsa?colour=red",
            "application/pdf",
            400,
            "bad-parameter",
        ),
        (
            &small,
            "/v1/pdf/doc-rsa?field=a.b",
            "application/pdf",
            400,
            "bad-parameter",
        ),
    ] {
        let (status, body) = post(pdf, path, content_type);
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(problem_code(&body), code, "{path}");
    }
    // Over the limit, by its Content-Length or as it streams in chunked.
    for chunked in [false, true] {
        let mut curl = app().curl();
        curl.args([
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/pdf",
            "--http1.1",
        ]);
        if chunked {
            curl.args(["-H", "Transfer-Encoding: chunked"]);
        }
        let o = run(curl
            .arg("--data-binary")
            .arg(format!("@{}", big.display()))
            .arg(app().url("/v1/pdf/doc-rsa")));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.ends_with("413"), "chunked {chunked}: {o:?}");
        assert!(text.contains("body-too-large"), "chunked {chunked}: {text}");
    }
    let (status, _) = post(&small, "/v1/pdf/doc-rsa?level=B-LTA", "application/pdf");
    assert_eq!(status, 200, "still signing after the refusals");
}

/// While a document uploads, its spool file has no name in the spool directory and holds
/// no byte of the document in clear; once answered, the file is gone.
#[test]
fn the_spool_is_nameless_and_holds_only_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "CONFIDENTIAL-MERGER-TERMS-7f3a";
    let input = write_pdf(dir.path(), "secret.pdf", 3 << 20, marker);
    let pid = app().pid();
    let spool_dir = app().path("spool");
    let curl = app()
        .curl()
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--limit-rate",
            "1M",
        ])
        .args(["-H", "Content-Type: application/pdf", "--data-binary"])
        .arg(format!("@{}", input.display()))
        .arg(app().url("/v1/pdf/doc-rsa"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // Find the spool among signetd's open files while the upload runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Option<(PathBuf, u64)> = None;
    while Instant::now() < deadline && seen.is_none() {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if target.starts_with(&spool_dir) {
                let len = std::fs::metadata(fd.path()).map(|m| m.len()).unwrap_or(0);
                if len > (1 << 20) {
                    seen = Some((fd.path(), len));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (fd, len) = seen.expect("a spool file open in signetd during the upload");
    let bytes = std::fs::read(&fd).unwrap_or_default();
    assert!(bytes.len() as u64 >= len / 2, "the spool file reads back");
    assert!(
        !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the spool holds the document in clear"
    );
    assert!(
        !bytes.starts_with(b"%PDF"),
        "the spool holds the document in clear"
    );
    assert_eq!(
        std::fs::read_dir(&spool_dir).unwrap().count(),
        0,
        "the spool file has a name"
    );

    let out = curl.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200");
    std::thread::sleep(Duration::from_millis(200));
    let still_open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&spool_dir)))
        .count();
    assert_eq!(still_open, 0, "the spool is closed once the answer is sent");
}

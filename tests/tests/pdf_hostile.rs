//! Issue 15 for PDFs: nothing an attacker sends through `POST /v1/pdf/{key}` exhausts
//! signetd or breaks an output. Signature-field text that looks like the signature
//! dictionary's own syntax is just a string (every output passes pyHanko and pdfsig, or the
//! request gets a 4xx); files that declare 64 M cross-reference entries, a 2 GB stream, or
//! objects nested deep and spread wide get a 4xx within 2 s while signetd's resident memory
//! grows by less than 64 MiB (sampled from /proc while the request runs).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use signet_e2e::pdf::{hostile_pdfs, pdfsig, pyhanko_validate, synthetic_pdf, Trust};
use signet_e2e::{process_rss_kib, repo_root, Appliance};

struct World {
    app: Appliance,
    trust: Trust,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut app = Appliance::init_reachable(|_| {});
        app.start();
        let trust = Trust::new(&[&app.path("pki/root-ca.pem")]);
        World { app, trust }
    })
}

/// Every byte but ASCII letters and digits as `%XX`.
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// POST the file at `pdf` to `/v1/pdf/doc-rsa?query`: (status, body).
fn post(pdf: &Path, query: &str) -> (u16, Vec<u8>) {
    let app = &world().app;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = signet_e2e::run(
        app.curl()
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}", "-H", "Content-Type: application/pdf"])
            .arg("--data-binary")
            .arg(format!("@{}", pdf.display()))
            .arg(app.url(&format!("/v1/pdf/doc-rsa?{query}"))),
    );
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&body).unwrap_or_default())
}

#[test]
fn hostile_signature_text_never_breaks_the_pdf() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, synthetic_pdf(4096, "hostile text")).unwrap();
    let values = [
        "/ByteRange [",
        "/Contents <>",
        "/Contents <",
        ")",
        "(",
        "\\",
        ">>endobj",
        ")>>endobj 9 0 obj <</ByteRange [0 0 0 0]/Contents <00>>>",
        "Zürich 東京 \u{1F600}",
        "line\nbreak",
        &"x".repeat(300),
    ];
    let mut signed = 0;
    for (i, value) in values.iter().enumerate() {
        let v = percent(value);
        let query = format!("reason={v}&location={v}&name={v}&contact_info={v}");
        let (code, body) = post(&input, &query);
        let what = format!("{:?}", &value[..value.len().min(60)]);
        assert!(
            code == 200 || (400..500).contains(&code),
            "{what}: {code} {}",
            String::from_utf8_lossy(&body)
        );
        if code != 200 {
            continue;
        }
        signed += 1;
        let out = dir.path().join(format!("out-{i}.pdf"));
        std::fs::write(&out, &body).unwrap();
        let report = pyhanko_validate(&w.trust, &out, &[]);
        assert!(report.all_trusted(), "{what}: pyHanko: {}", report.text);
        let poppler = pdfsig(&w.trust, &out);
        assert!(
            !poppler.signatures.is_empty() && poppler.signatures.iter().all(|s| s.valid_trusted()),
            "{what}: pdfsig: {}",
            poppler.text
        );
    }
    // The syntax-like values are all signable: they are text, not syntax.
    assert!(signed >= 9, "only {signed} values were signed");
}

/// Resident memory of `pid` sampled every few milliseconds until `stop`: the peak.
fn sample_peak(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(process_rss_kib(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(3));
        }
        peak.max(process_rss_kib(pid).unwrap_or(0))
    })
}

#[test]
fn hostile_pdfs_get_a_4xx_fast_in_bounded_memory() {
    let w = world();
    let pid = w.app.pid();
    let dir = tempfile::tempdir().unwrap();
    // Warm up: one good signature, so that pools and caches are what they will be.
    let good = dir.path().join("good.pdf");
    std::fs::write(&good, synthetic_pdf(4096, "warm")).unwrap();
    assert_eq!(post(&good, "").0, 200);
    for (name, bytes) in hostile_pdfs() {
        let path = dir.path().join(format!("{name}.pdf"));
        std::fs::write(&path, &bytes).unwrap();
        let before = process_rss_kib(pid).expect("signetd runs");
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_peak(pid, Arc::clone(&stop));
        let started = Instant::now();
        let (code, body) = post(&path, "");
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap();
        let grew_kib = peak.saturating_sub(before);
        eprintln!(
            "{name}: {} bytes -> {code} in {took:?}, RSS {before} -> peak {peak} KiB: {}",
            bytes.len(),
            String::from_utf8_lossy(&body)
        );
        assert!(
            (400..500).contains(&code),
            "{name}: {code} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
        assert!(grew_kib < 64 * 1024, "{name}: RSS grew by {grew_kib} KiB");
    }
    // Still serving.
    assert_eq!(post(&good, "").0, 200);
}

/// The small hostile files are kept as fuzz regressions; `SIGNET_WRITE_REGRESSIONS=1`
/// writes them again.
#[test]
fn the_hostile_pdfs_are_fuzz_regressions() {
    let dir = repo_root().join("fuzz/regressions/pdf_reader");
    for (name, bytes) in hostile_pdfs() {
        if bytes.len() > 256 << 10 {
            continue;
        }
        let file = dir.join(format!("{name}.pdf"));
        if std::env::var_os("SIGNET_WRITE_REGRESSIONS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&file).ok().as_deref(),
            Some(&bytes[..]),
            "{name}: regression file"
        );
    }
}

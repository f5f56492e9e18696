//! PAdES signing of big documents: latency and peak resident memory of signetd for 1, 10
//! and 100 MB PDFs at B-B and B-LTA, beside pyHanko signing the same files with a software
//! key (its own peak memory) and the raw PKCS#11 C_Sign rate of the same key, in one run.
//!
//!     cargo bench -p signet-e2e --bench pdf              # each point 3 times, the median
//!     cargo bench -p signet-e2e --bench pdf -- --quick   # each point once (CI)
//!
//! signetd's peak is its VmHWM from /proc, reset before each document (clear_refs 5), so
//! it is the high-water mark of signing that document, baseline included. pyHanko's is the
//! child's ru_maxrss. Latency is the whole round trip: upload, signing, download.
//! The target: signetd's memory does not grow with the document, and B-B on 100 MB is
//! faster than pyHanko.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use signet_e2e::pdf::{synthetic_pdf, SoftSigner, Trust, TsaBridge};
use signet_e2e::{bin, judges_python, run, run_ok, Appliance};

const SIZES_MB: [usize; 3] = [1, 10, 100];
const LEVELS: [&str; 2] = ["B-B", "B-LTA"];
const KEY: &str = "doc-rsa";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    let mut app = Appliance::init_reachable(|_| {});
    app.start();
    let pid = app.pid();
    let signer = SoftSigner::issue(&app, "pdf-bench-pyhanko");
    let trust = Trust::new(&[&app.path("pki/root-ca.pem")]);
    let tsa = TsaBridge::start(&app);
    let raw = raw_ceiling(&app, if quick { 1.0 } else { 5.0 });
    let dir = tempfile::tempdir().expect("tempdir");

    println!("PAdES benchmark: key {KEY}, SoftHSM, mTLS HTTP/2, {reps} run(s) per point, median");
    println!("raw C_Sign ceiling of {KEY} (2 threads): {raw:.0} signatures/s");
    println!(
        "signetd baseline: VmRSS {} MiB",
        status_kb(pid, "VmRSS:") / 1024
    );
    println!();
    println!("| size | level | signetd latency | signetd peak RSS | pyHanko latency | pyHanko peak RSS | signetd/pyHanko time |");
    println!("|---|---|---|---|---|---|---|");
    for mb in SIZES_MB {
        let input = dir.path().join(format!("in-{mb}.pdf"));
        std::fs::write(&input, synthetic_pdf(mb << 20, "benchmark document")).expect("write");
        for level in LEVELS {
            let mut ours = Vec::new();
            let mut ours_peak = 0;
            let mut theirs = Vec::new();
            let mut theirs_peak = 0;
            for _ in 0..reps {
                let (t, peak) = signetd_sign(&app, pid, &input, level, dir.path());
                ours.push(t);
                ours_peak = ours_peak.max(peak);
                let (t, peak) = pyhanko_sign(&signer, &trust, &tsa.url, &input, level, dir.path());
                theirs.push(t);
                theirs_peak = theirs_peak.max(peak);
            }
            let (ours, theirs) = (median(ours), median(theirs));
            println!(
                "| {mb} MB | {level} | {:.0} ms | {} MiB | {:.0} ms | {} MiB | {:.2} |",
                ours.as_secs_f64() * 1e3,
                ours_peak / 1024,
                theirs.as_secs_f64() * 1e3,
                theirs_peak / 1024,
                ours.as_secs_f64() / theirs.as_secs_f64()
            );
        }
    }
    app.stop();
}

/// Sign `input` through the API: (round trip, signetd's VmHWM in kB while doing it).
fn signetd_sign(
    app: &Appliance,
    pid: u32,
    input: &Path,
    level: &str,
    dir: &Path,
) -> (Duration, u64) {
    let out = dir.join("signetd-out.pdf");
    // Reset the high-water mark to the current RSS.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let started = Instant::now();
    let o = run(app
        .curl()
        .args(["--max-time", "300", "-o"])
        .arg(&out)
        .args([
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/pdf",
            "--data-binary",
        ])
        .arg(format!("@{}", input.display()))
        .arg(app.url(&format!("/v1/pdf/{KEY}?level={level}"))));
    let elapsed = started.elapsed();
    let code = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code.trim(), "200", "signetd at {level}: {o:?}");
    let signed = std::fs::metadata(&out).expect("signed").len();
    let original = std::fs::metadata(input).expect("input").len();
    assert!(signed > original, "the signed PDF is longer than its input");
    (elapsed, status_kb(pid, "VmHWM:"))
}

/// Sign `input` with pyHanko and a software key: (time, the child's peak RSS in kB).
fn pyhanko_sign(
    signer: &SoftSigner,
    trust: &Trust,
    tsa: &str,
    input: &Path,
    level: &str,
    dir: &Path,
) -> (Duration, u64) {
    let out = dir.join("pyhanko-out.pdf");
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new(judges_python());
    cmd.arg("-c").arg(
        "import resource, subprocess, sys\n\
         r = subprocess.run(sys.argv[1:])\n\
         print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
         sys.exit(r.returncode)",
    );
    cmd.arg(judges_python().with_file_name("pyhanko")).args([
        "sign",
        "addsig",
        "--field",
        "Sig1",
        "--use-pades",
    ]);
    if level == "B-LTA" {
        cmd.args([
            "--timestamp-url",
            tsa,
            "--with-validation-info",
            "--use-pades-lta",
        ])
        .args(trust.pyhanko_args());
    }
    cmd.args(["pemder", "--key"])
        .arg(&signer.key)
        .arg("--cert")
        .arg(&signer.cert)
        .arg("--chain")
        .arg(&signer.chain)
        .arg("--no-pass")
        .arg(input)
        .arg(&out);
    let started = Instant::now();
    let o = run(&mut cmd);
    let elapsed = started.elapsed();
    assert!(
        o.status.success() && out.exists(),
        "pyHanko at {level}: {o:?}"
    );
    let peak = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("ru_maxrss");
    (elapsed, peak)
}

fn raw_ceiling(app: &Appliance, seconds: f64) -> f64 {
    let out = run_ok(
        Command::new(bin("signetctl"))
            .args(["hsm", "bench", "--label", KEY, "--json", "--threads", "2"])
            .arg("--seconds")
            .arg(seconds.to_string())
            .arg("--config")
            .arg(&app.config),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["signatures_per_second"].as_f64().expect("rate")
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

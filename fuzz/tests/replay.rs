//! What CI runs of the fuzz targets, without libFuzzer: each target gets its seed corpus
//! (`seed.sh`), its regressions (`regressions/TARGET/`), a few hostile shapes, every
//! truncation of each seed, and then deterministic mutations of all of them for a bounded
//! time (`SIGNET_FUZZ_REPLAY_SECONDS`, default 6 per target). A panic fails the test and leaves
//! the input under the cargo target tmpdir for `regressions/`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The seed corpus of every target, written once per test process by `seed.sh`.
fn seed_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("seeds-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(manifest_dir().join("seed.sh"))
            .arg(&dir)
            .status()
            .expect("run seed.sh");
        assert!(status.success(), "seed.sh failed: {status}");
        dir
    })
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Shapes no seed has: empty, nesting far past any real depth, lengths past the input.
fn hostile_shapes() -> Vec<Vec<u8>> {
    let mut out = vec![
        Vec::new(),
        vec![0],
        vec![0x30],
        vec![0x30, 0x80],
        vec![0xff; 64],
    ];
    // 10,000 nested definite-length SEQUENCEs.
    let mut nested = Vec::new();
    for _ in 0..10_000 {
        nested.extend_from_slice(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]);
    }
    out.push(nested);
    // 100,000 nested indefinite-length SEQUENCEs (not DER, must still be refused politely).
    out.push([0x30, 0x80].repeat(100_000));
    // A SEQUENCE claiming 2^64-1 bytes.
    out.push(vec![
        0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00,
    ]);
    // Deep JSON and TOML.
    out.push("[".repeat(100_000).into_bytes());
    out.push(format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes());
    out.push(format!("a = {}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes());
    out.push(format!("a = {}", "{b = ".repeat(10_000)).into_bytes());
    // A PDF whose xref offset points far away and whose trailer loops to itself.
    out.push(
        b"%PDF-1.7\ntrailer\n<< /Size 99999999999 /Root 1 0 R /Prev 9 >>\nstartxref\n9\n%%EOF\n"
            .to_vec(),
    );
    out.push(
        b"%PDF-1.7\nxref\n0 4294967295\ntrailer\n<< /Size 1 >>\nstartxref\n9\n%%EOF\n".to_vec(),
    );
    out
}

/// xorshift64*: deterministic, so a failure found in CI replays on any machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Targets whose input is text.
const TEXT_TARGETS: &[&str] = &[
    "ocsp_get_path",
    "api_json",
    "api_query",
    "config_text",
    "admin_request",
];

const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x88, 0xff, b'"', b'\\', b'%', b'{', b'[', b'<',
    b'>', b'(', b'/', b'\n', b'=',
];

fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => v.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                let n = rng.below(16) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                let chunk = v[a..b].to_vec();
                let i = rng.below(len + 1);
                v.splice(i..i, chunk);
            }
            5 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                v.drain(a.min(b)..a.max(b));
            }
            6 if len > 0 => {
                // A long-form length: 0x84 then four bytes, over whatever was there.
                let i = rng.below(len);
                let huge = [0x84, rng.next() as u8, 0xff, 0xff, rng.next() as u8];
                let end = (i + huge.len()).min(len);
                v.splice(i..end, huge);
            }
            7 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => {
                let i = rng.below(len);
                let digit = b"0123456789-+.e"[rng.below(14)];
                v.splice(i..i, std::iter::repeat_n(digit, rng.below(24) + 1));
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

/// Runs `input` through `target`; on a panic, keeps the input and fails naming it.
fn run_one(name: &str, target: fn(&[u8]), input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("fuzz-failures")
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("crash-{:016x}", fnv(input)));
        std::fs::write(&path, input).unwrap();
        panic!(
            "{name} panicked on {} bytes, kept in {}",
            input.len(),
            path.display()
        );
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn replay(name: &str) {
    let target = signet_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a known target");
    let seeds = files_in(&seed_root().join(name));
    assert!(!seeds.is_empty(), "seed.sh wrote no seeds for {name}");
    let regressions = files_in(&manifest_dir().join("regressions").join(name));
    let mut corpus: Vec<Vec<u8>> = seeds.iter().chain(&regressions).cloned().collect();
    let hostile = hostile_shapes();
    for input in corpus.iter().chain(&hostile) {
        run_one(name, target, input);
    }
    let mut runs = corpus.len() + hostile.len();
    for seed in &seeds {
        // Every truncation of the small seeds, a few hundred of the large.
        let step = (seed.len() / 300).max(1);
        for cut in (0..seed.len()).step_by(step) {
            run_one(name, target, &seed[..cut]);
            runs += 1;
        }
    }

    let budget: u64 = std::env::var("SIGNET_FUZZ_REPLAY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut rng = Rng(fnv(name.as_bytes()) | 1);
    let mut mutated = 0usize;
    while Instant::now() < deadline && mutated < 2_000_000 {
        let base = &corpus[rng.below(corpus.len())];
        let mut input = mutate(&mut rng, base, &corpus);
        if TEXT_TARGETS.contains(&name) {
            // Most invalid UTF-8 stops at the first check: keep text targets on text.
            input = String::from_utf8_lossy(&input).into_owned().into_bytes();
        }
        run_one(name, target, &input);
        mutated += 1;
        // Keep the occasional survivor as a base: mutations of mutations go deeper.
        if mutated % 64 == 0 && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    runs += mutated;
    println!(
        "{name}: {runs} inputs ({} seeds, {} regressions, {mutated} mutations)",
        seeds.len(),
        regressions.len()
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            replay(stringify!($name));
        })*

        /// Every target in the list has a test here and a libFuzzer binary.
        #[test]
        fn every_target_is_replayed() {
            let here = [$(stringify!($name)),*];
            for (name, _) in signet_fuzz::TARGETS {
                assert!(here.contains(name), "{name} has no replay test");
                assert!(manifest_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "{name} has no fuzz target");
            }
            assert_eq!(here.len(), signet_fuzz::TARGETS.len());
        }
    };
}

replay_tests!(
    tsa_request,
    ocsp_request,
    client_crl,
    ocsp_get_path,
    api_json,
    api_query,
    pdf_reader,
    config_text,
    sealed_file,
    admin_request,
);

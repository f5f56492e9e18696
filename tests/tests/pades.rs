//! PAdES through `POST /v1/pdf/{key}`, judged by pyHanko, poppler's pdfsig and qpdf.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use signet_e2e::{judges_python, run, Appliance};

fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut app = Appliance::init_reachable(|_| {});
        app.start();
        app
    })
}

/// POST `pdf` to `/v1/pdf/doc-rsa?query`: (status, body).
fn sign(pdf: &Path, query: &str) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(app()
        .curl()
        .args(["-o"])
        .arg(&out)
        .args([
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/pdf",
            "--data-binary",
        ])
        .arg(format!("@{}", pdf.display()))
        .arg(app().url(&format!("/v1/pdf/doc-rsa?{query}"))));
    let code = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&out).unwrap_or_default())
}

fn vector(name: &str) -> PathBuf {
    signet_e2e::repo_root()
        .join("pki/tests/vectors/pdf")
        .join(name)
}

fn pyhanko() -> PathBuf {
    judges_python().with_file_name("pyhanko")
}

#[test]
fn smoke_every_level_validates_in_pyhanko() {
    let root = app().path("pki/root-ca.pem");
    for level in ["B-B", "B-T", "B-LT", "B-LTA"] {
        let input = vector("gs-1.4.pdf");
        let (code, body) = sign(&input, &format!("level={level}&reason=smoke"));
        assert_eq!(code, 200, "{level}: {}", String::from_utf8_lossy(&body));
        let original = std::fs::read(&input).unwrap();
        assert!(body.starts_with(&original));
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("signed.pdf");
        std::fs::write(&out, &body).unwrap();
        let o = run(Command::new(pyhanko())
            .args(["sign", "validate", "--pretty-print", "--trust"])
            .arg(&root)
            .arg("--trust-replace")
            .arg(&out));
        let text = String::from_utf8_lossy(&o.stdout);
        println!("{level}:\n{text}{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{level}");
        let o = run(Command::new(pyhanko())
            .args(["sign", "adesverify", "--pretty-print", "--trust"])
            .arg(&root)
            .arg("--trust-replace")
            .arg(&out));
        println!(
            "ADES {level}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let o = run(Command::new("qpdf").arg("--check").arg(&out));
        println!("QPDF {level}: {}", String::from_utf8_lossy(&o.stdout));
    }
}

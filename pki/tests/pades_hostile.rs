//! The reader on hostile files kept as fuzz regressions (`fuzz/regressions/pdf_reader/`,
//! built by the end-to-end test `pdf_hostile`): each is refused as bad input, quickly,
//! never a panic and never gigabytes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use signet_pki::pades::Document;

fn regression(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/pdf_reader")
            .join(name),
    )
    .expect("read regression")
}

#[test]
fn hostile_files_are_refused_quickly() {
    for (name, code) in [
        ("xref-stream-64m-entries.pdf", "pdf-too-large"),
        ("xref-stream-2gb-length.pdf", "pdf-broken-xref"),
        ("deep-arrays.pdf", "pdf-too-large"),
    ] {
        let started = Instant::now();
        let err = Document::open(regression(name)).err().expect(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(err.is_bad_input(), "{name}");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}");
    }
}

#[test]
fn a_wide_object_is_refused() {
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let at = pdf.len();
    pdf.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Wide [");
    for _ in 0..300_000 {
        pdf.extend_from_slice(b"0 ");
    }
    pdf.extend_from_slice(b"] >>\nendobj\n");
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!(
            "xref\n0 2\n0000000000 65535 f\r\n{at:010} 00000 n\r\ntrailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        )
        .as_bytes(),
    );
    let err = Document::open(pdf).err().expect("refused");
    assert_eq!(err.code(), "pdf-too-large", "{err}");
}

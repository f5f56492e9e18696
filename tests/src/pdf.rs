//! PDF signing judged from outside: a corpus made by outside producers (Ghostscript, qpdf,
//! pyHanko), the validators that judge a signed file (pyHanko, poppler's pdfsig, qpdf) with
//! their words parsed into typed verdicts, and byte-level checks (prefix, tamper, xref kind).
//!
//! Every judge is a real outside program; a missing one fails the test that calls it.
//! Making a corpus takes a few seconds: keep one per test binary in a `OnceLock`.

pub mod bytes;
pub mod corpus;
pub mod hostile;
mod hybrid;
pub mod level;
pub mod pdfsig;
pub mod pyhanko;
pub mod qpdf;
pub mod signer;
mod synthetic;
pub mod tsa_bridge;

pub use bytes::{
    byte_ranges, is_prefix, last_xref_kind, pdfa_declared, tamper_signed_byte, XrefKind,
};
pub use corpus::{Corpus, CorpusFile, Kind, Refusal};
pub use hostile::hostile_pdfs;
pub use level::{pades_levels, Level, LevelReport};
pub use pdfsig::{pdfsig, PdfsigReport, PdfsigSignature};
pub use pyhanko::{
    pyhanko_adesverify, pyhanko_sign, pyhanko_validate, pyhanko_validate_pretty, PyhankoReport,
    PyhankoSummary,
};
pub use qpdf::{qpdf_check, QpdfCheck};
pub use signer::{SoftSigner, Trust};
pub use synthetic::synthetic_pdf;
pub use tsa_bridge::TsaBridge;

use std::path::PathBuf;

/// The pyHanko CLI of the judges' venv (made by scripts/install-deps.sh).
pub fn pyhanko_bin() -> PathBuf {
    let exe = crate::repo_root().join(".venv/judges/bin/pyhanko");
    assert!(
        exe.exists(),
        "{} is missing: run scripts/install-deps.sh",
        exe.display()
    );
    exe
}

/// Text of a command's stdout and stderr.
pub(crate) fn texts(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

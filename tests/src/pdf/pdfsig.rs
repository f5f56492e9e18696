//! poppler's `pdfsig -nssdir sql:DB FILE`, trusting the roots in an NSS database.
//!
//! pdfsig exits 0 whatever it finds (1: cannot open, 2: no signatures), so the verdict is in
//! its words, one block per signature field:
//! ```text
//! Signature #1:
//!   - Signature Field Name: Sig1
//!   - Signature Type: ETSI.CAdES.detached
//!   - Signed Ranges: [0 - 5386], [9932 - 10520]
//!   - Total document signed            (or: Not total document signed)
//!   - Signature Validation: Signature is Valid.      (tampered: Digest Mismatch.)
//!   - Certificate Validation: Certificate is Trusted.
//! ```
//! An empty field prints `The signature form field is not signed.`; a document timestamp
//! `Signature Type: unknown` and `Signature has not yet been verified.` (not checked).

use std::path::Path;
use std::process::Command;

use super::signer::Trust;
use super::texts;
use crate::run;

/// What pdfsig printed, per signature field.
#[derive(Debug)]
pub struct PdfsigReport {
    /// pdfsig's exit code (0 whatever the verdict).
    pub code: Option<i32>,
    /// One per `Signature #N:` block.
    pub signatures: Vec<PdfsigSignature>,
    /// Everything printed.
    pub text: String,
}

/// One `Signature #N:` block.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PdfsigSignature {
    /// `Signature Field Name`.
    pub field: String,
    /// `Signature Type` (`ETSI.CAdES.detached`, `unknown` for document timestamps).
    pub sig_type: Option<String>,
    /// `Total document signed` (true) or `Not total document signed` (false).
    pub total_document: Option<bool>,
    /// The text after `Signature Validation: `.
    pub signature_validation: Option<String>,
    /// The text after `Certificate Validation: `.
    pub certificate_validation: Option<String>,
    /// `The signature form field is not signed.`
    pub unsigned_field: bool,
}

impl PdfsigSignature {
    /// `Signature is Valid.` and `Certificate is Trusted.`
    pub fn valid_trusted(&self) -> bool {
        self.signature_validation.as_deref() == Some("Signature is Valid.")
            && self.certificate_validation.as_deref() == Some("Certificate is Trusted.")
    }

    /// `Digest Mismatch.`: the signed bytes changed.
    pub fn digest_mismatch(&self) -> bool {
        self.signature_validation.as_deref() == Some("Digest Mismatch.")
    }
}

impl PdfsigReport {
    /// The block for `field`.
    pub fn field(&self, field: &str) -> Option<&PdfsigSignature> {
        self.signatures.iter().find(|s| s.field == field)
    }
}

/// Run pdfsig on `file` with `trust`'s NSS database.
pub fn pdfsig(trust: &Trust, file: &Path) -> PdfsigReport {
    let out = run(Command::new("pdfsig")
        .arg("-nssdir")
        .arg(format!("sql:{}", trust.nssdb.display()))
        .arg(file));
    let (stdout, stderr) = texts(&out);
    PdfsigReport {
        code: out.status.code(),
        signatures: parse(&stdout),
        text: format!("{stdout}{stderr}"),
    }
}

fn parse(stdout: &str) -> Vec<PdfsigSignature> {
    let mut sigs: Vec<PdfsigSignature> = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("Signature #") {
            sigs.push(PdfsigSignature::default());
            continue;
        }
        let Some(sig) = sigs.last_mut() else {
            continue;
        };
        let line = line.trim();
        let item = line.strip_prefix("- ").unwrap_or(line);
        if let Some(v) = item.strip_prefix("Signature Field Name: ") {
            sig.field = v.to_owned();
        } else if let Some(v) = item.strip_prefix("Signature Type: ") {
            sig.sig_type = Some(v.to_owned());
        } else if item == "Total document signed" {
            sig.total_document = Some(true);
        } else if item == "Not total document signed" {
            sig.total_document = Some(false);
        } else if let Some(v) = item.strip_prefix("Signature Validation: ") {
            sig.signature_validation = Some(v.to_owned());
        } else if let Some(v) = item.strip_prefix("Certificate Validation: ") {
            sig.certificate_validation = Some(v.to_owned());
        } else if item == "The signature form field is not signed." {
            sig.unsigned_field = true;
        }
    }
    sigs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse() {
        let text = "Digital Signature Info of: x.pdf\nSignature #1:\n  - Signature Field Name: Sig2\n  The signature form field is not signed.\nSignature #2:\n  - Signature Field Name: Sig1\n  - Signature Type: ETSI.CAdES.detached\n  - Total document signed\n  - Signature Validation: Signature is Valid.\n  - Certificate Validation: Certificate is Trusted.\nSignature #3:\n  - Signature Field Name: T\n  - Not total document signed\n  - Signature Validation: Digest Mismatch.\n";
        let sigs = parse(text);
        assert_eq!(sigs.len(), 3);
        assert!(sigs[0].unsigned_field && !sigs[0].valid_trusted());
        assert!(sigs[1].valid_trusted());
        assert_eq!(sigs[1].total_document, Some(true));
        assert!(sigs[2].digest_mismatch() && !sigs[2].valid_trusted());
    }
}

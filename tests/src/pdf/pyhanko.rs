//! pyHanko as an outside PAdES signer and as two validators: `sign validate` (with and
//! without `--pretty-print`) and `sign adesverify` (ETSI EN 319 102-1, past validation).
//!
//! Both validators print one summary line per signature,
//! `FIELD:SHA256-OF-SIGNER-CERT:SUMMARY`, where SUMMARY is `INVALID` or `INTACT:` and a comma
//! list: `TRUSTED|UNTRUSTED|REVOKED`, then maybe `TIMESTAMP_TOKEN<INTACT:TRUSTED>` (the
//! token's own summary, `|`-separated), then the coverage (`UNTOUCHED`,
//! `EXTENDED_WITH_LTA_UPDATES`, `EXTENDED_WITH_FORM_FILLING`, ...), then
//! `ACCEPTABLE_MODIFICATIONS` or `ILLEGAL_MODIFICATIONS` when the file goes past it. Exit 0
//! only if every signature is valid. Document timestamps get no line of their own.

use std::path::Path;
use std::process::Command;

use super::level::Level;
use super::signer::{SoftSigner, Trust};
use super::{pyhanko_bin, texts};
use crate::run;

/// Sign `input` into `output` with pyHanko at `level`, in `field` (made if absent).
/// `tsa_url` (plain HTTP) is needed from B-T up; B-LT and B-LTA fetch revocation data from
/// the URLs in the certificates, trusting `trust`. `strict = false` adds
/// `--no-strict-syntax` (pyHanko refuses hybrid-reference files without it).
/// Returns pyHanko's error text when it refuses.
#[allow(clippy::too_many_arguments)]
pub fn pyhanko_sign(
    input: &Path,
    output: &Path,
    field: &str,
    level: Level,
    signer: &SoftSigner,
    trust: &Trust,
    tsa_url: Option<&str>,
    strict: bool,
) -> Result<(), String> {
    let mut cmd = Command::new(pyhanko_bin());
    cmd.args(["sign", "addsig", "--field", field, "--use-pades"]);
    if !strict {
        cmd.arg("--no-strict-syntax");
    }
    if level >= Level::BT {
        cmd.arg("--timestamp-url")
            .arg(tsa_url.expect("B-T and above need a TSA URL"));
    }
    if level >= Level::BLT {
        cmd.arg("--with-validation-info").args(trust.pyhanko_args());
    }
    if level == Level::BLTA {
        cmd.arg("--use-pades-lta");
    }
    cmd.arg("pemder")
        .arg("--key")
        .arg(&signer.key)
        .arg("--cert")
        .arg(&signer.cert)
        .arg("--chain")
        .arg(&signer.chain)
        .arg("--no-pass")
        .arg(input)
        .arg(output);
    let out = run(&mut cmd);
    let (stdout, stderr) = texts(&out);
    if out.status.success() && output.exists() {
        Ok(())
    } else {
        Err(format!("{}\n{stdout}{stderr}", out.status))
    }
}

/// What pyHanko's `validate` or `adesverify` said about a file.
#[derive(Debug)]
pub struct PyhankoReport {
    /// Exit status 0: every signature valid.
    pub exit_ok: bool,
    /// One per summary line, in file order.
    pub signatures: Vec<PyhankoSummary>,
    /// Everything printed, for messages.
    pub text: String,
}

impl PyhankoReport {
    /// The summary for `field`.
    pub fn field(&self, field: &str) -> Option<&PyhankoSummary> {
        self.signatures.iter().find(|s| s.field == field)
    }

    /// Exit 0, at least one signature, and every one intact and trusted.
    pub fn all_trusted(&self) -> bool {
        self.exit_ok
            && !self.signatures.is_empty()
            && self.signatures.iter().all(|s| s.intact_trusted())
    }
}

/// One summary line, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyhankoSummary {
    /// The signature field's name.
    pub field: String,
    /// SHA-256 of the signer's certificate, hex.
    pub signer_sha256: String,
    /// False when pyHanko printed `INVALID` (digest or signature wrong).
    pub intact: bool,
    /// `TRUSTED`, `UNTRUSTED` or `REVOKED` (None when not intact).
    pub trust: Option<String>,
    /// The signature timestamp's own summary, e.g. `INTACT:TRUSTED`.
    pub timestamp: Option<String>,
    /// `UNTOUCHED`, `EXTENDED_WITH_LTA_UPDATES`, `EXTENDED_WITH_FORM_FILLING`, ...
    pub coverage: Option<String>,
    /// `ACCEPTABLE_MODIFICATIONS` or `ILLEGAL_MODIFICATIONS` (None when untouched).
    pub modifications: Option<String>,
    /// Every other token (e.g. `CERTIFIED_SIGNER_ATTRS_INVALID`).
    pub other: Vec<String>,
    /// The SUMMARY part as printed.
    pub raw: String,
}

impl PyhankoSummary {
    /// Intact, trusted, timestamp (if any) intact and trusted, no illegal modification.
    pub fn intact_trusted(&self) -> bool {
        self.intact
            && self.trust.as_deref() == Some("TRUSTED")
            && self
                .timestamp
                .as_deref()
                .is_none_or(|t| t == "INTACT:TRUSTED")
            && self.modifications.as_deref() != Some("ILLEGAL_MODIFICATIONS")
            && self.other.is_empty()
    }

    /// Parse one `FIELD:HASH:SUMMARY` line; None if it is not one.
    pub fn parse(line: &str) -> Option<PyhankoSummary> {
        let (field, rest) = line.split_once(':')?;
        let (hash, raw) = rest.split_once(':')?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut s = PyhankoSummary {
            field: field.to_owned(),
            signer_sha256: hash.to_owned(),
            intact: false,
            trust: None,
            timestamp: None,
            coverage: None,
            modifications: None,
            other: Vec::new(),
            raw: raw.to_owned(),
        };
        if raw == "INVALID" {
            return Some(s);
        }
        let fields = raw.strip_prefix("INTACT:")?;
        s.intact = true;
        for token in fields.split(',') {
            match token {
                "TRUSTED" | "UNTRUSTED" | "REVOKED" => s.trust = Some(token.to_owned()),
                "ACCEPTABLE_MODIFICATIONS" | "ILLEGAL_MODIFICATIONS" => {
                    s.modifications = Some(token.to_owned())
                }
                "UNTOUCHED" | "EXTENDED" | "NONSTANDARD_COVERAGE" => {
                    s.coverage = Some(token.to_owned())
                }
                t if t.starts_with("EXTENDED_WITH_") => s.coverage = Some(t.to_owned()),
                t if t.starts_with("TIMESTAMP_TOKEN<") && t.ends_with('>') => {
                    s.timestamp = Some(t["TIMESTAMP_TOKEN<".len()..t.len() - 1].replace('|', ","))
                }
                t => s.other.push(t.to_owned()),
            }
        }
        Some(s)
    }
}

fn validator(sub: &str, extra: &[&str], trust: &Trust, file: &Path) -> PyhankoReport {
    let out = run(Command::new(pyhanko_bin())
        .args(["sign", sub])
        .args(extra)
        .args(trust.pyhanko_args())
        .arg(file));
    let (stdout, stderr) = texts(&out);
    PyhankoReport {
        exit_ok: out.status.success(),
        signatures: stdout.lines().filter_map(PyhankoSummary::parse).collect(),
        text: format!("{stdout}{stderr}"),
    }
}

/// `pyhanko sign validate --trust ROOT --trust-replace FILE` (revocation checked online,
/// hard-fail, from the certificates' URLs). `extra` e.g. `["--no-strict-syntax"]`.
pub fn pyhanko_validate(trust: &Trust, file: &Path, extra: &[&str]) -> PyhankoReport {
    validator("validate", extra, trust, file)
}

/// `pyhanko sign adesverify --trust ROOT --trust-replace FILE`: AdES validation with past
/// proof of existence; wants fresh status for the newest timestamp's TSA, so keep the
/// responder up.
pub fn pyhanko_adesverify(trust: &Trust, file: &Path, extra: &[&str]) -> PyhankoReport {
    validator("adesverify", extra, trust, file)
}

/// `pyhanko sign validate --pretty-print`: (field, judged VALID) per `Field N: NAME`
/// section, from its `The signature is judged VALID.` / `INVALID.` bottom line; and the
/// whole text.
pub fn pyhanko_validate_pretty(
    trust: &Trust,
    file: &Path,
    extra: &[&str],
) -> (Vec<(String, bool)>, String) {
    let out = run(Command::new(pyhanko_bin())
        .args(["sign", "validate", "--pretty-print"])
        .args(extra)
        .args(trust.pyhanko_args())
        .arg(file));
    let (stdout, stderr) = texts(&out);
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    let mut field: Option<String> = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Field ") {
            field = rest.split_once(": ").map(|(_, name)| name.to_owned());
        } else if let Some(verdict) = line.strip_prefix("The signature is judged ") {
            if let Some(f) = field.take() {
                verdicts.push((f, verdict == "VALID."));
            }
        }
    }
    (verdicts, format!("{stdout}{stderr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "11f9157dfec60f6948612ad459b0d6fd871a8ed2ce5a2737ecbe817bca16950f";

    #[test]
    fn summaries_parse() {
        let s = PyhankoSummary::parse(&format!("Sig1:{H}:INTACT:TRUSTED,UNTOUCHED")).unwrap();
        assert!(s.intact_trusted());
        assert_eq!(s.coverage.as_deref(), Some("UNTOUCHED"));
        let s = PyhankoSummary::parse(&format!(
            "Sig1:{H}:INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,EXTENDED_WITH_LTA_UPDATES,ACCEPTABLE_MODIFICATIONS"
        ))
        .unwrap();
        assert!(s.intact_trusted());
        assert_eq!(s.timestamp.as_deref(), Some("INTACT:TRUSTED"));
        assert_eq!(s.coverage.as_deref(), Some("EXTENDED_WITH_LTA_UPDATES"));
        let s = PyhankoSummary::parse(&format!("Sig1:{H}:INVALID")).unwrap();
        assert!(!s.intact && !s.intact_trusted());
        let s = PyhankoSummary::parse(&format!(
            "Sig1:{H}:INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:UNTRUSTED>,UNTOUCHED"
        ))
        .unwrap();
        assert!(!s.intact_trusted());
        let s = PyhankoSummary::parse(&format!("S:{H}:INTACT:UNTRUSTED,UNTOUCHED")).unwrap();
        assert!(!s.intact_trusted());
        assert_eq!(
            PyhankoSummary::parse("2026-01-01 12:00:00,000 - cli - ERROR"),
            None
        );
        assert_eq!(PyhankoSummary::parse("Error: Validation failed"), None);
    }
}

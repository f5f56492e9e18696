//! The audit log: append-only, one JSON record per line, each carrying the SHA-256 of the
//! one before; every N records or T seconds a checkpoint over the chain head is signed by
//! the audit key in the HSM. Every API request, refused handshake and admin command is
//! recorded, and no answer leaves before its record is durable.
//!
//! ```text
//! {"seq":41,"time_ms":..,"prev":"<hash of 40>","event":{"kind":"request",..},"hash":"<hash of 41>"}
//! {"seq":42,"time_ms":..,"prev":"<hash of 41>","event":{"kind":"checkpoint","algorithm":"ecdsa-sha256","signature":".."},"hash":".."}
//! ```
//!
//! `signetctl audit verify` checks a log (or an export, with the audit certificate alone)
//! and names the first broken record. The anchor beside the log (the last checkpoint, signed
//! by the audit key, with the TPM counter's value where a TPM is used) catches a log
//! truncated to an earlier checkpoint: see [`anchor`].

pub mod anchor;
mod backward;
mod commit_delay;
pub mod context;
mod error;
pub mod log;
pub mod record;
mod ring;
pub mod verify;
mod writer;

pub use anchor::{Anchor, AnchorError, TpmCounter};
pub use log::{AuditError, AuditLog, AuditSigner, CheckpointPolicy, Coming};
pub use record::{Event, Record};
pub use verify::{Broken, Scope, Verified};

use std::path::Path;

use signet_pki::verify::PublicKey;

/// The public key of the first certificate in the PEM file at `path` (the audit
/// certificate, as `signetctl init` writes it).
pub fn key_from_certificate(path: &Path) -> Result<PublicKey, String> {
    use der::Encode;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = signet_pki::x509::certificates_from_pem(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cert = certs
        .first()
        .ok_or_else(|| format!("{}: no certificate", path.display()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    PublicKey::from_spki_der(&spki).map_err(|e| format!("{}: {e}", path.display()))
}

/// The records in `bytes` (whole lines of a log, as `log::tail_bytes` reads them).
pub fn records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| format!("a record does not parse: {e}")))
        .collect()
}

//! The config sealed by the TPM: AES-256-GCM under a fresh random data key, and the data
//! key sealed to the box's TPM under a PCR policy; and the TPM's monotonic NV counter that
//! the audit log's anchor carries (`counter`). Only this module touches `tss-esapi`.
//!
//! Unsealing needs the same TPM (the sealed object is bound to its owner seed) in the same
//! measured state (the PCRs hold the values sealed to). Nothing falls back to clear text.

pub mod counter;
pub mod format;
pub mod pcrs;
pub mod tpm;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

pub use counter::{CounterError, CounterState};
pub use format::{FormatError, SealedFile};
pub use pcrs::{PcrSelection, DEFAULT_PCRS, PCR_VALUE_LEN};
pub use tpm::{Tpm, TpmError};

/// The TPM a production box has, through the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The environment variable that names the TCTI when no flag does.
pub const TCTI_ENV: &str = "SIGNET_TCTI";

const KEY_LEN: usize = 32;

/// Why a config could not be sealed or unsealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The file is not a sealed config this build reads.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The TPM failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The PCRs no longer hold the values the file was sealed to.
    #[error(
        "unseal refused: the sealed config is bound to PCRs {bound}, and {changed} since it \
         was sealed (the firmware, boot chain or Secure Boot state changed); after an \
         intended change, reseal in an explicit step (`signetctl config reseal`)"
    )]
    PcrsChanged {
        /// The PCRs the file is bound to.
        bound: PcrSelection,
        /// Which of them changed, in words ("PCR 7 changed").
        changed: String,
    },
    /// The sealed object does not load: another TPM, or this one's owner seed changed.
    #[error(
        "this TPM cannot open the sealed config: it was sealed by another TPM, or this TPM \
         was cleared since ({0})"
    )]
    OtherTpm(TpmError),
    /// The ciphertext does not authenticate under the unsealed key.
    #[error("the sealed config is damaged: its ciphertext does not authenticate")]
    Damaged,
    /// The TPM returned a data key of the wrong size.
    #[error("the unsealed data key has {0} bytes, not {KEY_LEN}")]
    BadKey(usize),
    /// The system's random source failed.
    #[error("no randomness for the data key: {0}")]
    Random(String),
}

/// Seal `plaintext` (the config text) to `pcrs` on `tpm`: to `values` when given (the
/// values expected after an update), else to the PCRs' current values.
pub fn seal(
    tpm: &mut Tpm,
    plaintext: &[u8],
    pcrs: &PcrSelection,
    values: Option<Vec<[u8; PCR_VALUE_LEN]>>,
) -> Result<Vec<u8>, SealError> {
    let pcr_values = match values {
        Some(v) => v,
        None => tpm.read_pcrs(pcrs)?,
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut nonce = [0u8; format::NONCE_LEN];
    OsRng
        .try_fill_bytes(key.as_mut())
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|e| SealError::Random(e.to_string()))?;
    let (public, private) = tpm.seal_key(key.as_ref(), pcrs, &pcr_values)?;
    let mut file = SealedFile {
        pcrs: pcrs.clone(),
        pcr_values,
        public,
        private,
        nonce,
        ciphertext: Vec::new(),
    };
    let aad = file.header();
    file.ciphertext = cipher(key.as_ref())?
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Damaged)?;
    Ok(file.encode()?)
}

/// The config text sealed in `bytes`, unsealed by `tpm`.
pub fn unseal(tpm: &mut Tpm, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let file = SealedFile::decode(bytes)?;
    let current = tpm.read_pcrs(&file.pcrs)?;
    let changed: Vec<String> = file
        .pcrs
        .indices()
        .iter()
        .zip(current.iter().zip(&file.pcr_values))
        .filter(|(_, (now, then))| now != then)
        .map(|(i, _)| i.to_string())
        .collect();
    if !changed.is_empty() {
        return Err(SealError::PcrsChanged {
            bound: file.pcrs,
            changed: format!(
                "{} {} changed",
                if changed.len() == 1 { "PCR" } else { "PCRs" },
                changed.join(", ")
            ),
        });
    }
    let key = match tpm.unseal_key(&file.public, &file.private, &file.pcrs) {
        Ok(k) => k,
        Err(tpm::UnsealFailure::Load(e)) => return Err(SealError::OtherTpm(e)),
        Err(tpm::UnsealFailure::Policy(e)) => {
            return Err(SealError::PcrsChanged {
                bound: file.pcrs,
                changed: format!("the TPM's policy check says they changed ({e})"),
            })
        }
        Err(tpm::UnsealFailure::Other(e)) => return Err(SealError::Tpm(e)),
    };
    if key.len() != KEY_LEN {
        return Err(SealError::BadKey(key.len()));
    }
    let plaintext = cipher(&key)?
        .decrypt(
            &Nonce::from(file.nonce),
            Payload {
                msg: &file.ciphertext,
                aad: &file.header(),
            },
        )
        .map_err(|_| SealError::Damaged)?;
    Ok(Zeroizing::new(plaintext))
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, SealError> {
    Aes256Gcm::new_from_slice(key).map_err(|_| SealError::BadKey(key.len()))
}

/// The config text with every secret replaced by `"<redacted>"`, comments and layout kept.
pub fn redact(text: &str) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    for (table, key) in crate::SECRET_KEYS {
        if let Some(item) = doc
            .get_mut(table)
            .and_then(|t| t.as_table_like_mut())
            .and_then(|t| t.get_mut(key))
        {
            if !item.is_none() {
                *item = toml_edit::value("<redacted>");
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_secret_and_keeps_the_rest() {
        let out = redact(crate::DEV_TOML).unwrap();
        assert!(!out.contains("\"1234\""), "{out}");
        assert!(!out.contains("12345678"), "{out}");
        assert_eq!(out.matches("<redacted>").count(), 2, "{out}");
        assert!(out.contains("token_label = \"signet-dev\""), "{out}");
    }
}

//! The anchor beside the log: the last checkpoint written (its sequence number and hash),
//! the value of the TPM's monotonic counter when there is one, and a signature by the audit
//! key over all three.
//!
//! ```text
//! {"seq":41,"hash":"<hash of 41>","tpm_counter":57,"algorithm":"ecdsa-sha256","signature":".."}
//! ```
//!
//! The signature stops an anchor rewritten to match a truncated log. It cannot stop an
//! OLDER genuine anchor put back with the log truncated to its checkpoint: the counter
//! does. It is incremented after each anchor is written, so the anchor on disk carries the
//! counter's value (or one more, when a crash came between the two); an older anchor
//! carries less, and [`check_rollback`] names both numbers.

use serde::{Deserialize, Serialize};
use signet_config::sealed::{CounterError, CounterState, Tpm};
use signet_pki::verify::PublicKey;
use signet_pki::SignatureScheme;

use super::record::hash_from_hex;
use super::verify::scheme_name;

/// What an anchor signature covers: this prefix, the checkpoint's sequence number
/// (big-endian u64), its 32-byte hash, then 0 (no counter) or 1 and the counter's value
/// (big-endian u64).
pub const ANCHOR_DOMAIN: &[u8] = b"signet audit anchor v1\0";

/// The last checkpoint written, kept beside the log, signed by the audit key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The checkpoint's sequence number.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
    /// The TPM counter's value this anchor was written with, when one is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_counter: Option<u64>,
    /// The signature scheme, e.g. `ecdsa-sha256` (absent in anchors of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The signature (base64) over [`Anchor::signed_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// An anchor that does not hold, or a log that was rolled back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// No signature (an anchor from before signed anchors, or one written by hand).
    #[error(
        "the audit anchor is not signed (checkpoint seq {seq}): written by hand, or by a \
         signetd older than signed anchors"
    )]
    Unsigned {
        /// The checkpoint it names.
        seq: u64,
    },
    /// The signature does not verify with the audit certificate.
    #[error(
        "the audit anchor's signature does not verify with the audit certificate \
         (checkpoint seq {seq}): the anchor was edited or forged ({why})"
    )]
    BadSignature {
        /// The checkpoint it names.
        seq: u64,
        /// What failed.
        why: String,
    },
    /// The TPM counter is ahead of the anchor: an older anchor was put back.
    #[error(
        "audit log rolled back: the TPM counter is at {tpm}, the anchor at {anchor} \
         (checkpoint seq {seq})"
    )]
    RolledBack {
        /// The TPM counter's value.
        tpm: u64,
        /// The anchor's.
        anchor: u64,
        /// The checkpoint the anchor names.
        seq: u64,
    },
    /// The TPM counter has a value but the anchor carries none.
    #[error(
        "audit log rolled back: the TPM counter is at {tpm}, the anchor carries none \
         (checkpoint seq {seq}; an anchor from before the counter was used)"
    )]
    WithoutCounter {
        /// The TPM counter's value.
        tpm: u64,
        /// The checkpoint the anchor names.
        seq: u64,
    },
    /// The TPM counter has a value but there is no anchor.
    #[error("audit log rolled back: the TPM counter is at {tpm}, and there is no anchor")]
    Missing {
        /// The TPM counter's value.
        tpm: u64,
    },
    /// The TPM counter is behind the anchor by more than one interrupted increment.
    #[error(
        "the TPM counter is at {tpm}, behind the anchor's {anchor} (checkpoint seq {seq}): \
         another TPM, or its counter index was redefined"
    )]
    Behind {
        /// The TPM counter's value.
        tpm: u64,
        /// The anchor's.
        anchor: u64,
        /// The checkpoint the anchor names.
        seq: u64,
    },
}

impl Anchor {
    /// What the anchor for checkpoint `seq` with `hash`, carrying `counter`, signs.
    pub fn signed_bytes(seq: u64, hash: &[u8; 32], counter: Option<u64>) -> Vec<u8> {
        let mut m = ANCHOR_DOMAIN.to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        match counter {
            None => m.push(0),
            Some(c) => {
                m.push(1);
                m.extend_from_slice(&c.to_be_bytes());
            }
        }
        m
    }

    /// The anchor for checkpoint `seq` with `hash` (hex), carrying `counter`, signed by
    /// `sign` with `scheme`.
    pub fn sign<E: std::fmt::Display>(
        seq: u64,
        hash: &str,
        counter: Option<u64>,
        scheme: SignatureScheme,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Anchor, String> {
        use base64::Engine;
        let digest = hash_from_hex(hash).ok_or("the checkpoint's hash is not SHA-256")?;
        let signature =
            sign(&Anchor::signed_bytes(seq, &digest, counter)).map_err(|e| e.to_string())?;
        Ok(Anchor {
            seq,
            hash: hash.to_owned(),
            tpm_counter: counter,
            algorithm: Some(scheme_name(scheme)),
            signature: Some(base64::engine::general_purpose::STANDARD.encode(signature)),
        })
    }

    /// Check the signature with the audit key `key`.
    pub fn check_signature(&self, key: &PublicKey) -> Result<(), AnchorError> {
        use base64::Engine;
        let seq = self.seq;
        let (Some(algorithm), Some(signature)) = (&self.algorithm, &self.signature) else {
            return Err(AnchorError::Unsigned { seq });
        };
        let bad = |why: &str| AnchorError::BadSignature {
            seq,
            why: why.to_owned(),
        };
        let scheme = key.algorithm().default_scheme();
        if *algorithm != scheme_name(scheme) {
            return Err(bad(&format!(
                "signed with {algorithm}, the audit key signs with {}",
                scheme_name(scheme)
            )));
        }
        let digest = hash_from_hex(&self.hash).ok_or_else(|| bad("its hash is not SHA-256"))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| bad("the signature is not base64"))?;
        key.verify_message(
            scheme,
            &Anchor::signed_bytes(self.seq, &digest, self.tpm_counter),
            &sig,
        )
        .map_err(|_| bad("the signature does not match"))
    }
}

/// Whether `anchor` (signature already checked) is the newest one, judged by what the TPM
/// counter holds. The counter is incremented right after an anchor is written, so the
/// anchor carries the counter's value, or one more when a crash came in between.
pub fn check_rollback(anchor: Option<&Anchor>, tpm: CounterState) -> Result<(), AnchorError> {
    let tpm = match tpm {
        CounterState::Value(v) => Some(v),
        // Never incremented (or not defined yet): no anchor was written with it.
        CounterState::Absent | CounterState::Unwritten => None,
    };
    match (anchor, tpm) {
        (None, None) => Ok(()),
        (None, Some(tpm)) => Err(AnchorError::Missing { tpm }),
        (Some(a), None) => match a.tpm_counter {
            None => Ok(()),
            // The anchor says a counter was kept, and the TPM has none.
            Some(c) => Err(AnchorError::Behind {
                tpm: 0,
                anchor: c,
                seq: a.seq,
            }),
        },
        (Some(a), Some(tpm)) => match a.tpm_counter {
            None => Err(AnchorError::WithoutCounter { tpm, seq: a.seq }),
            Some(c) if c < tpm => Err(AnchorError::RolledBack {
                tpm,
                anchor: c,
                seq: a.seq,
            }),
            Some(c) if c > tpm.saturating_add(1) => Err(AnchorError::Behind {
                tpm,
                anchor: c,
                seq: a.seq,
            }),
            Some(_) => Ok(()),
        },
    }
}

/// The TPM counter that anchors carry: where the TPM is and which NV index. The TPM is
/// opened for each use and let go at once (swtpm serves one connection at a time, and the
/// sealed config is unsealed again on SIGHUP).
#[derive(Clone, Debug)]
pub struct TpmCounter {
    /// The TCTI (`device:/dev/tpmrm0`, `swtpm:...`).
    pub tcti: String,
    /// The NV index.
    pub index: u32,
}

impl TpmCounter {
    /// What the counter holds now.
    pub fn state(&self) -> Result<CounterState, CounterError> {
        Tpm::open(&self.tcti)?.counter_state(self.index)
    }

    /// Define the counter if absent and give it its first value; returns the value.
    pub fn prepare(&self) -> Result<u64, CounterError> {
        Tpm::open(&self.tcti)?.counter_prepare(self.index)
    }

    /// Connect to the TPM.
    pub fn open(&self) -> Result<Tpm, CounterError> {
        Ok(Tpm::open(&self.tcti)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    fn key() -> (p256::ecdsa::SigningKey, PublicKey) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        (sk, PublicKey::from_spki_der(spki.as_bytes()).unwrap())
    }

    fn signed(sk: &p256::ecdsa::SigningKey, seq: u64, counter: Option<u64>) -> Anchor {
        let scheme = SignatureScheme::Ecdsa(signet_pki::HashAlg::Sha256);
        Anchor::sign(seq, &hex::encode([seq as u8; 32]), counter, scheme, |m| {
            let sig: p256::ecdsa::Signature = sk.sign(m);
            Ok::<_, String>(sig.to_der().as_bytes().to_vec())
        })
        .unwrap()
    }

    #[test]
    fn a_signed_anchor_round_trips_and_any_edit_fails_its_signature() {
        let (sk, pk) = key();
        let a = signed(&sk, 41, Some(57));
        let back: Anchor = serde_json::from_slice(&serde_json::to_vec(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        back.check_signature(&pk).unwrap();

        let mut edited = a.clone();
        edited.seq = 40;
        assert!(matches!(
            edited.check_signature(&pk),
            Err(AnchorError::BadSignature { seq: 40, .. })
        ));
        let mut edited = a.clone();
        edited.hash = hex::encode([1u8; 32]);
        assert!(edited.check_signature(&pk).is_err());
        let mut edited = a.clone();
        edited.tpm_counter = Some(58);
        assert!(edited.check_signature(&pk).is_err());
        let mut edited = a.clone();
        edited.tpm_counter = None;
        assert!(edited.check_signature(&pk).is_err());

        // Another key's signature, and none at all.
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        assert!(signed(&other, 41, Some(57)).check_signature(&pk).is_err());
        let old: Anchor = serde_json::from_str(&format!(
            "{{\"seq\":3,\"hash\":\"{}\"}}",
            hex::encode([3u8; 32])
        ))
        .unwrap();
        assert_eq!(
            old.check_signature(&pk),
            Err(AnchorError::Unsigned { seq: 3 })
        );
        // Without a counter it signs and verifies too.
        signed(&sk, 5, None).check_signature(&pk).unwrap();
    }

    #[test]
    fn the_counter_ahead_of_the_anchor_is_a_rollback_naming_both_numbers() {
        let (sk, _) = key();
        let a = signed(&sk, 41, Some(41));
        use CounterState::*;
        assert_eq!(check_rollback(Some(&a), Value(41)), Ok(()));
        // A crash between the anchor's write and the increment.
        assert_eq!(check_rollback(Some(&a), Value(40)), Ok(()));
        let e = check_rollback(Some(&a), Value(57)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "audit log rolled back: the TPM counter is at 57, the anchor at 41 (checkpoint seq 41)"
        );
        assert!(matches!(
            check_rollback(Some(&a), Value(39)),
            Err(AnchorError::Behind { .. })
        ));
        assert!(matches!(
            check_rollback(Some(&a), Absent),
            Err(AnchorError::Behind { .. })
        ));
        assert_eq!(
            check_rollback(None, Value(3)),
            Err(AnchorError::Missing { tpm: 3 })
        );
        assert_eq!(check_rollback(None, Absent), Ok(()));
        assert_eq!(check_rollback(None, Unwritten), Ok(()));
        let plain = signed(&sk, 9, None);
        assert_eq!(check_rollback(Some(&plain), Absent), Ok(()));
        assert_eq!(
            check_rollback(Some(&plain), Value(2)),
            Err(AnchorError::WithoutCounter { tpm: 2, seq: 9 })
        );
    }
}

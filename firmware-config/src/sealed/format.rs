//! The sealed file, byte by byte (integers big-endian):
//!
//! ```text
//! magic       8   "SIGNETSC"
//! version     2   1
//! pcr bank    2   TPM_ALG_ID of the bank (0x000B, SHA-256)
//! pcr count   1   1 to 24, then per PCR: index (1) and the value sealed to (32)
//! public      2+n TPMT_PUBLIC of the sealed data object (its policy: PolicyPCR)
//! private     2+n TPM2B_PRIVATE buffer of the sealed data object (the data key)
//! nonce       12  AES-256-GCM nonce
//! ciphertext  4+n AES-256-GCM of the config text, with tag; the bytes above are its AAD
//! checksum    32  SHA-256 of everything above: a damaged file is named as such
//! ```
//!
//! The checksum is not a defence against an attacker (the TPM and the AEAD are): it turns
//! a flipped bit into "damaged" before the TPM is asked anything.

use sha2::{Digest, Sha256};

use super::pcrs::{PcrSelection, PCR_VALUE_LEN, TPM_ALG_SHA256};

/// The first bytes of every sealed config.
pub const MAGIC: &[u8; 8] = b"SIGNETSC";
/// The version this build writes and reads.
pub const VERSION: u16 = 1;
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
const CHECKSUM_LEN: usize = 32;

/// Why bytes are not a sealed config this build can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a sealed config at all.
    #[error("not a sealed Signet config (no SIGNETSC header)")]
    BadMagic,
    /// A version this build does not know.
    #[error("sealed config version {found} is unknown: this build reads version {VERSION}")]
    UnknownVersion {
        /// The version in the file.
        found: u16,
    },
    /// The file ends before a field does.
    #[error("the sealed config is truncated: {field} needs {needed} bytes at offset {at}, the file has {len}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        at: usize,
        /// Bytes it needs.
        needed: usize,
        /// Length of the file.
        len: usize,
    },
    /// A field holds a value no writer makes.
    #[error("the sealed config is damaged: {0}")]
    Invalid(String),
    /// The checksum does not match: bytes changed after it was written.
    #[error("the sealed config is damaged: its SHA-256 checksum does not match (a changed or flipped byte)")]
    Checksum,
    /// Bytes after the checksum.
    #[error("the sealed config is damaged: {0} bytes after its end")]
    Trailing(usize),
}

/// A sealed config, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFile {
    /// The PCRs the data key is bound to, with the values it was sealed to.
    pub pcrs: PcrSelection,
    /// Per PCR of `pcrs`, in order: the value it must have.
    pub pcr_values: Vec<[u8; PCR_VALUE_LEN]>,
    /// TPMT_PUBLIC of the sealed data object.
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE buffer of the sealed data object.
    pub private: Vec<u8>,
    /// AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// AES-GCM ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl SealedFile {
    /// The header: every field before the ciphertext (the AEAD's associated data).
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        // At most 24 PCRs (PcrSelection guarantees it).
        out.push(self.pcrs.indices().len() as u8);
        for (i, v) in self.pcrs.indices().iter().zip(&self.pcr_values) {
            out.push(*i);
            out.extend_from_slice(v);
        }
        for blob in [&self.public, &self.private] {
            // TPM structures are far below 64 KiB; `encode` refuses larger ones.
            out.extend_from_slice(&(blob.len() as u16).to_be_bytes());
            out.extend_from_slice(blob);
        }
        out.extend_from_slice(&self.nonce);
        out
    }

    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        if self.public.len() > usize::from(u16::MAX) || self.private.len() > usize::from(u16::MAX) {
            return Err(FormatError::Invalid("a TPM blob over 64 KiB".into()));
        }
        if self.pcr_values.len() != self.pcrs.indices().len() {
            return Err(FormatError::Invalid("one PCR value per PCR".into()));
        }
        let len = u32::try_from(self.ciphertext.len())
            .map_err(|_| FormatError::Invalid("a config over 4 GiB".into()))?;
        let mut out = self.header();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Parse the file's bytes: the header first (so an unknown version is named as such),
    /// then every field, then the checksum.
    pub fn decode(bytes: &[u8]) -> Result<SealedFile, FormatError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take("magic", MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
            return Err(FormatError::BadMagic);
        }
        let found = r.u16("version")?;
        if found != VERSION {
            return Err(FormatError::UnknownVersion { found });
        }
        let bank = r.u16("PCR bank")?;
        if bank != TPM_ALG_SHA256 {
            return Err(FormatError::Invalid(format!(
                "PCR bank 0x{bank:04x}; only SHA-256 (0x000b) is written"
            )));
        }
        let count = usize::from(r.u8("PCR count")?);
        let mut indices = Vec::with_capacity(count);
        let mut pcr_values = Vec::with_capacity(count);
        for _ in 0..count {
            indices.push(r.u8("PCR index")?);
            let mut v = [0; PCR_VALUE_LEN];
            v.copy_from_slice(r.take("PCR value", PCR_VALUE_LEN)?);
            pcr_values.push(v);
        }
        // The sealer writes them ascending, once each; anything else would pair values with
        // the wrong PCRs once the selection sorts them.
        if indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(FormatError::Invalid(
                "PCR indices out of order or repeated".into(),
            ));
        }
        let pcrs = PcrSelection::new(indices).map_err(FormatError::Invalid)?;
        let public = r.blob16("public blob")?.to_vec();
        let private = r.blob16("private blob")?.to_vec();
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(r.take("nonce", NONCE_LEN)?);
        let len = r.u32("ciphertext length")?;
        let ciphertext = r.take("ciphertext", len as usize)?.to_vec();
        let body_end = r.at;
        let sum = r.take("checksum", CHECKSUM_LEN)?;
        if Sha256::digest(&bytes[..body_end])[..] != *sum {
            return Err(FormatError::Checksum);
        }
        if r.at != bytes.len() {
            return Err(FormatError::Trailing(bytes.len() - r.at));
        }
        Ok(SealedFile {
            pcrs,
            pcr_values,
            public,
            private,
            nonce,
            ciphertext,
        })
    }
}

/// A cursor that never reads past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(needed)
            .filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(FormatError::Truncated {
                field,
                at: self.at,
                needed,
                len: self.bytes.len(),
            });
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(field, 1)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        let b = self.take(field, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn blob16(&mut self, field: &'static str) -> Result<&'a [u8], FormatError> {
        let len = self.u16(field)?;
        self.take(field, usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SealedFile {
        SealedFile {
            pcrs: PcrSelection::new(vec![0, 7]).unwrap(),
            pcr_values: vec![[1; 32], [2; 32]],
            public: vec![3; 50],
            private: vec![4; 60],
            nonce: [5; NONCE_LEN],
            ciphertext: vec![6; 100],
        }
    }

    #[test]
    fn round_trips() {
        let bytes = sample().encode().unwrap();
        assert_eq!(SealedFile::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_an_error() {
        let bytes = sample().encode().unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(SealedFile::decode(&b).is_err(), "flip at {i}");
            assert!(SealedFile::decode(&bytes[..i]).is_err(), "cut at {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(SealedFile::decode(&longer), Err(FormatError::Trailing(1)));
    }

    /// With its checksum made right again, so only the field itself is wrong.
    fn resummed(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.truncate(bytes.len() - CHECKSUM_LEN);
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum);
        bytes
    }

    #[test]
    fn repeated_or_unsorted_pcrs_are_refused() {
        // PCR 0 at byte 13, PCR 7 at 13 + 1 + 32.
        let bytes = sample().encode().unwrap();
        let mut repeated = bytes.clone();
        repeated[46] = 0;
        let mut unsorted = bytes.clone();
        unsorted[13] = 7;
        unsorted[46] = 0;
        for b in [repeated, unsorted] {
            let err = SealedFile::decode(&resummed(b)).unwrap_err();
            assert!(
                err.to_string().contains("out of order or repeated"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let mut bytes = sample().encode().unwrap();
        bytes[9] = 9;
        let err = SealedFile::decode(&bytes).unwrap_err();
        assert_eq!(err, FormatError::UnknownVersion { found: 9 });
        assert!(err.to_string().contains("version 9 is unknown"), "{err}");
    }
}

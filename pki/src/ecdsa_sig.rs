//! PKCS#11 returns ECDSA signatures as raw `r || s`; X.509 and CMS want DER.
//!
//! ```text
//! Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }   -- RFC 5480 section 2.2 / RFC 3279
//! ```

use der::asn1::UintRef;
use der::{Encode, Sequence};

use crate::error::{Error, Result};

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Convert a raw `r || s` signature (two equal halves) to DER.
pub fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Invalid("ECDSA signature of odd or zero length"));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let value = EcdsaSigValue {
        r: UintRef::new(r)?,
        s: UintRef::new(s)?,
    };
    Ok(value.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_trimmed_and_high_bits_padded() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s has its top bit set: needs a 0x00 pad
        let der = raw_to_der(&raw).expect("encodes");
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
    }

    #[test]
    fn odd_length_is_refused() {
        assert!(raw_to_der(&[1, 2, 3]).is_err());
        assert!(raw_to_der(&[]).is_err());
    }
}

//! PKIStatusInfo and TimeStampResp, encoded here with RFC 3161's own bit numbers.
//!
//! ```text
//! PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
//!                              failInfo PKIFailureInfo OPTIONAL }
//! PKIFailureInfo ::= BIT STRING { badAlg (0), badRequest (2), badDataFormat (5),
//!     timeNotAvailable (14), unacceptedPolicy (15), unacceptedExtension (16),
//!     addInfoNotAvailable (17), systemFailure (25) }                 -- RFC 3161 2.4.2
//! ```

use cms::content_info::ContentInfo;
use der::asn1::{BitString, Utf8StringRef};
use der::Sequence;

/// PKIStatus values used by a TSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PkiStatus {
    /// granted (0): the token is present.
    Granted = 0,
    /// rejection (2).
    Rejection = 2,
}

/// A PKIFailureInfo bit (RFC 3161 2.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm identifier.
    BadAlg = 0,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The TSA's time source is not available.
    TimeNotAvailable = 14,
    /// The requested TSA policy is not supported.
    UnacceptedPolicy = 15,
    /// The requested extension is not supported.
    UnacceptedExtension = 16,
    /// The request cannot be handled due to system failure.
    SystemFailure = 25,
}

impl FailureInfo {
    /// The DER BIT STRING with only this named bit set (trailing zero bits dropped, X.690 11.2.2).
    pub fn to_bit_string(self) -> der::Result<BitString> {
        let bit = self as usize;
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        BitString::new((7 - bit % 8) as u8, bytes)
    }

    /// The named bits set in a PKIFailureInfo BIT STRING.
    pub fn bits_of(bits: &BitString) -> Vec<usize> {
        bits.bits()
            .enumerate()
            .filter_map(|(i, set)| set.then_some(i))
            .collect()
    }
}

/// PKIStatusInfo.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct StatusInfo<'a> {
    /// PKIStatus.
    pub status: u8,
    /// PKIFreeText.
    #[asn1(optional = "true")]
    pub status_string: Option<Vec<Utf8StringRef<'a>>>,
    /// PKIFailureInfo.
    #[asn1(optional = "true")]
    pub fail_info: Option<BitString>,
}

/// TimeStampResp.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TimeStampResp<'a> {
    /// The status.
    pub status: StatusInfo<'a>,
    /// The token, present when granted.
    #[asn1(optional = "true")]
    pub time_stamp_token: Option<ContentInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn named_bits_encode_as_x690_says() {
        let der = |f: FailureInfo| f.to_bit_string().and_then(|b| b.to_der()).expect("encodes");
        assert_eq!(der(FailureInfo::BadAlg), [0x03, 0x02, 0x07, 0x80]);
        assert_eq!(der(FailureInfo::BadRequest), [0x03, 0x02, 0x05, 0x20]);
        assert_eq!(der(FailureInfo::BadDataFormat), [0x03, 0x02, 0x02, 0x04]);
        assert_eq!(
            der(FailureInfo::UnacceptedPolicy),
            [0x03, 0x03, 0x00, 0x00, 0x01]
        );
        assert_eq!(
            der(FailureInfo::SystemFailure),
            [0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]
        );
        let bits = FailureInfo::TimeNotAvailable
            .to_bit_string()
            .expect("encodes");
        assert_eq!(FailureInfo::bits_of(&bits), vec![14]);
    }
}

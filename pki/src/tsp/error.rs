//! Why a time-stamp request was not granted, and the one mapping to PKIFailureInfo.

use const_oid::ObjectIdentifier;
use der::asn1::Utf8StringRef;
use der::Encode;

use super::status::{FailureInfo, PkiStatus, StatusInfo, TimeStampResp};

/// A request the TSA does not grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TspError {
    /// The body is not a DER TimeStampReq (or has trailing bytes).
    #[error("malformed TimeStampReq: {0}")]
    Malformed(String),
    /// The imprint's hash algorithm is unknown or not allowed.
    #[error("hash algorithm {0} is not accepted")]
    BadAlg(ObjectIdentifier),
    /// The imprint's length does not match its hash algorithm.
    #[error("message imprint is {got} bytes, {expected} expected")]
    BadDataFormat {
        /// Length the hash algorithm gives.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// The requested policy is not one this TSA stamps under.
    #[error("policy {0} is not accepted")]
    UnacceptedPolicy(ObjectIdentifier),
    /// The request carries an extension this TSA does not support.
    #[error("extension {0} is not supported")]
    UnacceptedExtension(ObjectIdentifier),
    /// The clock is not synchronised, so no trustworthy time can be given.
    #[error("the time source is not available")]
    TimeNotAvailable,
    /// The request is well formed but not of a form this TSA accepts.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Something inside the TSA failed (HSM, storage); not the client's fault.
    #[error("system failure")]
    SystemFailure,
}

impl TspError {
    /// The PKIFailureInfo bit that answers this error (RFC 3161 2.4.2).
    pub fn fail_info(&self) -> FailureInfo {
        match self {
            TspError::Malformed(_) | TspError::BadRequest(_) => FailureInfo::BadRequest,
            TspError::BadAlg(_) => FailureInfo::BadAlg,
            TspError::BadDataFormat { .. } => FailureInfo::BadDataFormat,
            TspError::UnacceptedPolicy(_) => FailureInfo::UnacceptedPolicy,
            TspError::UnacceptedExtension(_) => FailureInfo::UnacceptedExtension,
            TspError::TimeNotAvailable => FailureInfo::TimeNotAvailable,
            TspError::SystemFailure => FailureInfo::SystemFailure,
        }
    }
}

/// A TimeStampResp with status rejection, the failInfo for `error`, and its text.
/// Never fails: if encoding should fail, a fixed systemFailure answer is returned.
pub fn rejection(error: &TspError) -> Vec<u8> {
    let text = error.to_string();
    let encoded = Utf8StringRef::new(&text).and_then(|t| {
        TimeStampResp {
            status: StatusInfo {
                status: PkiStatus::Rejection as u8,
                status_string: Some(vec![t]),
                fail_info: Some(error.fail_info().to_bit_string()?),
            },
            time_stamp_token: None,
        }
        .to_der()
    });
    encoded.unwrap_or_else(|_| SYSTEM_FAILURE.to_vec())
}

/// `TimeStampResp { status { rejection, failInfo systemFailure } }`, hand-encoded:
/// SEQUENCE { SEQUENCE { INTEGER 2, BIT STRING (bit 25) } }.
const SYSTEM_FAILURE: [u8; 14] = [
    0x30, 0x0c, 0x30, 0x0a, 0x02, 0x01, 0x02, 0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40,
];

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    fn fail_bits(der: &[u8]) -> Vec<usize> {
        let resp = TimeStampResp::from_der(der).expect("decodes");
        assert_eq!(resp.status.status, PkiStatus::Rejection as u8);
        assert!(resp.time_stamp_token.is_none());
        FailureInfo::bits_of(&resp.status.fail_info.expect("failInfo"))
    }

    #[test]
    fn each_error_answers_with_its_own_bit() {
        let cases = [
            (TspError::BadAlg(const_oid::db::rfc5912::ID_MD_5), 0),
            (TspError::Malformed("x".into()), 2),
            (
                TspError::BadDataFormat {
                    expected: 32,
                    got: 3,
                },
                5,
            ),
            (TspError::TimeNotAvailable, 14),
            (
                TspError::UnacceptedPolicy(const_oid::db::rfc5912::ID_MD_5),
                15,
            ),
            (
                TspError::UnacceptedExtension(const_oid::db::rfc5912::ID_MD_5),
                16,
            ),
            (TspError::SystemFailure, 25),
        ];
        for (err, bit) in cases {
            assert_eq!(fail_bits(&rejection(&err)), vec![bit], "{err}");
        }
    }

    #[test]
    fn fixed_system_failure_answer_is_valid_der() {
        assert_eq!(fail_bits(&SYSTEM_FAILURE), vec![25]);
    }
}

//! Why a request gets no signed answer, and the one mapping to OCSPResponseStatus.
//!
//! ```text
//! OCSPResponseStatus ::= ENUMERATED {
//!     successful (0), malformedRequest (1), internalError (2), tryLater (3),
//!     -- (4) is not used
//!     sigRequired (5), unauthorized (6) }                           -- RFC 6960 4.2.1
//! ```
//!
//! "If the value of responseStatus is one of the error conditions, the responseBytes field
//! is not set" (RFC 6960 4.2.1): such an answer is unsigned.

use der::Encode;
use x509_ocsp::{OcspResponse, OcspResponseStatus};

/// Why a request cannot be answered with a signed response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// The body or GET path is not a DER OCSPRequest (or has trailing bytes), lists no
    /// certificate, or carries an extension this responder cannot honour.
    #[error("malformed OCSPRequest: {0}")]
    Malformed(String),
    /// The nonce is longer than the 32 octets RFC 9654 allows.
    #[error("nonce of {0} octets, at most 32 are allowed")]
    NonceTooLong(usize),
    /// The responder is not authoritative for the certificates asked about (RFC 5019 2.2.3).
    #[error("not authoritative for the requested certificates")]
    Unauthorized,
    /// The responder cannot answer now (e.g. no fresh status data yet); the client may retry.
    #[error("try again later")]
    TryLater,
    /// Something inside the responder failed (HSM, storage, encoding); not the client's fault.
    #[error("internal error: {0}")]
    InternalError(String),
}

impl OcspError {
    /// The OCSPResponseStatus that answers this error (RFC 6960 4.2.1).
    pub fn status(&self) -> OcspResponseStatus {
        match self {
            OcspError::Malformed(_) | OcspError::NonceTooLong(_) => {
                OcspResponseStatus::MalformedRequest
            }
            OcspError::InternalError(_) => OcspResponseStatus::InternalError,
            OcspError::TryLater => OcspResponseStatus::TryLater,
            OcspError::Unauthorized => OcspResponseStatus::Unauthorized,
        }
    }
}

/// The DER OCSPResponse carrying only the responseStatus for `err`.
/// Never fails: if encoding should fail, a fixed internalError answer is returned.
pub fn error_response(err: &OcspError) -> Vec<u8> {
    OcspResponse {
        response_status: err.status(),
        response_bytes: None,
    }
    .to_der()
    .unwrap_or_else(|_| INTERNAL_ERROR.to_vec())
}

/// `OCSPResponse { responseStatus internalError }`, hand-encoded:
/// SEQUENCE { ENUMERATED 2 }.
const INTERNAL_ERROR: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x02];

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    #[test]
    fn each_error_answers_with_its_status_and_nothing_else() {
        let cases = [
            (OcspError::Malformed("x".into()), 1u8),
            (OcspError::NonceTooLong(33), 1),
            (OcspError::InternalError("hsm".into()), 2),
            (OcspError::TryLater, 3),
            (OcspError::Unauthorized, 6),
        ];
        for (err, code) in cases {
            let der = error_response(&err);
            assert_eq!(der, [0x30, 0x03, 0x0a, 0x01, code], "{err}");
            let resp = OcspResponse::from_der(&der).expect("decodes");
            assert_eq!(resp.response_status as u8, code);
            assert!(resp.response_bytes.is_none());
        }
    }

    #[test]
    fn fixed_internal_error_answer_is_valid_der() {
        let resp = OcspResponse::from_der(&INTERNAL_ERROR).expect("decodes");
        assert_eq!(resp.response_status, OcspResponseStatus::InternalError);
    }
}

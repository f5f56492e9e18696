//! An OCSP responder (RFC 6960) in the RFC 5019 lightweight profile, with RFC 9654 nonces,
//! sans-I/O.
//!
//! ```text
//! OCSPResponse ::= SEQUENCE {
//!     responseStatus          OCSPResponseStatus,
//!     responseBytes       [0] EXPLICIT ResponseBytes OPTIONAL }
//! ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
//! BasicOCSPResponse ::= SEQUENCE {
//!     tbsResponseData         ResponseData,
//!     signatureAlgorithm      AlgorithmIdentifier,
//!     signature               BIT STRING,
//!     certs               [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL } -- RFC 6960 4.2.1
//! ```
//!
//! [`decode_get_path`] turns a GET path into DER, [`parse_request`] decodes the request,
//! [`IssuerMatcher::matches`] tells which CertIDs name this CA, the caller looks up each
//! status, [`Responder::prepare`] builds the ResponseData to sign, and
//! [`PreparedResponse::finish`] takes the delegated signer's signature. Every failure maps
//! to one unsigned OCSPResponse through [`error_response`].

mod error;
mod get;
mod issuer;
mod request;
mod response;

pub use error::{error_response, OcspError};
pub use get::{decode_get_path, MAX_GET_PATH_LEN};
pub use issuer::IssuerMatcher;
pub use request::{parse_request, Nonce, ParsedRequest, RequestedCert, MAX_NONCE_LEN};
pub use response::PreparedResponse;

pub use crate::reason::RevocationReason;

use std::time::SystemTime;

use x509_cert::Certificate;

use crate::alg::SignatureScheme;
use crate::x509::key_identifier;

/// The status of one certificate, as the caller found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `time`, for `reason` if one was given.
    Revoked {
        /// When it was revoked; written in whole seconds.
        time: SystemTime,
        /// Why; `None` and [`RevocationReason::Unspecified`] both leave revocationReason out.
        reason: Option<RevocationReason>,
    },
    /// Not known to this responder: a CertID for another issuer, an unsupported hash, or a
    /// serial this CA never issued.
    Unknown,
}

/// One certificate asked about and the answer to give for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleAnswer {
    /// The certificate as the request named it: its CertID is echoed.
    pub cert: RequestedCert,
    /// Its status.
    pub status: CertStatus,
}

/// The delegated OCSP signer (RFC 6960 4.2.2.2): a certificate issued by the CA with
/// id-kp-OCSPSigning, sent in every response, and named byKey in responderID.
#[derive(Clone, Debug)]
pub struct Responder {
    cert: Certificate,
    key_hash: Vec<u8>,
    scheme: SignatureScheme,
}

impl Responder {
    /// A responder that signs as `signer_cert` with `scheme`.
    pub fn new(signer_cert: Certificate, scheme: SignatureScheme) -> Self {
        // KeyHash ::= OCTET STRING -- SHA-1 hash of responder's public key (excluding the
        // tag and length fields)                                      -- RFC 6960 4.2.1
        let key_hash = key_identifier(&signer_cert.tbs_certificate.subject_public_key_info);
        Responder {
            cert: signer_cert,
            key_hash,
            scheme,
        }
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The scheme the signer's key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The responderID byKey: SHA-1 of the signer's subjectPublicKey bits.
    pub fn key_hash(&self) -> &[u8] {
        &self.key_hash
    }
}

//! RFC 3161 time-stamping with RFC 5816 (ESSCertIDv2), sans-I/O.
//!
//! ```text
//! TimeStampReq ::= SEQUENCE { version INTEGER { v1(1) }, messageImprint MessageImprint,
//!     reqPolicy TSAPolicyId OPTIONAL, nonce INTEGER OPTIONAL,
//!     certReq BOOLEAN DEFAULT FALSE, extensions [0] IMPLICIT Extensions OPTIONAL }   -- 2.4.1
//! TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
//! ```
//!
//! [`parse_request`] decodes, [`TimeStampAuthority::check`] applies the policy,
//! [`TimeStampAuthority::prepare`] takes the time and serial and yields the digest to sign,
//! [`PreparedToken::finish`] takes the signature. Every failure maps to one
//! TimeStampResp through [`rejection`].
//!
//! For a stamp the appliance asks of itself (a CAdES signature-time-stamp),
//! [`TimeStampAuthority::accept_imprint`] stands in for the request and
//! [`PreparedToken::finish_token`] yields the bare TimeStampToken.

mod error;
mod request;
mod response;
pub mod status;

pub use error::{rejection, TspError};
pub use request::{parse_request, AcceptedRequest};
pub use response::PreparedToken;

use const_oid::ObjectIdentifier;

use crate::cms::SignerIdentity;

/// How accurate genTime is, as stated in every token (RFC 3161 2.4.2 Accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accuracy {
    /// Whole seconds.
    pub seconds: u64,
    /// Milliseconds, 0 to 999.
    pub millis: u16,
    /// Microseconds, 0 to 999.
    pub micros: u16,
}

/// What the TSA grants: which policies and hashes, and what it says about its clock.
#[derive(Clone, Debug)]
pub struct TsaPolicy {
    /// The policy stamped when the request names none.
    pub default_policy: ObjectIdentifier,
    /// Further policies a request may ask for.
    pub accepted_policies: Vec<ObjectIdentifier>,
    /// The accuracy stated in every token.
    pub accuracy: Accuracy,
    /// Whether SHA-1 message imprints are accepted.
    pub allow_sha1: bool,
}

/// A time-stamping unit: its signer (certificate, chain, scheme) and its policy.
#[derive(Clone, Debug)]
pub struct TimeStampAuthority {
    signer: SignerIdentity,
    policy: TsaPolicy,
}

impl TimeStampAuthority {
    /// A TSA that signs as `signer` under `policy`.
    pub fn new(signer: SignerIdentity, policy: TsaPolicy) -> Self {
        TimeStampAuthority { signer, policy }
    }

    /// The signer.
    pub fn signer(&self) -> &SignerIdentity {
        &self.signer
    }

    /// The policy.
    pub fn policy(&self) -> &TsaPolicy {
        &self.policy
    }
}

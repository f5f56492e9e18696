//! The one error type of this crate.

use const_oid::ObjectIdentifier;

/// Everything that can go wrong while parsing, preparing or finishing a structure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// DER that does not decode, or encodes wrongly; carries the byte position.
    #[error("malformed DER: {0}")]
    Der(#[from] der::Error),
    /// An algorithm this crate does not implement or the policy does not allow.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// A key that cannot be used the way it was asked to.
    #[error("key mismatch: {0}")]
    KeyMismatch(&'static str),
    /// A signature that does not verify with the public key it claims.
    #[error("signature does not verify")]
    BadSignature,
    /// A value outside what the structure allows.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// Result with this crate's error.
pub type Result<T> = core::result::Result<T, Error>;

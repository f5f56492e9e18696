//! What a service can answer instead of a result. Each protocol edge maps it once: the
//! admin socket to its codes, HTTP to a problem and a status.

use signet_state::store::certs::ChangeRefused;
use signet_state::store::StoreError;

/// Why a service did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong (a CSR that does not verify, an unknown profile, ...).
    #[error("{0}")]
    BadRequest(String),
    /// The status change does not apply to the certificate as it stands.
    #[error(transparent)]
    Refused(#[from] ChangeRefused),
    /// Done and recorded, but not yet published (CRL, OCSP); retried in the background.
    #[error("{0}")]
    Unpublished(String),
    /// A dependency cannot be reached now (the shared database): nothing was done, or
    /// it is not confirmed; the caller may ask again.
    #[error("{0}")]
    Unavailable(String),
    /// Something below failed (the store, the HSM, a file).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        match e {
            StoreError::Unreachable(_) | StoreError::Unavailable => ServiceError::Unavailable(
                format!("{e}: not done (or not confirmed); ask again once it is back"),
            ),
            e => ServiceError::internal(e),
        }
    }
}

impl ServiceError {
    /// An internal failure, from anything that says what went wrong.
    pub fn internal(e: impl std::fmt::Display) -> ServiceError {
        ServiceError::Internal(e.to_string())
    }
}

//! Errors of the PKCS#11 layer. A PKCS#11 failure keeps which `C_*` function failed and
//! its exact CK_RV.

use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

/// What went wrong talking to the HSM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("PKCS#11 module {path}: {source}")]
    Module {
        /// The module's path.
        path: PathBuf,
        /// Why.
        source: CkError,
    },
    /// No slot holds a token with this label.
    #[error("no token labelled {0:?}")]
    TokenNotFound(String),
    /// A PKCS#11 call failed (the message names the function and CK_RV).
    #[error("{0}")]
    Pkcs11(#[from] CkError),
    /// No key pair with this label.
    #[error("no key labelled {0:?} in the token")]
    KeyNotFound(String),
    /// A key exists but its attributes make it unfit to use.
    #[error("refusing key {label:?}: {reason}")]
    UnsafeKey {
        /// The key's label.
        label: String,
        /// Which attribute says what.
        reason: &'static str,
    },
    /// A key exists with this label already.
    #[error("a key labelled {0:?} exists already")]
    KeyExists(String),
    /// The key cannot make this kind of signature, or is of a kind Signet does not use.
    #[error("key {label:?}: {reason}")]
    UnsupportedKey {
        /// The key's label.
        label: String,
        /// Why.
        reason: String,
    },
    /// Every worker is busy and the queue is full: try again shortly.
    #[error("HSM busy: the signing queue is full")]
    Busy,
    /// The worker threads are gone (shutting down).
    #[error("HSM workers are not running")]
    Unavailable,
    /// The token returned a signature that does not verify with the key's public key.
    #[error("signature from key {0:?} failed verification; not released")]
    BadSignature(String),
    /// No PIN in the configuration.
    #[error("no user PIN configured")]
    NoPin,
    /// A format error while building a public key or signature.
    #[error(transparent)]
    Pki(#[from] signet_pki::Error),
}

impl HsmError {
    /// Whether the session or login is gone and a fresh session may succeed.
    pub(crate) fn is_session_lost(&self) -> bool {
        matches!(
            self,
            HsmError::Pkcs11(CkError::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
                    | RvError::TokenNotRecognized
                    | RvError::CryptokiNotInitialized,
                _
            ))
        )
    }

    /// Errors that a lost login also produces: a private key not found, a cached handle
    /// that no longer works.
    pub(crate) fn may_be_stale(&self) -> bool {
        matches!(
            self,
            HsmError::KeyNotFound(_)
                | HsmError::Pkcs11(CkError::Pkcs11(
                    RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                    _
                ))
        )
    }

    /// Whether the HSM itself is unreachable or overloaded (as opposed to a bad request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, HsmError::Busy | HsmError::Unavailable) || self.is_session_lost()
    }
}

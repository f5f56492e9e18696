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
    /// After a reconnect, the key under this label is not the one the appliance checked
    /// against its certificate: it is not used.
    #[error("key {0:?} in the token is not the key its certificate names; refusing it")]
    KeyChanged(String),
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
    /// The token is gone (a network HSM unreachable, its server down); the appliance
    /// reconnects in the background and refuses to sign until then.
    #[error("HSM unavailable: reconnecting")]
    Lost,
    /// No answer from the HSM within the bounded wait.
    #[error("the HSM did not answer within {0:?}")]
    Timeout(std::time::Duration),
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
                RvError::SessionHandleInvalid | RvError::SessionClosed | RvError::UserNotLoggedIn,
                _
            ))
        )
    }

    /// Whether the device itself is gone, so that no new session can help until the
    /// module is initialised again. p11-kit's client module answers CKR_DEVICE_ERROR for
    /// every call once its server is gone, C_GetSlotList included, and finds no token after
    /// C_Initialize until the server is back. CKR_GENERAL_ERROR is not among these: a
    /// module may answer it to one odd request, and one request must not take the token
    /// offline for every other; if the device is really gone, the next probe says so.
    pub(crate) fn is_device_lost(&self) -> bool {
        matches!(
            self,
            HsmError::TokenNotFound(_)
                | HsmError::Pkcs11(CkError::Pkcs11(
                    RvError::DeviceError
                        | RvError::DeviceRemoved
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
        matches!(
            self,
            HsmError::Busy | HsmError::Unavailable | HsmError::Lost | HsmError::Timeout(_)
        ) || self.is_session_lost()
            || self.is_device_lost()
    }
}

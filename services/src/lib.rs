//! Signet's services, above the state and the HSM and below every protocol edge: the TSA,
//! the OCSP responder, CRLs, PAdES, issuance, revocation, the key ceremony, the signing
//! keys, the settings read from the config, and the CA's constants. They speak no HTTP and
//! no admin protocol: they return [`ServiceError`], and each edge above maps it once.
#![warn(missing_docs)]

pub mod bucket;
pub mod ceremony;
pub mod crl;
mod error;
pub mod infrastructure;
pub mod issuance;
pub mod metrics;
pub mod ocsp;
pub mod ocsp_renewal;
pub mod pades;
pub mod revocation;
pub mod settings;
pub mod signing_keys;
pub mod source_limit;
pub mod tsa;

pub use error::ServiceError;

//! The PKCS#11 layer: the only code in Signet that touches `cryptoki`.
//!
//! A pool of worker threads each owns one logged-in session (a PKCS#11 session belongs to
//! one thread) and takes jobs from a bounded queue: when the queue is full the caller is
//! told [`HsmError::Busy`] at once instead of waiting without bound. Signing never runs on
//! an async executor thread. Every signature is verified with the public key before it is
//! handed back.

mod error;
mod keys;
mod mechanism;
mod pool;
mod quirks;
mod session;
mod sign;
pub mod softhsm;
#[cfg(test)]
mod tests;
pub mod token;

pub use error::HsmError;
pub use keys::KeyInfo;
pub use pool::{Hsm, HsmSettings};

//! The PKCS#11 layer: the only code in Signet that touches `cryptoki`.
//!
//! A pool of worker threads each owns one logged-in session (a PKCS#11 session belongs to
//! one thread) and takes jobs from a bounded queue of two lanes, urgent work (handshakes,
//! the TSA, OCSP, audit checkpoints) before the signing API's: when a lane is full the
//! caller is told [`HsmError::Busy`] at once instead of waiting without bound. Signing never runs on
//! an async executor thread. Every signature is verified with the public key before it is
//! handed back.
//!
//! A token that goes away (a network HSM's server down) is marked lost by the first
//! worker that sees it: from then on every call fails at once with [`HsmError::Lost`], and
//! one background thread initialises the module again until the token, the login and
//! every key in use are back unchanged. No caller waits longer than the operation timeout.

mod bench;
mod error;
mod health;
mod key_calls;
mod keys;
mod mechanism;
pub mod metrics;
mod module;
mod pool;
mod queue;
mod quirks;
mod reconnect;
mod session;
mod shared;
mod sign;
mod signing;
pub mod softhsm;
#[cfg(test)]
mod tests;
pub mod token;

pub use error::HsmError;
pub use health::Readiness;
pub use keys::{KeyInfo, KeyOrigin};
pub use pool::{Hsm, HsmSettings};

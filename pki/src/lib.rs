//! Signet's formats and protocols, written sans-I/O.
//!
//! Nothing here touches a socket, a thread, a clock or PKCS#11: time, serial numbers and
//! signatures come in as arguments. Each protocol is split in two halves around the one
//! thing only the HSM can do:
//!
//! ```text
//! request bytes --parse--> Request --prepare(time, serial)--> ToBeSigned { digest, scheme }
//!                                                                   |  (HSM signs the digest)
//! response bytes <----------------finish(signature)-----------------+
//! ```
// One reviewed FFI call (verify/p256_table.rs); everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod alg;
pub mod cms;
pub mod crl;
pub mod ecdsa_sig;
pub mod error;
pub mod ocsp;
pub mod pades;
pub mod reason;
#[cfg(test)]
mod test_keys;
mod time;
pub mod tsp;
pub mod verify;
pub mod x509;

pub use alg::{HashAlg, KeyAlgorithm, SignatureScheme};
pub use error::Error;
pub use reason::RevocationReason;

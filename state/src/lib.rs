//! Signet's state, below the services and above the HSM: the store of issued certificates,
//! serials and CRLs (SQLite), the audit log with its signed checkpoints and anchor, the
//! state directory's layout and lock, atomic file writes, the encrypted PDF spool, the
//! clock's sync status, and disk pressure.
#![warn(missing_docs)]

pub mod atomic_write;
pub mod audit;
pub mod clock;
pub mod disk;
pub mod layout;
pub mod metrics;
pub mod spool;
pub mod statelock;
pub mod store;

//! Why the audit log refused: a record not made durable, or a log that must not be opened.

use std::path::PathBuf;

use super::anchor::AnchorError;

/// Why a record could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// Writing or syncing the log failed: the records of this write are not in the log (it
    /// is cut back to its last durable record) and their requests are refused; the next
    /// write tries again.
    #[error("audit log write failed: {0}")]
    Write(String),
    /// The writer is gone (shutting down).
    #[error("audit log closed")]
    Closed,
    /// Opening the log.
    #[error("audit log {path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The anchor does not hold, or the log was rolled back: signetd does not start on it
    /// (it would sign a new anchor over the damage).
    #[error(
        "{0}; signetd does not start on it (README: the audit log). After restoring the \
         state directory from a backup on purpose, move the anchor aside and give the \
         counter a new index (audit.tpm_counter_index)"
    )]
    Anchor(#[from] AnchorError),
    /// The log ends before the checkpoint the anchor names.
    #[error(
        "the audit log ends at record {last}, but the anchor names checkpoint {anchor}: the \
         log was truncated; signetd does not start on it"
    )]
    Truncated {
        /// The last record in the log (none: empty).
        last: String,
        /// The anchor's checkpoint.
        anchor: u64,
    },
    /// The TPM counter could not be read or prepared.
    #[error("audit TPM counter (NV index {index:#010x}): {message}")]
    Counter {
        /// The NV index.
        index: u32,
        /// What went wrong.
        message: String,
    },
}

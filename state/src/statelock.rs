//! One process at a time owns the state directory: signetd for as long as it runs, or a
//! standalone signetctl command while no daemon does. An advisory `flock`, released by the
//! kernel when the process dies, so a `kill -9` never leaves it stuck.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock, held until dropped.
pub struct StateLock {
    _lock: Flock<File>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{0} is in use by another signetd or signetctl")]
    Busy(PathBuf),
    /// The lock file could not be opened.
    #[error("{path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl StateLock {
    /// Take the lock of the state directory `dir` without waiting.
    pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
        let path = dir.join("signet.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| LockError::Io {
                path: path.clone(),
                source,
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(StateLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy(dir.to_owned())),
            Err((_, e)) => Err(LockError::Io {
                path,
                source: e.into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = StateLock::acquire(dir.path()).expect("first");
        assert!(matches!(
            StateLock::acquire(dir.path()),
            Err(LockError::Busy(_))
        ));
        drop(first);
        StateLock::acquire(dir.path()).expect("free again");
    }
}

//! The appliance's state in SQLite: WAL, `synchronous=FULL`, versioned migrations run at open.
//!
//! It holds the serial-number counters, every certificate the appliance issued with its
//! status, and the newest CRL of each CA.

pub mod certs;
pub mod crls;
mod requests;
mod serials;

pub use certs::{CertRecord, CertStatus, ChangeRefused, StatusChange};
pub(crate) use serials::reserve;
pub use serials::SerialAllocator;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer Signet.
    #[error("database schema version {0} is newer than this Signet knows ({1})")]
    TooNew(i64, i64),
    /// A counter ran out of values.
    #[error("serial counter {0:?} exhausted")]
    Exhausted(String),
    /// The database thread is gone.
    #[error("database unavailable")]
    Unavailable,
    /// A value could not be encoded or decoded for storage.
    #[error("stored value: {0}")]
    Encoding(String),
}

/// Each migration takes the schema from version N to N+1; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        next INTEGER NOT NULL CHECK (next >= 1)
    ) STRICT;",
    "CREATE TABLE certificates (
        ca TEXT NOT NULL,
        serial TEXT NOT NULL,
        subject TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        profile TEXT NOT NULL,
        der BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('good', 'revoked', 'hold')),
        changed_at INTEGER,
        reason TEXT,
        PRIMARY KEY (ca, serial)
    ) STRICT;
    CREATE INDEX certificates_by_serial ON certificates (serial);
    CREATE TABLE crls (
        ca TEXT PRIMARY KEY,
        number INTEGER NOT NULL,
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        der BLOB NOT NULL
    ) STRICT;",
];

/// A handle on the database, shared by the appliance's components.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` with the connection on a blocking thread. Only this crate's queries run
    /// here: callers above it ask through the methods of `requests.rs`.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Unavailable)?;
            f(&mut guard)
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }

    /// Run `f` with the connection on this thread (for the CLI and startup).
    pub(crate) fn with_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().map_err(|_| StoreError::Unavailable)?;
        f(&mut guard)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > known {
        return Err(StoreError::TooNew(version, known));
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", n as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        drop(Store::open(&path).expect("first open"));
        let store = Store::open(&path).expect("second open");
        let v: i64 = store
            .with_blocking(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = store
            .with_blocking(|c| Ok(c.pragma_query_value(None, "journal_mode", |r| r.get(0))?))
            .expect("mode");
        assert_eq!(mode, "wal");
    }
}

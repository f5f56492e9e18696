//! The appliance's shared state: the serial-number counters, every certificate the
//! appliance issued with its status, and the newest CRL of each CA.
//!
//! Two backends answer the same questions (`backend::Backend`): SQLite, embedded, for one
//! box; PostgreSQL, for several boxes that share one database. Callers see only `Store`.

mod backend;
pub mod certs;
pub mod crls;
mod postgres;
mod requests;
mod serials;
mod snapshot;
mod sqlite;

pub use backend::NodeSeen;
pub use certs::{CertRecord, CertStatus, ChangeRefused, StatusChange};
pub use postgres::PostgresTarget;
pub use serials::SerialAllocator;
pub use snapshot::Snapshot;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use backend::Backend;

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
    /// PostgreSQL refused or failed a statement.
    #[error("database: {0}")]
    Postgres(String),
    /// The database server cannot be reached (or the connection to it broke): nothing
    /// was changed by the call that got this.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// The connection settings are wrong (URL, CA file, TLS).
    #[error("database settings: {0}")]
    Settings(String),
    /// A migration's destination holds data already.
    #[error("the destination is not empty: {0}")]
    NotEmpty(String),
    /// The database thread is gone.
    #[error("database unavailable")]
    Unavailable,
    /// A value could not be encoded or decoded for storage.
    #[error("stored value: {0}")]
    Encoding(String),
}

/// A handle on the database, shared by the appliance's components.
#[derive(Clone)]
pub struct Store {
    db: Arc<Mutex<Box<dyn Backend>>>,
    /// Whether the last word from the database server was an answer (always, on SQLite):
    /// what `/readyz` and `signetctl status` report, without waiting on the database.
    reachable: Arc<AtomicBool>,
    /// Whether this box signs the CRLs: always with SQLite; with PostgreSQL the one box
    /// that holds the publisher's lock (see `postgres/feed.rs`).
    publisher: Arc<AtomicBool>,
}

impl Store {
    /// Open (creating if needed) the SQLite database at `path` and bring its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::over(sqlite::open(path)?))
    }

    /// Connect to the PostgreSQL database `target` names and bring its schema up to date.
    /// Safe to call from async code: the connection is made off the runtime's threads.
    pub fn connect(target: &PostgresTarget) -> Result<Store, StoreError> {
        let target = target.clone();
        let db = off_runtime(move || postgres::Postgres::connect(target))?;
        Ok(Store::over(db))
    }

    /// The store `config` names: the SQLite file in the state directory (`layout`), or
    /// the PostgreSQL database of `[store]`.
    pub fn open_configured(
        config: &signet_config::Config,
        layout: &crate::layout::StateLayout,
    ) -> Result<Store, StoreError> {
        let s = &config.store;
        match s.backend {
            signet_config::StoreBackend::Sqlite => Store::open(&layout.database()),
            signet_config::StoreBackend::Postgres => Store::connect(&PostgresTarget {
                url: s.url.clone().unwrap_or_default(),
                password: s.password.clone(),
                ca_file: s.ca_file.clone(),
            }),
        }
    }

    fn over(db: impl Backend + 'static) -> Store {
        let alone = db.kind() == "sqlite";
        Store {
            db: Arc::new(Mutex::new(Box::new(db))),
            reachable: Arc::new(AtomicBool::new(true)),
            publisher: Arc::new(AtomicBool::new(alone)),
        }
    }

    /// Whether this box signs the CRLs. The others serve the publisher's newest from the
    /// database (and sign their own only when it is missing or stale).
    pub fn publishes_crls(&self) -> bool {
        self.publisher.load(Ordering::Relaxed)
    }

    /// Whether the database answered the last time this box asked (a query, or the
    /// change feed's connection, which tries again every second while it is down).
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Note what a call's outcome says of the database's reachability.
    fn observe<T>(reachable: &AtomicBool, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => reachable.store(true, Ordering::Relaxed),
            Err(StoreError::Unreachable(_)) => reachable.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
    }

    /// Which backend holds the data: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        self.db.lock().map_or("unavailable", |db| db.kind())
    }

    /// Run `f` with the backend on a blocking thread. Only this crate's queries run
    /// here: callers above it ask through the methods of `requests.rs`.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        let reachable = Arc::clone(&self.reachable);
        tokio::task::spawn_blocking(move || {
            let mut guard = db.lock().map_err(|_| StoreError::Unavailable)?;
            let outcome = f(guard.as_mut());
            Store::observe(&reachable, &outcome);
            outcome
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }

    /// Run `f` with the backend and wait (for the CLI and startup); off the runtime's
    /// threads, since a PostgreSQL client blocks on its own runtime.
    pub(crate) fn with_blocking<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut guard = self.db.lock().map_err(|_| StoreError::Unavailable)?;
            let outcome = f(guard.as_mut());
            Store::observe(&self.reachable, &outcome);
            outcome
        })
    }
}

/// Run `f` on a thread of its own when this one drives async tasks (where blocking on
/// another runtime panics); directly otherwise.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join().map_err(|_| StoreError::Unavailable)?)
}

//! What every store backend answers: the one trait SQLite and PostgreSQL implement.
//!
//! Methods are synchronous; `Store` runs them off the async runtime's threads. The rules
//! (which status change is allowed, what a new record holds) live in `certs`, shared, so
//! a backend is only its SQL.

use std::ops::Range;
use std::time::SystemTime;

use super::certs::{CertRecord, ChangeRefused, StatusChange};
use super::crls::StoredCrl;
use super::snapshot::Snapshot;
use super::StoreError;

/// A database that holds the appliance's shared state.
pub(crate) trait Backend: Send {
    /// `sqlite` or `postgres`, for status pages.
    fn kind(&self) -> &'static str;
    /// Every certificate (of CA `ca` only, when given), by CA then serial.
    fn certificates(&mut self, ca: Option<&str>) -> Result<Vec<CertRecord>, StoreError>;
    /// The certificates whose serial is `serial` (normalised), under any CA.
    fn find_certificate(&mut self, serial: &str) -> Result<Vec<CertRecord>, StoreError>;
    /// Record `records` (each as good) in one transaction; with `replace_all`, every
    /// certificate recorded before is forgotten first (a `--force` ceremony).
    fn record_certificates(
        &mut self,
        records: &[CertRecord],
        replace_all: bool,
    ) -> Result<(), StoreError>;
    /// Apply `change` durably, in one transaction, by `certs::transition`'s rules.
    fn change_status(
        &mut self,
        serial: &str,
        change: &StatusChange,
        at: SystemTime,
    ) -> Result<Result<CertRecord, ChangeRefused>, StoreError>;
    /// Durably move counter `name` forward by `count`: the reserved range, which no other
    /// caller (on this box or another) ever gets.
    fn reserve(&mut self, name: &str, count: u64) -> Result<Range<u64>, StoreError>;
    /// The next value counter `name` would hand out, without moving it.
    fn peek(&mut self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Keep `crl` as the newest of its CA.
    fn save_crl(&mut self, crl: &StoredCrl) -> Result<(), StoreError>;
    /// The cRLNumber of the newest CRL of `ca`, if one was ever saved.
    fn crl_number(&mut self, ca: &str) -> Result<Option<u64>, StoreError>;
    /// The newest CRL of `ca`, if one was ever saved.
    fn latest_crl(&mut self, ca: &str) -> Result<Option<StoredCrl>, StoreError>;
    /// The database's own consistency check: `ok`, or what is wrong.
    fn integrity_check(&mut self) -> Result<String, StoreError>;
    /// The position of the newest entry in the change feed: every status change and
    /// every recorded certificate, in commit order, for the other boxes to follow.
    fn feed_head(&mut self) -> Result<u64, StoreError>;
    /// The certificates changed after feed position `after`, as they now stand, with the
    /// position reached (at most `FEED_PAGE` at a time).
    fn changes_since(&mut self, after: u64) -> Result<(u64, Vec<CertRecord>), StoreError>;
    /// Everything this store holds, to copy into another one.
    fn snapshot(&mut self) -> Result<Snapshot, StoreError>;
    /// Take `snapshot` into this store in one transaction, refusing (`NotEmpty`) when it
    /// holds anything already. Only a shared database is a destination (PostgreSQL).
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StoreError> {
        Err(StoreError::Settings(format!(
            "a {} store is not a migration's destination",
            self.kind()
        )))
    }
    /// Note that box `node` (running `version`, started at `started`) is alive at `at`
    /// (Unix seconds). Nothing to note with one box (SQLite).
    fn heartbeat(
        &mut self,
        _node: &str,
        _version: &str,
        _started: i64,
        _at: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Every box that ever beat, with when it last did (none with SQLite).
    fn nodes(&mut self) -> Result<Vec<NodeSeen>, StoreError> {
        Ok(Vec::new())
    }
    /// Start keeping `watch` up to date (wake-ups, reachability, which box publishes the
    /// CRLs); `false` when no other box can change anything (SQLite).
    fn watch(&self, watch: Watch) -> bool;
}

/// What a box follows of the shared database, kept up to date by the backend.
pub(crate) struct Watch {
    /// Woken whenever another box changed the feed or a CRL, on every reconnection, and
    /// at least once a second; the watching stops once nobody holds it.
    pub signal: std::sync::Weak<tokio::sync::Notify>,
    /// Whether the database answers.
    pub reachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether this box is the one that signs the CRLs (the others serve them from the
    /// database).
    pub publisher: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A box as the shared database last heard of it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeSeen {
    /// `[cluster] node`, or the box's hostname.
    pub name: String,
    /// Its Signet version.
    pub version: String,
    /// When it started, Unix seconds.
    pub started_at: i64,
    /// Its last heartbeat, Unix seconds.
    pub last_seen: i64,
}

/// Feed entries read at a time.
pub(crate) const FEED_PAGE: i64 = 1000;

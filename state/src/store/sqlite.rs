//! The embedded backend: one SQLite file (WAL, `synchronous=FULL`), for a single box.

use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use rusqlite::Connection;

use super::backend::Backend;
use super::certs::{self, CertRecord, ChangeRefused, StatusChange};
use super::crls::{self, StoredCrl};
use super::snapshot::Snapshot;
use super::{serials, StoreError};

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

/// Open (creating if needed) the database at `path` and bring its schema up to date.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&mut conn)?;
    Ok(conn)
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

impl Backend for Connection {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn certificates(&mut self, ca: Option<&str>) -> Result<Vec<CertRecord>, StoreError> {
        match ca {
            Some(ca) => certs::list_for_ca(self, ca),
            None => certs::list(self),
        }
    }

    fn find_certificate(&mut self, serial: &str) -> Result<Vec<CertRecord>, StoreError> {
        certs::find(self, serial)
    }

    fn record_certificates(
        &mut self,
        records: &[CertRecord],
        replace_all: bool,
    ) -> Result<(), StoreError> {
        let tx = self.transaction()?;
        if replace_all {
            certs::clear(&tx)?;
        }
        for rec in records {
            certs::insert_record(&tx, rec)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn change_status(
        &mut self,
        serial: &str,
        change: &StatusChange,
        at: SystemTime,
    ) -> Result<Result<CertRecord, ChangeRefused>, StoreError> {
        certs::change_status(self, serial, change, at)
    }

    fn reserve(&mut self, name: &str, count: u64) -> Result<Range<u64>, StoreError> {
        serials::reserve(self, name, count)
    }

    fn peek(&mut self, name: &str) -> Result<Option<u64>, StoreError> {
        serials::peek(self, name)
    }

    fn save_crl(&mut self, crl: &StoredCrl) -> Result<(), StoreError> {
        crls::save(self, crl)
    }

    fn crl_number(&mut self, ca: &str) -> Result<Option<u64>, StoreError> {
        use rusqlite::OptionalExtension;
        let n: Option<i64> = self
            .query_row("SELECT number FROM crls WHERE ca = ?1", [ca], |r| r.get(0))
            .optional()?;
        Ok(n.map(|n| n.max(0) as u64))
    }

    fn latest_crl(&mut self, ca: &str) -> Result<Option<StoredCrl>, StoreError> {
        crls::latest(self, ca)
    }

    fn integrity_check(&mut self) -> Result<String, StoreError> {
        Ok(self.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn snapshot(&mut self) -> Result<Snapshot, StoreError> {
        // One read transaction: the parts agree with each other.
        let tx = self.transaction()?;
        let certificates = certs::list(&tx)?;
        let counters = tx
            .prepare("SELECT name, next FROM counters")?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
            .collect::<Result<_, _>>()?;
        let crls = tx
            .prepare("SELECT ca, number, this_update, next_update, der FROM crls")?
            .query_map([], |r| {
                Ok(StoredCrl {
                    ca: r.get(0)?,
                    number: r.get::<_, i64>(1)?.max(0) as u64,
                    this_update: r.get::<_, i64>(2)?.max(0) as u64,
                    next_update: r.get::<_, i64>(3)?.max(0) as u64,
                    der: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            certificates,
            counters,
            crls,
        }
        .sorted())
    }

    // One box owns the file: every change it makes it has applied already.
    fn feed_head(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn changes_since(&mut self, after: u64) -> Result<(u64, Vec<CertRecord>), StoreError> {
        Ok((after, Vec::new()))
    }

    fn watch(&self, _watch: super::backend::Watch) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        drop(open(&path).expect("first open"));
        let conn = open(&path).expect("second open");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_schema_from_the_future_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let conn = open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        assert!(matches!(open(&path), Err(StoreError::TooNew(99, _))));
    }
}

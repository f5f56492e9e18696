//! The shared backend: PostgreSQL, for two or more boxes on one database.
//!
//! Each box holds one connection, used from blocking threads only (the `postgres` client
//! runs its own small runtime). A broken connection is dropped and made again on the next
//! call, so a box comes back by itself when the server does; the call that found it broken
//! gets `Unreachable` and changed nothing (every change is one transaction).

mod connect;
mod feed;
mod restore;
mod schema;

pub use connect::PostgresTarget;

use std::ops::Range;
use std::time::SystemTime;

use postgres::{Client, GenericClient, Row};

use super::backend::Backend;
use super::certs::{self, CertRecord, ChangeRefused, StatusChange};
use super::crls::StoredCrl;
use super::StoreError;
use connect::{chain, Dialer};

/// A box's connection to the shared database.
pub(crate) struct Postgres {
    dialer: Dialer,
    client: Option<Client>,
}

impl Postgres {
    /// Connect to `target` and bring its schema up to date.
    pub(crate) fn connect(target: PostgresTarget) -> Result<Postgres, StoreError> {
        let dialer = Dialer::new(&target)?;
        let mut client = dialer.dial()?;
        schema::migrate(&mut client)?;
        Ok(Postgres {
            dialer,
            client: Some(client),
        })
    }

    /// Run `f` on the connection, dialling again if the last one broke; a connection
    /// that breaks during `f` is dropped.
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => self.client.insert(c),
            _ => self.client.insert(self.dialer.dial()?),
        };
        let result = f(client);
        match result {
            Ok(value) => Ok(value),
            // A broken connection (closed, reset, timed out) is in doubt: drop it and
            // dial again next time.
            Err(e) if client.is_closed() || e.is_closed() || broken_io(&e) => {
                self.client = None;
                Err(StoreError::Unreachable(chain(&e)))
            }
            Err(e) => Err(failed(e)),
        }
    }
}

/// Whether the error came from the socket.
fn broken_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The client closes itself by blocking on its own runtime, which panics on a
        // thread that drives async tasks: close it on a thread of its own there.
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            }
        }
    }
}

/// A statement's failure, with PostgreSQL's own message.
pub(super) fn failed(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Postgres(db.message().to_owned()),
        None => StoreError::Postgres(chain(&e)),
    }
}

pub(super) const COLUMNS: &str =
    "ca, serial, subject, not_before, not_after, profile, der, status, changed_at, reason";

pub(super) fn record_of(row: &Row) -> Result<CertRecord, postgres::Error> {
    let status: String = row.try_get(7)?;
    Ok(CertRecord {
        ca: row.try_get(0)?,
        serial: row.try_get(1)?,
        subject: row.try_get(2)?,
        not_before: row.try_get::<_, i64>(3)?.max(0) as u64,
        not_after: row.try_get::<_, i64>(4)?.max(0) as u64,
        profile: row.try_get(5)?,
        der: row.try_get(6)?,
        status: certs::status_of(&status, row.try_get(8)?, row.try_get(9)?),
    })
}

fn records(rows: Vec<Row>) -> Result<Vec<CertRecord>, postgres::Error> {
    rows.iter().map(record_of).collect()
}

fn find(
    c: &mut impl GenericClient,
    serial: &str,
    lock: &str,
) -> Result<Vec<CertRecord>, postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM certificates WHERE serial = $1 ORDER BY ca {lock}");
    records(c.query(&sql, &[&serial])?)
}

fn crl_of(row: &Row) -> Result<StoredCrl, postgres::Error> {
    Ok(StoredCrl {
        ca: row.try_get(0)?,
        number: row.try_get::<_, i64>(1)?.max(0) as u64,
        this_update: row.try_get::<_, i64>(2)?.max(0) as u64,
        next_update: row.try_get::<_, i64>(3)?.max(0) as u64,
        der: row.try_get(4)?,
    })
}

impl Backend for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn certificates(&mut self, ca: Option<&str>) -> Result<Vec<CertRecord>, StoreError> {
        self.run(|c| match ca {
            Some(ca) => records(c.query(
                &format!("SELECT {COLUMNS} FROM certificates WHERE ca = $1 ORDER BY serial"),
                &[&ca],
            )?),
            None => records(c.query(
                &format!("SELECT {COLUMNS} FROM certificates ORDER BY ca, not_before, serial"),
                &[],
            )?),
        })
    }

    fn find_certificate(&mut self, serial: &str) -> Result<Vec<CertRecord>, StoreError> {
        self.run(|c| find(c, serial, ""))
    }

    fn record_certificates(
        &mut self,
        records: &[CertRecord],
        replace_all: bool,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            let mut tx = c.transaction()?;
            if replace_all {
                tx.execute("DELETE FROM certificates", &[])?;
            }
            let insert = tx.prepare(
                "INSERT INTO certificates
                   (ca, serial, subject, not_before, not_after, profile, der, status,
                    changed_at, reason)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'good', NULL, NULL)
                 ON CONFLICT (ca, serial) DO UPDATE SET
                   subject = EXCLUDED.subject, not_before = EXCLUDED.not_before,
                   not_after = EXCLUDED.not_after, profile = EXCLUDED.profile,
                   der = EXCLUDED.der, status = 'good', changed_at = NULL, reason = NULL",
            )?;
            feed::lock(&mut tx)?;
            for r in records {
                let (nb, na) = (r.not_before as i64, r.not_after as i64);
                tx.execute(
                    &insert,
                    &[&r.ca, &r.serial, &r.subject, &nb, &na, &r.profile, &r.der],
                )?;
                feed::append(&mut tx, &r.ca, &r.serial)?;
            }
            tx.commit()
        })
    }

    fn change_status(
        &mut self,
        serial: &str,
        change: &StatusChange,
        at: SystemTime,
    ) -> Result<Result<CertRecord, ChangeRefused>, StoreError> {
        self.run(|c| {
            let mut tx = c.transaction()?;
            // FOR UPDATE: two boxes changing one certificate take turns, and the second
            // sees the first's outcome (a revocation stays final).
            let found = find(&mut tx, serial, "FOR UPDATE")?;
            let (current, new) = match certs::transition(serial, &found, change, at) {
                Ok(t) => t,
                Err(refused) => return Ok(Err(refused)),
            };
            let row = tx.query_one(
                &format!(
                    "UPDATE certificates SET status = $1, changed_at = $2, reason = $3
                     WHERE ca = $4 AND serial = $5 RETURNING {COLUMNS}"
                ),
                &[
                    &new.status,
                    &new.changed_at,
                    &new.reason,
                    &current.ca,
                    &current.serial,
                ],
            )?;
            let updated = record_of(&row)?;
            feed::lock(&mut tx)?;
            feed::append(&mut tx, &updated.ca, &updated.serial)?;
            tx.commit()?;
            Ok(Ok(updated))
        })
    }

    fn reserve(&mut self, name: &str, count: u64) -> Result<Range<u64>, StoreError> {
        let step = i64::try_from(count).map_err(|_| StoreError::Exhausted(name.to_owned()))?;
        // One statement, atomic across boxes: each caller gets its own range.
        let end: i64 = self.run(|c| {
            c.query_one(
                "INSERT INTO counters (name, next) VALUES ($1, 1 + $2::BIGINT)
                 ON CONFLICT (name) DO UPDATE SET next = counters.next + $2::BIGINT
                 RETURNING next",
                &[&name, &step],
            )?
            .try_get(0)
        })?;
        let end = u64::try_from(end).map_err(|_| StoreError::Exhausted(name.to_owned()))?;
        Ok(end - count..end)
    }

    fn peek(&mut self, name: &str) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> = self.run(|c| {
            c.query_opt("SELECT next FROM counters WHERE name = $1", &[&name])?
                .map(|row| row.try_get(0))
                .transpose()
        })?;
        Ok(next.map(|n| n.max(0) as u64))
    }

    fn save_crl(&mut self, crl: &StoredCrl) -> Result<(), StoreError> {
        let (number, this, next) = (
            crl.number as i64,
            crl.this_update as i64,
            crl.next_update as i64,
        );
        self.run(|c| {
            // The other boxes serve it: wake them.
            feed::notify(c)?;
            // A box never replaces a newer CRL (a higher number) with an older one.
            c.execute(
                "INSERT INTO crls (ca, number, this_update, next_update, der)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (ca) DO UPDATE SET number = EXCLUDED.number,
                   this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update,
                   der = EXCLUDED.der
                 WHERE crls.number < EXCLUDED.number",
                &[&crl.ca, &number, &this, &next, &crl.der],
            )
            .map(drop)
        })
    }

    fn crl_number(&mut self, ca: &str) -> Result<Option<u64>, StoreError> {
        let n: Option<i64> = self.run(|c| {
            c.query_opt("SELECT number FROM crls WHERE ca = $1", &[&ca])?
                .map(|row| row.try_get(0))
                .transpose()
        })?;
        Ok(n.map(|n| n.max(0) as u64))
    }

    fn latest_crl(&mut self, ca: &str) -> Result<Option<StoredCrl>, StoreError> {
        self.run(|c| {
            c.query_opt(
                "SELECT ca, number, this_update, next_update, der FROM crls WHERE ca = $1",
                &[&ca],
            )?
            .as_ref()
            .map(crl_of)
            .transpose()
        })
    }

    fn heartbeat(
        &mut self,
        node: &str,
        version: &str,
        started: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO nodes (name, version, started_at, last_seen) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version,
                   started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen",
                &[&node, &version, &started, &at],
            )
            .map(drop)
        })
    }

    fn nodes(&mut self) -> Result<Vec<super::backend::NodeSeen>, StoreError> {
        self.run(|c| {
            c.query(
                "SELECT name, version, started_at, last_seen FROM nodes ORDER BY name",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(super::backend::NodeSeen {
                    name: row.try_get(0)?,
                    version: row.try_get(1)?,
                    started_at: row.try_get(2)?,
                    last_seen: row.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn snapshot(&mut self) -> Result<super::Snapshot, StoreError> {
        self.run(|c| {
            // One REPEATABLE READ transaction: the parts agree with each other.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let certificates =
                records(tx.query(&format!("SELECT {COLUMNS} FROM certificates"), &[])?)?;
            let counters = tx
                .query("SELECT name, next FROM counters", &[])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
                .collect::<Result<_, postgres::Error>>()?;
            let crls = tx
                .query(
                    "SELECT ca, number, this_update, next_update, der FROM crls",
                    &[],
                )?
                .iter()
                .map(crl_of)
                .collect::<Result<_, _>>()?;
            tx.commit()?;
            Ok(super::Snapshot {
                certificates,
                counters,
                crls,
            }
            .sorted())
        })
    }

    fn restore(&mut self, snapshot: &super::Snapshot) -> Result<(), StoreError> {
        let held = self.run(|c| {
            let mut tx = c.transaction()?;
            // Taken first: a box that starts meanwhile waits, and two migrations take turns.
            feed::lock(&mut tx)?;
            let held: i64 = tx
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM certificates) + (SELECT COUNT(*) FROM counters)
                          + (SELECT COUNT(*) FROM crls)",
                    &[],
                )?
                .try_get(0)?;
            if held > 0 {
                return Ok(held);
            }
            restore::copy(&mut tx, snapshot)?;
            tx.commit()?;
            Ok(0)
        })?;
        match held {
            0 => Ok(()),
            n => Err(StoreError::NotEmpty(format!(
                "the database holds {n} rows of Signet state (certificates, counters, CRLs)"
            ))),
        }
    }

    fn feed_head(&mut self) -> Result<u64, StoreError> {
        self.run(feed::head)
    }

    fn changes_since(&mut self, after: u64) -> Result<(u64, Vec<CertRecord>), StoreError> {
        self.run(|c| feed::since(c, after))
    }

    fn watch(&self, watch: super::backend::Watch) -> bool {
        feed::watch(self.dialer.clone(), watch);
        true
    }

    fn integrity_check(&mut self) -> Result<String, StoreError> {
        // PostgreSQL checks its own pages; what a box can check is that every certificate
        // it reads back decodes.
        self.certificates(None)?;
        Ok("ok".into())
    }
}

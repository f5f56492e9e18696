//! PostgreSQL's schema: versioned migrations, run at connect by whichever box gets there
//! first (an advisory lock makes two boxes that start together take turns).

use postgres::Client;

use super::super::StoreError;
use super::failed;

/// Each migration takes the schema from version N to N+1; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        next BIGINT NOT NULL CHECK (next >= 1)
    );
    CREATE TABLE certificates (
        ca TEXT NOT NULL,
        serial TEXT NOT NULL,
        subject TEXT NOT NULL,
        not_before BIGINT NOT NULL,
        not_after BIGINT NOT NULL,
        profile TEXT NOT NULL,
        der BYTEA NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('good', 'revoked', 'hold')),
        changed_at BIGINT,
        reason TEXT,
        PRIMARY KEY (ca, serial)
    );
    CREATE INDEX certificates_by_serial ON certificates (serial);
    CREATE TABLE crls (
        ca TEXT PRIMARY KEY,
        number BIGINT NOT NULL,
        this_update BIGINT NOT NULL,
        next_update BIGINT NOT NULL,
        der BYTEA NOT NULL
    );",
    // The change feed the other boxes follow (see `postgres/feed.rs`).
    "CREATE TABLE status_feed (
        seq BIGSERIAL PRIMARY KEY,
        ca TEXT NOT NULL,
        serial TEXT NOT NULL
    );",
    // The boxes' heartbeats (`signetctl status` lists the others).
    "CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL
    );",
];

/// The advisory lock key migrations hold ("signet" in ASCII).
const MIGRATION_LOCK: i64 = 0x7369_676e_6574;

/// Bring the schema up to date, or refuse one written by a newer Signet.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let mut tx = client.transaction().map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(failed)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS signet_schema (version BIGINT NOT NULL)")
        .map_err(failed)?;
    let version: i64 = match tx
        .query_opt("SELECT version FROM signet_schema", &[])
        .map_err(failed)?
    {
        Some(row) => row.try_get(0).map_err(failed)?,
        None => {
            tx.execute("INSERT INTO signet_schema (version) VALUES (0)", &[])
                .map_err(failed)?;
            0
        }
    };
    if version > known {
        return Err(StoreError::TooNew(version, known));
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(sql).map_err(failed)?;
        tx.execute("UPDATE signet_schema SET version = $1", &[&(n as i64 + 1)])
            .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

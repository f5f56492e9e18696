//! The change feed: how a revocation (or a new certificate) made on one box reaches the
//! others.
//!
//! Every change appends `(ca, serial)` to `status_feed` in the transaction that makes it,
//! under a transaction-scoped advisory lock, so that feed positions commit in order and a
//! reader that has seen position N never later finds a smaller one. The same transaction
//! sends `NOTIFY signet_status`: a wake-up only (a notification is lost while a listener is
//! disconnected), so a box reads the feed from its last position on every wake-up, on
//! every reconnection and once a second regardless.

use std::sync::atomic::Ordering;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient, Transaction};

use super::super::backend::{Watch, FEED_PAGE};
use super::super::certs::CertRecord;
use super::connect::Dialer;
use super::{record_of, COLUMNS};

/// The advisory lock that orders feed appends ("feed" in ASCII).
const FEED_LOCK: i64 = 0x6665_6564;
/// The channel of the wake-ups.
const CHANNEL: &str = "signet_status";
/// The session lock the box that publishes the CRLs holds ("crls" in ASCII), on its
/// feed connection: it is the publisher until that connection ends (its process dies).
const PUBLISHER_LOCK: i64 = 0x6372_6c73;
/// The longest a box goes without reading the feed.
const POLL: Duration = Duration::from_secs(1);

/// Take the feed's append lock until the transaction ends.
pub(super) fn lock(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
        .map(drop)
}

/// Wake the other boxes (at commit, in a transaction).
pub(super) fn notify(c: &mut impl GenericClient) -> Result<(), postgres::Error> {
    c.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).map(drop)
}

/// Append `(ca, serial)` and wake the other boxes at commit.
pub(super) fn append(
    tx: &mut Transaction<'_>,
    ca: &str,
    serial: &str,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO status_feed (ca, serial) VALUES ($1, $2)",
        &[&ca, &serial],
    )?;
    notify(tx)
}

/// The newest feed position (0 when empty).
pub(super) fn head(c: &mut Client) -> Result<u64, postgres::Error> {
    let seq: i64 = c
        .query_one("SELECT COALESCE(MAX(seq), 0) FROM status_feed", &[])?
        .try_get(0)?;
    Ok(seq.max(0) as u64)
}

/// The certificates changed after `after`, as they now stand, and the position reached.
pub(super) fn since(
    c: &mut impl GenericClient,
    after: u64,
) -> Result<(u64, Vec<CertRecord>), postgres::Error> {
    let after_seq = i64::try_from(after).unwrap_or(i64::MAX);
    let columns: String = COLUMNS
        .split(", ")
        .map(|col| format!("c.{col}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = c.query(
        &format!(
            "SELECT {columns}, f.seq FROM status_feed f
             JOIN certificates c ON c.ca = f.ca AND c.serial = f.serial
             WHERE f.seq > $1 ORDER BY f.seq LIMIT $2"
        ),
        &[&after_seq, &FEED_PAGE],
    )?;
    let mut reached = after;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = row.try_get(10)?;
        reached = reached.max(seq.max(0) as u64);
        records.push(record_of(row)?);
    }
    // A page that ended on entries whose certificate was since forgotten (a ceremony)
    // still moves on.
    if rows.is_empty() {
        let skipped: Option<i64> = c
            .query_one(
                "SELECT MAX(seq) FROM (SELECT seq FROM status_feed WHERE seq > $1
                 ORDER BY seq LIMIT $2) s",
                &[&after_seq, &FEED_PAGE],
            )?
            .try_get(0)?;
        reached = reached.max(skipped.unwrap_or(0).max(0) as u64);
    }
    Ok((reached, records))
}

/// Keep `watch` up to date from a thread with a connection of its own, until nobody holds
/// its signal any more: wake it on every notification, every reconnection and every
/// `POLL`; `reachable` follows that connection (down within `POLL` of the server going
/// away); `publisher` says whether this box holds the CRL publisher's lock on it.
pub(super) fn watch(dialer: Dialer, watch: Watch) {
    let spawned = std::thread::Builder::new()
        .name("store-feed".into())
        .spawn(move || listen(&dialer, &watch));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the change-feed listener: changes of other boxes are read at OCSP refresh only");
    }
}

fn listen(dialer: &Dialer, watch: &Watch) {
    let wake = || match watch.signal.upgrade() {
        Some(s) => {
            s.notify_one();
            true
        }
        None => false,
    };
    let down = || {
        watch.reachable.store(false, Ordering::Relaxed);
        // The lock went with the connection.
        watch.publisher.store(false, Ordering::Relaxed);
    };
    loop {
        let mut client = match dialer.dial() {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "change feed: database unreachable");
                down();
                std::thread::sleep(POLL);
                if !wake() {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::debug!(error = %e, "change feed: LISTEN failed");
            down();
            std::thread::sleep(POLL);
            continue;
        }
        watch.reachable.store(true, Ordering::Relaxed);
        // Caught up after (re)connecting: what was notified meanwhile is lost.
        loop {
            if !watch.publisher.load(Ordering::Relaxed) {
                try_to_publish(&mut client, &watch.publisher);
            }
            if !wake() {
                return;
            }
            let waited = client.notifications().timeout_iter(POLL).next();
            if waited.is_err() || client.is_closed() {
                down();
                break;
            }
        }
    }
}

/// Take the publisher's lock if no other box holds it.
fn try_to_publish(client: &mut Client, publisher: &std::sync::atomic::AtomicBool) {
    let taken = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&PUBLISHER_LOCK])
        .and_then(|row| row.try_get::<_, bool>(0));
    if let Ok(true) = taken {
        tracing::info!("this box now publishes the CRLs");
        publisher.store(true, Ordering::Relaxed);
    }
}

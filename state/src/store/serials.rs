//! Serial numbers that are unique and increasing across restarts and crashes.
//!
//! A block of serials is reserved in the database, durably, before the first of them is
//! handed out; the rest of the block is served from memory. A crash loses at most the
//! unused part of a block, never reuses a serial.

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{Store, StoreError};

/// Hands out serials of one named counter.
///
/// When half of the current block is used, the next block is reserved in the background,
/// so that in steady state no request waits for the database's fsync.
#[derive(Clone)]
pub struct SerialAllocator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    name: String,
    block: u64,
    state: Mutex<Blocks>,
}

#[derive(Default)]
struct Blocks {
    current: Range<u64>,
    next: Option<Range<u64>>,
    refilling: bool,
}

impl SerialAllocator {
    /// An allocator for counter `name` that reserves `block` serials at a time.
    pub fn new(store: Store, name: &str, block: u64) -> Self {
        SerialAllocator {
            inner: Arc::new(Inner {
                store,
                name: name.to_owned(),
                block: block.max(1),
                state: Mutex::new(Blocks::default()),
            }),
        }
    }

    /// Serials reserved and not handed out yet (the current block and the next one), or
    /// `None` while a caller holds the blocks.
    pub fn reserved_left(&self) -> Option<u64> {
        let blocks = self.inner.state.try_lock().ok()?;
        let next = blocks.next.as_ref().map_or(0, |r| r.end - r.start);
        Some(blocks.current.end - blocks.current.start + next)
    }

    /// The next serial. Every serial handed out lies in a block that is already durable.
    pub async fn next(&self) -> Result<u64, StoreError> {
        let mut blocks = self.inner.state.lock().await;
        if blocks.current.is_empty() {
            blocks.current = match blocks.next.take() {
                Some(ready) => ready,
                None => self.inner.reserve().await?,
            };
        }
        let serial = blocks.current.start;
        blocks.current.start += 1;
        let half_used = blocks.current.end - blocks.current.start <= self.inner.block / 2;
        if half_used && blocks.next.is_none() && !blocks.refilling {
            blocks.refilling = true;
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let reserved = inner.reserve().await;
                let mut blocks = inner.state.lock().await;
                blocks.refilling = false;
                match reserved {
                    // A caller that found the block empty meanwhile reserved one itself,
                    // after this one: a lower block would make serials go backwards.
                    Ok(range) if range.start >= blocks.current.end => blocks.next = Some(range),
                    Ok(_) => {}
                    // The next call that finds the block empty reserves (and reports) itself.
                    Err(e) => {
                        tracing::warn!(error = %e, counter = %inner.name, "serial prefetch failed")
                    }
                }
            });
        }
        Ok(serial)
    }
}

impl Inner {
    async fn reserve(&self) -> Result<Range<u64>, StoreError> {
        let (name, block) = (self.name.clone(), self.block);
        self.store.with(move |db| db.reserve(&name, block)).await
    }
}

/// The next value counter `name` would hand out, without moving it (`None` before its
/// first use).
pub(crate) fn peek(conn: &rusqlite::Connection, name: &str) -> Result<Option<u64>, StoreError> {
    use rusqlite::OptionalExtension;
    let next: Option<i64> = conn
        .query_row("SELECT next FROM counters WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(next.map(|n| n.max(0) as u64))
}

/// Durably move counter `name` forward by `count`; returns the reserved range.
pub(crate) fn reserve(
    conn: &mut rusqlite::Connection,
    name: &str,
    count: u64,
) -> Result<Range<u64>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let next: i64 = tx
        .query_row("SELECT next FROM counters WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(1),
            e => Err(e),
        })?;
    let start = u64::try_from(next).map_err(|_| StoreError::Exhausted(name.to_owned()))?;
    let end = start
        .checked_add(count)
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or_else(|| StoreError::Exhausted(name.to_owned()))?;
    tx.execute(
        "INSERT INTO counters (name, next) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET next = excluded.next",
        rusqlite::params![name, end as i64],
    )?;
    tx.commit()?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serials_increase_within_and_across_allocators() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let mut seen = Vec::new();
        for _ in 0..3 {
            // A new allocator stands for a restart: the unused rest of a block is skipped.
            let alloc = SerialAllocator::new(Store::open(&path).expect("open"), "tsa", 4);
            for _ in 0..6 {
                seen.push(alloc.next().await.expect("serial"));
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen[..6], [1, 2, 3, 4, 5, 6]);
        // Six serials used blocks 1-4 and 5-8; prefetches of the old allocator may still
        // reserve blocks after it is dropped (here, unlike a real restart, they run on the
        // same runtime). A restart starts a fresh block after every durable one.
        for restart in [6, 12] {
            assert!(
                seen[restart] > seen[restart - 1] && (seen[restart] - 1) % 4 == 0,
                "{seen:?}"
            );
        }
    }

    #[tokio::test]
    async fn concurrent_callers_never_share_a_serial() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alloc = SerialAllocator::new(
            Store::open(&dir.path().join("s.db")).expect("open"),
            "tsa",
            7,
        );
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let a = alloc.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..50 {
                        got.push(a.next().await.expect("serial"));
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            let got = t.await.expect("task");
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "each caller sees them increase"
            );
            all.extend(got);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a serial was handed out twice");
    }

    #[tokio::test]
    async fn counters_are_independent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let a = SerialAllocator::new(store.clone(), "a", 10);
        let b = SerialAllocator::new(store, "b", 10);
        assert_eq!(a.next().await.expect("a"), 1);
        assert_eq!(b.next().await.expect("b"), 1);
        assert_eq!(a.next().await.expect("a"), 2);
    }
}

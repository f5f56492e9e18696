//! Serial numbers that are unique and increasing across restarts and crashes.
//!
//! A block of serials is reserved in the database, durably, before the first of them is
//! handed out; the rest of the block is served from memory. A crash loses at most the
//! unused part of a block, never reuses a serial.

use std::ops::Range;

use tokio::sync::Mutex;

use super::{Store, StoreError};

/// Hands out serials of one named counter.
pub struct SerialAllocator {
    store: Store,
    name: String,
    block: u64,
    reserved: Mutex<Range<u64>>,
}

impl SerialAllocator {
    /// An allocator for counter `name` that reserves `block` serials at a time.
    pub fn new(store: Store, name: &str, block: u64) -> Self {
        SerialAllocator {
            store,
            name: name.to_owned(),
            block: block.max(1),
            reserved: Mutex::new(0..0),
        }
    }

    /// The next serial. Touches the database once per block.
    pub async fn next(&self) -> Result<u64, StoreError> {
        let mut range = self.reserved.lock().await;
        if range.is_empty() {
            let (name, block) = (self.name.clone(), self.block);
            *range = self.store.with(move |c| reserve(c, &name, block)).await?;
        }
        let serial = range.start;
        range.start += 1;
        Ok(serial)
    }
}

/// Durably move counter `name` forward by `count`; returns the reserved range.
pub(super) fn reserve(
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
        assert_eq!(seen[6], 9, "a restart starts after the last reserved block");
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

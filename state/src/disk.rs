//! Disk pressure: free space is sampled on the audit log's and the spool's filesystems,
//! and while it is short the appliance gives up what anonymous callers would otherwise
//! take of it. Public-listener requests are counted per interval instead of recorded one
//! by one (the count is recorded: never silently), so are refused TLS handshakes, and PDF
//! uploads are refused with 507.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{AuditLog, Event};
use crate::clock::now_ms;

/// How often free space is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Distinct (operation, status) keys in one count; the rest are counted as `other`.
const MAX_KEYS: usize = 64;

/// Free space on the two filesystems, as last sampled.
pub struct DiskWatch {
    state: PathBuf,
    spool: PathBuf,
    min_free: u64,
    state_short: AtomicBool,
    spool_short: AtomicBool,
}

impl DiskWatch {
    /// Watch the filesystems of `state` (the audit log) and `spool`, short below
    /// `min_free` bytes.
    pub fn new(state: &Path, spool: &Path, min_free: u64) -> Arc<DiskWatch> {
        let watch = Arc::new(DiskWatch {
            state: state.to_owned(),
            spool: spool.to_owned(),
            min_free,
            state_short: AtomicBool::new(false),
            spool_short: AtomicBool::new(false),
        });
        watch.sample();
        watch
    }

    /// Sample both now; a filesystem that cannot be asked counts as not short (the writes
    /// themselves will tell).
    pub fn sample(&self) {
        for (path, flag, what) in [
            (&self.state, &self.state_short, "the audit log's"),
            (&self.spool, &self.spool_short, "the spool's"),
        ] {
            let short = free_bytes(path).is_some_and(|free| free < self.min_free);
            if flag.swap(short, Ordering::AcqRel) != short {
                if short {
                    tracing::warn!(
                        path = %path.display(),
                        min_free = self.min_free,
                        "{what} filesystem is short of space: public requests are counted, not recorded one by one; PDF uploads are refused"
                    );
                } else {
                    tracing::info!(path = %path.display(), "{what} filesystem has space again");
                }
            }
        }
    }

    /// Whether the audit log's filesystem is short of space.
    pub fn audit_short(&self) -> bool {
        self.state_short.load(Ordering::Acquire)
    }

    /// Whether the spool's filesystem is short of space.
    pub fn spool_short(&self) -> bool {
        self.spool_short.load(Ordering::Acquire)
    }

    /// Sample until `stopped`.
    pub async fn run(self: Arc<Self>, stopped: impl std::future::Future<Output = ()>) {
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || me.sample()).await;
                }
                () = &mut stopped => return,
            }
        }
    }
}

/// Bytes an unprivileged user may still write on the filesystem of `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Public requests answered but not yet recorded.
#[derive(Default)]
pub struct PublicTally {
    counts: Mutex<Option<Summary>>,
}

#[derive(Default)]
struct Summary {
    from_ms: u64,
    to_ms: u64,
    requests: u64,
    counts: BTreeMap<String, u64>,
}

impl Summary {
    fn add(&mut self, key: String, n: u64, from_ms: u64, to_ms: u64) {
        let key = if self.counts.len() < MAX_KEYS || self.counts.contains_key(&key) {
            key
        } else {
            "other".to_owned()
        };
        *self.counts.entry(key).or_default() += n;
        self.requests += n;
        self.from_ms = if self.from_ms == 0 {
            from_ms
        } else {
            self.from_ms.min(from_ms)
        };
        self.to_ms = self.to_ms.max(to_ms);
    }
}

impl PublicTally {
    /// Count one answered request: `operation` and its HTTP `status`.
    pub fn count(&self, operation: &str, status: u16) {
        self.add(format!("{operation} {status}"));
    }

    /// Count one TLS handshake refused before any client certificate was verified.
    pub fn count_refused_handshake(&self) {
        self.add("handshake-refused".to_owned());
    }

    fn add(&self, key: String) {
        let now = now_ms();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .get_or_insert_with(Summary::default)
            .add(key, 1, now, now);
    }

    /// Record what was counted, if anything; on failure the count is kept for the next
    /// try, so that nothing answered goes unrecorded.
    pub async fn flush(&self, audit: &AuditLog) {
        let taken = self.counts.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(summary) = taken else { return };
        let event = Event::PublicSummary {
            from_ms: summary.from_ms,
            to_ms: summary.to_ms,
            requests: summary.requests,
            counts: summary.counts.clone(),
        };
        if audit.record(event).await.is_err() {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let kept = counts.get_or_insert_with(Summary::default);
            for (key, n) in summary.counts {
                kept.add(key, n, summary.from_ms, summary.to_ms);
            }
        }
    }

    /// Record the count every `every` until `stopped`, and once more then.
    pub async fn run(
        self: Arc<Self>,
        audit: AuditLog,
        every: Duration,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(&audit).await,
                () = &mut stopped => {
                    self.flush(&audit).await;
                    return;
                }
            }
        }
    }

    /// Requests counted and not yet recorded.
    pub fn pending(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |s| s.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_bounded_and_add_up() {
        let tally = PublicTally::default();
        for n in 0..200 {
            tally.count(&format!("other M{n}"), 405);
        }
        tally.count("ocsp", 200);
        let counts = tally.counts.lock().unwrap_or_else(|p| p.into_inner());
        let s = counts.as_ref().map(|s| (s.requests, s.counts.len()));
        assert_eq!(s, Some((201, MAX_KEYS + 1)));
    }

    #[test]
    fn a_filesystem_with_room_is_not_short_and_an_impossible_minimum_is() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(!DiskWatch::new(dir.path(), dir.path(), 1).audit_short());
        let w = DiskWatch::new(dir.path(), dir.path(), u64::MAX);
        assert!(w.audit_short() && w.spool_short());
    }
}

//! Whether the token answers: set "lost" by any worker that sees the device go, set "ready"
//! again by the reconnect loop only. Requests read it without a lock and fail fast while
//! the HSM is lost; the daemon watches it to report `/readyz` and the service status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// What the appliance can do with its HSM right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The token answers: requests are signed.
    Ready,
    /// The token is gone; the appliance reconnects in the background and refuses to sign.
    Lost,
}

/// What the reconnect loop is woken by.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// The HSM was marked lost (or is lost still).
    Lost,
    /// The pool is shutting down.
    Stop,
    /// Nothing happened within the wait: time for a probe.
    Idle,
}

pub(super) struct Health {
    ready: AtomicBool,
    stopping: Mutex<bool>,
    changed: Condvar,
    watch: watch::Sender<Readiness>,
    started: Instant,
    /// Milliseconds since `started` of the reconnect loop's last sign of life.
    heartbeat_ms: AtomicU64,
    /// Jobs the workers have begun and finished: a wait that times out while every worker
    /// is in a job and none finishes means the workers are stuck in the token, not merely busy.
    begun: AtomicU64,
    completed: AtomicU64,
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            ready: AtomicBool::new(true),
            stopping: Mutex::new(false),
            changed: Condvar::new(),
            watch: watch::channel(Readiness::Ready).0,
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Mark the HSM lost because of `why`; logged once per loss.
    pub(super) fn mark_lost(&self, why: &str) {
        if self.ready.swap(false, Ordering::AcqRel) {
            tracing::error!(reason = why, "HSM lost: refusing to sign until it is back");
            self.watch.send_replace(Readiness::Lost);
            // Take the lock so that the reconnect loop cannot miss the wake-up.
            let _guard = self.stopping.lock();
            self.changed.notify_all();
        }
    }

    pub(super) fn mark_ready(&self) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            tracing::info!("HSM back: signing again");
            self.watch.send_replace(Readiness::Ready);
        }
    }

    pub(super) fn stop(&self) {
        if let Ok(mut s) = self.stopping.lock() {
            *s = true;
        }
        self.changed.notify_all();
    }

    /// Wait up to `timeout` for a loss or a stop.
    pub(super) fn wait(&self, timeout: Duration) -> Wake {
        let Ok(guard) = self.stopping.lock() else {
            return Wake::Stop;
        };
        let (guard, _) = match self
            .changed
            .wait_timeout_while(guard, timeout, |stop| !*stop && self.is_ready())
        {
            Ok(r) => r,
            Err(_) => return Wake::Stop,
        };
        if *guard {
            Wake::Stop
        } else if self.is_ready() {
            Wake::Idle
        } else {
            Wake::Lost
        }
    }

    /// Sleep `d` unless the pool stops first; returns whether it stops.
    pub(super) fn sleep(&self, d: Duration) -> bool {
        let Ok(guard) = self.stopping.lock() else {
            return true;
        };
        match self.changed.wait_timeout_while(guard, d, |stop| !*stop) {
            Ok((guard, _)) => *guard,
            Err(_) => true,
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Readiness> {
        self.watch.subscribe()
    }

    pub(super) fn beat(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(now, Ordering::Release);
    }

    /// Time since the reconnect loop last showed it is not stuck.
    pub(super) fn since_beat(&self) -> Duration {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::Acquire));
        self.started.elapsed().saturating_sub(last)
    }

    pub(super) fn job_begun(&self) {
        self.begun.fetch_add(1, Ordering::Relaxed);
    }

    /// Workers in a job now.
    pub(super) fn busy(&self) -> u64 {
        let done = self.completed.load(Ordering::Relaxed);
        self.begun.load(Ordering::Relaxed).saturating_sub(done)
    }

    pub(super) fn job_done(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn jobs_done(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_wakes_the_waiter_and_is_announced_once() {
        let health = std::sync::Arc::new(Health::new());
        let mut rx = health.subscribe();
        assert_eq!(health.wait(Duration::from_millis(10)), Wake::Idle);
        let h = std::sync::Arc::clone(&health);
        let waiter = std::thread::spawn(move || h.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        health.mark_lost("test");
        health.mark_lost("again");
        assert_eq!(waiter.join().unwrap(), Wake::Lost);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Readiness::Lost);
        // Still lost: the loop is not put to sleep.
        assert_eq!(health.wait(Duration::from_secs(10)), Wake::Lost);
        health.mark_ready();
        assert_eq!(*rx.borrow_and_update(), Readiness::Ready);
        health.stop();
        assert_eq!(health.wait(Duration::from_secs(10)), Wake::Stop);
    }
}

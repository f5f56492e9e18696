//! The connection budget of one listener: a cap on connections open at once, and per source
//! address a cap on open connections and a token bucket on new ones (TLS handshakes on the
//! API). Checked right after accept, before any byte is read: a connection over budget is
//! closed at once, which costs the appliance nothing and never makes the HSM sign. Each
//! listener has its own, so the public one can never starve the API or the other way round.
//!
//! When the listener is full, a new connection takes the place of the oldest one that has not
//! yet sent a complete request head (it is told to close): connections that send nothing lose
//! to those that come to ask, from whatever number of addresses they come.
//!
//! The per-source table is bounded: when it is full, sources with nothing open are forgotten,
//! oldest first; a source with a connection open is never forgotten, and there are at most
//! `max_connections` of those.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use tokio::sync::Notify;

/// The limits of one listener's budget.
#[derive(Clone, Debug)]
pub struct BudgetLimits {
    /// Connections open at once on the listener.
    pub max_connections: usize,
    /// Connections open at once from one source.
    pub max_per_source: usize,
    /// New connections per second from one source, on average.
    pub per_sec: f64,
    /// New connections from one source in a burst.
    pub burst: f64,
    /// Sources tracked at once.
    pub max_sources: usize,
}

/// Why a new connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The listener has `max_connections` open.
    Full,
    /// The source has `max_per_source` open.
    SourceFull,
    /// The source opens connections faster than its rate.
    TooFast,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Full => "listener at its connection cap",
            Refused::SourceFull => "source at its connection cap",
            Refused::TooFast => "source over its handshake rate",
        })
    }
}

#[derive(Debug)]
struct Source {
    open: usize,
    tokens: f64,
    seen: Instant,
}

#[derive(Debug, Default)]
struct Table {
    open: usize,
    sources: HashMap<IpAddr, Source>,
    /// Connections in the order they were admitted, while they may still be waiting for
    /// their first request head (the others are skipped and pruned).
    waiting: VecDeque<Weak<Waiting>>,
}

/// A connection's standing while it waits for its first request head.
#[derive(Debug, Default)]
struct Waiting {
    served: AtomicBool,
    evicted: AtomicBool,
    notify: Notify,
}

/// One listener's budget, shared by its connections.
#[derive(Debug)]
pub struct Budget {
    limits: BudgetLimits,
    table: Mutex<Table>,
}

/// A connection's place in the budget; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    budget: Arc<Budget>,
    source: IpAddr,
    waiting: Arc<Waiting>,
}

pub use signet_services::source_limit::source_of;

impl Budget {
    /// A budget with `limits` (each at least 1).
    pub fn new(limits: BudgetLimits) -> Arc<Budget> {
        Arc::new(Budget {
            limits,
            table: Mutex::new(Table::default()),
        })
    }

    /// A place for a new connection from `ip` accepted `now`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Slot, Refused> {
        let source = source_of(ip);
        let limits = &self.limits;
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let table = &mut *guard;
        if !table.sources.contains_key(&source) && table.sources.len() >= limits.max_sources {
            forget_idle(&mut table.sources, limits);
        }
        let over_all = table.open >= limits.max_connections;
        let entry = table.sources.entry(source).or_insert(Source {
            open: 0,
            tokens: limits.burst,
            seen: now,
        });
        let elapsed = now.saturating_duration_since(entry.seen).as_secs_f64();
        entry.tokens = (entry.tokens + elapsed * limits.per_sec).min(limits.burst);
        entry.seen = now;
        // Every attempt spends a token, refused or not: a source that keeps knocking while
        // over its cap stays throttled.
        if entry.tokens < 1.0 {
            return Err(Refused::TooFast);
        }
        entry.tokens -= 1.0;
        if entry.open >= limits.max_per_source {
            return Err(Refused::SourceFull);
        }
        if over_all && !evict_oldest_waiting(&mut table.waiting) {
            return Err(Refused::Full);
        }
        entry.open += 1;
        table.open += 1;
        let waiting = Arc::new(Waiting::default());
        if table.waiting.len() >= 2 * limits.max_connections + 16 {
            table.waiting.retain(|w| {
                w.upgrade()
                    .is_some_and(|w| !w.served.load(Ordering::Acquire))
            });
        }
        table.waiting.push_back(Arc::downgrade(&waiting));
        Ok(Slot {
            budget: Arc::clone(self),
            source,
            waiting,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).open
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sources
            .len()
    }
}

/// Tell the oldest connection still waiting for its first request head to close; false if
/// there is none. The listener is over its cap by one until that connection has closed.
fn evict_oldest_waiting(waiting: &mut VecDeque<Weak<Waiting>>) -> bool {
    while let Some(oldest) = waiting.pop_front() {
        let Some(w) = oldest.upgrade() else { continue };
        if w.served.load(Ordering::Acquire) || w.evicted.swap(true, Ordering::AcqRel) {
            continue;
        }
        w.notify.notify_one();
        return true;
    }
    false
}

impl Slot {
    /// The connection has sent a complete request head: it can no longer be evicted.
    pub fn served(&self) {
        self.waiting.served.store(true, Ordering::Release);
    }

    /// Resolves when a newer connection has taken this one's place (before its first request
    /// head): the connection must then close.
    pub async fn evicted(&self) {
        self.waiting.notify.notified().await;
    }
}

/// Make room in a full table: forget every source with nothing open whose bucket has
/// refilled (it is as good as new), and if that frees too little, the older half of the
/// sources with nothing open (so the cost is paid once per many new sources).
fn forget_idle(sources: &mut HashMap<IpAddr, Source>, limits: &BudgetLimits) {
    let now = Instant::now();
    let refill = if limits.per_sec > 0.0 {
        limits.burst / limits.per_sec
    } else {
        f64::INFINITY
    };
    sources
        .retain(|_, s| s.open > 0 || now.saturating_duration_since(s.seen).as_secs_f64() < refill);
    if sources.len() + limits.max_sources / 8 < limits.max_sources {
        return;
    }
    let mut idle: Vec<(Instant, IpAddr)> = sources
        .iter()
        .filter(|(_, s)| s.open == 0)
        .map(|(ip, s)| (s.seen, *ip))
        .collect();
    idle.sort_unstable();
    let forget = idle.len().div_ceil(2);
    for (_, ip) in idle.into_iter().take(forget) {
        sources.remove(&ip);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.budget.table.lock().unwrap_or_else(|p| p.into_inner());
        table.open = table.open.saturating_sub(1);
        if let Some(s) = table.sources.get_mut(&self.source) {
            s.open = s.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> BudgetLimits {
        BudgetLimits {
            max_connections: 10,
            max_per_source: 3,
            per_sec: 2.0,
            burst: 4.0,
            max_sources: 16,
        }
    }

    #[test]
    fn per_source_cap_leaves_room_for_others() {
        let b = Budget::new(limits());
        let t = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| b.admit(a, t).unwrap()).collect();
        assert_eq!(b.admit(a, t).unwrap_err(), Refused::SourceFull);
        assert!(b.admit(other, t).is_ok());
        drop(held);
        assert_eq!(b.open(), 0);
    }

    #[test]
    fn rate_refills() {
        let b = Budget::new(limits());
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..4 {
            drop(b.admit(a, t).unwrap());
        }
        assert_eq!(b.admit(a, t).unwrap_err(), Refused::TooFast);
        assert!(b.admit(a, t + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn listener_cap() {
        let b = Budget::new(limits());
        let t = Instant::now();
        let held: Vec<Slot> = (0..10u8)
            .map(|i| b.admit(IpAddr::from([10, 0, 0, i]), t).unwrap())
            .collect();
        for slot in &held {
            slot.served();
        }
        assert_eq!(
            b.admit("10.0.1.1".parse().unwrap(), t).unwrap_err(),
            Refused::Full
        );
        drop(held);
        assert!(b.admit("10.0.1.1".parse().unwrap(), t).is_ok());
    }

    #[tokio::test]
    async fn a_full_listener_evicts_the_oldest_silent_connection() {
        let b = Budget::new(limits());
        let t = Instant::now();
        let held: Vec<Slot> = (0..10u8)
            .map(|i| b.admit(IpAddr::from([10, 0, 0, i]), t).unwrap())
            .collect();
        // The oldest has asked already: the second oldest goes.
        held[0].served();
        let newcomer = b.admit("10.0.1.1".parse().unwrap(), t).unwrap();
        tokio::time::timeout(Duration::from_secs(1), held[1].evicted())
            .await
            .unwrap();
        assert!(held[1].waiting.evicted.load(Ordering::Acquire));
        assert!(!held[2].waiting.evicted.load(Ordering::Acquire));
        newcomer.served();
        drop(newcomer);
        drop(held);
        assert_eq!(b.open(), 0);
    }

    #[test]
    fn table_stays_bounded() {
        let b = Budget::new(limits());
        let t = Instant::now();
        let held = b.admit("10.9.9.9".parse().unwrap(), t).unwrap();
        for i in 0..1000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            drop(b.admit(ip, t));
            assert!(b.sources() <= 16);
        }
        // The source with a connection open is still counted.
        let table = b.table.lock().unwrap();
        assert_eq!(table.sources.get(&held.source).map(|s| s.open), Some(1));
    }

    #[test]
    fn ipv6_counts_by_prefix() {
        assert_eq!(
            source_of("2001:db8::1".parse().unwrap()),
            source_of("2001:db8::ffff:2".parse().unwrap())
        );
        assert_eq!(
            source_of("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}

//! A rate per source address for work that anyone who reaches a listener can ask for and
//! that costs an HSM signature (OCSP answers signed live). The table of sources is bounded:
//! when it is full the sources that have been quiet longest are forgotten (a forgotten
//! source starts again with a full bucket, which costs at most one burst).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bucket::TokenBucket;

/// The address a source is counted under: IPv4 as is (an IPv4-mapped IPv6 address as its
/// IPv4 address), IPv6 by its /64, which one host usually has whole.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// See the module documentation.
pub struct SourceRates {
    per_sec: f64,
    burst: f64,
    max_sources: usize,
    table: Mutex<HashMap<IpAddr, (TokenBucket, Instant)>>,
}

impl SourceRates {
    /// `per_sec` on average and `burst` at once from each source; at most `max_sources`
    /// tracked.
    pub fn new(per_sec: f64, burst: f64, max_sources: usize) -> SourceRates {
        SourceRates {
            per_sec,
            burst: burst.max(1.0),
            max_sources: max_sources.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Take one unit for `ip` now, or say how long until it may have one.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let source = source_of(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&source) && table.len() >= self.max_sources {
            forget_quietest_half(&mut table);
        }
        let (bucket, seen) = table
            .entry(source)
            .or_insert_with(|| (TokenBucket::new(self.per_sec, self.burst, now), now));
        *seen = now;
        bucket.take(now)
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Forget the half of the sources seen least recently: the cost is paid once per many new
/// sources.
fn forget_quietest_half(table: &mut HashMap<IpAddr, (TokenBucket, Instant)>) {
    let mut seen: Vec<(Instant, IpAddr)> = table.iter().map(|(ip, (_, t))| (*t, *ip)).collect();
    seen.sort_unstable();
    for (_, ip) in seen.into_iter().take(table.len().div_ceil(2)) {
        table.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_source_is_limited_while_another_is_served() {
        let rates = SourceRates::new(1.0, 3.0, 16);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rates.take(ip(1), t0).is_ok());
        }
        assert!(rates.take(ip(1), t0).is_err());
        assert!(rates.take(ip(2), t0).is_ok());
        assert!(rates.take(ip(1), t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let rates = SourceRates::new(1.0, 1.0, 8);
        let t0 = Instant::now();
        for n in 0..200u8 {
            let _ = rates.take(ip(n), t0 + Duration::from_millis(u64::from(n)));
        }
        assert!(rates.sources() <= 8, "{}", rates.sources());
    }
}

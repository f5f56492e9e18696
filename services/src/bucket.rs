//! A token bucket: `rate` tokens a second, at most `burst` saved up.

use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take a token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.take_n(1, now)
    }

    /// Take `n` tokens (a batch of `n` signatures), or say how long until they are there.
    /// A cost above the burst is taken from a full bucket and leaves it in debt, so that a
    /// large batch is possible but paid for at the same rate as single requests.
    pub fn take_n(&mut self, n: u32, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        let (cost, needed) = (f64::from(n), f64::from(n).min(self.burst));
        if self.tokens >= needed {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_costs_one_token_per_item_and_may_go_into_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 20.0, t0);
        assert!(b.take_n(15, t0).is_ok());
        // Five left: a batch of ten waits half a second.
        let wait = b.take_n(10, t0).expect_err("five left");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Full again after two seconds; a batch of 100 (over the burst) is taken from a
        // full bucket and leaves 80 of debt: the next single token is 8.1 s away.
        let later = t0 + Duration::from_secs(2);
        assert!(b.take_n(100, later).is_ok());
        let wait = b.take(later).expect_err("in debt");
        assert!((wait.as_secs_f64() - 8.1).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
        // A long pause fills it to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }
}

//! How long the writer waits for more records before a small batch's sync: long enough to
//! share one sync among several records when answers come slowly (RSA under load), never
//! so long that waiting becomes a noticeable part of an answer's time.

use std::time::Duration;

use super::record::Event;

/// The shortest commit delay: what fast answers (P-256, 8 clients and more) need for a sync
/// to carry two or three of them.
pub(super) const FLOOR: Duration = Duration::from_micros(300);
/// The longest: a sync never waits more than this for company.
pub(super) const CEILING: Duration = Duration::from_millis(2);
/// The delay is this part of a request's recent mean time (an eighth: at most 12.5% more
/// latency, above the floor).
const SHARE: u32 = 8;
/// Weight of each new request in the mean (an exponential moving average over about the
/// last 16 requests).
const WEIGHT: f64 = 1.0 / 16.0;

/// The commit delay, from the recent mean time of requests (PostgreSQL's `commit_delay`,
/// made to follow the load rather than fixed).
#[derive(Debug, Default)]
pub(super) struct CommitDelay {
    /// Mean request time, microseconds; zero before the first request.
    mean_us: f64,
}

impl CommitDelay {
    /// Take a request's time into the mean; other events do not count.
    pub(super) fn observe(&mut self, event: &Event) {
        let Event::Request { latency_us, .. } = event else {
            return;
        };
        // A stuck request (minutes) moves the mean by no more than the ceiling's worth.
        let sample = (*latency_us as f64).min(CEILING.as_micros() as f64 * f64::from(SHARE));
        self.mean_us = if self.mean_us == 0.0 {
            sample
        } else {
            self.mean_us + WEIGHT * (sample - self.mean_us)
        };
    }

    /// How long a small batch waits now.
    pub(super) fn current(&self) -> Duration {
        Duration::from_secs_f64(self.mean_us / 1e6 / f64::from(SHARE)).clamp(FLOOR, CEILING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(latency_us: u64) -> Event {
        Event::Request {
            listener: "api".into(),
            client: None,
            client_sha256: None,
            operation: "tsa".into(),
            key: None,
            input_sha256: None,
            status: 200,
            latency_us,
            refused: None,
            items: None,
            peer: None,
        }
    }

    fn settled(latency_us: u64) -> Duration {
        let mut d = CommitDelay::default();
        for _ in 0..200 {
            d.observe(&request(latency_us));
        }
        d.current()
    }

    #[test]
    fn the_delay_is_an_eighth_of_a_request_between_floor_and_ceiling() {
        assert_eq!(CommitDelay::default().current(), FLOOR);
        // Fast answers (P-256 at 8 clients, about 1.3 ms): the floor.
        assert_eq!(settled(1_300), FLOOR);
        // Slow answers (RSA-2048 at 32 clients, about 12 ms): an eighth of them.
        let rsa = settled(12_000);
        assert!(rsa.abs_diff(Duration::from_micros(1_500)) < Duration::from_micros(5));
        // Stuck requests: never more than the ceiling, and the mean comes back soon after.
        let mut d = CommitDelay::default();
        d.observe(&request(60_000_000));
        assert_eq!(d.current(), CEILING);
        for _ in 0..100 {
            d.observe(&request(1_000));
        }
        assert_eq!(d.current(), FLOOR);
    }

    #[test]
    fn only_requests_count() {
        let mut d = CommitDelay::default();
        d.observe(&Event::Start {
            version: "test".into(),
            torn_bytes: 0,
        });
        assert_eq!(d.current(), FLOOR);
        d.observe(&request(16_000));
        assert_eq!(d.current(), CEILING);
    }
}

//! A/B comparison of two running servers on a noisy machine.
//!
//! On a small virtual machine the same point measured twice a minute apart can differ by
//! half (the host's other tenants come and go), far more than a cost of a few percent. So
//! both variants run at once, each idle while the other is measured, and the load moves
//! between them in short slices, in the order A B, B A, A B, ... so that a drift in time
//! weighs on both alike. Each round gives one ratio B/A of two slices taken side by side;
//! the median of those ratios is the figure.

use std::time::Duration;

/// What one slice of load measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Slice {
    /// Good answers.
    pub answers: u64,
    /// Wall time of the measured window.
    pub elapsed: Duration,
    /// CPU time the server used over the window.
    pub server_cpu: Duration,
}

impl Slice {
    /// Good answers per second.
    pub fn rate(&self) -> f64 {
        self.answers as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One variant's slices added up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    answers: u64,
    elapsed: Duration,
    server_cpu: Duration,
}

impl Totals {
    fn add(&mut self, s: Slice) {
        self.answers += s.answers;
        self.elapsed += s.elapsed;
        self.server_cpu += s.server_cpu;
    }

    /// Good answers per second over every slice.
    pub fn rate(&self) -> f64 {
        self.answers as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The server's CPU time per good answer, in microseconds.
    pub fn cpu_us_per_answer(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.answers.max(1) as f64
    }
}

/// The outcome of [`compare`].
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Variant A over every slice.
    pub a: Totals,
    /// Variant B over every slice.
    pub b: Totals,
    /// The median over rounds of (B's rate / A's rate - 1), in percent.
    pub rate_change_pct: f64,
    /// The median over rounds of (B's CPU per answer / A's - 1), in percent.
    pub cpu_change_pct: f64,
    /// Rounds run.
    pub rounds: usize,
}

impl Comparison {
    /// One line: each side's rate and server CPU per answer, then the changes, with the
    /// names of the two sides (e.g. "off", "on").
    pub fn summary(&self, names: (&str, &str)) -> String {
        format!(
            "{} {:.0}/s {:.1} us/answer, {} {:.0}/s {:.1} us/answer: {:+.1}% throughput, \
             {:+.1}% server CPU per answer (medians of {} paired slices)",
            names.0,
            self.a.rate(),
            self.a.cpu_us_per_answer(),
            names.1,
            self.b.rate(),
            self.b.cpu_us_per_answer(),
            self.rate_change_pct,
            self.cpu_change_pct,
            self.rounds
        )
    }
}

/// Measure `a` and `b` in `rounds` rounds of one slice each, the order alternating.
pub fn compare(
    rounds: usize,
    mut a: impl FnMut() -> Slice,
    mut b: impl FnMut() -> Slice,
) -> Comparison {
    assert!(rounds > 0, "at least one round");
    let (mut ta, mut tb) = (Totals::default(), Totals::default());
    let (mut rate_ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (sa, sb) = if round % 2 == 0 {
            let sa = a();
            (sa, b())
        } else {
            let sb = b();
            (a(), sb)
        };
        ta.add(sa);
        tb.add(sb);
        rate_ratios.push(sb.rate() / sa.rate().max(1e-9));
        let cpu = |s: &Slice| s.server_cpu.as_secs_f64() / s.answers.max(1) as f64;
        cpu_ratios.push(cpu(&sb) / cpu(&sa).max(1e-12));
    }
    Comparison {
        a: ta,
        b: tb,
        rate_change_pct: 100.0 * (median(rate_ratios) - 1.0),
        cpu_change_pct: 100.0 * (median(cpu_ratios) - 1.0),
        rounds,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(answers: u64, ms: u64) -> Slice {
        Slice {
            answers,
            elapsed: Duration::from_millis(ms),
            server_cpu: Duration::from_millis(answers / 10),
        }
    }

    #[test]
    fn a_drift_shared_by_both_sides_cancels_out() {
        // The machine slows to half its speed over the run; B is 2% slower throughout.
        let slot = std::cell::Cell::new(0u32);
        let speed = || {
            slot.set(slot.get() + 1);
            1.0 - f64::from(slot.get()) / 40.0
        };
        let c = compare(
            20,
            || slice((10_000.0 * speed()) as u64, 1000),
            || slice((9_800.0 * speed()) as u64, 1000),
        );
        assert!((c.rate_change_pct + 2.0).abs() < 0.5, "{c:?}");
        // The totals too: slices in alternation share the drift.
        assert!(c.b.rate() / c.a.rate() > 0.9, "{c:?}");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}

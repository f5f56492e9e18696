//! The cost of an answer, side by side with its limits, for the benchmarks: signetd's CPU
//! per answer (and which of its threads spent it), the raw PKCS#11 C_Sign CPU per signature
//! of the same key, and the bare mTLS server's CPU per request (`crate::bare`), all measured
//! in the same run.
//!
//! The budgets are the appliance's goals: an elliptic-curve answer may cost at most the raw
//! signature plus twice the bare server's request with one software signature (HTTP, TLS
//! and one signature's worth of checking); an RSA answer at most 10% over the raw signature.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bare::{Bare, BareMode, Transport};

/// CPU time per thread name of process `pid` so far, from the scheduler's nanosecond
/// counters (`/proc/PID/task/TID/schedstat`); numbered names are summed (`hsm-0`, `hsm-1`
/// count as `hsm`). Threads that ended are not counted.
pub fn thread_cpu(pid: u32) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(comm), Ok(sched)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue;
        };
        let ns: u64 = sched
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        *by_name.entry(name.to_owned()).or_default() += Duration::from_nanos(ns);
    }
    by_name
}

/// What each thread name spent between two [`thread_cpu`] readings, per answer, largest
/// first, as `name 12 us, ...`.
pub fn split_per_answer(
    before: &BTreeMap<String, Duration>,
    after: &BTreeMap<String, Duration>,
    answers: u64,
) -> String {
    let mut parts: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t)| {
            let spent = t.saturating_sub(before.get(name).copied().unwrap_or_default());
            (
                name.clone(),
                spent.as_secs_f64() * 1e6 / answers.max(1) as f64,
            )
        })
        .filter(|(_, us)| *us >= 0.5)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    parts
        .iter()
        .map(|(name, us)| format!("{name} {us:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bare server's CPU per request at each client count, with no signature and with one.
pub struct BareCosts {
    points: Vec<(usize, Duration, Duration)>,
    /// The median latency with no signature, at each client count.
    p50s: Vec<(usize, Duration)>,
}

impl BareCosts {
    /// Measure both modes at each of `clients` for `duration` each (two workers, as
    /// signetd's runtime).
    pub fn measure(transport: Transport, clients: &[usize], duration: Duration) -> BareCosts {
        let cost = |mode| {
            let bare = Bare::start(mode, transport, 2);
            clients
                .iter()
                .map(|&c| {
                    let l = bare.load(c, duration);
                    assert_eq!(l.errors, 0, "the bare server failed {} requests", l.errors);
                    l
                })
                .collect::<Vec<_>>()
        };
        let (echo, ecdsa) = (cost(BareMode::Echo), cost(BareMode::Ecdsa));
        let p50s = clients
            .iter()
            .zip(&echo)
            .map(|(&c, e)| (c, e.p50))
            .collect();
        let points = clients
            .iter()
            .zip(echo.into_iter().zip(ecdsa))
            .map(|(&c, (e, s))| (c, e.cpu, s.cpu))
            .collect();
        BareCosts { points, p50s }
    }

    /// The median latency with no signature at `clients`, if measured: what HTTP, TLS and
    /// the load generator alone take.
    pub fn p50(&self, clients: usize) -> Option<Duration> {
        self.p50s
            .iter()
            .find(|(c, _)| *c == clients)
            .map(|&(_, p)| p)
    }

    /// (no signature, one signature) CPU per request at `clients`, or at the nearest count
    /// measured.
    pub fn at(&self, clients: usize) -> (Duration, Duration) {
        self.points
            .iter()
            .min_by_key(|(c, _, _)| c.abs_diff(clients))
            .map(|&(_, e, s)| (e, s))
            .unwrap_or_default()
    }

    /// One line per client count.
    pub fn describe(&self) -> String {
        self.points
            .iter()
            .map(|(c, e, s)| {
                format!(
                    "{c} clients: {:.0} us, {:.0} us with a P-256 signature",
                    e.as_secs_f64() * 1e6,
                    s.as_secs_f64() * 1e6
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Which budget an answer is held to.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Elliptic curve: raw + 2 x the bare server's request with a signature.
    Ec,
    /// RSA: raw + 10%.
    Rsa,
}

/// One measured point, for the cost table.
pub struct CostRow {
    /// What was measured (`TSA ec-p256`, `/v1/sign doc-rsa`, ...).
    pub what: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Good answers per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// signetd's CPU per answer.
    pub server_cpu: Duration,
    /// The raw C_Sign CPU per signature of the same key.
    pub raw_cpu: Duration,
    /// The budget.
    pub budget: Budget,
    /// Where signetd's CPU went, per thread ([`split_per_answer`]).
    pub split: String,
}

/// The machine's CPU idle policy, printed beside the figures: at 1 client every hand-off
/// wakes an idle CPU, and how long that takes is the machine's (on a VM whose guest does not
/// poll before it halts, each wake-up is a trip through the host).
pub fn idle_policy() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let driver =
        read("/sys/devices/system/cpu/cpuidle/current_driver").unwrap_or_else(|| "unknown".into());
    match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
        Some(ns) => format!("CPU idle: {driver}, guest halt polling {ns} ns"),
        None => format!("CPU idle: {driver}"),
    }
}

/// The header of [`row`]'s lines.
pub fn header() -> String {
    format!(
        "{:<22} {:>7} {:>8} {:>7} {:>7} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7}  signetd's threads, us/answer",
        "path", "clients", "req/s", "p50 ms", "p99 ms", "signetd", "raw", "bare", "bare+sig", "budget", "used"
    )
}

/// One line of the cost table: the CPU columns in microseconds per answer; `used` is
/// signetd's CPU over the budget.
pub fn row(r: &CostRow, bare: &BareCosts) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (echo, signed) = bare.at(r.clients);
    let budget = match r.budget {
        Budget::Ec => us(r.raw_cpu) + 2.0 * us(signed),
        Budget::Rsa => 1.1 * us(r.raw_cpu),
    };
    format!(
        "{:<22} {:>7} {:>8.0} {:>7.2} {:>7.2} {:>9.0} {:>7.0} {:>7.0} {:>8.0} {:>7.0} {:>6.0}%  {}",
        r.what,
        r.clients,
        r.rate,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        us(r.server_cpu),
        us(r.raw_cpu),
        us(echo),
        us(signed),
        budget,
        100.0 * us(r.server_cpu) / budget.max(f64::MIN_POSITIVE),
        r.split
    )
}

//! The audit log's writes, for Prometheus: records written, records per group commit, the
//! time each write and fdatasync took, and when the last checkpoint was signed.
//! Process-wide (one log per process); signetd registers them ([`register`]).

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Which thread made a group commit durable.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Committer {
    /// The writer's own thread, for a batch of records handed to it.
    writer,
    /// A request's thread, for its own record when it was alone.
    request,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabels {
    by: Committer,
}

struct AuditMetrics {
    records: Counter,
    commits: Family<CommitLabels, Counter>,
    batch_records: Histogram,
    write_seconds: Histogram,
    last_checkpoint: Gauge<f64, AtomicU64>,
}

static METRICS: LazyLock<AuditMetrics> = LazyLock::new(|| AuditMetrics {
    records: Counter::default(),
    commits: Family::default(),
    // 1 to 4096 records in one group commit.
    batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
    // 50 us (a page cache with a write cache) to about 1.6 s (a disk in trouble).
    write_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
    last_checkpoint: Gauge::default(),
});

/// `records` written and made durable in one group commit that took `took`, on `by`'s
/// thread.
pub(crate) fn committed(records: usize, took: Duration, by: Committer) {
    let m = &*METRICS;
    m.records.inc_by(records as u64);
    m.commits.get_or_create(&CommitLabels { by }).inc();
    m.batch_records.observe(records as f64);
    m.write_seconds.observe(took.as_secs_f64());
}

/// A checkpoint was signed and written now.
pub(crate) fn checkpointed() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    METRICS.last_checkpoint.set(now);
}

/// When the last checkpoint was signed (Unix seconds), if one was since the start.
pub fn last_checkpoint() -> Option<f64> {
    let at = METRICS.last_checkpoint.get();
    (at > 0.0).then_some(at)
}

/// Put the audit log's metrics in `registry` (under its `signet_audit` prefix).
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register(
        "records",
        "Audit records written and made durable",
        m.records.clone(),
    );
    registry.register(
        "commits",
        "Group commits (one write made durable), by the thread that made it: the writer's, or a lone request's own",
        m.commits.clone(),
    );
    registry.register(
        "commit_batch_records",
        "Records per group commit (one write and fdatasync)",
        m.batch_records.clone(),
    );
    registry.register_with_unit(
        "write",
        "Time one group commit's write and fdatasync took",
        Unit::Seconds,
        m.write_seconds.clone(),
    );
    registry.register_with_unit(
        "last_checkpoint_timestamp",
        "When the last signed checkpoint was written, Unix time",
        Unit::Seconds,
        m.last_checkpoint.clone(),
    );
}

//! What the token does, for Prometheus: the latency of each PKCS#11 signature by
//! mechanism, operations that timed out, and reconnects. Process-wide (one token module per
//! process); signetd registers them with its registry ([`register`]).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Operation {
    operation: &'static str,
    mechanism: &'static str,
}

struct HsmMetrics {
    operation_seconds: Family<Operation, Histogram>,
    timeouts: Counter,
    reconnects: Counter,
}

static METRICS: LazyLock<HsmMetrics> = LazyLock::new(|| HsmMetrics {
    // 0.25 ms to about 8 s: a software token to a network HSM under load.
    operation_seconds: Family::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
    }),
    timeouts: Counter::default(),
    reconnects: Counter::default(),
});

/// One operation in the token took `took` (the token's own time, not the queue's).
pub(crate) fn observe(operation: &'static str, mechanism: &'static str, took: Duration) {
    METRICS
        .operation_seconds
        .get_or_create(&Operation {
            operation,
            mechanism,
        })
        .observe(took.as_secs_f64());
}

/// A caller's wait ran out (`op_timeout`).
pub(crate) fn timed_out() {
    METRICS.timeouts.inc();
}

/// The token came back after a loss.
pub(crate) fn reconnected() {
    METRICS.reconnects.inc();
}

/// Put the token's metrics in `registry` (under its `signet_hsm` prefix).
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register_with_unit(
        "operation",
        "Time the token took for one operation, by operation and mechanism",
        Unit::Seconds,
        m.operation_seconds.clone(),
    );
    registry.register(
        "timeouts",
        "Operations whose caller stopped waiting after hsm.op_timeout_ms",
        m.timeouts.clone(),
    );
    registry.register(
        "reconnects",
        "Times the token came back after it was lost",
        m.reconnects.clone(),
    );
}

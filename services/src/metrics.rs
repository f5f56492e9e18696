//! What the services' upkeep does, for Prometheus: OCSP answers and CRLs re-signed before
//! their nextUpdate. Process-wide; signetd registers them ([`register`]).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

struct UpkeepMetrics {
    ocsp_resigned: Counter,
    crls_resigned: Counter,
}

static METRICS: LazyLock<UpkeepMetrics> = LazyLock::new(|| UpkeepMetrics {
    ocsp_resigned: Counter::default(),
    crls_resigned: Counter::default(),
});

/// A re-sign run signed `responses` OCSP answers and `crls` CRLs.
pub(crate) fn resigned(responses: usize, crls: usize) {
    METRICS.ocsp_resigned.inc_by(responses as u64);
    METRICS.crls_resigned.inc_by(crls as u64);
}

/// Put the upkeep's metrics in `registry` (signetd's `signet_` registry).
pub fn register(registry: &mut Registry) {
    registry.register(
        "ocsp_resigned_answers",
        "Pre-signed OCSP answers re-signed before their nextUpdate",
        METRICS.ocsp_resigned.clone(),
    );
    registry.register(
        "crl_resigned",
        "CRLs re-signed before their nextUpdate",
        METRICS.crls_resigned.clone(),
    );
}

//! Prometheus metrics: one registry for the whole daemon, the families the edges count
//! into (requests, time-stamps, OCSP answers, signatures, rate-limit refusals), and the
//! gauges read when a scrape comes ([`Metrics::render`]). The HSM's and the audit log's own
//! families live with them (`signet_hsm::metrics`, `signet_state::metrics`).
//!
//! Label values are bounded: routes, listeners, status classes, reasons and mechanisms are
//! fixed sets; keys and clients are the configured ones, never what a caller sent.

mod gauges;
mod process;
pub mod server;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use gauges::{expiring, Sources};

/// A request: where it came in, what it asked, how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `api` or `public`.
    pub listener: &'static str,
    /// The route (`tsa`, `sign`, `ocsp`, ...; `other` for the rest).
    pub route: &'static str,
    /// `2xx`, `4xx`, ...
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    listener: &'static str,
    route: &'static str,
}

/// How a time-stamp request ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TsaLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// Which way an OCSP answer was made.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum OcspPath {
    /// From the pre-signed cache.
    presigned,
    /// Signed for this request.
    live,
    /// `unauthorized`: a certificate of a CA this responder does not answer for.
    unauthorized,
    /// Another unsigned error status (malformedRequest, tryLater, internalError).
    refused,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OcspLabels {
    path: OcspPath,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignatureLabels {
    key: String,
    scheme: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: String,
}

/// The daemon's registry and the families its edges count into.
pub struct Metrics {
    /// The process metrics at the top (their standard names), ours under `signet_`.
    root: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    stamps: Family<TsaLabels, Counter>,
    ocsp_answers: Family<OcspLabels, Counter>,
    signatures: Family<SignatureLabels, Counter>,
    rate_limited: Family<ClientLabels, Counter>,
    gauges: gauges::Gauges,
    /// Whether anything scrapes: without a listener the edges count nothing.
    counting: bool,
}

impl Metrics {
    /// Every family, registered; the HSM's and the audit log's too. With `counting` off
    /// (no metrics listener) the edges' counters stay at zero and cost nothing.
    pub fn new(counting: bool) -> Metrics {
        let mut root = Registry::default();
        process::register(&mut root);
        let registry = root.sub_registry_with_prefix("signet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by listener, route and status class",
            requests.clone(),
        );
        // 1 ms to about 33 s: a pre-signed OCSP answer to a 100 MB PDF.
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer, by listener and route",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let stamps = Family::<TsaLabels, Counter>::default();
        registry.register(
            "tsa_stamps",
            "Time-stamp requests by outcome (granted, rejected) and reason",
            stamps.clone(),
        );
        let ocsp_answers = Family::<OcspLabels, Counter>::default();
        registry.register(
            "ocsp_answers",
            "OCSP answers by how they were made",
            ocsp_answers.clone(),
        );
        let signatures = Family::<SignatureLabels, Counter>::default();
        registry.register(
            "signatures",
            "Signatures made through the signing API, by key and scheme",
            signatures.clone(),
        );
        let rate_limited = Family::<ClientLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused for a client's rate limit, by client name",
            rate_limited.clone(),
        );
        signet_hsm::metrics::register(registry.sub_registry_with_prefix("hsm"));
        signet_state::metrics::register(registry.sub_registry_with_prefix("audit"));
        signet_services::metrics::register(registry);
        let gauges = gauges::Gauges::register(registry);
        Metrics {
            root,
            requests,
            request_seconds,
            stamps,
            ocsp_answers,
            signatures,
            rate_limited,
            gauges,
            counting,
        }
    }

    /// A request answered with `status` after `took`.
    // Labels of fixed names only: a request costs two lookups and no allocation here.
    pub fn request(
        &self,
        listener: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        if !self.counting {
            return;
        }
        self.requests
            .get_or_create(&RequestLabels {
                listener,
                route,
                status: status_class(status),
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { listener, route })
            .observe(took.as_secs_f64());
    }

    /// A time-stamp granted (`reason` `None`) or rejected for `reason`.
    pub fn stamp(&self, rejected: Option<&'static str>) {
        if !self.counting {
            return;
        }
        let labels = match rejected {
            None => TsaLabels {
                outcome: "granted",
                reason: "",
            },
            Some(reason) => TsaLabels {
                outcome: "rejected",
                reason,
            },
        };
        self.stamps.get_or_create(&labels).inc();
    }

    /// An OCSP answer made by `path`.
    pub fn ocsp_answer(&self, path: OcspPath) {
        if !self.counting {
            return;
        }
        self.ocsp_answers.get_or_create(&OcspLabels { path }).inc();
    }

    /// `n` signatures by key `key` with `scheme`.
    pub fn signed(&self, key: &str, scheme: impl Into<String>, n: u64) {
        if !self.counting {
            return;
        }
        self.signatures
            .get_or_create(&SignatureLabels {
                key: key.to_owned(),
                scheme: scheme.into(),
            })
            .inc_by(n);
    }

    /// A request refused for client `client`'s rate limit.
    pub fn rate_limited(&self, client: &str) {
        if !self.counting {
            return;
        }
        self.rate_limited
            .get_or_create(&ClientLabels {
                client: client.to_owned(),
            })
            .inc();
    }

    /// The text exposition of every metric, with the gauges read from `sources` now.
    pub fn render(&self, sources: &Sources) -> Result<String, std::fmt::Error> {
        self.gauges.refresh(sources);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.root)?;
        Ok(text)
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A gauge holding a float (seconds, Unix times).
type FloatGauge = Gauge<f64, AtomicU64>;

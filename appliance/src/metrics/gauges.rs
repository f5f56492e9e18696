//! The gauges read when a scrape comes: the token's state and queue, the clock, the TSA's
//! reserved serials, the OCSP cache's age, each CRL's time to nextUpdate, the audit log's
//! last checkpoint, and the notAfter of every certificate the box depends on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::FloatGauge;
use crate::clock::ClockSync;
use crate::crl::CrlService;
use crate::hsm::Hsm;
use crate::ocsp::OcspService;
use crate::signing_keys::KeyRing;

/// What the gauges are read from.
pub struct Sources {
    /// The token.
    pub hsm: Hsm,
    /// The TSA's serials reserved and not used yet.
    pub tsa: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
    /// The OCSP responder (its cache, its delegated signer).
    pub ocsp: Arc<OcspService>,
    /// The CRLs.
    pub crls: Arc<CrlService>,
    /// The signing API's keys (their chains may be replaced while the daemon runs).
    pub keys: Arc<KeyRing>,
    /// How long a pre-signed OCSP answer is valid (`ocsp.validity_secs`).
    pub ocsp_validity: std::time::Duration,
    /// The infrastructure certificates read at start: (name, notAfter).
    pub infrastructure: Vec<(String, SystemTime)>,
}

impl Sources {
    /// Every certificate the appliance depends on, by name, with its notAfter: the
    /// infrastructure's, the delegated OCSP signer's, each signing key's.
    pub fn certificates(&self) -> Vec<(String, SystemTime)> {
        let mut all = self.infrastructure.clone();
        if let Some(ca) = self.ocsp.ca(crate::issuance::ROOT_CA) {
            all.push((OCSP_SIGNER.into(), ca.delegated().not_after()));
        }
        for key in self.keys.all() {
            if let Some(leaf) = key.chain.first() {
                let not_after = leaf.tbs_certificate.validity.not_after.to_system_time();
                all.push((format!("signing-key:{}", key.label), not_after));
            }
        }
        all.sort();
        all
    }
}

/// The delegated OCSP signer's name among the certificates: it renews itself at half its
/// life (days), so it is late only with under a day left.
pub const OCSP_SIGNER: &str = "ocsp-signer";

/// Whether a certificate `name` with `left` to live needs an operator: under 30 days (the
/// OCSP signer: under a day).
pub fn expiring(name: &str, left: Option<std::time::Duration>) -> bool {
    let limit = match name {
        OCSP_SIGNER => 86_400,
        _ => 30 * 86_400,
    };
    left.is_none_or(|l| l.as_secs() < limit)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Lane {
    lane: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Ca {
    ca: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    certificate: String,
}

pub(super) struct Gauges {
    token_up: Gauge,
    queued: Family<Lane, Gauge>,
    busy: Gauge,
    sessions: Gauge,
    clock: Family<State, Gauge>,
    serials_left: Gauge,
    ocsp_oldest: FloatGauge,
    ocsp_validity: FloatGauge,
    crl_next_update: Family<Ca, FloatGauge>,
    since_checkpoint: FloatGauge,
    not_after: Family<CertificateLabel, FloatGauge>,
}

impl Gauges {
    pub(super) fn register(registry: &mut Registry) -> Gauges {
        let g = Gauges {
            token_up: Gauge::default(),
            queued: Family::default(),
            busy: Gauge::default(),
            sessions: Gauge::default(),
            clock: Family::default(),
            serials_left: Gauge::default(),
            ocsp_oldest: FloatGauge::default(),
            ocsp_validity: FloatGauge::default(),
            crl_next_update: Family::default(),
            since_checkpoint: FloatGauge::default(),
            not_after: Family::default(),
        };
        let hsm = registry.sub_registry_with_prefix("hsm");
        hsm.register(
            "token_up",
            "1 while the token answers, 0 while it is lost",
            g.token_up.clone(),
        );
        hsm.register(
            "queued_jobs",
            "Jobs waiting for a worker, by lane",
            g.queued.clone(),
        );
        hsm.register("busy_workers", "Workers in a job now", g.busy.clone());
        hsm.register(
            "sessions",
            "Logged-in sessions (one per worker)",
            g.sessions.clone(),
        );
        registry.register(
            "clock_sync",
            "1 for the clock's synchronisation state now (synchronised, unsynchronised, unknown)",
            g.clock.clone(),
        );
        registry.register(
            "tsa_serials_reserved",
            "Time-stamp serials reserved in the store and not used yet",
            g.serials_left.clone(),
        );
        registry.register_with_unit(
            "ocsp_oldest_presigned_age",
            "Age of the oldest pre-signed OCSP answer",
            Unit::Seconds,
            g.ocsp_oldest.clone(),
        );
        registry.register_with_unit(
            "ocsp_presigned_validity",
            "How long a pre-signed OCSP answer is valid (re-signed at half of it)",
            Unit::Seconds,
            g.ocsp_validity.clone(),
        );
        registry.register_with_unit(
            "crl_next_update_in",
            "Time until the served CRL's nextUpdate, by CA (negative: none served)",
            Unit::Seconds,
            g.crl_next_update.clone(),
        );
        registry.register_with_unit(
            "audit_since_checkpoint",
            "Time since the audit log's last signed checkpoint",
            Unit::Seconds,
            g.since_checkpoint.clone(),
        );
        registry.register_with_unit(
            "certificate_not_after_timestamp",
            "notAfter of each certificate the appliance depends on, Unix time",
            Unit::Seconds,
            g.not_after.clone(),
        );
        g
    }

    pub(super) fn refresh(&self, s: &Sources) {
        let now = SystemTime::now();
        self.token_up.set(i64::from(s.hsm.is_ready()));
        let (urgent, bulk) = s.hsm.queued();
        self.queued
            .get_or_create(&Lane { lane: "urgent" })
            .set(count(urgent as u64));
        self.queued
            .get_or_create(&Lane { lane: "bulk" })
            .set(count(bulk as u64));
        self.busy.set(count(s.hsm.busy_workers()));
        self.sessions.set(count(s.hsm.workers() as u64));
        let sync = crate::clock::sync_status();
        for (state, is) in [
            ("synchronised", ClockSync::Synchronised),
            ("unsynchronised", ClockSync::Unsynchronised),
            ("unknown", ClockSync::Unknown),
        ] {
            let value = i64::from(std::mem::discriminant(&sync) == std::mem::discriminant(&is));
            self.clock.get_or_create(&State { state }).set(value);
        }
        if let Some(left) = (s.tsa)() {
            self.serials_left.set(count(left));
        }
        let oldest = s
            .ocsp
            .oldest_entry()
            .and_then(|t| now.duration_since(t).ok());
        self.ocsp_oldest
            .set(oldest.map_or(0.0, |a| a.as_secs_f64()));
        self.ocsp_validity.set(s.ocsp_validity.as_secs_f64());
        for ca in s.crls.names() {
            let left = match s.crls.current(ca) {
                Some(crl) => seconds_between(now, crl.next_update),
                None => -1.0,
            };
            self.crl_next_update
                .get_or_create(&Ca { ca: ca.to_owned() })
                .set(left);
        }
        if let Some(at) = signet_state::metrics::last_checkpoint() {
            self.since_checkpoint.set((unix(now) - at).max(0.0));
        }
        self.certificates(s);
    }

    fn certificates(&self, s: &Sources) {
        for (name, not_after) in s.certificates() {
            self.not_after
                .get_or_create(&CertificateLabel { certificate: name })
                .set(unix(not_after));
        }
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `to - from` in seconds, negative when `to` is past.
fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    unix(to) - unix(from)
}

//! The time-stamping service: the sans-I/O TSA from `signet-pki`, with the clock, the
//! serial counter and the HSM around it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use signet_pki::tsp::{self, TimeStampAuthority, TspError};

use crate::ocsp::OcspService;
use signet_hsm::{Hsm, KeyInfo};
use signet_state::clock::{self, ClockSync};
use signet_state::store::{CertStatus, SerialAllocator};

/// Stamps refused because the TSA certificate was revoked, on hold, expired or not yet
/// valid, since start (shown by `signetctl status`).
static REFUSED_UNUSABLE_CERT: AtomicU64 = AtomicU64::new(0);

/// How many stamps were refused because the TSA certificate was unusable, since start.
pub fn refused_for_certificate() -> u64 {
    REFUSED_UNUSABLE_CERT.load(Ordering::Relaxed)
}

/// What the TSA does about an unsynchronised clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockPolicy {
    /// Refuse to stamp (`timeNotAvailable`): the production default.
    Require,
    /// Stamp, and warn at most once a minute: the dev default.
    WarnOnly,
}

/// A TSA ready to stamp.
pub struct TsaService {
    authority: TimeStampAuthority,
    key: Arc<KeyInfo>,
    hsm: Hsm,
    serials: SerialAllocator,
    clock: ClockPolicy,
    last_clock_warning: AtomicU64,
    /// Where the TSA certificate's status is read (revoked or on hold: no stamps).
    statuses: Option<Arc<OcspService>>,
    last_certificate_error: AtomicU64,
}

impl TsaService {
    /// Assemble the service.
    pub fn new(
        authority: TimeStampAuthority,
        key: Arc<KeyInfo>,
        hsm: Hsm,
        serials: SerialAllocator,
        clock: ClockPolicy,
    ) -> Self {
        TsaService {
            authority,
            key,
            hsm,
            serials,
            clock,
            last_clock_warning: AtomicU64::new(0),
            statuses: None,
            last_certificate_error: AtomicU64::new(0),
        }
    }

    /// Read the TSA certificate's status from `index` before every stamp: a revoked or
    /// held TSA certificate stamps nothing (`systemFailure`).
    pub fn with_status_index(mut self, index: Arc<OcspService>) -> Self {
        self.statuses = Some(index);
        self
    }

    /// Why the TSA certificate must not sign at `now`, if it must not.
    fn certificate_unusable(&self, now: SystemTime) -> Option<&'static str> {
        let cert = self.authority.signer().certificate();
        let validity = &cert.tbs_certificate.validity;
        match self
            .statuses
            .as_ref()
            .and_then(|s| s.status_of_certificate(cert))
        {
            Some(CertStatus::Revoked { .. }) => return Some("revoked"),
            Some(CertStatus::Hold { .. }) => return Some("on hold"),
            Some(CertStatus::Good) | None => {}
        }
        if now < validity.not_before.to_system_time() {
            Some("not yet valid")
        } else if now >= validity.not_after.to_system_time() {
            Some("expired")
        } else {
            None
        }
    }

    /// Refuse (`systemFailure`) when the TSA certificate is unusable: counted, and logged
    /// at most once a minute.
    fn check_certificate(&self) -> Result<(), TspError> {
        let now = SystemTime::now();
        let Some(why) = self.certificate_unusable(now) else {
            return Ok(());
        };
        let refused = REFUSED_UNUSABLE_CERT.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.last_certificate_error.load(Ordering::Relaxed);
        if secs >= last + 60
            && self
                .last_certificate_error
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let cert = self.authority.signer().certificate();
            tracing::error!(
                serial = %signet_state::store::certs::serial_from_bytes(
                    cert.tbs_certificate.serial_number.as_bytes()
                ),
                why,
                refused,
                "TSA certificate unusable: refusing every time-stamp (systemFailure) until a new one is installed"
            );
        }
        Err(TspError::SystemFailure)
    }

    /// Serials reserved in the store and not used yet (`None` when busy taking one).
    pub fn serials_left(&self) -> Option<u64> {
        self.serials.reserved_left()
    }

    /// The TSA's certificate, then its issuers.
    pub fn chain(&self) -> Vec<x509_cert::Certificate> {
        let signer = self.authority.signer();
        std::iter::once(signer.certificate())
            .chain(signer.chain())
            .cloned()
            .collect()
    }

    /// Answer a DER TimeStampReq with a granted DER TimeStampResp, or say why not.
    pub async fn stamp(&self, request: &[u8]) -> Result<Vec<u8>, TspError> {
        let req = tsp::parse_request(request)?;
        let accepted = self.authority.check(&req)?;
        let (prepared, signature) = self.sign(&accepted).await?;
        prepared.finish(&signature)
    }

    /// Stamp `digest` (made with `hash`) in process, for a signature-time-stamp: the bare
    /// TimeStampToken (a CMS ContentInfo), with the TSA certificate and chain.
    pub async fn stamp_digest(
        &self,
        hash: signet_pki::HashAlg,
        digest: &[u8],
    ) -> Result<Vec<u8>, TspError> {
        let accepted = self.authority.accept_imprint(hash, digest)?;
        let (prepared, signature) = self.sign(&accepted).await?;
        prepared.finish_token(&signature)
    }

    /// What both kinds of stamp share: the clock check, a durable serial, the TSTInfo and
    /// the HSM's signature over it.
    async fn sign(
        &self,
        accepted: &tsp::AcceptedRequest,
    ) -> Result<(tsp::PreparedToken, Vec<u8>), TspError> {
        self.check_certificate()?;
        self.check_clock()?;
        let serial = self.serials.next().await.map_err(|e| {
            tracing::error!(error = %e, "TSA serial allocation failed");
            TspError::SystemFailure
        })?;
        let prepared = self
            .authority
            .prepare(accepted, SystemTime::now(), serial)?;
        let signature = self
            .hsm
            .sign(&self.key, prepared.scheme(), prepared.signed_bytes())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "TSA signing failed");
                TspError::SystemFailure
            })?;
        Ok((prepared, signature))
    }

    fn check_clock(&self) -> Result<(), TspError> {
        let status = clock::sync_status();
        match clock_decision(status, self.clock) {
            ClockDecision::Stamp => Ok(()),
            ClockDecision::Refuse => Err(TspError::TimeNotAvailable),
            ClockDecision::StampAndWarn => {
                self.warn_clock_at_most_once_a_minute(status);
                Ok(())
            }
        }
    }

    fn warn_clock_at_most_once_a_minute(&self, status: ClockSync) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_clock_warning.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_clock_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(?status, "clock is not synchronised; stamping anyway");
        }
    }
}

/// What to do about the clock's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockDecision {
    /// The clock is disciplined: stamp.
    Stamp,
    /// Stamp, but say the clock is not known to be right.
    StampAndWarn,
    /// Refuse with `timeNotAvailable`.
    Refuse,
}

/// The TSA's rule: an unsynchronised or unknown clock is refused under
/// [`ClockPolicy::Require`] and warned about under [`ClockPolicy::WarnOnly`].
pub fn clock_decision(status: ClockSync, policy: ClockPolicy) -> ClockDecision {
    match (status, policy) {
        (ClockSync::Synchronised, _) => ClockDecision::Stamp,
        (ClockSync::Unsynchronised | ClockSync::Unknown, ClockPolicy::Require) => {
            ClockDecision::Refuse
        }
        (ClockSync::Unsynchronised | ClockSync::Unknown, ClockPolicy::WarnOnly) => {
            ClockDecision::StampAndWarn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsynchronised_clock_is_refused_only_when_required() {
        use ClockDecision::*;
        use ClockSync::*;
        let cases = [
            (Synchronised, ClockPolicy::Require, Stamp),
            (Synchronised, ClockPolicy::WarnOnly, Stamp),
            (Unsynchronised, ClockPolicy::Require, Refuse),
            (Unknown, ClockPolicy::Require, Refuse),
            (Unsynchronised, ClockPolicy::WarnOnly, StampAndWarn),
            (Unknown, ClockPolicy::WarnOnly, StampAndWarn),
        ];
        for (status, policy, want) in cases {
            assert_eq!(
                clock_decision(status, policy),
                want,
                "{status:?} {policy:?}"
            );
        }
    }
}

//! The OCSP responder: the sans-I/O protocol of `signet-pki`, with the certificate store,
//! the HSM and a cache of responses signed ahead of time.
//!
//! A request without a nonce for one certificate this appliance issued is answered from the
//! cache; the cache is filled at start (the SHA-1 and SHA-256 CertIDs of every certificate),
//! on the first request for any other CertID form, and re-signed in the background before
//! nextUpdate and at once on every status change. Requests with a nonce, with several
//! CertIDs, or for serials never issued are signed live. Every write to the cache happens
//! under the status lock that revocations also take, so a revocation cannot be overtaken
//! by a stale "good".
//!
//! Statuses are read from an in-memory index of the database (loaded at start, updated by
//! every status change after it is durable), so that no answer waits for SQLite.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use der::Encode;
use sha2::Digest;
use tokio::sync::{Mutex, MutexGuard, Notify};
use x509_cert::Certificate;

use signet_pki::ocsp::{
    self, CertStatus as WireStatus, IssuerMatcher, Nonce, OcspError, RequestedCert, Responder,
    RevocationReason, SingleAnswer,
};
use signet_pki::HashAlg;

use crate::source_limit::SourceRates;
use signet_hsm::{Hsm, KeyInfo};
use signet_state::store::certs::{self, from_unix_secs, serial_from_bytes};
use signet_state::store::{CertRecord, CertStatus, Store};

/// What to do with a request's nonce (RFC 9654).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoncePolicy {
    /// Sign a fresh response that echoes it.
    Sign,
    /// Answer as if there were none (from the cache).
    Ignore,
    /// Refuse the request (malformedRequest).
    Reject,
}

/// Timing and nonce policy of the responder.
#[derive(Clone, Debug)]
pub struct OcspSettings {
    /// nextUpdate - thisUpdate of every response.
    pub validity: Duration,
    /// A cached response is re-signed when less than this is left before its nextUpdate.
    pub refresh_before: Duration,
    /// The nonce policy.
    pub nonce: NoncePolicy,
    /// Answers signed live for one source address of the public listener: per second on
    /// average, and at once.
    pub live_per_source: (f64, f64),
}

/// A key and the certificate that makes it an OCSP responder: the CA's delegated signer,
/// or the CA itself.
pub struct Signer {
    responder: Responder,
    key: Arc<KeyInfo>,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Signer {
    /// `cert` (delegated signer or CA certificate) with its key in the token.
    pub fn new(cert: Certificate, key: Arc<KeyInfo>) -> Self {
        let tbs = &cert.tbs_certificate;
        let serial = serial_from_bytes(tbs.serial_number.as_bytes());
        let not_before = tbs.validity.not_before.to_system_time();
        let not_after = tbs.validity.not_after.to_system_time();
        Signer {
            responder: Responder::new(cert, key.algorithm.default_scheme()),
            key,
            serial,
            not_before,
            not_after,
        }
    }

    /// Its certificate.
    pub fn certificate(&self) -> &Certificate {
        self.responder.certificate()
    }

    /// Its key.
    pub fn key(&self) -> &Arc<KeyInfo> {
        &self.key
    }

    /// Its serial, as the store writes it.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of its certificate's validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of its certificate's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether an answer produced at `now` (written in whole seconds) lies inside the
    /// certificate's validity, with a second to spare at the end.
    fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now + Duration::from_secs(1) < self.not_after
    }
}

/// One CA this responder answers for: its delegated signer, which signetd renews, and the
/// CA's own key, which signs when the delegated signer is unusable (RFC 6960 4.2.2.2: the
/// CA that issued the certificate may sign the answer itself).
pub struct CaResponder {
    /// The CA's name in this appliance (`root`).
    pub name: String,
    /// The CA certificate.
    pub ca_cert: Certificate,
    matcher: IssuerMatcher,
    delegated: RwLock<Arc<Signer>>,
    own: Arc<Signer>,
    /// Whether the CA signs its answers itself now because its delegated signer cannot.
    on_fallback: AtomicBool,
}

impl CaResponder {
    /// CA `name` with certificate `ca_cert` and key `ca_key`, answered for by `signer_cert`
    /// whose key is `key`.
    pub fn new(
        name: &str,
        ca_cert: Certificate,
        ca_key: Arc<KeyInfo>,
        signer_cert: Certificate,
        key: Arc<KeyInfo>,
    ) -> Result<Self, signet_pki::Error> {
        Ok(CaResponder {
            name: name.to_owned(),
            matcher: IssuerMatcher::new(&ca_cert)?,
            own: Arc::new(Signer::new(ca_cert.clone(), ca_key)),
            ca_cert,
            delegated: RwLock::new(Arc::new(Signer::new(signer_cert, key))),
            on_fallback: AtomicBool::new(false),
        })
    }

    /// The delegated signer in place now.
    pub fn delegated(&self) -> Arc<Signer> {
        match self.delegated.read() {
            Ok(d) => Arc::clone(&d),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// A response signed ahead of time, with what HTTP caching needs.
#[derive(Debug)]
pub struct Presigned {
    /// The DER OCSPResponse.
    pub der: Bytes,
    /// Its thisUpdate.
    pub this_update: SystemTime,
    /// Its nextUpdate.
    pub next_update: SystemTime,
    /// A strong ETag (quoted).
    pub etag: String,
    /// The end of the signing certificate's validity: the entry is not served after it.
    signer_not_after: SystemTime,
    ca: usize,
    serial: String,
}

/// The answer to a request.
pub enum Answer {
    /// From the cache: may be cached by HTTP intermediaries.
    Presigned(Arc<Presigned>),
    /// Signed for this request (a nonce, several CertIDs, or an unknown serial).
    Live {
        /// The DER OCSPResponse.
        der: Vec<u8>,
        /// Whether it echoes a nonce (then it must not be cached).
        has_nonce: bool,
    },
    /// Refused: an unsigned OCSPResponse with this error's status.
    Refused(OcspError),
}

/// Anonymous sources whose live-signing budget is tracked at once.
const LIVE_SOURCES: usize = 8192;

/// The responder.
pub struct OcspService {
    cas: Vec<CaResponder>,
    store: Store,
    hsm: Hsm,
    settings: OcspSettings,
    cache: RwLock<HashMap<Vec<u8>, Arc<Presigned>>>,
    /// Serial -> status, for every certificate each CA issued, by CA index (a map per CA, so
    /// that a lookup by a borrowed serial allocates nothing).
    statuses: RwLock<Vec<HashMap<String, CertStatus>>>,
    status_lock: Arc<Mutex<()>>,
    /// Woken when a delegated signer becomes unusable (revoked, held): renew now.
    renewal: Notify,
    /// What each anonymous source may have signed live.
    live_rates: SourceRates,
}

impl OcspService {
    /// Assemble the responder; `status_lock` is shared with revocations.
    pub fn new(
        cas: Vec<CaResponder>,
        store: Store,
        hsm: Hsm,
        settings: OcspSettings,
        status_lock: Arc<Mutex<()>>,
    ) -> Self {
        let (per_sec, burst) = settings.live_per_source;
        OcspService {
            live_rates: SourceRates::new(per_sec, burst, LIVE_SOURCES),
            statuses: RwLock::new(vec![HashMap::new(); cas.len()]),
            cas,
            store,
            hsm,
            settings,
            cache: RwLock::new(HashMap::new()),
            status_lock,
            renewal: Notify::new(),
        }
    }

    /// The CA named `name`'s responder.
    pub fn ca(&self, name: &str) -> Option<&CaResponder> {
        self.cas.iter().find(|c| c.name == name)
    }

    /// Why the delegated signer of CA `name` must not sign now (revoked, on hold, expired,
    /// not yet valid), or `None` when it may.
    pub fn signer_unusable(&self, name: &str, now: SystemTime) -> Option<&'static str> {
        let ca = self.cas.iter().position(|c| c.name == name)?;
        self.unusable(ca, &self.cas[ca].delegated(), now)
    }

    fn unusable(&self, ca: usize, signer: &Signer, now: SystemTime) -> Option<&'static str> {
        match self.status_of(ca, &signer.serial) {
            Some(CertStatus::Revoked { .. }) => return Some("revoked"),
            Some(CertStatus::Hold { .. }) => return Some("on hold"),
            Some(CertStatus::Good) | None => {}
        }
        if now < signer.not_before {
            Some("not yet valid")
        } else if !signer.valid_at(now) {
            Some("expired")
        } else {
            None
        }
    }

    /// Who signs CA `ca`'s answers at `now`: its delegated signer when usable, else the CA.
    fn signer(&self, ca: usize, now: SystemTime) -> Arc<Signer> {
        let responder = &self.cas[ca];
        let delegated = responder.delegated();
        match self.unusable(ca, &delegated, now) {
            None => {
                if responder.on_fallback.swap(false, Ordering::Relaxed) {
                    tracing::info!(serial = %delegated.serial, "the delegated OCSP signer signs again");
                }
                delegated
            }
            Some(why) => {
                if !responder.on_fallback.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        serial = %delegated.serial,
                        why,
                        ca = %responder.name,
                        "delegated OCSP signer unusable: the CA signs OCSP answers itself"
                    );
                }
                Arc::clone(&responder.own)
            }
        }
    }

    /// Resolves when a delegated signer was found revoked or held: renew it at once.
    pub async fn renewal_requested(&self) {
        self.renewal.notified().await
    }

    /// Put `signer` in place as CA `name`'s delegated signer, then re-sign every cached
    /// answer of that CA with it (each under the status lock, so no stale answer overtakes
    /// a status change). Returns the signer it replaced. Answers that fail to re-sign are
    /// dropped from the cache (they are signed afresh when asked for).
    pub async fn install_signer(&self, name: &str, signer: Signer) -> Option<Arc<Signer>> {
        let ca = self.cas.iter().position(|c| c.name == name)?;
        let old = {
            let _guard = self.status_lock.lock().await;
            let mut slot = match self.cas[ca].delegated.write() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *slot, Arc::new(signer))
        };
        let mut resigned = 0;
        for (key, entry) in self.entries(|e| e.ca == ca) {
            let guard = self.status_lock.lock().await;
            if self.resign_entry(&guard, &key, &entry).await {
                resigned += 1;
            }
        }
        tracing::info!(
            ca = name,
            resigned,
            "cached OCSP answers re-signed by the new signer"
        );
        Some(old)
    }

    /// Re-sign one cached entry from the status index; on failure drop it. Needs the
    /// status lock.
    async fn resign_entry(
        &self,
        lock: &MutexGuard<'_, ()>,
        key: &[u8],
        entry: &Arc<Presigned>,
    ) -> bool {
        let (Some(status), Some(id)) = (
            self.status_of(entry.ca, &entry.serial),
            cert_id_from_key(key),
        ) else {
            self.evict(|e| Arc::ptr_eq(e, entry));
            return false;
        };
        match self
            .presign(lock, entry.ca, &id, &entry.serial, &status)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, serial = %entry.serial, "OCSP answer not re-signed; dropped from the cache");
                self.evict(|e| Arc::ptr_eq(e, entry));
                false
            }
        }
    }

    /// The status of `cert`, if one of the CAs here issued it.
    pub fn status_of_certificate(&self, cert: &Certificate) -> Option<CertStatus> {
        let tbs = &cert.tbs_certificate;
        let serial = serial_from_bytes(tbs.serial_number.as_bytes());
        self.cas
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ca_cert.tbs_certificate.subject == tbs.issuer)
            .find_map(|(ca, _)| self.status_of(ca, &serial))
    }

    /// A DER OCSPResponse on `cert`, issued by `issuer`, for a DSS: the pre-signed answer
    /// when there is one (a SHA-1 CertID, as RFC 5019 clients ask).
    pub async fn answer_for(
        &self,
        issuer: &Certificate,
        cert: &Certificate,
    ) -> Result<Vec<u8>, OcspError> {
        let id = RequestedCert::for_certificate(issuer, cert, HashAlg::Sha1)
            .map_err(|e| OcspError::Malformed(e.to_string()))?;
        let ca = self
            .cas
            .iter()
            .position(|ca| ca.matcher.matches(&id))
            .ok_or(OcspError::Unauthorized)?;
        if let Some(hit) = self.cached(&id) {
            return Ok(hit.der.to_vec());
        }
        match self.fill(&id, ca).await? {
            Some(filled) => Ok(filled.der.to_vec()),
            None => Err(OcspError::Unauthorized),
        }
    }

    /// The certificates that sign OCSP answers.
    pub fn responder_certificates(&self) -> Vec<Certificate> {
        let now = SystemTime::now();
        (0..self.cas.len())
            .map(|ca| self.signer(ca, now).certificate().clone())
            .collect()
    }

    /// Answer a DER OCSPRequest.
    /// `source` is the caller's address when the caller is anonymous (the public
    /// listener): answers signed live for it come from its budget, and once that is spent
    /// it is told tryLater.
    pub async fn answer(&self, request: &[u8], source: Option<IpAddr>) -> Answer {
        match self.try_answer(request, source).await {
            Ok(a) => a,
            Err(e) => Answer::Refused(e),
        }
    }

    async fn try_answer(
        &self,
        request: &[u8],
        source: Option<IpAddr>,
    ) -> Result<Answer, OcspError> {
        let req = ocsp::parse_request(request)?;
        let nonce = match (req.nonce, self.settings.nonce) {
            (Some(_), NoncePolicy::Reject) => {
                return Err(OcspError::Malformed(
                    "this responder does not accept nonces".into(),
                ))
            }
            (Some(n), NoncePolicy::Sign) => Some(n),
            _ => None,
        };
        let issuers: Vec<Option<usize>> = req
            .cert_ids
            .iter()
            .map(|id| self.cas.iter().position(|ca| ca.matcher.matches(id)))
            .collect();
        let Some(&Some(first)) = issuers.iter().find(|i| i.is_some()) else {
            return Err(OcspError::Unauthorized);
        };
        if let ([only], None) = (req.cert_ids.as_slice(), &nonce) {
            if let Some(hit) = self.cached(only) {
                return Ok(Answer::Presigned(hit));
            }
            if let Some(filled) = self.fill(only, first).await? {
                return Ok(Answer::Presigned(filled));
            }
        }
        if let Some(ip) = source {
            if self.live_rates.take(ip, std::time::Instant::now()).is_err() {
                tracing::info!(%ip, "OCSP answer not signed live: the source is over its rate");
                return Err(OcspError::TryLater);
            }
        }
        let der = self
            .sign_live(&req.cert_ids, &issuers, first, nonce.as_ref())
            .await?;
        Ok(Answer::Live {
            der,
            has_nonce: nonce.is_some(),
        })
    }

    /// A cached response for `id` that is not about to expire.
    fn cached(&self, id: &RequestedCert) -> Option<Arc<Presigned>> {
        let key = id.cert_id.to_der().ok()?;
        let hit = self.cache.read().ok()?.get(&key).cloned()?;
        let now = SystemTime::now();
        (now < hit.next_update && now < hit.signer_not_after).then_some(hit)
    }

    /// Sign and cache the response for `id` if CA `ca` issued it; `None` for a serial it
    /// never issued (those are answered live and never cached: a flood of random serials
    /// must not grow the cache).
    async fn fill(
        &self,
        id: &RequestedCert,
        ca: usize,
    ) -> Result<Option<Arc<Presigned>>, OcspError> {
        let guard = self.status_lock.lock().await;
        if let Some(hit) = self.cached(id) {
            return Ok(Some(hit));
        }
        let serial = serial_from_bytes(&id.serial);
        let Some(status) = self.status_of(ca, &serial) else {
            return Ok(None);
        };
        self.presign(&guard, ca, id, &serial, &status)
            .await
            .map(Some)
    }

    /// The status of the certificate CA `ca` issued with `serial`, if it did.
    /// Whether the index already holds `record`'s status (so a change read back from the
    /// store's feed is one this box applied itself).
    pub fn knows(&self, record: &CertRecord) -> bool {
        self.cas
            .iter()
            .position(|c| c.name == record.ca)
            .and_then(|ca| self.status_of(ca, &record.serial))
            .is_some_and(|status| status == record.status)
    }

    fn status_of(&self, ca: usize, serial: &str) -> Option<CertStatus> {
        self.statuses.read().ok()?.get(ca)?.get(serial).cloned()
    }

    /// Sign `id`'s response from `status` and put it in the cache. Needs the status lock.
    async fn presign(
        &self,
        _lock: &MutexGuard<'_, ()>,
        ca: usize,
        id: &RequestedCert,
        serial: &str,
        status: &CertStatus,
    ) -> Result<Arc<Presigned>, OcspError> {
        let now = SystemTime::now();
        let next_update = now + self.settings.validity;
        let answer = SingleAnswer {
            cert: id.clone(),
            status: wire_status(Some(status)),
        };
        let (der, signer_not_after) = self
            .sign(ca, &[answer], now, Some(next_update), None)
            .await?;
        let key = id
            .cert_id
            .to_der()
            .map_err(|e| OcspError::InternalError(e.to_string()))?;
        let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&der)[..16]));
        let entry = Arc::new(Presigned {
            der: Bytes::from(der),
            this_update: truncate(now),
            next_update: truncate(next_update),
            etag,
            signer_not_after,
            ca,
            serial: serial.to_owned(),
        });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(key, Arc::clone(&entry));
        }
        Ok(entry)
    }

    async fn sign_live(
        &self,
        ids: &[RequestedCert],
        issuers: &[Option<usize>],
        signer: usize,
        nonce: Option<&Nonce>,
    ) -> Result<Vec<u8>, OcspError> {
        let records: Vec<Option<CertStatus>> = ids
            .iter()
            .zip(issuers)
            .map(|(id, ca)| ca.and_then(|i| self.status_of(i, &serial_from_bytes(&id.serial))))
            .collect();
        let answers: Vec<SingleAnswer> = ids
            .iter()
            .zip(&records)
            .map(|(id, record)| SingleAnswer {
                cert: id.clone(),
                status: wire_status(record.as_ref()),
            })
            .collect();
        let now = SystemTime::now();
        self.sign(
            signer,
            &answers,
            now,
            Some(now + self.settings.validity),
            nonce,
        )
        .await
        .map(|(der, _)| der)
    }

    /// Sign with whoever may sign CA `ca`'s answers at `now` (checked for every answer:
    /// never a revoked, held or expired signer); the DER and the signer's notAfter.
    async fn sign(
        &self,
        ca: usize,
        answers: &[SingleAnswer],
        now: SystemTime,
        next_update: Option<SystemTime>,
        nonce: Option<&Nonce>,
    ) -> Result<(Vec<u8>, SystemTime), OcspError> {
        let mut signer = self.signer(ca, now);
        let mut retried = false;
        loop {
            let prepared = signer
                .responder
                .prepare(answers, now, now, next_update, nonce)?;
            match self
                .hsm
                .sign(&signer.key, prepared.scheme(), prepared.signed_bytes())
                .await
            {
                Ok(signature) => return Ok((prepared.finish(&signature)?, signer.not_after)),
                Err(e) => {
                    // The signer was replaced (and its key destroyed) while this answer
                    // was prepared: sign once more with the new one.
                    let current = self.signer(ca, SystemTime::now());
                    if !retried && !Arc::ptr_eq(&current, &signer) {
                        retried = true;
                        signer = current;
                        continue;
                    }
                    tracing::error!(error = %e, "OCSP signing failed");
                    return Err(if e.is_unavailable() {
                        OcspError::TryLater
                    } else {
                        OcspError::InternalError("signing failed".into())
                    });
                }
            }
        }
    }

    /// Load the statuses of every certificate each CA issued, and sign the SHA-1 and SHA-256
    /// CertID forms of each ahead of time.
    pub async fn warm(&self) -> Result<usize, OcspError> {
        let guard = self.status_lock.lock().await;
        let mut issued = Vec::with_capacity(self.cas.len());
        for responder in &self.cas {
            let records = self
                .store
                .certificates_of(&responder.name)
                .await
                .map_err(|e| OcspError::InternalError(e.to_string()))?;
            issued.push(records);
        }
        let index = issued
            .iter()
            .map(|records| {
                records
                    .iter()
                    .map(|r| (r.serial.clone(), r.status.clone()))
                    .collect()
            })
            .collect();
        if let Ok(mut statuses) = self.statuses.write() {
            *statuses = index;
        }
        let mut signed = 0;
        for (ca, records) in issued.iter().enumerate() {
            for record in records {
                for hash in [HashAlg::Sha1, HashAlg::Sha256] {
                    let id = cert_id(&self.cas[ca].ca_cert, record, hash)?;
                    self.presign(&guard, ca, &id, &record.serial, &record.status)
                        .await?;
                    signed += 1;
                }
            }
        }
        Ok(signed)
    }

    /// Take `record`'s new status (durable in the database already) into the index and
    /// re-sign every cached response about it. Needs the status lock. On failure the entries
    /// are dropped, so that live signing (from the index) answers instead.
    pub async fn resign(
        &self,
        lock: &MutexGuard<'_, ()>,
        record: &CertRecord,
    ) -> Result<(), OcspError> {
        let Some(ca) = self.cas.iter().position(|c| c.name == record.ca) else {
            return Ok(());
        };
        if let Ok(mut statuses) = self.statuses.write() {
            if let Some(of_ca) = statuses.get_mut(ca) {
                of_ca.insert(record.serial.clone(), record.status.clone());
            }
        }
        if record.status != CertStatus::Good && self.cas[ca].delegated().serial == record.serial {
            // The delegated signer itself: nothing it signed may be served any more. The CA
            // re-signs every cached answer now, and the renewal makes a new signer.
            tracing::warn!(serial = %record.serial, status = ?record.status, "the delegated OCSP signer's certificate is no longer good: renewing it");
            self.renewal.notify_one();
            for (key, entry) in self.entries(|e| e.ca == ca) {
                self.resign_entry(lock, &key, &entry).await;
            }
            return Ok(());
        }
        let stale = self.entries(|e| e.ca == ca && e.serial == record.serial);
        for (key, _) in &stale {
            let id = match cert_id_from_key(key) {
                Some(id) => id,
                None => continue,
            };
            if let Err(e) = self
                .presign(lock, ca, &id, &record.serial, &record.status)
                .await
            {
                self.evict(|e| e.ca == ca && e.serial == record.serial);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Re-sign cached responses whose nextUpdate is near. Takes the status lock per entry.
    pub async fn refresh_due(&self) -> usize {
        let horizon = SystemTime::now() + self.settings.refresh_before;
        let due = self.entries(|e| e.next_update <= horizon);
        let mut refreshed = 0;
        for (key, entry) in due {
            let guard = self.status_lock.lock().await;
            let Some(status) = self.status_of(entry.ca, &entry.serial) else {
                self.evict(|e| Arc::ptr_eq(e, &entry));
                continue;
            };
            let Some(id) = cert_id_from_key(&key) else {
                continue;
            };
            match self
                .presign(&guard, entry.ca, &id, &entry.serial, &status)
                .await
            {
                Ok(_) => refreshed += 1,
                Err(e) => tracing::warn!(error = %e, serial = %entry.serial, "OCSP refresh failed"),
            }
        }
        refreshed
    }

    /// Age of the oldest cached response (for status).
    pub fn oldest_entry(&self) -> Option<SystemTime> {
        self.entries(|_| true)
            .iter()
            .map(|(_, e)| e.this_update)
            .min()
    }

    fn entries(&self, keep: impl Fn(&Arc<Presigned>) -> bool) -> Vec<(Vec<u8>, Arc<Presigned>)> {
        self.cache
            .read()
            .map(|c| {
                c.iter()
                    .filter(|(_, e)| keep(e))
                    .map(|(k, e)| (k.clone(), Arc::clone(e)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn evict(&self, drop_it: impl Fn(&Arc<Presigned>) -> bool) {
        if let Ok(mut c) = self.cache.write() {
            c.retain(|_, e| !drop_it(e));
        }
    }
}

/// The wire status of a certificate: a hold is a revocation with reason certificateHold.
fn wire_status(status: Option<&CertStatus>) -> WireStatus {
    match status {
        None => WireStatus::Unknown,
        Some(CertStatus::Good) => WireStatus::Good,
        Some(CertStatus::Hold { at }) => WireStatus::Revoked {
            time: from_unix_secs(*at),
            reason: Some(RevocationReason::CertificateHold),
        },
        Some(CertStatus::Revoked { at, reason }) => WireStatus::Revoked {
            time: from_unix_secs(*at),
            reason: RevocationReason::from_name(reason),
        },
    }
}

/// The CertID a client computes for `record` with `hash`.
fn cert_id(
    ca: &Certificate,
    record: &CertRecord,
    hash: HashAlg,
) -> Result<RequestedCert, OcspError> {
    let cert = signet_pki::x509::certificate_from_der(&record.der)
        .map_err(|e| OcspError::InternalError(e.to_string()))?;
    RequestedCert::for_certificate(ca, &cert, hash)
        .map_err(|e| OcspError::InternalError(e.to_string()))
}

fn cert_id_from_key(key: &[u8]) -> Option<RequestedCert> {
    use der::Decode;
    x509_ocsp::CertId::from_der(key)
        .ok()
        .map(RequestedCert::new)
}

fn truncate(t: SystemTime) -> SystemTime {
    from_unix_secs(certs::unix_secs(t))
}

impl OcspService {
    /// What the responder's index says of a certificate of CA `ca` (by name): `None` when
    /// no such CA answers here or it never issued `serial`. The client identity check asks
    /// it: the same index that revocations update before they return.
    pub fn status_in_index(&self, ca: &str, serial: &[u8]) -> Option<CertStatus> {
        let index = self.cas.iter().position(|c| c.name == ca)?;
        self.status_of(index, &serial_from_bytes(serial))
    }
}

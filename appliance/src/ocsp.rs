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
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use der::Encode;
use sha2::Digest;
use tokio::sync::{Mutex, MutexGuard};
use x509_cert::Certificate;

use signet_pki::ocsp::{
    self, CertStatus as WireStatus, IssuerMatcher, Nonce, OcspError, RequestedCert, Responder,
    RevocationReason, SingleAnswer,
};
use signet_pki::HashAlg;

use crate::hsm::{Hsm, KeyInfo};
use crate::store::certs::{self, from_unix_secs, serial_from_bytes};
use crate::store::{CertRecord, CertStatus, Store};

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
}

/// One CA this responder answers for, and its delegated signer.
pub struct CaResponder {
    /// The CA's name in this appliance (`root`).
    pub name: String,
    /// The CA certificate.
    pub ca_cert: Certificate,
    matcher: IssuerMatcher,
    responder: Responder,
    key: Arc<KeyInfo>,
}

impl CaResponder {
    /// CA `name` with certificate `ca_cert`, answered for by `signer_cert` whose key is `key`.
    pub fn new(
        name: &str,
        ca_cert: Certificate,
        signer_cert: Certificate,
        key: Arc<KeyInfo>,
    ) -> Result<Self, signet_pki::Error> {
        Ok(CaResponder {
            name: name.to_owned(),
            matcher: IssuerMatcher::new(&ca_cert)?,
            ca_cert,
            responder: Responder::new(signer_cert, key.algorithm.default_scheme()),
            key,
        })
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

/// The responder.
pub struct OcspService {
    cas: Vec<CaResponder>,
    store: Store,
    hsm: Hsm,
    settings: OcspSettings,
    cache: RwLock<HashMap<Vec<u8>, Arc<Presigned>>>,
    /// (CA index, serial) -> status, for every certificate issued.
    statuses: RwLock<HashMap<(usize, String), CertStatus>>,
    status_lock: Arc<Mutex<()>>,
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
        OcspService {
            cas,
            store,
            hsm,
            settings,
            cache: RwLock::new(HashMap::new()),
            statuses: RwLock::new(HashMap::new()),
            status_lock,
        }
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
        self.cas
            .iter()
            .map(|ca| ca.responder.certificate().clone())
            .collect()
    }

    /// Answer a DER OCSPRequest.
    pub async fn answer(&self, request: &[u8]) -> Answer {
        match self.try_answer(request).await {
            Ok(a) => a,
            Err(e) => Answer::Refused(e),
        }
    }

    async fn try_answer(&self, request: &[u8]) -> Result<Answer, OcspError> {
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
        (SystemTime::now() < hit.next_update).then_some(hit)
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
    fn status_of(&self, ca: usize, serial: &str) -> Option<CertStatus> {
        self.statuses
            .read()
            .ok()?
            .get(&(ca, serial.to_owned()))
            .cloned()
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
        let der = self
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
    }

    async fn sign(
        &self,
        ca: usize,
        answers: &[SingleAnswer],
        now: SystemTime,
        next_update: Option<SystemTime>,
        nonce: Option<&Nonce>,
    ) -> Result<Vec<u8>, OcspError> {
        let ca = &self.cas[ca];
        let prepared = ca
            .responder
            .prepare(answers, now, now, next_update, nonce)?;
        let signature = self
            .hsm
            .sign(&ca.key, prepared.scheme(), prepared.signed_bytes())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OCSP signing failed");
                if e.is_unavailable() {
                    OcspError::TryLater
                } else {
                    OcspError::InternalError("signing failed".into())
                }
            })?;
        prepared.finish(&signature)
    }

    /// Load the statuses of every certificate each CA issued, and sign the SHA-1 and SHA-256
    /// CertID forms of each ahead of time.
    pub async fn warm(&self) -> Result<usize, OcspError> {
        let guard = self.status_lock.lock().await;
        let mut issued = Vec::with_capacity(self.cas.len());
        for responder in &self.cas {
            let name = responder.name.clone();
            let records = self
                .store
                .with(move |c| certs::list_for_ca(c, &name))
                .await
                .map_err(|e| OcspError::InternalError(e.to_string()))?;
            issued.push(records);
        }
        let index = issued
            .iter()
            .enumerate()
            .flat_map(|(ca, records)| {
                records
                    .iter()
                    .map(move |r| ((ca, r.serial.clone()), r.status.clone()))
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
            statuses.insert((ca, record.serial.clone()), record.status.clone());
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

/// What the responder's index says of a client certificate: the client identity check asks
/// the same index that revocations update before they return.
impl crate::authz::IssuedStatus for OcspService {
    fn standing(&self, ca: &str, serial: &[u8]) -> crate::authz::Standing {
        use crate::authz::Standing;
        let Some(index) = self.cas.iter().position(|c| c.name == ca) else {
            return Standing::Unknown;
        };
        match self.status_of(index, &serial_from_bytes(serial)) {
            None => Standing::Unknown,
            Some(CertStatus::Good) => Standing::Good,
            Some(CertStatus::Hold { .. }) => Standing::Revoked {
                reason: "certificateHold".into(),
            },
            Some(CertStatus::Revoked { reason, .. }) => Standing::Revoked { reason },
        }
    }
}

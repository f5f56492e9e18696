//! CRLs (RFC 5280 section 5): a full CRL per CA, signed in the token, re-signed on every
//! status change and before its nextUpdate, and kept in the database across restarts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::Digest;
use tokio::sync::MutexGuard;

use signet_pki::crl::{self, CrlParams, RevokedEntry};
use signet_pki::ocsp::RevocationReason;
use signet_pki::x509::Issuer;

use signet_hsm::{Hsm, KeyInfo};
use signet_state::store::certs::{from_unix_secs, unix_secs};
use signet_state::store::crls::StoredCrl;
use signet_state::store::{CertStatus, Store};

/// Why a CRL could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// No such CA.
    #[error("no CA named {0:?}")]
    UnknownCa(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] signet_state::store::StoreError),
    /// Building the CRL.
    #[error(transparent)]
    Pki(#[from] signet_pki::Error),
    /// Signing it.
    #[error(transparent)]
    Hsm(#[from] signet_hsm::HsmError),
}

/// A CA whose CRL this appliance signs.
pub struct CrlIssuer {
    /// The CA's name (`root`): the CRL is served at `/crl/{name}.crl`.
    pub name: String,
    /// Its name, key identifier and scheme.
    pub issuer: Issuer,
    /// Its key in the token.
    pub key: Arc<KeyInfo>,
}

/// A CRL ready to serve.
#[derive(Debug)]
pub struct SignedCrl {
    /// The DER CertificateList.
    pub der: Bytes,
    /// Its thisUpdate.
    pub this_update: SystemTime,
    /// Its nextUpdate.
    pub next_update: SystemTime,
    /// Its cRLNumber.
    pub number: u64,
    /// A strong ETag (quoted).
    pub etag: String,
}

impl SignedCrl {
    fn from_stored(s: StoredCrl) -> Self {
        let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&s.der)[..16]));
        SignedCrl {
            der: Bytes::from(s.der),
            this_update: from_unix_secs(s.this_update),
            next_update: from_unix_secs(s.next_update),
            number: s.number,
            etag,
        }
    }
}

/// The CRLs of every CA.
pub struct CrlService {
    issuers: Vec<CrlIssuer>,
    store: Store,
    hsm: Hsm,
    validity: Duration,
    current: RwLock<HashMap<String, Arc<SignedCrl>>>,
}

impl CrlService {
    /// The service; CRLs are valid for `validity` and re-signed at half of it.
    pub fn new(issuers: Vec<CrlIssuer>, store: Store, hsm: Hsm, validity: Duration) -> Self {
        CrlService {
            issuers,
            store,
            hsm,
            validity,
            current: RwLock::new(HashMap::new()),
        }
    }

    /// The CRL of CA `name`, if there is a valid one.
    pub fn current(&self, name: &str) -> Option<Arc<SignedCrl>> {
        let crl = self.current.read().ok()?.get(name).cloned()?;
        (SystemTime::now() < crl.next_update).then_some(crl)
    }

    /// The names of the CAs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.name.as_str())
    }

    /// Sign a fresh CRL for CA `name` from the database's statuses and serve it; on a box
    /// that does not publish the CRLs, serve the publisher's newest from the database
    /// instead. Needs the status lock. On failure the old CRL is withdrawn (it may say
    /// "good" for a serial revoked since): CRL requests get 503 until a later attempt
    /// succeeds.
    pub async fn regenerate(
        &self,
        _lock: &MutexGuard<'_, ()>,
        name: &str,
    ) -> Result<Arc<SignedCrl>, CrlError> {
        let result = if self.store.publishes_crls() {
            self.sign_new(name).await
        } else {
            self.adopt_or_sign(name).await
        };
        self.serve(name, result)
    }

    /// Sign a fresh CRL for CA `name` and serve it, whichever box publishes: at start, and
    /// when this box has just become the publisher (the last one may have died between a
    /// revocation and its CRL). Needs the status lock.
    pub async fn sign_now(
        &self,
        _lock: &MutexGuard<'_, ()>,
        name: &str,
    ) -> Result<Arc<SignedCrl>, CrlError> {
        let result = self.sign_new(name).await;
        self.serve(name, result)
    }

    /// Serve what signing or adopting gave; on failure withdraw the old CRL.
    fn serve(
        &self,
        name: &str,
        result: Result<Arc<SignedCrl>, CrlError>,
    ) -> Result<Arc<SignedCrl>, CrlError> {
        match &result {
            Ok(crl) => {
                if let Ok(mut c) = self.current.write() {
                    c.insert(name.to_owned(), Arc::clone(crl));
                }
            }
            Err(e) => {
                tracing::error!(ca = name, error = %e, "CRL signing failed; CRL withdrawn");
                if let Ok(mut c) = self.current.write() {
                    c.remove(name);
                }
            }
        }
        result
    }

    /// Another box publishes the CRLs: serve its newest one of CA `name` from the database,
    /// unless it is missing, or past half its life (the publisher is not doing its job),
    /// or older than the one served here; then sign one here.
    async fn adopt_or_sign(&self, name: &str) -> Result<Arc<SignedCrl>, CrlError> {
        let served = self.current.read().ok().and_then(|c| c.get(name).cloned());
        let stored = self.store.latest_crl(name).await?;
        let now = SystemTime::now();
        match stored {
            Some(s) if now + self.validity / 2 < from_unix_secs(s.next_update) => match served {
                Some(mine) if mine.number >= s.number => Ok(mine),
                _ => Ok(Arc::new(SignedCrl::from_stored(s))),
            },
            _ => self.sign_new(name).await,
        }
    }

    /// On a box that does not publish the CRLs: serve each CA's newest from the database
    /// (what the publisher signed since). Needs the status lock.
    pub async fn adopt_published(&self, lock: &MutexGuard<'_, ()>) {
        if self.store.publishes_crls() {
            return;
        }
        let names: Vec<String> = self.names().map(str::to_owned).collect();
        for name in names {
            // Asked every second: the number first, the CRL only when it is newer.
            let served = self.current(&name).map(|c| c.number);
            let newest = self.store.crl_number(&name).await.ok().flatten();
            if served.is_some() && newest <= served {
                continue;
            }
            if let Err(e) = self.regenerate(lock, &name).await {
                tracing::warn!(ca = %name, error = %e, "published CRL not taken");
            }
        }
    }

    async fn sign_new(&self, name: &str) -> Result<Arc<SignedCrl>, CrlError> {
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| CrlError::UnknownCa(name.to_owned()))?;
        let (number, records) = self.store.next_crl(name).await?;
        let revoked = records
            .iter()
            .filter_map(|r| {
                let (at, reason) = match &r.status {
                    CertStatus::Good => return None,
                    CertStatus::Hold { at } => (*at, Some(RevocationReason::CertificateHold)),
                    CertStatus::Revoked { at, reason } => {
                        (*at, RevocationReason::from_name(reason))
                    }
                };
                Some(hex::decode(pad_even(&r.serial)).map(|serial| RevokedEntry {
                    serial: integer_content(serial),
                    revoked_at: from_unix_secs(at),
                    reason,
                }))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| signet_pki::Error::Invalid("stored serial is not hex"))?;
        let now = from_unix_secs(unix_secs(SystemTime::now()));
        let prepared = crl::prepare(&CrlParams {
            issuer: issuer.issuer.clone(),
            number,
            this_update: now,
            next_update: now + self.validity,
            revoked,
        })?;
        let signature = self
            .hsm
            .sign(&issuer.key, prepared.scheme(), prepared.tbs_der())
            .await?;
        let der = prepared.finish(&signature)?;
        let stored = StoredCrl {
            ca: name.to_owned(),
            number,
            this_update: unix_secs(now),
            next_update: unix_secs(now + self.validity),
            der,
        };
        self.store.save_crl(stored.clone()).await?;
        Ok(Arc::new(SignedCrl::from_stored(stored)))
    }

    /// Re-sign every CRL past half its life (or missing). Needs the status lock.
    pub async fn refresh_due(&self, lock: &MutexGuard<'_, ()>) -> usize {
        let now = SystemTime::now();
        let mut refreshed = 0;
        let names: Vec<String> = self.names().map(str::to_owned).collect();
        for name in names {
            let due = match self.current.read().ok().and_then(|c| c.get(&name).cloned()) {
                None => true,
                Some(c) => now + self.validity / 2 >= c.next_update,
            };
            if due && self.regenerate(lock, &name).await.is_ok() {
                refreshed += 1;
            }
        }
        refreshed
    }
}

fn pad_even(hex: &str) -> String {
    if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    }
}

/// The INTEGER content octets of a positive magnitude: a leading zero when the top bit is set.
fn integer_content(mut magnitude: Vec<u8>) -> Vec<u8> {
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        magnitude.insert(0, 0);
    }
    magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_become_positive_integer_content() {
        assert_eq!(integer_content(vec![0x80, 1]), vec![0, 0x80, 1]);
        assert_eq!(integer_content(vec![0x7f]), vec![0x7f]);
        assert_eq!(pad_even("abc"), "0abc");
    }
}

//! The status authority: every change to a certificate's status goes through here, so that
//! the database, the CRL and the cached OCSP answers move together.
//!
//! A change is committed to the database first (durable before anything else happens),
//! then the CA's CRL is re-signed and the cached OCSP responses for that certificate are
//! re-signed, all under the status lock that every cache writer takes. Only then does the
//! operator hear "done"; from that moment no answer says "good". If re-signing fails, the
//! stale CRL is withdrawn and the stale OCSP entries dropped (live signing reads the
//! database), and the operator hears that the change is recorded but not yet published.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use crate::crl::CrlService;
use crate::issuance::Issuers;
use crate::ocsp::OcspService;
use crate::ServiceError;
use signet_state::store::{CertRecord, StatusChange, Store};

/// See the module documentation.
pub struct StatusAuthority {
    store: Store,
    ca: Option<Arc<Issuers>>,
    ocsp: Arc<OcspService>,
    crls: Arc<CrlService>,
    lock: Arc<Mutex<()>>,
    /// How far this box has applied the store's change feed (other boxes' changes).
    feed_applied: AtomicU64,
}

impl StatusAuthority {
    /// Tie the store, the responder and the CRLs together under `lock` (the one the
    /// responder was built with).
    pub fn new(
        store: Store,
        ca: Option<Arc<Issuers>>,
        ocsp: Arc<OcspService>,
        crls: Arc<CrlService>,
        lock: Arc<Mutex<()>>,
    ) -> Self {
        StatusAuthority {
            store,
            ca,
            ocsp,
            crls,
            lock,
            feed_applied: AtomicU64::new(0),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The CAs that issue, if this daemon signs certificates.
    pub fn ca(&self) -> Option<&Issuers> {
        self.ca.as_deref()
    }

    /// A certificate was issued and recorded: OCSP answers "good" for it from now on.
    pub async fn issued(&self, record: &CertRecord) {
        let guard = self.lock.lock().await;
        if let Err(e) = self.ocsp.resign(&guard, record).await {
            tracing::warn!(error = %e, serial = %record.serial, "OCSP index not updated");
        }
    }

    /// Apply `change` to `serial` (normalised) and publish it.
    pub async fn change(
        &self,
        serial: &str,
        change: StatusChange,
    ) -> Result<CertRecord, ServiceError> {
        let guard = self.lock.lock().await;
        let record = self
            .store
            .change_status(serial, change, SystemTime::now())
            .await??;
        tracing::info!(serial = %record.serial, ca = %record.ca, status = ?record.status, "certificate status changed");
        let mut unpublished = Vec::new();
        if let Err(e) = self.crls.regenerate(&guard, &record.ca).await {
            unpublished.push(format!("CRL: {e}"));
        }
        if let Err(e) = self.ocsp.resign(&guard, &record).await {
            unpublished.push(format!("OCSP: {e}"));
        }
        if unpublished.is_empty() {
            Ok(record)
        } else {
            Err(ServiceError::Unpublished(format!(
                "status of {} recorded, but not yet published ({}); it will be retried",
                record.serial,
                unpublished.join("; ")
            )))
        }
    }

    /// The names of the CRLs served (`/crl/{name}.crl`).
    pub fn crl_names(&self) -> Vec<String> {
        self.crls.names().map(str::to_owned).collect()
    }

    /// Sign what the appliance serves: every CRL afresh and the OCSP cache.
    pub async fn publish_all(&self) -> Result<(), String> {
        // Everything in the feed up to here is in what is signed below.
        let head = self.store.feed_head().await.map_err(|e| e.to_string())?;
        self.feed_applied.fetch_max(head, Ordering::Relaxed);
        {
            let guard = self.lock.lock().await;
            let names: Vec<String> = self.crls.names().map(str::to_owned).collect();
            for name in names {
                self.crls
                    .sign_now(&guard, &name)
                    .await
                    .map_err(|e| format!("CRL of {name}: {e}"))?;
            }
        }
        let n = self.ocsp.warm().await.map_err(|e| format!("OCSP: {e}"))?;
        tracing::info!(responses = n, "OCSP responses signed ahead of time");
        Ok(())
    }

    /// Follow the store's change feed until `shutdown`: what another box revoked, put on
    /// hold, released or issued is taken into this box's OCSP index, cached answers and
    /// CRL, within one notification (at most a second when notifications are lost). One
    /// box signs the CRLs (the one that holds the publisher's lock in the database; a box
    /// that takes the lock over signs them afresh at once); the others serve its newest.
    /// Nothing to follow on SQLite.
    pub async fn follow(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(signal) = self.store.change_signal() else {
            return;
        };
        tokio::pin!(shutdown);
        let mut was_publisher = false;
        loop {
            tokio::select! {
                () = signal.notified() => {}
                () = &mut shutdown => return,
            }
            while let Ok(more) = self.apply_feed().await {
                if !more {
                    break;
                }
            }
            let guard = self.lock.lock().await;
            let publisher = self.store.publishes_crls();
            if publisher && !was_publisher {
                // Taken over: the last publisher may have died between a revocation and
                // its CRL.
                for name in self.crl_names() {
                    if let Err(e) = self.crls.sign_now(&guard, &name).await {
                        tracing::warn!(ca = %name, error = %e, "CRL not signed");
                    }
                }
            }
            was_publisher = publisher;
            // What the CRL publisher (another box) signed since.
            self.crls.adopt_published(&guard).await;
        }
    }

    /// Apply one page of the feed; whether there may be more.
    async fn apply_feed(&self) -> Result<bool, ()> {
        let after = self.feed_applied.load(Ordering::Relaxed);
        let (reached, records) = self.store.changes_since(after).await.map_err(|e| {
            tracing::warn!(error = %e, "change feed not read");
        })?;
        let guard = self.lock.lock().await;
        let mut cas = BTreeSet::new();
        let mut missed = false;
        for record in records.iter().filter(|r| !self.ocsp.knows(r)) {
            tracing::info!(serial = %record.serial, ca = %record.ca, status = ?record.status, "status changed on another box");
            if let Err(e) = self.ocsp.resign(&guard, record).await {
                tracing::warn!(error = %e, serial = %record.serial, "OCSP not re-signed; retried at the next wake-up");
                missed = true;
            }
            cas.insert(record.ca.clone());
        }
        for ca in cas {
            if let Err(e) = self.crls.regenerate(&guard, &ca).await {
                tracing::warn!(error = %e, ca = %ca, "CRL not re-signed");
            }
        }
        if missed {
            // Not past this page: the next wake-up (within a second) reads it again, and
            // what was applied is skipped (`knows`).
            return Err(());
        }
        self.feed_applied.fetch_max(reached, Ordering::Relaxed);
        Ok(reached > after)
    }

    /// Re-sign CRLs and OCSP responses before they expire, every `every`, until `shutdown`.
    pub async fn refresh(
        self: Arc<Self>,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => return,
            }
            let crls = {
                let guard = self.lock.lock().await;
                self.crls.refresh_due(&guard).await
            };
            let responses = self.ocsp.refresh_due().await;
            crate::metrics::resigned(responses, crls);
            if crls + responses > 0 {
                tracing::info!(crls, responses, "re-signed before nextUpdate");
            }
        }
    }
}

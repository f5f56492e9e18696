//! What the appliance asks of its store, one method a question. Callers above this crate
//! name no database type: whichever backend holds the data answers.

use std::time::SystemTime;

use x509_cert::Certificate;

use super::certs::{self, StatusChange};
use super::crls::StoredCrl;
use super::{CertRecord, ChangeRefused, Store, StoreError};

/// An issued certificate to record: (CA, profile, certificate).
pub type Issued<'a> = (&'a str, &'a str, &'a Certificate);

impl Store {
    /// Every certificate the appliance issued.
    pub async fn certificates(&self) -> Result<Vec<CertRecord>, StoreError> {
        self.with(|db| db.certificates(None)).await
    }

    /// The certificates CA `ca` issued.
    pub async fn certificates_of(&self, ca: &str) -> Result<Vec<CertRecord>, StoreError> {
        let ca = ca.to_owned();
        self.with(move |db| db.certificates(Some(&ca))).await
    }

    /// The certificates whose serial is `serial` (normalised), under any CA.
    pub async fn find_certificate(&self, serial: &str) -> Result<Vec<CertRecord>, StoreError> {
        let serial = serial.to_owned();
        self.with(move |db| db.find_certificate(&serial)).await
    }

    /// Record `cert`, issued by CA `ca` under `profile`, as good.
    pub async fn record_certificate(
        &self,
        ca: &str,
        profile: &str,
        cert: &Certificate,
    ) -> Result<CertRecord, StoreError> {
        let rec = certs::new_record(ca, profile, cert)?;
        let stored = rec.clone();
        self.with(move |db| db.record_certificates(&[stored], false))
            .await?;
        Ok(rec)
    }

    /// Apply `change` to the certificate with `serial` at `at`, durably; the record as it
    /// now stands, or why the change was refused.
    pub async fn change_status(
        &self,
        serial: &str,
        change: StatusChange,
        at: SystemTime,
    ) -> Result<Result<CertRecord, ChangeRefused>, StoreError> {
        let serial = serial.to_owned();
        self.with(move |db| db.change_status(&serial, &change, at))
            .await
    }

    /// For CA `ca`'s next CRL: its cRLNumber (durable before the CRL is signed, never
    /// reused, RFC 5280 5.2.3) and the CA's certificates.
    pub async fn next_crl(&self, ca: &str) -> Result<(u64, Vec<CertRecord>), StoreError> {
        let ca = ca.to_owned();
        self.with(move |db| {
            let number = db.reserve(&format!("crl:{ca}"), 1)?.start;
            Ok((number, db.certificates(Some(&ca))?))
        })
        .await
    }

    /// Keep `crl` as the newest of its CA.
    pub async fn save_crl(&self, crl: StoredCrl) -> Result<(), StoreError> {
        self.with(move |db| db.save_crl(&crl)).await
    }

    /// The cRLNumber of the newest CRL of `ca`, if one was ever saved.
    pub async fn crl_number(&self, ca: &str) -> Result<Option<u64>, StoreError> {
        let ca = ca.to_owned();
        self.with(move |db| db.crl_number(&ca)).await
    }

    /// The newest CRL of `ca`, if one was ever saved.
    pub async fn latest_crl(&self, ca: &str) -> Result<Option<StoredCrl>, StoreError> {
        let ca = ca.to_owned();
        self.with(move |db| db.latest_crl(&ca)).await
    }

    /// The next value counter `name` would hand out (`None` before its first use): how far
    /// the TSA's serials have gone, for `signetctl status`.
    pub async fn counter_next(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.peek(&name)).await
    }

    /// Start the PKI over (a ceremony): forget every certificate and record `issued` in
    /// one transaction. Blocking: for the CLI.
    pub fn replace_certificates(&self, issued: &[Issued<'_>]) -> Result<(), StoreError> {
        let records = records_of(issued)?;
        self.with_blocking(|db| db.record_certificates(&records, true))
    }

    /// Record `issued` in one transaction, keeping what is there. Blocking: for tools and
    /// tests that fill a store at rest.
    pub fn record_certificates(&self, issued: &[Issued<'_>]) -> Result<(), StoreError> {
        let records = records_of(issued)?;
        self.with_blocking(|db| db.record_certificates(&records, false))
    }

    /// The newest position of the change feed (0 on SQLite, where one box makes every
    /// change and has applied it already).
    pub async fn feed_head(&self) -> Result<u64, StoreError> {
        self.with(|db| db.feed_head()).await
    }

    /// The certificates other boxes (or this one) changed or recorded after feed position
    /// `after`, as they now stand, and the position reached.
    pub async fn changes_since(&self, after: u64) -> Result<(u64, Vec<CertRecord>), StoreError> {
        self.with(move |db| db.changes_since(after)).await
    }

    /// A signal woken whenever the change feed may have moved (on PostgreSQL: at every
    /// notification, reconnection, and second); `None` on SQLite, where nothing else
    /// changes the store.
    pub fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        let signal = std::sync::Arc::new(tokio::sync::Notify::new());
        let db = self.db.lock().ok()?;
        db.watch(super::backend::Watch {
            signal: std::sync::Arc::downgrade(&signal),
            reachable: std::sync::Arc::clone(&self.reachable),
            publisher: std::sync::Arc::clone(&self.publisher),
        })
        .then_some(signal)
    }

    /// Tell the other boxes this one (`node`, started at `started`) is alive now.
    pub async fn heartbeat(&self, node: &str, started: SystemTime) -> Result<(), StoreError> {
        let node = node.to_owned();
        let started = certs::unix_secs(started) as i64;
        let now = certs::unix_secs(SystemTime::now()) as i64;
        self.with(move |db| db.heartbeat(&node, env!("CARGO_PKG_VERSION"), started, now))
            .await
    }

    /// The boxes that share this database, as their heartbeats last said.
    pub async fn nodes(&self) -> Result<Vec<super::NodeSeen>, StoreError> {
        self.with(|db| db.nodes()).await
    }

    /// Ask the database something small: `Unreachable` when it cannot answer now. Called
    /// before work that must be recorded (issuing a certificate signs first), so that a
    /// database known to be down refuses the request before anything is signed.
    pub async fn check_reachable(&self) -> Result<(), StoreError> {
        self.with(|db| db.feed_head().map(drop)).await
    }

    /// Everything this store holds (certificates with their statuses, counters, CRLs), to
    /// copy into another one. Blocking: for the CLI.
    pub fn snapshot(&self) -> Result<super::Snapshot, StoreError> {
        self.with_blocking(|db| db.snapshot())
    }

    /// Take `snapshot` into this store, which must hold nothing yet (`NotEmpty`), in one
    /// transaction. Blocking: for the CLI.
    pub fn restore(&self, snapshot: &super::Snapshot) -> Result<(), StoreError> {
        self.with_blocking(|db| db.restore(snapshot))
    }

    /// The database's own consistency check: `ok`, or what is wrong. Blocking.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.with_blocking(|db| db.integrity_check())
    }
}

fn records_of(issued: &[Issued<'_>]) -> Result<Vec<CertRecord>, StoreError> {
    issued
        .iter()
        .map(|(ca, profile, cert)| certs::new_record(ca, profile, cert))
        .collect()
}

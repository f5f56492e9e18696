//! What the appliance asks of its store, one method a question. Callers above this crate
//! name no database type: the store answers these calls whatever holds the data, which is
//! where a second backend fits.

use std::time::SystemTime;

use x509_cert::Certificate;

use super::crls::{self, StoredCrl};
use super::{certs, CertRecord, ChangeRefused, StatusChange, Store, StoreError};

impl Store {
    /// Every certificate the appliance issued.
    pub async fn certificates(&self) -> Result<Vec<CertRecord>, StoreError> {
        self.with(|c| certs::list(c)).await
    }

    /// The certificates CA `ca` issued.
    pub async fn certificates_of(&self, ca: &str) -> Result<Vec<CertRecord>, StoreError> {
        let ca = ca.to_owned();
        self.with(move |c| certs::list_for_ca(c, &ca)).await
    }

    /// The certificates whose serial is `serial` (normalised), under any CA.
    pub async fn find_certificate(&self, serial: &str) -> Result<Vec<CertRecord>, StoreError> {
        let serial = serial.to_owned();
        self.with(move |c| certs::find(c, &serial)).await
    }

    /// Record `cert`, issued by CA `ca` under `profile`, as good.
    pub async fn record_certificate(
        &self,
        ca: &str,
        profile: &str,
        cert: &Certificate,
    ) -> Result<CertRecord, StoreError> {
        let (ca, profile, cert) = (ca.to_owned(), profile.to_owned(), cert.clone());
        self.with(move |c| certs::record(c, &ca, &profile, &cert))
            .await
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
        self.with(move |c| certs::change_status(c, &serial, &change, at))
            .await
    }

    /// For CA `ca`'s next CRL: its cRLNumber (durable before the CRL is signed, never
    /// reused) and the CA's certificates, read together.
    pub async fn next_crl(&self, ca: &str) -> Result<(u64, Vec<CertRecord>), StoreError> {
        let ca = ca.to_owned();
        self.with(move |c| Ok((crls::next_number(c, &ca)?, certs::list_for_ca(c, &ca)?)))
            .await
    }

    /// Keep `crl` as the newest of its CA.
    pub async fn save_crl(&self, crl: StoredCrl) -> Result<(), StoreError> {
        self.with(move |c| crls::save(c, &crl)).await
    }

    /// The next value counter `name` would hand out (`None` before its first use): how far
    /// the TSA's serials have gone, for `signetctl status`.
    pub async fn counter_next(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_owned();
        self.with(move |c| super::serials::peek(c, &name)).await
    }

    /// Start the PKI over (a ceremony): forget every certificate and record `issued`,
    /// each as (CA, profile, certificate), in one transaction. Blocking: for the CLI.
    pub fn replace_certificates(
        &self,
        issued: &[(&str, &str, &Certificate)],
    ) -> Result<(), StoreError> {
        self.with_blocking(|c| {
            let tx = c.transaction()?;
            certs::clear(&tx)?;
            for (ca, profile, cert) in issued {
                certs::record(&tx, ca, profile, cert)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Record `issued`, each as (CA, profile, certificate), in one transaction, keeping
    /// what is there. Blocking: for tools and tests that fill a store at rest.
    pub fn record_certificates(
        &self,
        issued: &[(&str, &str, &Certificate)],
    ) -> Result<(), StoreError> {
        self.with_blocking(|c| {
            let tx = c.transaction()?;
            for (ca, profile, cert) in issued {
                certs::record(&tx, ca, profile, cert)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The database's own consistency check: `ok`, or what is wrong. Blocking.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.with_blocking(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
    }
}

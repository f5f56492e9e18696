//! Everything a store holds that another store needs to take over from it: what
//! `signetctl store migrate` copies from a one-box SQLite appliance into PostgreSQL, and
//! reads back to compare.

use super::certs::CertRecord;
use super::crls::StoredCrl;

/// A store's whole shared state, in a fixed order (so that two snapshots compare equal
/// when the stores hold the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every certificate with its status, by CA then serial.
    pub certificates: Vec<CertRecord>,
    /// Every counter (TSA serial blocks, CRL numbers) as its next value, by name.
    pub counters: Vec<(String, u64)>,
    /// The newest CRL of each CA, by CA.
    pub crls: Vec<StoredCrl>,
}

impl Snapshot {
    /// Put every part in its fixed order.
    pub(crate) fn sorted(mut self) -> Snapshot {
        self.certificates
            .sort_by(|a, b| (&a.ca, &a.serial).cmp(&(&b.ca, &b.serial)));
        self.counters.sort();
        self.crls.sort_by(|a, b| a.ca.cmp(&b.ca));
        self
    }

    /// Certificates revoked, and on hold.
    pub fn revoked_and_held(&self) -> (usize, usize) {
        use super::certs::CertStatus;
        let count =
            |f: fn(&CertStatus) -> bool| self.certificates.iter().filter(|c| f(&c.status)).count();
        (
            count(|s| matches!(s, CertStatus::Revoked { .. })),
            count(|s| matches!(s, CertStatus::Hold { .. })),
        )
    }

    /// The first difference from `other`, in words; `None` when they hold the same.
    pub fn difference(&self, other: &Snapshot) -> Option<String> {
        if self.certificates.len() != other.certificates.len() {
            return Some(format!(
                "{} certificates against {}",
                self.certificates.len(),
                other.certificates.len()
            ));
        }
        if let Some((a, _)) = self
            .certificates
            .iter()
            .zip(&other.certificates)
            .find(|(a, b)| a != b)
        {
            return Some(format!("certificate {} of CA {} differs", a.serial, a.ca));
        }
        if self.counters != other.counters {
            return Some(format!(
                "counters {:?} against {:?}",
                self.counters, other.counters
            ));
        }
        if self.crls != other.crls {
            return Some("the stored CRLs differ".into());
        }
        None
    }
}

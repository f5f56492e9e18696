//! Every certificate the appliance issued, and its status: good, revoked, or on hold.
//!
//! Serial numbers are kept as lowercase hex of the INTEGER's magnitude (no leading zero
//! octets), which is how operators type them and how OCSP CertIDs are matched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::Encode;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use x509_cert::Certificate;

use super::StoreError;

/// Where a certificate stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum CertStatus {
    /// Not revoked.
    Good,
    /// Revoked for good at `at`, for `reason` (an RFC 5280 CRLReason name).
    Revoked {
        /// When the revocation took effect (seconds since the epoch).
        at: u64,
        /// The CRLReason, as the operator named it.
        reason: String,
    },
    /// Suspended (certificateHold) since `at`; `unhold` makes it good again.
    Hold {
        /// When the hold took effect (seconds since the epoch).
        at: u64,
    },
}

/// One issued certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertRecord {
    /// The issuing CA's name in this appliance (e.g. `root`).
    pub ca: String,
    /// Serial number, lowercase hex without leading zeros.
    pub serial: String,
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// Start of validity, seconds since the epoch.
    pub not_before: u64,
    /// End of validity, seconds since the epoch.
    pub not_after: u64,
    /// The profile it was issued under (`ca`, `tsa`, `tls-server`, ...).
    pub profile: String,
    /// Its status.
    #[serde(flatten)]
    pub status: CertStatus,
    /// The certificate, DER.
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// What an operator may do to a certificate's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// Revoke with this CRLReason name; `certificateHold` puts it on hold instead.
    Revoke(String),
    /// Lift a hold.
    Unhold,
}

/// Why a status change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeRefused {
    /// No certificate with that serial.
    #[error("no certificate with serial {0}")]
    NotFound(String),
    /// A revocation is final.
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
    /// Only a certificate on hold can be released.
    #[error("certificate {0} is not on hold")]
    NotOnHold(String),
    /// More than one CA issued this serial: name the CA.
    #[error("serial {0} was issued by more than one CA")]
    Ambiguous(String),
}

/// Normalise a serial typed by an operator or read from DER: hex, colons allowed, any case,
/// leading zeros dropped. `None` when it is not hex.
pub fn normalise_serial(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = hex.trim_start_matches('0').to_ascii_lowercase();
    Some(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed
    })
}

/// The serial of a DER INTEGER's content octets, normalised (lower-case hex without
/// leading zeros, as [`normalise_serial`] gives). One allocation: the client check and the
/// TSA look a serial up for every request.
pub fn serial_from_bytes(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut serial = String::with_capacity(2 * bytes.len());
    for nibble in bytes.iter().flat_map(|b| [b >> 4, b & 0x0f]) {
        if !(serial.is_empty() && nibble == 0) {
            serial.push(char::from(DIGITS[usize::from(nibble)]));
        }
    }
    if serial.is_empty() {
        serial.push('0');
    }
    serial
}

/// Seconds since the epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time `secs` seconds after the epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The record of `cert`, issued by CA `ca` under `profile`, as good: what every backend
/// stores for a newly issued certificate.
pub fn new_record(ca: &str, profile: &str, cert: &Certificate) -> Result<CertRecord, StoreError> {
    let tbs = &cert.tbs_certificate;
    let der = cert
        .to_der()
        .map_err(|e| StoreError::Encoding(e.to_string()))?;
    Ok(CertRecord {
        ca: ca.to_owned(),
        serial: serial_from_bytes(tbs.serial_number.as_bytes()),
        subject: tbs.subject.to_string(),
        not_before: unix_secs(tbs.validity.not_before.to_system_time()),
        not_after: unix_secs(tbs.validity.not_after.to_system_time()),
        profile: profile.to_owned(),
        status: CertStatus::Good,
        der,
    })
}

/// Store `rec` as good. Re-recording the same serial replaces it (a `--force` ceremony
/// starts the PKI over).
pub fn insert_record(conn: &Connection, rec: &CertRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO certificates
           (ca, serial, subject, not_before, not_after, profile, der, status, changed_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'good', NULL, NULL)",
        params![
            rec.ca,
            rec.serial,
            rec.subject,
            rec.not_before as i64,
            rec.not_after as i64,
            rec.profile,
            rec.der
        ],
    )?;
    Ok(())
}

/// Forget every certificate (a `--force` ceremony).
pub fn clear(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("DELETE FROM certificates", [])?;
    Ok(())
}

const COLUMNS: &str =
    "ca, serial, subject, not_before, not_after, profile, der, status, changed_at, reason";

/// The (`status`, `changed_at`, `reason`) columns that store `status`.
pub fn columns_of(status: &CertStatus) -> (&'static str, Option<i64>, Option<&str>) {
    match status {
        CertStatus::Good => ("good", None, None),
        CertStatus::Revoked { at, reason } => ("revoked", Some(*at as i64), Some(reason)),
        CertStatus::Hold { at } => ("hold", Some(*at as i64), None),
    }
}

/// The status stored as (`status`, `changed_at`, `reason`) columns.
pub fn status_of(status: &str, changed_at: Option<i64>, reason: Option<String>) -> CertStatus {
    let at = changed_at.unwrap_or(0).max(0) as u64;
    match status {
        "revoked" => CertStatus::Revoked {
            at,
            reason: reason.unwrap_or_else(|| "unspecified".into()),
        },
        "hold" => CertStatus::Hold { at },
        _ => CertStatus::Good,
    }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<CertRecord> {
    Ok(CertRecord {
        ca: row.get(0)?,
        serial: row.get(1)?,
        subject: row.get(2)?,
        not_before: row.get::<_, i64>(3)?.max(0) as u64,
        not_after: row.get::<_, i64>(4)?.max(0) as u64,
        profile: row.get(5)?,
        der: row.get(6)?,
        status: status_of(&row.get::<_, String>(7)?, row.get(8)?, row.get(9)?),
    })
}

/// Every certificate, oldest serial first within each CA.
pub fn list(conn: &Connection) -> Result<Vec<CertRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM certificates ORDER BY ca, not_before, serial"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The certificates of CA `ca`.
pub fn list_for_ca(conn: &Connection, ca: &str) -> Result<Vec<CertRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE ca = ?1 ORDER BY serial"
    ))?;
    let rows = stmt.query_map([ca], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The certificate CA `ca` issued with `serial` (normalised), if any.
pub fn get(conn: &Connection, ca: &str, serial: &str) -> Result<Option<CertRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM certificates WHERE ca = ?1 AND serial = ?2"),
            params![ca, serial],
            from_row,
        )
        .optional()?)
}

/// Every certificate with `serial` (normalised), whichever CA issued it.
pub fn find(conn: &Connection, serial: &str) -> Result<Vec<CertRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE serial = ?1 ORDER BY ca"
    ))?;
    let rows = stmt.query_map([serial], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A status as its columns: (`status`, `changed_at`, `reason`).
pub struct StatusColumns<'a> {
    /// `good`, `revoked` or `hold`.
    pub status: &'static str,
    /// When it took effect (seconds since the epoch), `None` for good.
    pub changed_at: Option<i64>,
    /// The CRLReason name, for revoked and hold.
    pub reason: Option<&'a str>,
}

/// What `change` makes of the single certificate `found` for `serial` at `now`: the
/// columns to write, or why the change is refused. Every backend applies these rules.
pub fn transition<'a>(
    serial: &str,
    found: &[CertRecord],
    change: &'a StatusChange,
    now: SystemTime,
) -> Result<(CertRecord, StatusColumns<'a>), ChangeRefused> {
    let current = match found {
        [] => return Err(ChangeRefused::NotFound(serial.to_owned())),
        [one] => one.clone(),
        _ => return Err(ChangeRefused::Ambiguous(serial.to_owned())),
    };
    let at = unix_secs(now) as i64;
    let (status, reason) = match (change, &current.status) {
        (_, CertStatus::Revoked { .. }) => {
            return Err(ChangeRefused::AlreadyRevoked(serial.to_owned()))
        }
        (StatusChange::Revoke(r), _) if r == "certificateHold" => ("hold", Some(r.as_str())),
        (StatusChange::Revoke(r), _) => ("revoked", Some(r.as_str())),
        (StatusChange::Unhold, CertStatus::Hold { .. }) => ("good", None),
        (StatusChange::Unhold, CertStatus::Good) => {
            return Err(ChangeRefused::NotOnHold(serial.to_owned()))
        }
    };
    // A hold that becomes a revocation keeps the hold's time: the key was in doubt since.
    let changed_at = match (&current.status, status) {
        (CertStatus::Hold { at: held }, "revoked") => Some(*held as i64),
        (_, "good") => None,
        _ => Some(at),
    };
    Ok((
        current,
        StatusColumns {
            status,
            changed_at,
            reason,
        },
    ))
}

/// Apply `change` to the certificate with `serial` at time `now`, in one durable
/// transaction. Returns the record as it now stands, or why the change was refused.
pub fn change_status(
    conn: &mut Connection,
    serial: &str,
    change: &StatusChange,
    now: SystemTime,
) -> Result<Result<CertRecord, ChangeRefused>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = find(&tx, serial)?;
    let (current, new) = match transition(serial, &found, change, now) {
        Ok(t) => t,
        Err(refused) => return Ok(Err(refused)),
    };
    tx.execute(
        "UPDATE certificates SET status = ?1, changed_at = ?2, reason = ?3
         WHERE ca = ?4 AND serial = ?5",
        params![
            new.status,
            new.changed_at,
            new.reason,
            current.ca,
            current.serial
        ],
    )?;
    let updated = get(&tx, &current.ca, &current.serial)?
        .ok_or_else(|| StoreError::Encoding("certificate vanished".into()))?;
    tx.commit()?;
    Ok(Ok(updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalise_the_way_operators_type_them() {
        assert_eq!(normalise_serial("00:1A:2b").as_deref(), Some("1a2b"));
        assert_eq!(normalise_serial("0000").as_deref(), Some("0"));
        assert_eq!(normalise_serial("xyz"), None);
        assert_eq!(normalise_serial(""), None);
        assert_eq!(serial_from_bytes(&[0x00, 0x80, 0x01]), "8001");
    }

    #[test]
    fn serials_from_bytes_are_their_hex_normalised() {
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0, 0], vec![0x0f], vec![0xf0]];
        cases.extend((0..2_000u32).map(|i| {
            let len = (i % 21) as usize;
            (0..len)
                .map(|j| {
                    (i.wrapping_mul(2_654_435_761) >> (j % 24)) as u8
                        & [0x00, 0x0f, 0xff][(i as usize + j) % 3]
                })
                .collect()
        }));
        for bytes in cases {
            let want = normalise_serial(&hex::encode(&bytes)).unwrap_or_else(|| "0".into());
            assert_eq!(serial_from_bytes(&bytes), want, "{bytes:02x?}");
        }
    }

    fn insert(conn: &Connection, serial: &str) {
        conn.execute(
            "INSERT INTO certificates (ca, serial, subject, not_before, not_after, profile, der, status)
             VALUES ('root', ?1, 'CN=x', 0, 10, 'tsa', x'00', 'good')",
            [serial],
        )
        .expect("insert");
    }

    #[test]
    fn status_changes_follow_the_rules_and_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let mut conn = crate::store::sqlite::open(&path).expect("open");
        let now = from_unix_secs(1_000);
        let later = from_unix_secs(2_000);
        (|c: &mut Connection| -> Result<(), StoreError> {
            insert(c, "1a");
            insert(c, "2b");
            let held = change_status(
                c,
                "1a",
                &StatusChange::Revoke("certificateHold".into()),
                now,
            )?;
            assert_eq!(held.map(|r| r.status), Ok(CertStatus::Hold { at: 1_000 }));
            let unheld = change_status(c, "1a", &StatusChange::Unhold, later)?;
            assert_eq!(unheld.map(|r| r.status), Ok(CertStatus::Good));
            assert_eq!(
                change_status(c, "1a", &StatusChange::Unhold, later)?.map(|r| r.status),
                Err(ChangeRefused::NotOnHold("1a".into()))
            );
            change_status(
                c,
                "2b",
                &StatusChange::Revoke("certificateHold".into()),
                now,
            )?
            .expect("hold");
            let revoked = change_status(
                c,
                "2b",
                &StatusChange::Revoke("keyCompromise".into()),
                later,
            )?;
            assert_eq!(
                revoked.map(|r| r.status),
                Ok(CertStatus::Revoked {
                    at: 1_000,
                    reason: "keyCompromise".into()
                }),
                "a hold turned revocation dates from the hold"
            );
            assert_eq!(
                change_status(c, "2b", &StatusChange::Unhold, later)?.map(|r| r.status),
                Err(ChangeRefused::AlreadyRevoked("2b".into()))
            );
            assert_eq!(
                change_status(c, "ff", &StatusChange::Unhold, later)?.map(|r| r.status),
                Err(ChangeRefused::NotFound("ff".into()))
            );
            Ok(())
        })(&mut conn)
        .expect("db");
        drop(conn);
        let reopened = crate::store::sqlite::open(&path).expect("reopen");
        let rec = get(&reopened, "root", "2b").expect("get").expect("present");
        assert!(matches!(rec.status, CertStatus::Revoked { .. }), "{rec:?}");
    }
}

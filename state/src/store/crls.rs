//! The newest CRL of each CA, kept so that a restart serves it before re-signing.

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// A signed CRL as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    /// The CA's name.
    pub ca: String,
    /// Its cRLNumber.
    pub number: u64,
    /// thisUpdate, seconds since the epoch.
    pub this_update: u64,
    /// nextUpdate, seconds since the epoch.
    pub next_update: u64,
    /// The CertificateList, DER.
    pub der: Vec<u8>,
}

/// Keep `crl` as the newest of its CA.
pub fn save(conn: &Connection, crl: &StoredCrl) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO crls (ca, number, this_update, next_update, der)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            crl.ca,
            crl.number as i64,
            crl.this_update as i64,
            crl.next_update as i64,
            crl.der
        ],
    )?;
    Ok(())
}

/// The newest CRL of `ca`, if one was ever signed.
pub fn latest(conn: &Connection, ca: &str) -> Result<Option<StoredCrl>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT ca, number, this_update, next_update, der FROM crls WHERE ca = ?1",
            [ca],
            |r| {
                Ok(StoredCrl {
                    ca: r.get(0)?,
                    number: r.get::<_, i64>(1)?.max(0) as u64,
                    this_update: r.get::<_, i64>(2)?.max(0) as u64,
                    next_update: r.get::<_, i64>(3)?.max(0) as u64,
                    der: r.get(4)?,
                })
            },
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_number(conn: &mut Connection, ca: &str) -> Result<u64, StoreError> {
        Ok(crate::store::serials::reserve(conn, &format!("crl:{ca}"), 1)?.start)
    }

    #[test]
    fn crl_numbers_increase_and_the_newest_crl_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = crate::store::sqlite::open(&dir.path().join("s.db")).expect("open");
        (|c: &mut Connection| -> Result<(), StoreError> {
            let a = next_number(c, "root")?;
            let b = next_number(c, "root")?;
            assert!(b > a, "{a} then {b}");
            for number in [a, b] {
                save(
                    c,
                    &StoredCrl {
                        ca: "root".into(),
                        number,
                        this_update: 10,
                        next_update: 20,
                        der: vec![number as u8],
                    },
                )?;
            }
            let newest = latest(c, "root")?.expect("a CRL");
            assert_eq!(newest.number, b);
            assert!(latest(c, "other")?.is_none());
            Ok(())
        })(&mut conn)
        .expect("db");
    }
}

//! A snapshot written into an empty schema, in the caller's transaction: `signetctl store
//! migrate`'s copy from SQLite.

use postgres::Transaction;

use super::super::certs::columns_of;
use super::super::Snapshot;
use super::feed;

/// Insert every certificate (with its status, and a feed entry so that boxes already
/// following see it), every counter and every CRL of `snapshot`.
pub(super) fn copy(tx: &mut Transaction<'_>, snapshot: &Snapshot) -> Result<(), postgres::Error> {
    let insert = tx.prepare(
        "INSERT INTO certificates
           (ca, serial, subject, not_before, not_after, profile, der, status, changed_at, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?;
    for r in &snapshot.certificates {
        let (status, changed_at, reason) = columns_of(&r.status);
        let (nb, na) = (r.not_before as i64, r.not_after as i64);
        tx.execute(
            &insert,
            &[
                &r.ca,
                &r.serial,
                &r.subject,
                &nb,
                &na,
                &r.profile,
                &r.der,
                &status,
                &changed_at,
                &reason,
            ],
        )?;
        feed::append(tx, &r.ca, &r.serial)?;
    }
    for (name, next) in &snapshot.counters {
        tx.execute(
            "INSERT INTO counters (name, next) VALUES ($1, $2)",
            &[name, &(*next as i64)],
        )?;
    }
    for crl in &snapshot.crls {
        let (number, this, next) = (
            crl.number as i64,
            crl.this_update as i64,
            crl.next_update as i64,
        );
        tx.execute(
            "INSERT INTO crls (ca, number, this_update, next_update, der)
             VALUES ($1, $2, $3, $4, $5)",
            &[&crl.ca, &number, &this, &next, &crl.der],
        )?;
    }
    Ok(())
}

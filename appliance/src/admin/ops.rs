//! What each admin command does. The daemon runs them with its live status authority (so a
//! revocation also re-signs OCSP answers and the CRL before it returns); `signetctl` runs
//! them against the database alone when no daemon is running.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::{AdminError, Command};
use crate::issuance::CertificateAuthority;
use crate::revocation::StatusAuthority;
use crate::store::certs::{self, normalise_serial};
use crate::store::{ChangeRefused, StatusChange, Store, StoreError};

/// The CRLReason names an operator may give (RFC 5280 5.3.1).
pub const REASONS: [&str; 7] = [
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

/// Where commands act.
pub enum Target<'a> {
    /// The running daemon: database, OCSP cache and CRLs together.
    Live(&'a Arc<StatusAuthority>),
    /// The database alone (no daemon runs; it catches up when it starts), and the CA when
    /// the command needs to sign.
    Offline(&'a Store, Option<&'a CertificateAuthority>),
}

impl Target<'_> {
    fn store(&self) -> &Store {
        match self {
            Target::Live(a) => a.store(),
            Target::Offline(s, _) => s,
        }
    }

    fn ca(&self) -> Option<&CertificateAuthority> {
        match self {
            Target::Live(a) => a.ca(),
            Target::Offline(_, ca) => *ca,
        }
    }
}

/// Run `command`.
pub async fn execute(target: Target<'_>, command: Command) -> Result<Value, AdminError> {
    match command {
        Command::CertList => {
            let list = target
                .store()
                .with(|c| certs::list(c))
                .await
                .map_err(internal)?;
            to_json(&list)
        }
        Command::CertShow { serial } => {
            let serial = parse_serial(&serial)?;
            let s = serial.clone();
            let found = target
                .store()
                .with(move |c| certs::find(c, &s))
                .await
                .map_err(internal)?;
            match found.as_slice() {
                [] => Err(refused(ChangeRefused::NotFound(serial))),
                [one] => {
                    let mut v = to_json(one)?;
                    if let Value::Object(m) = &mut v {
                        m.insert("pem".into(), Value::String(pem(&one.der)));
                    }
                    Ok(v)
                }
                _ => Err(refused(ChangeRefused::Ambiguous(serial))),
            }
        }
        Command::CertRevoke { serial, reason } => {
            if !REASONS.contains(&reason.as_str()) {
                return Err(AdminError::new(
                    "bad-reason",
                    format!("unknown reason {reason:?}; one of {}", REASONS.join(", ")),
                ));
            }
            change(target, &serial, StatusChange::Revoke(reason)).await
        }
        Command::CertUnhold { serial } => change(target, &serial, StatusChange::Unhold).await,
        Command::CertIssue(req) => {
            let ca = target
                .ca()
                .ok_or_else(|| AdminError::new("internal", "no CA to sign with"))?;
            let (profile, cert) = ca.issue(&req).await?;
            let ca_name = ca.name.clone();
            let record = target
                .store()
                .with(move |c| certs::record(c, &ca_name, &profile, &cert))
                .await
                .map_err(internal)?;
            if let Target::Live(authority) = &target {
                authority.issued(&record).await;
            }
            let mut v = to_json(&record)?;
            if let Value::Object(m) = &mut v {
                m.insert("pem".into(), Value::String(pem(&record.der)));
            }
            Ok(v)
        }
    }
}

async fn change(
    target: Target<'_>,
    serial: &str,
    change: StatusChange,
) -> Result<Value, AdminError> {
    let serial = parse_serial(serial)?;
    let outcome = match target {
        Target::Live(authority) => authority.change(&serial, change).await,
        Target::Offline(store, _) => store
            .with(move |c| certs::change_status(c, &serial, &change, SystemTime::now()))
            .await
            .map_err(internal)?
            .map_err(refused),
    }?;
    to_json(&outcome)
}

fn parse_serial(text: &str) -> Result<String, AdminError> {
    normalise_serial(text).ok_or_else(|| {
        AdminError::new("bad-serial", format!("{text:?} is not a hex serial number"))
    })
}

/// The error code of a refused status change.
pub fn refused(r: ChangeRefused) -> AdminError {
    let code = match r {
        ChangeRefused::NotFound(_) => "not-found",
        ChangeRefused::AlreadyRevoked(_) => "already-revoked",
        ChangeRefused::NotOnHold(_) => "not-on-hold",
        ChangeRefused::Ambiguous(_) => "ambiguous",
    };
    AdminError::new(code, r.to_string())
}

/// A failure of the appliance itself.
pub fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AdminError> {
    serde_json::to_value(v).map_err(internal)
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        internal(e)
    }
}

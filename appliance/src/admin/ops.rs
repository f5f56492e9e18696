//! The certificate commands. The daemon runs them with its live status authority (so a
//! revocation also re-signs OCSP answers and the CRL before it returns); `signetctl` runs
//! them against the database alone when no daemon is running.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::AdminError;
use crate::issuance::{IssueRequest, Issuers};
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

/// Where the certificate commands act.
pub enum Certs<'a> {
    /// The running daemon: database, OCSP cache and CRLs together.
    Live(&'a Arc<StatusAuthority>),
    /// The database alone (no daemon runs; it catches up when it starts), and the CA when
    /// the command needs to sign.
    Offline(&'a Store, Option<&'a Issuers>),
}

impl Certs<'_> {
    fn store(&self) -> &Store {
        match self {
            Certs::Live(a) => a.store(),
            Certs::Offline(s, _) => s,
        }
    }

    fn ca(&self) -> Option<&Issuers> {
        match self {
            Certs::Live(a) => a.ca(),
            Certs::Offline(_, ca) => *ca,
        }
    }

    /// Tell the running daemon of a certificate it did not issue itself (OCSP knows it).
    async fn issued(&self, record: &certs::CertRecord) {
        if let Certs::Live(authority) = self {
            authority.issued(record).await;
        }
    }
}

/// Every issued certificate and its status.
pub async fn list(target: Certs<'_>) -> Result<Value, AdminError> {
    let list = target
        .store()
        .certificates()
        .await
        .map_err(AdminError::from)?;
    to_json(&list)
}

/// One certificate, with its PEM.
pub async fn show(target: Certs<'_>, serial: &str) -> Result<Value, AdminError> {
    let (serial, found) = find(&target, serial).await?;
    match found.as_slice() {
        [] => Err(refused(ChangeRefused::NotFound(serial))),
        [one] => with_pem(one),
        _ => Err(refused(ChangeRefused::Ambiguous(serial))),
    }
}

/// Revoke (or hold) a certificate, for one of [`REASONS`].
pub async fn revoke(target: Certs<'_>, serial: &str, reason: String) -> Result<Value, AdminError> {
    if !REASONS.contains(&reason.as_str()) {
        return Err(AdminError::new(
            "bad-reason",
            format!("unknown reason {reason:?}; one of {}", REASONS.join(", ")),
        ));
    }
    change(target, serial, StatusChange::Revoke(reason)).await
}

/// Lift a hold.
pub async fn unhold(target: Certs<'_>, serial: &str) -> Result<Value, AdminError> {
    change(target, serial, StatusChange::Unhold).await
}

/// Issue a certificate from a PKCS#10 request and record it.
pub async fn issue(target: Certs<'_>, req: IssueRequest) -> Result<Value, AdminError> {
    let ca = target
        .ca()
        .ok_or_else(|| AdminError::new("internal", "no CA to sign with"))?
        .for_profile(&req.profile);
    // A certificate is signed only when it can be recorded (OCSP must know it).
    target.store().check_reachable().await?;
    let (profile, cert) = ca.issue(&req).await?;
    let record = target
        .store()
        .record_certificate(&ca.name, &profile, &cert)
        .await
        .map_err(AdminError::from)?;
    target.issued(&record).await;
    with_pem(&record)
}

fn with_pem(record: &certs::CertRecord) -> Result<Value, AdminError> {
    let mut v = to_json(record)?;
    if let Value::Object(m) = &mut v {
        m.insert("pem".into(), Value::String(pem(&record.der)));
    }
    Ok(v)
}

/// Generate a key pair in the token, and with `issue_from` a document-signing certificate
/// for it from that CA.
pub async fn generate_key(
    target: Certs<'_>,
    label: &str,
    algorithm: &str,
    issue_from: Option<&str>,
) -> Result<Value, AdminError> {
    let issuers = target
        .ca()
        .ok_or_else(|| AdminError::new("internal", "no HSM to generate in"))?;
    let name: signet_config::KeyAlgorithmName =
        serde_json::from_value(Value::String(algorithm.to_owned())).map_err(|_| {
            AdminError::new(
                "bad-request",
                format!(
                "unknown algorithm {algorithm:?}: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384"
            ),
            )
        })?;
    if label.is_empty()
        || label.len() > 64
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AdminError::new(
            "bad-request",
            "labels are 1 to 64 of A-Z a-z 0-9 - _",
        ));
    }
    let hsm = issuers.root.hsm().clone();
    let alg = crate::settings::key_algorithm(name);
    let l = label.to_owned();
    let key =
        tokio::task::block_in_place(|| hsm.generate_key_blocking(&l, alg)).map_err(
            |e| match e {
                crate::hsm::HsmError::KeyExists(_) => AdminError::new("key-exists", e.to_string()),
                e => internal(e),
            },
        )?;
    let mut answer = serde_json::json!({ "label": label, "algorithm": alg.to_string() });
    match issue_from {
        None => {}
        // Document-signing certificates come from the root only.
        Some(from) if from == issuers.root.name => {
            let ca = &issuers.root;
            let subject = signet_pki::x509::parse_name(&format!("CN={label}"))
                .map_err(|e| AdminError::new("bad-request", e.to_string()))?;
            let req = crate::issuance::IssueRequest {
                csr_pem: String::new(),
                profile: "document-signing".into(),
                days: None,
                san_dns: Vec::new(),
                san_uri: Vec::new(),
            };
            target.store().check_reachable().await?;
            let (profile, cert) = ca.issue_for(subject, key.spki.clone(), &req).await?;
            let root_pem = pem(&der::Encode::to_der(ca.certificate()).map_err(internal)?);
            let record = target
                .store()
                .record_certificate(&ca.name, &profile, &cert)
                .await
                .map_err(AdminError::from)?;
            target.issued(&record).await;
            answer["serial"] = Value::String(record.serial.clone());
            answer["certificate_chain_pem"] =
                Value::String(format!("{}{}", pem(&record.der), root_pem));
        }
        Some(other) => {
            return Err(AdminError::new(
                "bad-request",
                format!("no CA named {other:?}"),
            ));
        }
    }
    Ok(answer)
}

async fn change(
    target: Certs<'_>,
    serial: &str,
    change: StatusChange,
) -> Result<Value, AdminError> {
    let (serial, found) = find(&target, serial).await?;
    if !found.is_empty() && found.iter().all(|r| r.ca == super::key_ops::EXTERNAL_CA) {
        return Err(AdminError::new(
            "not-ours",
            format!("certificate {serial} was imported from an outside CA: its issuer revokes it"),
        ));
    }
    let outcome = match target {
        Certs::Live(authority) => authority.change(&serial, change).await.map_err(Into::into),
        Certs::Offline(store, _) => store
            .change_status(&serial, change, SystemTime::now())
            .await
            .map_err(AdminError::from)?
            .map_err(refused),
    }?;
    to_json(&outcome)
}

/// The certificates with the serial `text` names (one per CA that issued that serial),
/// with the serial in its normal form.
async fn find(
    target: &Certs<'_>,
    text: &str,
) -> Result<(String, Vec<certs::CertRecord>), AdminError> {
    let serial = parse_serial(text)?;
    let found = target
        .store()
        .find_certificate(&serial)
        .await
        .map_err(AdminError::from)?;
    Ok((serial, found))
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

/// A store failure: an unreachable database is `unavailable` (the operator asks again
/// when it is back), anything else internal.
impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unreachable(_) | StoreError::Unavailable => AdminError::new(
                "unavailable",
                format!("{e}: not done (or not confirmed); ask again once it is back"),
            ),
            e => internal(e),
        }
    }
}

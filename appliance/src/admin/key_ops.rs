//! A key of the token and an outside CA: `csr` makes a PKCS#10 request signed by the key in
//! the token; `cert import` takes the chain the CA sends back and puts it in service.
//!
//! An imported chain is written (atomically) where the key's chain lives: the file its
//! `[[signing_keys]]` entry names, which the daemon loads at every start, or `pki/keys/LABEL.pem`
//! for a key the config does not offer yet. A running daemon swaps the key's chain at once.
//! The leaf is also recorded in the database under the CA name `external`, so `cert list`,
//! `cert show` and `status` (expiry) see it; its revocation is its issuer's business.

use std::time::SystemTime;

use der::Encode;
use serde_json::{json, Value};
use x509_cert::Certificate;

use signet_config::Config;
use signet_pki::x509::{self, chain, csr, SubjectAltName};

use super::AdminError;
use crate::hsm::{Hsm, HsmError, KeyInfo};
use crate::signing_keys::{chain_path, KeyRing};
use crate::store::{certs, Store};

/// The CA name imported certificates are recorded under.
pub const EXTERNAL_CA: &str = "external";

/// The profile name imported certificates are recorded under.
pub const IMPORTED: &str = "imported";

/// A PKCS#10 request for key `label`, with `subject` and `san_dns`, signed in the token.
pub async fn csr(
    hsm: &Hsm,
    label: &str,
    subject: &str,
    san_dns: &[String],
) -> Result<Value, AdminError> {
    let bad = |m: String| AdminError::new("bad-request", m);
    let name = x509::parse_name(subject).map_err(|e| bad(format!("subject {subject:?}: {e}")))?;
    if name.0.is_empty() {
        return Err(bad("the subject is empty".into()));
    }
    let key = find_key(hsm, label)?;
    let names: Vec<SubjectAltName> = san_dns.iter().cloned().map(SubjectAltName::Dns).collect();
    let prepared = csr::prepare_csr(
        name,
        key.spki.clone(),
        &names,
        key.algorithm.default_scheme(),
    )
    .map_err(|e| bad(e.to_string()))?;
    let signature = hsm
        .sign(&key, prepared.scheme(), prepared.tbs_der())
        .await
        .map_err(internal)?;
    let request = prepared.finish(&signature).map_err(internal)?;
    let pem = csr::csr_to_pem(&request).map_err(internal)?;
    Ok(json!({
        "label": label,
        "algorithm": key.algorithm.to_string(),
        "subject": request.info.subject.to_string(),
        "csr_pem": pem,
    }))
}

/// Where an import acts.
pub struct ImportTarget<'a> {
    /// The token holding the key.
    pub hsm: &'a Hsm,
    /// The config (where the key's chain lives).
    pub config: &'a Config,
    /// The database the leaf is recorded in.
    pub store: &'a Store,
    /// The running daemon's keys, swapped at once (none offline).
    pub keys: Option<&'a KeyRing>,
}

/// Check `chain_pem` (leaf first) against key `label` and put it in service.
pub async fn import(
    target: ImportTarget<'_>,
    label: &str,
    chain_pem: &str,
) -> Result<Value, AdminError> {
    let bad_chain = |m: String| AdminError::new("bad-chain", m);
    let chain = x509::certificates_from_pem(chain_pem)
        .map_err(|e| bad_chain(format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad_chain("no certificate in the file".into()));
    };
    let key = find_key(target.hsm, label)?;
    if !crate::issuance::certifies(leaf, &key) {
        return Err(AdminError::new(
            "key-mismatch",
            format!(
                "the first certificate ({}) certifies another public key than key {label:?} \
                 in the token",
                leaf.tbs_certificate.subject
            ),
        ));
    }
    chain::verify_chain(&chain, SystemTime::now()).map_err(|e| bad_chain(e.to_string()))?;

    let (path, declared) = chain_path(target.config, label);
    let mut text = String::new();
    for cert in &chain {
        text.push_str(&x509::certificate_to_pem(cert).map_err(internal)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("{}: {e}", dir.display())))?;
    }
    tokio::task::block_in_place(|| {
        crate::atomic_write::write_atomic(&path, text.as_bytes(), 0o644)
    })
    .map_err(|e| internal(format!("{}: {e}", path.display())))?;
    let in_service = match target.keys {
        Some(keys) => keys.replace_chain(label, chain.clone()).map_err(internal)?,
        None => false,
    };
    let record = target
        .store
        .record_certificate(EXTERNAL_CA, IMPORTED, leaf)
        .await
        .map_err(AdminError::from)?;
    let mut answer = json!({
        "label": label,
        "serial": record.serial,
        "subject": record.subject,
        "issuer": chain[0].tbs_certificate.issuer.to_string(),
        "not_after": record.not_after,
        "chain_length": chain.len(),
        "chain_file": path,
        "declared": declared,
        "in_service": in_service,
    });
    if !declared {
        answer["note"] = Value::String(format!(
            "key {label:?} is not in [[signing_keys]]: declare it with certificate_chain = \
             {:?} to offer it through the API",
            path.display().to_string()
        ));
    }
    Ok(answer)
}

/// The chain stored for key `label`, if there is one.
pub fn stored_chain(config: &Config, label: &str) -> Option<Vec<Certificate>> {
    let (path, _) = chain_path(config, label);
    let text = std::fs::read_to_string(path).ok()?;
    x509::certificates_from_pem(&text).ok()
}

/// Add the certificate of `chain` (leaf first) to a `key show` answer.
pub fn show_chain(answer: &mut Value, chain: &[Certificate]) {
    let Some(leaf) = chain.first() else { return };
    let tbs = &leaf.tbs_certificate;
    let pem: String = chain
        .iter()
        .filter_map(|c| x509::certificate_to_pem(c).ok())
        .collect();
    answer["certificate"] = json!({
        "subject": tbs.subject.to_string(),
        "issuer": tbs.issuer.to_string(),
        "serial": certs::serial_from_bytes(tbs.serial_number.as_bytes()),
        "not_after": certs::unix_secs(tbs.validity.not_after.to_system_time()),
        "sha256": hex::encode(signet_pki::HashAlg::Sha256.digest(&leaf.to_der().unwrap_or_default())),
    });
    answer["certificate_chain_pem"] = Value::String(pem);
}

fn find_key(hsm: &Hsm, label: &str) -> Result<std::sync::Arc<KeyInfo>, AdminError> {
    tokio::task::block_in_place(|| hsm.key_blocking(label)).map_err(|e| match e {
        HsmError::KeyNotFound(_) => AdminError::new("not-found", e.to_string()),
        e => internal(e),
    })
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}

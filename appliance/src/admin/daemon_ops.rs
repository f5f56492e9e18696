//! Commands about the appliance as a whole: status, keys in the token, CRL publication,
//! the client policy. `status`, `crl publish` and `reload` need the running daemon; the
//! key and client listings also work from the token and config alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{client_edit, key_ops, AdminError};
use crate::authz::{Authorizer, Policy};
use crate::hsm::Hsm;
use crate::ocsp::OcspService;
use crate::revocation::StatusAuthority;
use crate::store::{certs, CertStatus};

/// Certificates that expire within this are listed by `status`.
const EXPIRING: Duration = Duration::from_secs(30 * 86_400);

/// What the daemon-wide commands act on.
pub struct Daemon {
    /// Certificates, CRLs, OCSP.
    pub authority: Arc<StatusAuthority>,
    /// The OCSP responder (for its cache's age).
    pub ocsp: Arc<OcspService>,
    /// The token.
    pub hsm: Hsm,
    /// The client policy in force.
    pub authz: Arc<Authorizer>,
    /// The config file `reload` re-reads.
    pub config: crate::config_source::ConfigSource,
    /// The audit log (for its head).
    pub audit: crate::audit::AuditLog,
    /// The signing API's keys (an imported chain is swapped in).
    pub keys: Arc<crate::signing_keys::KeyRing>,
    /// Config edits, one at a time.
    pub edits: tokio::sync::Mutex<()>,
    /// The state directory in use (`signetd --state-dir` may override the config's).
    pub state_dir: std::path::PathBuf,
    /// The certificates the appliance depends on (and the other gauges' sources).
    pub sources: Arc<crate::metrics::Sources>,
    /// This box's name (`[cluster] node`, or the hostname).
    pub node: String,
}

impl Daemon {
    /// The config as the daemon runs it: re-read, with its state directory.
    pub fn current_config(&self) -> Result<signet_config::Config, String> {
        let mut config = self.config.load()?;
        config.state_dir.clone_from(&self.state_dir);
        Ok(config)
    }
}

/// One key in the token, marked with its `[keys]` role and its chain (the one in service,
/// else the one stored for it).
pub fn key_show_live(d: &Daemon, label: &str) -> Result<Value, AdminError> {
    let mut answer = key_show(&d.hsm, label)?;
    let config = d.current_config().ok();
    if let Some(c) = &config {
        show_marked(&mut answer, c, label);
    }
    let chain = match d.keys.get(label) {
        Some(k) => Some(k.chain.clone()),
        None => config.and_then(|c| key_ops::stored_chain(&c, label)),
    };
    if let Some(chain) = chain {
        key_ops::show_chain(&mut answer, &chain);
    }
    Ok(answer)
}

/// Put an outside CA's chain in service for key `label`, at once.
pub async fn cert_import(d: &Daemon, label: &str, chain_pem: &str) -> Result<Value, AdminError> {
    let config = d.current_config().map_err(internal)?;
    let target = key_ops::ImportTarget {
        hsm: &d.hsm,
        config: &config,
        store: d.authority.store(),
        keys: Some(&d.keys),
    };
    key_ops::import(target, label, chain_pem).await
}

/// Add an API client to the config and reload the policy.
pub async fn client_add(d: &Daemon, client: client_edit::NewClient) -> Result<Value, AdminError> {
    let n = edit_clients(d, |t| client_edit::add_client(t, &client)).await?;
    Ok(json!({ "added": client.name, "clients": n, "config": d.config.name() }))
}

/// Remove an API client from the config and reload the policy.
pub async fn client_remove(d: &Daemon, name: String) -> Result<Value, AdminError> {
    let n = edit_clients(d, |t| client_edit::remove_client(t, &name)).await?;
    Ok(json!({ "removed": name, "clients": n, "config": d.config.name() }))
}

/// Re-sign every CRL (and the OCSP cache) now.
pub async fn crl_publish(d: &Daemon) -> Result<Value, AdminError> {
    d.authority.publish_all().await.map_err(internal)?;
    Ok(json!({ "published": d.authority.crl_names() }))
}

/// Re-read the client policy from the config file.
pub fn reload(d: &Daemon) -> Result<Value, AdminError> {
    let clients = reload_policy(&d.config, &d.authz).map_err(internal)?;
    Ok(json!({ "clients": clients }))
}

/// Edit the config's clients, then reload the policy from the file as `reload` does.
async fn edit_clients(
    d: &Daemon,
    edit: impl FnOnce(&str) -> Result<String, client_edit::EditError>,
) -> Result<usize, AdminError> {
    let _one_at_a_time = d.edits.lock().await;
    tokio::task::block_in_place(|| client_edit::apply(&d.config, edit))?;
    reload_policy(&d.config, &d.authz).map_err(internal)
}

/// Re-read the client policy from `path`; a config that does not load leaves the policy
/// in force as it was. Returns how many clients the new policy has.
pub fn reload_policy(
    source: &crate::config_source::ConfigSource,
    authz: &Authorizer,
) -> Result<usize, String> {
    let config = source.load()?;
    let policy = Policy::new(&config.clients)?;
    authz.replace(policy);
    Ok(config.clients.len())
}

/// What the running appliance is doing.
pub async fn status(d: &Daemon) -> Result<Value, AdminError> {
    let hsm = d.hsm.clone();
    let keys = tokio::task::spawn_blocking(move || hsm.key_labels_blocking())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let now = SystemTime::now();
    let soon = certs::unix_secs(now + EXPIRING);
    // A database that is down leaves the figures it holds out, not the whole status.
    let store = d.authority.store();
    let (all, store_error) = match store.certificates().await {
        Ok(all) => (all, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let renewing = d.ocsp.ca(crate::issuance::ROOT_CA).map(|ca| {
        ca.delegated()
            .certificate()
            .tbs_certificate
            .subject
            .to_string()
    });
    let expiring: Vec<Value> = all
        .iter()
        .filter(|c| matches!(c.status, CertStatus::Good) && c.not_after <= soon)
        // The delegated OCSP signer renews itself: nothing for an operator to do.
        .filter(|c| !(c.profile == "ocsp-signer" && Some(&c.subject) == renewing.as_ref()))
        .map(|c| json!({ "serial": c.serial, "subject": c.subject, "not_after": c.not_after }))
        .collect();
    let tsa_next = match store_error {
        None => store.counter_next("tsa").await.ok().flatten(),
        Some(_) => None,
    };
    let ocsp_age = d
        .ocsp
        .oldest_entry()
        .and_then(|t| now.duration_since(t).ok())
        .map(|a| a.as_secs());
    let clock = match crate::clock::sync_status() {
        crate::clock::ClockSync::Synchronised => "synchronised",
        crate::clock::ClockSync::Unsynchronised => "unsynchronised",
        crate::clock::ClockSync::Unknown => "unknown",
    };
    Ok(json!({
        "token": d.hsm.token_label(),
        "sessions": d.hsm.workers(),
        "keys": keys,
        "certificates": store_error.is_none().then_some(all.len()),
        "expiring_within_30_days": expiring,
        "clock": clock,
        "store": store.kind(),
        "store_reachable": store_error.is_none(),
        "store_error": store_error,
        "node": d.node,
        "other_nodes": other_nodes(d, now).await,
        "tsa_serial_reserved_up_to": tsa_next,
        "ocsp_oldest_response_age_secs": ocsp_age,
        "ocsp_signer": ocsp_signer(&d.ocsp, now),
        "tsa_refused_certificate_unusable": crate::tsa::refused_for_certificate(),
        "own_certificates": own_certificates(&d.sources, now),
        "audit_head": d.audit.head(),
    }))
}

/// The other boxes on the shared database, from their heartbeats: name, version, and
/// seconds since each was last heard of (none with SQLite, or while the database is down).
async fn other_nodes(d: &Daemon, now: SystemTime) -> Vec<Value> {
    let now = certs::unix_secs(now) as i64;
    let nodes = d.authority.store().nodes().await.unwrap_or_default();
    nodes
        .into_iter()
        .filter(|n| n.name != d.node)
        .map(|n| {
            json!({
                "node": n.name,
                "version": n.version,
                "last_seen_secs_ago": (now - n.last_seen).max(0),
                "started_at": n.started_at,
            })
        })
        .collect()
}

/// Each certificate the appliance depends on: its notAfter, days left, and whether an
/// operator must act (under 30 days; the self-renewing OCSP signer: under a day).
fn own_certificates(sources: &crate::metrics::Sources, now: SystemTime) -> Vec<Value> {
    sources
        .certificates()
        .into_iter()
        .map(|(name, not_after)| {
            let left = not_after.duration_since(now).ok();
            json!({
                "certificate": name,
                "not_after": certs::unix_secs(not_after),
                "days_left": left.map_or(0, |l| l.as_secs() / 86_400),
                "expiring": crate::metrics::expiring(&name, left),
            })
        })
        .collect()
}

/// The root's delegated OCSP signer: its serial, key, end of validity, and why the root
/// signs instead when it does.
fn ocsp_signer(ocsp: &crate::ocsp::OcspService, now: SystemTime) -> Value {
    let Some(ca) = ocsp.ca(crate::issuance::ROOT_CA) else {
        return Value::Null;
    };
    let signer = ca.delegated();
    json!({
        "serial": signer.serial(),
        "key": signer.key().label,
        "not_after": certs::unix_secs(signer.not_after()),
        "unusable": ocsp.signer_unusable(crate::issuance::ROOT_CA, now),
    })
}

/// The labels of the private keys in the token.
pub fn key_list(hsm: &Hsm) -> Result<Value, AdminError> {
    let labels = tokio::task::block_in_place(|| hsm.key_labels_blocking()).map_err(internal)?;
    let mut keys = Vec::new();
    for label in labels {
        let key = tokio::task::block_in_place(|| hsm.key_even_if_exposed_blocking(&label));
        keys.push(match key {
            Ok(k) => json!({
                "label": label,
                "algorithm": k.algorithm.to_string(),
                "origin": k.origin.name(),
            }),
            // A key the appliance would refuse is still listed, with why.
            Err(e) => json!({ "label": label, "refused": e.to_string() }),
        });
    }
    Ok(Value::Array(keys))
}

/// One key's algorithm and public key.
pub fn key_show(hsm: &Hsm, label: &str) -> Result<Value, AdminError> {
    use der::{pem::LineEnding, EncodePem};
    // Shown whatever its attributes: the origin says what is wrong with it.
    let key = tokio::task::block_in_place(|| hsm.key_even_if_exposed_blocking(label)).map_err(
        |e| match e {
            crate::hsm::HsmError::KeyNotFound(_) => AdminError::new("not-found", e.to_string()),
            e => internal(e),
        },
    )?;
    let pem = key.spki.to_pem(LineEnding::LF).map_err(internal)?;
    Ok(json!({
        "label": key.label,
        "algorithm": key.algorithm.to_string(),
        "sensitive_never_extractable": key.origin == crate::hsm::KeyOrigin::Generated,
        "origin": key.origin.name(),
        "origin_detail": key.origin.describe(),
        "public_key_pem": pem,
    }))
}

/// Add to a `key show` answer whether the config marks the key imported.
pub fn show_marked(answer: &mut Value, config: &signet_config::Config, label: &str) {
    if let Some(k) = config.signing_keys.iter().find(|k| k.label == label) {
        answer["marked_imported"] = Value::Bool(k.imported);
    }
}

/// The clients the config at `path` declares.
pub fn client_list(config: &signet_config::Config) -> Result<Value, AdminError> {
    Ok(Value::Array(
        config
            .clients
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "issuer": c.matches.issuer.as_deref().unwrap_or(signet_config::OWN_CLIENT_CA),
                    "subject": c.matches.subject,
                    "san_uri": c.matches.san_uri,
                    "san_dns": c.matches.san_dns,
                    "fingerprint_sha256": c.matches.fingerprint_sha256,
                    "operations": c.operations.iter().map(|o| format!("{o:?}").to_lowercase()).collect::<Vec<_>>(),
                    "keys": c.keys,
                })
            })
            .collect(),
    ))
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}

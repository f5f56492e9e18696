//! The one admin dispatch: every command, and what it does on the running daemon and on
//! the appliance at rest. The admin socket and `signetctl` (when no daemon runs) both come
//! here; a new command is one arm per target in this match.

use serde_json::Value;
use tokio::sync::mpsc;

use super::offline::Offline;
use super::ops::{self, Certs};
use super::server::AdminContext;
use super::{audit_ops, daemon_ops, key_ops, AdminError, Advance, Command};

/// Where a command acts.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// The running daemon (a command on the admin socket).
    Live(&'a AdminContext),
    /// The state on disk, with no daemon running.
    Offline(&'a Offline),
}

impl<'a> Target<'a> {
    /// The certificate commands' target; `signing` when the command needs the CAs.
    fn certs(self, signing: bool) -> Result<Certs<'a>, AdminError> {
        match self {
            Target::Live(c) => Ok(Certs::Live(&c.authority)),
            Target::Offline(o) => o.certs(signing),
        }
    }
}

/// Run `command` on `target`. A long command (`audit verify`) reports how far it has got
/// to `progress`. Offline, the caller's role is checked here; on the socket the server
/// checks it (and records the duty) before it calls this.
pub async fn execute(
    target: Target<'_>,
    command: Command,
    progress: Option<mpsc::Sender<Advance>>,
) -> Result<Value, AdminError> {
    use Target::{Live, Offline as AtRest};
    if let AtRest(o) = target {
        o.check_duty(&command)?;
    }
    match (target, command) {
        (Live(c), Command::Status) => daemon_ops::status(&c.daemon).await,
        (Live(c), Command::CrlPublish) => daemon_ops::crl_publish(&c.daemon).await,
        (Live(c), Command::Reload) => daemon_ops::reload(&c.daemon),
        (AtRest(_), Command::Status | Command::CrlPublish | Command::Reload) => {
            Err(AdminError::new(
                "not-running",
                "signetd is not running (this command acts on the running daemon)",
            ))
        }

        (Live(c), Command::Audit(a)) => audit_ops::live(&c.audit, &c.layout, a, progress).await,
        (AtRest(o), Command::Audit(a)) => o.audit(a, progress),

        (Live(c), Command::ClientList) => {
            let config = c.daemon.current_config().map_err(ops::internal)?;
            daemon_ops::client_list(&config)
        }
        (AtRest(o), Command::ClientList) => daemon_ops::client_list(o.config()),
        (Live(c), Command::ClientAdd(new)) => daemon_ops::client_add(&c.daemon, new).await,
        (AtRest(o), Command::ClientAdd(new)) => o.client_add(new),
        (Live(c), Command::ClientRemove { name }) => {
            daemon_ops::client_remove(&c.daemon, name).await
        }
        (AtRest(o), Command::ClientRemove { name }) => o.client_remove(name),

        (Live(c), Command::KeyList) => daemon_ops::key_list(&c.daemon.hsm),
        (AtRest(o), Command::KeyList) => daemon_ops::key_list(o.hsm()?),
        (Live(c), Command::KeyShow { label }) => daemon_ops::key_show_live(&c.daemon, &label),
        (AtRest(o), Command::KeyShow { label }) => o.key_show(&label),
        (
            t,
            Command::Csr {
                label,
                subject,
                san_dns,
            },
        ) => {
            let hsm = match t {
                Live(c) => &c.daemon.hsm,
                AtRest(o) => o.hsm()?,
            };
            key_ops::csr(hsm, &label, &subject, &san_dns).await
        }
        (Live(c), Command::CertImport { label, chain_pem }) => {
            daemon_ops::cert_import(&c.daemon, &label, &chain_pem).await
        }
        (AtRest(o), Command::CertImport { label, chain_pem }) => {
            o.cert_import(&label, &chain_pem).await
        }

        (t, Command::CertList) => ops::list(t.certs(false)?).await,
        (t, Command::CertShow { serial }) => ops::show(t.certs(false)?, &serial).await,
        (t, Command::CertRevoke { serial, reason }) => {
            ops::revoke(t.certs(false)?, &serial, reason).await
        }
        (t, Command::CertUnhold { serial }) => ops::unhold(t.certs(false)?, &serial).await,
        (t, Command::CertIssue(request)) => ops::issue(t.certs(true)?, request).await,
        (
            t,
            Command::KeyGenerate {
                label,
                algorithm,
                issue_from,
            },
        ) => ops::generate_key(t.certs(true)?, &label, &algorithm, issue_from.as_deref()).await,
    }
}

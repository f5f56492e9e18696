//! The appliance at rest: what admin commands act on when no daemon runs (`signetctl`
//! falls back to it). The token and the database are opened only when a command needs
//! them, and only under the state lock, which proves no daemon runs.

use std::sync::OnceLock;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use signet_config::Config;

use super::{audit_ops, client_edit, daemon_ops, duties, key_ops, AdminError, Advance};
use super::{AuditCommand, Command};
use crate::admin::ops::Certs;
use crate::config_source::ConfigSource;
use crate::hsm::Hsm;
use crate::infrastructure::Infrastructure;
use crate::issuance::Issuers;
use crate::layout::StateLayout;
use crate::statelock::StateLock;
use crate::store::Store;

/// The config, its file, and the state it names, each opened at first use.
pub struct Offline {
    config: Config,
    source: ConfigSource,
    layout: StateLayout,
    lock: OnceLock<StateLock>,
    hsm: OnceLock<Hsm>,
    store: OnceLock<Store>,
    issuers: OnceLock<Issuers>,
}

impl Offline {
    /// The appliance that `config` (loaded from `source`) describes.
    pub fn new(config: Config, source: ConfigSource) -> Self {
        Offline {
            layout: StateLayout::new(&config.state_dir),
            config,
            source,
            lock: OnceLock::new(),
            hsm: OnceLock::new(),
            store: OnceLock::new(),
            issuers: OnceLock::new(),
        }
    }

    /// The config in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Refuse `command` unless the caller may give it: the same separation of duties as on
    /// the socket ([`duties::check_offline`]).
    pub fn check_duty(&self, command: &Command) -> Result<(), AdminError> {
        duties::check_offline(&self.config, command, |label| {
            let hsm = self.hsm().map_err(|e| e.message)?;
            Infrastructure::load(&self.config, hsm)?.of_label(hsm, label)
        })
    }

    /// Hold the state lock (once): no daemon can start while we act, and none runs now.
    fn locked(&self) -> Result<(), AdminError> {
        once(&self.lock, || {
            StateLock::acquire(self.layout.root()).map_err(|e| {
                AdminError::new(
                    "state-locked",
                    format!("{e}; is signetd running with another admin socket?"),
                )
            })
        })
        .map(|_| ())
    }

    /// The token, logged in with the config's PIN.
    pub fn hsm(&self) -> Result<&Hsm, AdminError> {
        self.locked()?;
        once(&self.hsm, || {
            let settings = crate::settings::hsm(&self.config).map_err(internal)?;
            Hsm::open(&settings).map_err(internal)
        })
    }

    /// The database.
    pub fn store(&self) -> Result<&Store, AdminError> {
        self.locked()?;
        once(&self.store, || {
            Store::open_configured(&self.config, &self.layout).map_err(internal)
        })
    }

    /// The certificate commands' target: the database, and the CAs if `signing`.
    pub fn certs(&self, signing: bool) -> Result<Certs<'_>, AdminError> {
        let store = self.store()?;
        let ca = match signing {
            true => Some(once(&self.issuers, || {
                Issuers::load(&self.config, self.hsm()?).map_err(internal)
            })?),
            false => None,
        };
        Ok(Certs::Offline(store, ca))
    }

    /// One key in the token, marked with its role and its stored chain.
    pub fn key_show(&self, label: &str) -> Result<Value, AdminError> {
        let mut answer = daemon_ops::key_show(self.hsm()?, label)?;
        daemon_ops::show_marked(&mut answer, &self.config, label);
        if let Some(chain) = key_ops::stored_chain(&self.config, label) {
            key_ops::show_chain(&mut answer, &chain);
        }
        Ok(answer)
    }

    /// Store an outside CA's chain for key `label`; signetd puts it in service when it
    /// starts.
    pub async fn cert_import(&self, label: &str, chain_pem: &str) -> Result<Value, AdminError> {
        let target = key_ops::ImportTarget {
            hsm: self.hsm()?,
            config: &self.config,
            store: self.store()?,
            keys: None,
        };
        key_ops::import(target, label, chain_pem).await
    }

    /// Add an API client to the config file (it takes effect when signetd starts).
    pub fn client_add(&self, client: client_edit::NewClient) -> Result<Value, AdminError> {
        let clients = client_edit::apply(&self.source, |t| client_edit::add_client(t, &client))?;
        Ok(json!({ "added": client.name, "clients": clients, "config": self.source.name() }))
    }

    /// Remove an API client from the config file.
    pub fn client_remove(&self, name: String) -> Result<Value, AdminError> {
        let clients = client_edit::apply(&self.source, |t| client_edit::remove_client(t, &name))?;
        Ok(json!({ "removed": name, "clients": clients, "config": self.source.name() }))
    }

    /// `audit verify|tail|export` on the files, with the TPM counter the config asks for.
    pub fn audit(
        &self,
        command: AuditCommand,
        progress: Option<mpsc::Sender<Advance>>,
    ) -> Result<Value, AdminError> {
        self.locked()?;
        let audit = &self.config.audit;
        let counter =
            audit
                .uses_tpm_counter(self.source.origin())
                .then(|| crate::audit::TpmCounter {
                    tcti: self.source.tcti(),
                    index: audit.tpm_counter_index,
                });
        let mut report = audit_ops::reporter(progress);
        audit_ops::offline(&self.layout, counter.as_ref(), command, &mut report)
    }
}

/// The value in `cell`, made by `make` the first time.
fn once<T>(
    cell: &OnceLock<T>,
    make: impl FnOnce() -> Result<T, AdminError>,
) -> Result<&T, AdminError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}

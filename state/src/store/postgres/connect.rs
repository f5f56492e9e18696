//! How a box reaches PostgreSQL: the URL, the password (kept apart, from the sealed
//! config), and TLS through rustls with the CA the operator names (`verify-full`: the
//! server's certificate must chain to that CA and name the host in the URL).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;

/// Where the shared database is and how to prove ourselves to it.
#[derive(Clone)]
pub struct PostgresTarget {
    /// A libpq-style URL or key=value string, without the password.
    pub url: String,
    /// The password, when the server asks for one.
    pub password: Option<SecretString>,
    /// The CA that signed the server's certificate: TLS is then required and verified.
    /// Without it the connection is in clear (the dev profile only).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A target parsed once: what each (re)connection uses.
#[derive(Clone)]
pub(super) struct Dialer {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl Dialer {
    pub(super) fn new(target: &PostgresTarget) -> Result<Dialer, StoreError> {
        let mut config = Config::from_str(&target.url)
            .map_err(|e| StoreError::Settings(format!("store.url: {}", chain(&e))))?;
        if config.get_password().is_some() {
            return Err(StoreError::Settings(
                "store.url carries a password: put it in store.password (sealed)".into(),
            ));
        }
        if let Some(password) = &target.password {
            config.password(password.expose_secret().as_bytes());
        }
        config
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("signetd");
        let tls = match &target.ca_file {
            Some(path) => {
                config.ssl_mode(SslMode::Require);
                Some(MakeRustlsConnect::new(client_tls(path)?))
            }
            None => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(Dialer { config, tls })
    }

    /// A new connection; a server that answers but refuses us is a settings error, one
    /// that cannot be reached is `Unreachable`.
    pub(super) fn dial(&self) -> Result<Client, StoreError> {
        let made = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        made.map_err(|e| match e.as_db_error() {
            // Class 57 (operator intervention): starting up, shutting down, in recovery.
            Some(db) if db.code().code().starts_with("57") => {
                StoreError::Unreachable(db.message().to_owned())
            }
            Some(db) => StoreError::Settings(format!("PostgreSQL refused us: {}", db.message())),
            None => StoreError::Unreachable(chain(&e)),
        })
    }
}

fn client_tls(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, StoreError> {
    let bad =
        |what: String| StoreError::Settings(format!("store.ca_file {}: {what}", ca_file.display()));
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An error with its causes, on one line ("error connecting to server: Connection
/// refused"): the postgres crate's own text is only the first part.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

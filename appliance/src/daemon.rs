//! `signetd`: load the state, open the HSM, check that every key matches its certificate,
//! and serve until SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::Encode;
use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;

use signet_config::Config;
use signet_pki::cms::SignerIdentity;
use signet_pki::tsp::{Accuracy, TimeStampAuthority, TsaPolicy};
use signet_pki::x509;

use crate::api::App;
use crate::ceremony::certifies;
use crate::hsm::{Hsm, HsmError};
use crate::layout::StateLayout;
use crate::server::{self, Limits};
use crate::store::{SerialAllocator, Store, StoreError};
use crate::tls::{self, HsmSigningKey, TlsError};
use crate::tsa::{ClockPolicy, TsaService};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HSM.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// A file the daemon needs.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key in the token does not match its certificate.
    #[error("key {label:?} in the token does not match {cert}")]
    KeyMismatch {
        /// The key's label.
        label: String,
        /// The certificate file.
        cert: PathBuf,
    },
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Binding the listener.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration.
    #[error("{0}")]
    Config(String),
}

/// Run the daemon with `config`, listening on `listen` (or the configured address).
pub async fn run(config: Config, listen: Option<SocketAddr>) -> Result<(), StartError> {
    let layout = StateLayout::new(&config.state_dir);
    let hsm_settings = crate::settings::hsm(&config).map_err(StartError::Config)?;
    let hsm = tokio::task::block_in_place(|| Hsm::open(&hsm_settings))?;
    tracing::info!(
        token = hsm.token_label(),
        workers = hsm.workers(),
        "HSM token logged in"
    );

    let root = read_certs(&layout.root_ca())?;
    let tls_chain = read_certs(&layout.tls_chain())?;
    let tsa_cert = read_certs(&layout.tsa_cert())?;
    let client_cas = match &config.api.client_ca {
        Some(p) => read_certs(&config.state_path(p))?,
        None => root.clone(),
    };

    let keys = &config.keys;
    let tls_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.tls_server.label))?;
    let tsa_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.tsa.label))?;
    expect_certifies(
        &tls_chain[0],
        &keys.tls_server.label,
        &tls_key,
        &layout.tls_chain(),
    )?;
    expect_certifies(&tsa_cert[0], &keys.tsa.label, &tsa_key, &layout.tsa_cert())?;

    let tls_config = tls::server_config(
        to_rustls(&tls_chain, &layout.tls_chain())?,
        Arc::new(HsmSigningKey::new(hsm.clone(), Arc::clone(&tls_key))),
        to_rustls(&client_cas, &layout.root_ca())?,
    )?;

    let store = Store::open(&layout.database())?;
    let signer = SignerIdentity::new(
        tsa_cert[0].clone(),
        root.clone(),
        tsa_key.algorithm.default_scheme(),
    )
    .map_err(|e| StartError::Config(format!("TSA signer: {e}")))?;
    let authority = TimeStampAuthority::new(signer, tsa_policy(&config)?);
    let clock = if config.require_clock_sync() {
        ClockPolicy::Require
    } else {
        ClockPolicy::WarnOnly
    };
    let tsa = TsaService::new(
        authority,
        tsa_key,
        hsm.clone(),
        SerialAllocator::new(store, "tsa", config.tsa.serial_block),
        clock,
    );
    let api = &config.api;
    let app = Arc::new(App {
        tsa,
        max_body_bytes: api.max_body_bytes,
        body_timeout: Duration::from_secs(api.request_timeout_secs),
    });
    let addr = listen.unwrap_or(api.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!("listening on https://{bound}");
    let limits = Limits {
        max_header_bytes: api.max_header_bytes,
        header_timeout: Duration::from_secs(api.header_timeout_secs),
        max_connections: api.max_connections,
        shutdown_grace: Duration::from_secs(api.shutdown_grace_secs),
    };
    server::serve(listener, tls_config, app, limits, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn tsa_policy(config: &Config) -> Result<TsaPolicy, StartError> {
    let oid = |s: &str| {
        ObjectIdentifier::new(s).map_err(|e| StartError::Config(format!("tsa policy {s}: {e}")))
    };
    let ms = config.tsa.accuracy_ms;
    Ok(TsaPolicy {
        default_policy: oid(&config.tsa.policy)?,
        accepted_policies: config
            .tsa
            .accepted_policies
            .iter()
            .map(|p| oid(p))
            .collect::<Result<_, _>>()?,
        accuracy: Accuracy {
            seconds: ms / 1000,
            millis: (ms % 1000) as u16,
            micros: 0,
        },
        allow_sha1: config.tsa.allow_sha1,
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn read_certs(path: &Path) -> Result<Vec<Certificate>, StartError> {
    let file_err = |message: String| StartError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_err(format!("{e} (has `signetctl init` been run?)")))?;
    let certs = x509::certificates_from_pem(&text).map_err(|e| file_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("no certificate".into()));
    }
    Ok(certs)
}

fn to_rustls(
    certs: &[Certificate],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, StartError> {
    certs
        .iter()
        .map(|c| {
            c.to_der()
                .map(CertificateDer::from)
                .map_err(|e| StartError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })
        })
        .collect()
}

fn expect_certifies(
    cert: &Certificate,
    label: &str,
    key: &crate::hsm::KeyInfo,
    path: &Path,
) -> Result<(), StartError> {
    if certifies(cert, key) {
        Ok(())
    } else {
        Err(StartError::KeyMismatch {
            label: label.to_owned(),
            cert: path.to_owned(),
        })
    }
}

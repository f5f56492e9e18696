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
use crate::audit::{AuditLog, AuditSigner, CheckpointPolicy};
use crate::authz::{Authorizer, ClientTrust, Policy};
use crate::conn_budget::BudgetLimits;
use crate::crl::{CrlIssuer, CrlService};
use crate::hsm::{Hsm, HsmError, KeyInfo};
use crate::issuance::certifies;
use crate::issuance::{Issuers, CLIENT_CA, ROOT_CA};
use crate::layout::StateLayout;
use crate::ocsp::{CaResponder, NoncePolicy, OcspService, OcspSettings};
use crate::revocation::StatusAuthority;
use crate::server::{self, Limits};
use crate::signing_keys::KeyRing;
use crate::statelock::{LockError, StateLock};
use crate::store::{SerialAllocator, Store, StoreError};
use crate::systemd::{ActivatedListeners, Notifier};
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
    /// Another process owns the state directory.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// Signing the CRLs and OCSP responses to serve.
    #[error("cannot publish revocation data: {0}")]
    Publish(String),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// Hardening the process: the drop to the configured user.
    #[error(transparent)]
    Hardening(#[from] crate::hardening::HardeningError),
    /// The admin socket.
    #[error("admin socket {path}: {source}")]
    Admin {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where the daemon listens, when the command line or the service manager says otherwise
/// than the config.
#[derive(Debug, Default)]
pub struct ListenOverrides {
    /// The mutual-TLS API.
    pub api: Option<SocketAddr>,
    /// The plain-HTTP public listener.
    pub public: Option<SocketAddr>,
    /// Sockets already bound by the service manager (`signetd.socket`); they win.
    pub activated: ActivatedListeners,
}

/// Run the daemon with `config` (read from `source`, which SIGHUP re-reads — and unseals
/// again — for the client policy), listening where `listen` or the config says.
pub async fn run(
    config: Config,
    source: crate::config_source::ConfigSource,
    listen: ListenOverrides,
) -> Result<(), StartError> {
    let notifier = Notifier::from_env();
    let layout = StateLayout::new(&config.state_dir);
    let _state = StateLock::acquire(layout.root())?;
    notifier.status("opening the HSM token");
    let hsm_settings = crate::settings::hsm(&config).map_err(StartError::Config)?;
    let hsm = tokio::task::block_in_place(|| Hsm::open(&hsm_settings))?;
    tracing::info!(
        token = hsm.token_label(),
        workers = hsm.workers(),
        "HSM token logged in"
    );

    notifier.status("checking the keys against their certificates");
    let root = read_certs(&layout.root_ca())?;
    let tls_chain = read_certs(&layout.tls_chain())?;
    let tsa_cert = read_certs(&layout.tsa_cert())?;
    let client_ca = read_certs(&layout.client_ca())?;

    let keys = &config.keys;
    let tls_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.tls_server.label))?;
    let tsa_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.tsa.label))?;
    let root_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.root_ca.label))?;
    let ocsp_cert = read_certs(&layout.ocsp_signer_cert())?;
    let client_ca_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.client_ca.label))?;
    expect_certifies(
        &client_ca[0],
        &keys.client_ca.label,
        &client_ca_key,
        &layout.client_ca(),
    )?;
    expect_certifies(&root[0], &keys.root_ca.label, &root_key, &layout.root_ca())?;
    // The signer's key carries one of two labels (renewals alternate): take the one the
    // certificate on disk certifies.
    let ocsp_key = tokio::task::block_in_place(|| {
        crate::ocsp_renewal::load_signer_key(&hsm, &keys.ocsp_signer.label, &ocsp_cert[0])
    })?
    .ok_or_else(|| StartError::KeyMismatch {
        label: keys.ocsp_signer.label.clone(),
        cert: layout.ocsp_signer_cert(),
    })?;
    expect_certifies(
        &tls_chain[0],
        &keys.tls_server.label,
        &tls_key,
        &layout.tls_chain(),
    )?;
    expect_certifies(&tsa_cert[0], &keys.tsa.label, &tsa_key, &layout.tsa_cert())?;
    let audit_key = tokio::task::block_in_place(|| hsm.key_blocking(&keys.audit.label))?;
    let audit_cert = read_certs(&layout.audit_cert())?;
    expect_certifies(
        &audit_cert[0],
        &keys.audit.label,
        &audit_key,
        &layout.audit_cert(),
    )?;
    // Handshakes, time-stamps, OCSP, CRLs and audit checkpoints go in the HSM's urgent
    // lane: the signing API's batches must not hold up the work everyone depends on.
    let urgent = hsm.urgent();
    let admin_group = crate::admin::server::admin_group(config.admin.group.as_deref())
        .map_err(StartError::Config)?;
    let audit_public =
        crate::audit::key_from_certificate(&layout.audit_cert()).map_err(StartError::Config)?;
    let counter = if config.audit.uses_tpm_counter(source.origin()) {
        Some(crate::audit::TpmCounter {
            tcti: source.tcti(),
            index: config.audit.tpm_counter_index,
        })
    } else {
        tracing::warn!(
            "audit rollback protection is limited: the anchor is signed, but no TPM counter \
             is kept (a clear-text config, or audit.tpm_counter = \"off\"), so an older log \
             and anchor put back together are not detected"
        );
        None
    };
    notifier.status("checking the audit anchor");
    let audit = tokio::task::block_in_place(|| {
        AuditLog::open(
            &layout.audit_log(),
            &layout.audit_anchor(),
            AuditSigner {
                hsm: urgent.clone(),
                key: audit_key,
            },
            CheckpointPolicy {
                every: config.audit.checkpoint_every,
                interval: Duration::from_secs(config.audit.checkpoint_secs),
            },
            crate::audit::log::AnchorPolicy {
                key: audit_public,
                counter,
            },
        )
    })?;

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
        urgent.clone(),
        SerialAllocator::new(store.clone(), "tsa", config.tsa.serial_block),
        clock,
    );

    let status_lock = Arc::new(tokio::sync::Mutex::new(()));
    let ocsp = Arc::new(OcspService::new(
        vec![
            CaResponder::new(
                ROOT_CA,
                root[0].clone(),
                Arc::clone(&root_key),
                ocsp_cert[0].clone(),
                ocsp_key,
            )
            .map_err(|e| StartError::Config(format!("OCSP responder: {e}")))?,
            // The client CA answers for its own certificates (RFC 6960 2.2: the CA itself).
            CaResponder::new(
                CLIENT_CA,
                client_ca[0].clone(),
                Arc::clone(&client_ca_key),
                client_ca[0].clone(),
                Arc::clone(&client_ca_key),
            )
            .map_err(|e| StartError::Config(format!("OCSP responder: {e}")))?,
        ],
        store.clone(),
        urgent.clone(),
        ocsp_settings(&config),
        Arc::clone(&status_lock),
    ));
    let crls = Arc::new(CrlService::new(
        vec![
            crl_issuer(ROOT_CA, &root[0], root_key),
            crl_issuer(CLIENT_CA, &client_ca[0], client_ca_key),
        ],
        store.clone(),
        urgent.clone(),
        Duration::from_secs(config.crl.validity_secs),
    ));
    let ca = Issuers::load(&config, &hsm).map_err(StartError::Config)?;
    let status = Arc::new(StatusAuthority::new(
        store,
        Some(Arc::new(ca)),
        Arc::clone(&ocsp),
        Arc::clone(&crls),
        status_lock,
    ));
    notifier.status("publishing CRLs and OCSP responses");
    status.publish_all().await.map_err(StartError::Publish)?;

    let trust = Arc::new(client_trust(&config, &client_ca[0], &ocsp)?);
    crate::client_crls::load_all(&trust, &config).await;
    let tls_config = tls::server_config(
        to_rustls(&tls_chain, &layout.tls_chain())?,
        Arc::new(HsmSigningKey::new(
            urgent.clone(),
            Arc::clone(&tls_key),
            f64::from(config.api.handshake_signatures_per_sec),
            f64::from(config.api.handshake_signature_burst),
        )),
        Arc::clone(&trust),
    )?;

    let keys = Arc::new(KeyRing::load(&config, &hsm).map_err(StartError::Config)?);
    let authz = Arc::new(Authorizer::new(
        Policy::new(&config.clients).map_err(StartError::Config)?,
    ));
    let api = &config.api;
    let admin_ocsp = Arc::clone(&ocsp);
    let spool_dir = spool_dir(&config)?;
    let disk =
        crate::disk::DiskWatch::new(&layout.audit_dir(), &spool_dir, config.disk.min_free_bytes);
    let public_tally = Arc::new(crate::disk::PublicTally::default());
    let app = Arc::new(App {
        tsa: tsa.with_status_index(Arc::clone(&ocsp)),
        ocsp,
        crls,
        authz: Arc::clone(&authz),
        trust: Arc::clone(&trust),
        keys: Arc::clone(&keys),
        hsm: hsm.clone(),
        max_json_bytes: api.max_json_bytes,
        max_batch: api.max_batch,
        max_stream_bytes: api.max_stream_bytes,
        max_body_bytes: api.max_body_bytes,
        body_timeout: Duration::from_secs(api.request_timeout_secs),
        spool_dir: spool_dir.clone(),
        spool_quota: crate::spool::SpoolQuota::new(config.disk.spool_quota_bytes),
        spool_slots: Arc::new(tokio::sync::Semaphore::new(config.disk.spool_max_in_flight)),
        disk: Arc::clone(&disk),
        public_tally: Arc::clone(&public_tally),
        audit: audit.clone(),
    });
    // Each listener has a budget of its own: one can never starve the other.
    let listener_limits =
        |max_connections: usize, budget: &signet_config::ConnectionBudget| Limits {
            max_header_bytes: api.max_header_bytes,
            header_timeout: Duration::from_secs(api.header_timeout_secs),
            shutdown_grace: Duration::from_secs(api.shutdown_grace_secs),
            drain: Duration::from_secs(api.request_timeout_secs),
            first_request: Duration::from_secs(budget.first_request_secs),
            idle: Duration::from_secs(budget.idle_secs),
            ping_interval: Duration::from_secs(budget.ping_interval_secs),
            ping_timeout: Duration::from_secs(budget.ping_timeout_secs),
            max_age: Duration::from_secs(budget.max_age_secs),
            budget: BudgetLimits {
                max_connections,
                max_per_source: budget.max_per_source,
                per_sec: f64::from(budget.handshakes_per_sec),
                burst: f64::from(budget.handshake_burst),
                max_sources: budget.max_sources,
            },
        };
    let limits = listener_limits(api.max_connections, &api.connections);
    let public_limits = listener_limits(config.public.max_connections, &config.public.connections);
    notifier.status("binding the listeners");
    let activated = listen.activated;
    let api_listener = match activated.api {
        Some(l) => adopt(l, "https")?,
        None => bind(listen.api.unwrap_or(api.listen), "https").await?,
    };
    let public_listener = match (activated.public, listen.public.or(config.public.listen)) {
        (Some(l), _) => Some(adopt(l, "http")?),
        (None, Some(addr)) => Some(bind(addr, "http").await?),
        (None, None) => None,
    };
    let admin_path = config.state_path(&config.admin.socket);
    let admin_listener =
        crate::admin::server::bind(&admin_path, admin_group).map_err(|source| {
            StartError::Admin {
                path: admin_path.clone(),
                source,
            }
        })?;
    tracing::info!(socket = %admin_path.display(), "admin socket ready");
    if let Some(user) = &config.process.user {
        drop_privileges(user, &admin_path, admin_group, &spool_dir, config.profile)?;
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let admin = Arc::new(crate::admin::server::AdminContext {
        authority: Arc::clone(&status),
        audit: audit.clone(),
        group: admin_group,
        officer: crate::admin::duties::resolve_group(
            "officer group",
            config.admin.officer_group.as_deref(),
        )
        .map_err(StartError::Config)?,
        layout: layout.clone(),
        daemon: crate::admin::daemon_ops::Daemon {
            authority: Arc::clone(&status),
            ocsp: Arc::clone(&admin_ocsp),
            hsm: hsm.clone(),
            authz: Arc::clone(&authz),
            config: source.clone(),
            audit: audit.clone(),
            keys,
            edits: tokio::sync::Mutex::new(()),
            state_dir: layout.root().to_owned(),
        },
    });
    tasks.spawn(crate::admin::server::serve(
        admin_listener,
        admin,
        stopped(),
    ));
    tasks.spawn(reload_on_sighup(source, authz, stopped()));
    tasks.spawn(Arc::clone(&disk).run(stopped()));
    tasks.spawn(public_tally.run(
        audit.clone(),
        Duration::from_secs(config.disk.public_summary_secs),
        stopped(),
    ));
    tasks.spawn(crate::client_crls::refresh(
        trust,
        client_crl_sources(&config),
        stopped(),
    ));
    let refresh_every = Duration::from_secs((config.ocsp.validity_secs / 10).clamp(1, 300));
    tasks.spawn(Arc::clone(&status).refresh(refresh_every, stopped()));
    tasks.spawn(
        crate::ocsp_renewal::Renewal {
            authority: Arc::clone(&status),
            ocsp: Arc::clone(&admin_ocsp),
            hsm: hsm.clone(),
            cert_path: layout.ocsp_signer_cert(),
            base_label: config.keys.ocsp_signer.label.clone(),
            algorithm: crate::settings::key_algorithm(config.keys.ocsp_signer.algorithm),
            lifetime: Duration::from_secs(config.ocsp.signer_lifetime_secs),
            new_key: config.ocsp.signer_new_key,
        }
        .run(stopped()),
    );
    if let Some(public) = public_listener {
        tasks.spawn(server::serve(
            public,
            None,
            Arc::clone(&app),
            public_limits,
            stopped(),
        ));
    }
    tasks.spawn(crate::hsm_watch::follow(
        hsm.readiness(),
        notifier.clone(),
        audit.clone(),
        stopped(),
    ));
    if let Some(interval) = crate::systemd::watchdog_interval() {
        // A lost HSM is reported (STATUS=, /readyz) and reconnected, not a reason for a
        // restart; a reconnect loop stuck in the module is.
        let hsm = hsm.clone();
        tasks.spawn(crate::systemd::keep_alive(
            notifier.clone(),
            interval,
            move |_| {
                let alive = hsm.alive();
                async move { alive }
            },
            stopped(),
        ));
    }
    tasks.spawn(server::serve(
        api_listener,
        Some(tls_config),
        app,
        limits,
        stopped(),
    ));
    // Every listener is bound and its server task runs: connections are answered from here.
    notifier.ready("serving");
    shutdown_signal().await;
    notifier.stopping();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // Every answer has gone out; seal the log with a last checkpoint.
    audit.close().await;
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("stopped");
    Ok(())
}

/// Re-read the client policy from `source` on every SIGHUP; a config that does not load
/// leaves the policy in force as it was. Connections are not touched.
async fn reload_on_sighup(
    source: crate::config_source::ConfigSource,
    authz: Arc<Authorizer>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; the policy will not reload");
        return;
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            () = &mut shutdown => return,
        }
        match tokio::task::block_in_place(|| {
            crate::admin::daemon_ops::reload_policy(&source, &authz)
        }) {
            Ok(clients) => tracing::info!(clients, "client policy reloaded"),
            Err(e) => tracing::error!(error = %e, "policy not reloaded; the old one stays"),
        }
    }
}

async fn bind(addr: SocketAddr, scheme: &str) -> Result<tokio::net::TcpListener, StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!("listening on {scheme}://{bound}");
    Ok(listener)
}

/// A listener the service manager bound for us.
fn adopt(
    listener: std::net::TcpListener,
    scheme: &str,
) -> Result<tokio::net::TcpListener, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let adopted = listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map_err(|source| StartError::Bind { addr, source })?;
    tracing::info!("listening on {scheme}://{addr} (socket from the service manager)");
    Ok(adopted)
}

/// Started as root (outside systemd): become `user` now that the listeners are bound and
/// the token is open. The admin socket is handed to that user first: signetctl run as
/// the daemon's user may administer, and a socket made by root would shut it out.
fn drop_privileges(
    user: &str,
    admin_path: &Path,
    admin_group: Option<nix::unistd::Gid>,
    spool_dir: &Path,
    profile: signet_config::Profile,
) -> Result<(), StartError> {
    use crate::hardening::{drop_to_user, Dropped};
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let entry = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| crate::hardening::HardeningError::NoSuchUser(user.to_owned()))?;
    // The admin group, when there is one, keeps the socket: its members stay let in.
    let group = admin_group.unwrap_or(entry.gid);
    nix::unistd::chown(admin_path, Some(entry.uid), Some(group)).map_err(|e| {
        StartError::Admin {
            path: admin_path.to_owned(),
            source: e.into(),
        }
    })?;
    // Made as root a moment ago: the user must be able to spool PDFs into it.
    nix::unistd::chown(spool_dir, Some(entry.uid), Some(entry.gid))
        .map_err(|e| StartError::Config(format!("spool directory {}: {e}", spool_dir.display())))?;
    let was_locked = crate::hardening::memory_locked();
    match drop_to_user(user)? {
        Dropped::NotRoot => {}
        Dropped::To {
            uid,
            gid,
            still_locked,
        } => {
            tracing::info!(user, uid, gid, "dropped root");
            if was_locked && !still_locked {
                if profile == signet_config::Profile::Production {
                    return Err(StartError::Config(
                        "memory cannot stay locked after dropping root (RLIMIT_MEMLOCK cannot be \
                         raised without CAP_SYS_RESOURCE): run signetd.service instead"
                            .into(),
                    ));
                }
                tracing::warn!(
                    "memory unlocked: RLIMIT_MEMLOCK cannot be raised for {user} (dev profile only)"
                );
            }
        }
    }
    Ok(())
}

fn ocsp_settings(config: &Config) -> OcspSettings {
    let validity = Duration::from_secs(config.ocsp.validity_secs);
    OcspSettings {
        validity,
        refresh_before: config
            .ocsp
            .refresh_before_secs
            .map(Duration::from_secs)
            .unwrap_or(validity / 2),
        nonce: match config.ocsp.nonce {
            signet_config::NonceMode::Sign => NoncePolicy::Sign,
            signet_config::NonceMode::Ignore => NoncePolicy::Ignore,
            signet_config::NonceMode::Reject => NoncePolicy::Reject,
        },
        live_per_source: (
            f64::from(config.ocsp.live_per_source_per_sec),
            f64::from(config.ocsp.live_per_source_burst),
        ),
    }
}

/// Who may authenticate: the appliance's client CA, answered from the status index that
/// revocations update, and the outside client CAs of the config.
fn client_trust(
    config: &Config,
    own: &Certificate,
    ocsp: &Arc<OcspService>,
) -> Result<ClientTrust, StartError> {
    let issued: Arc<dyn crate::authz::IssuedStatus> = Arc::clone(ocsp) as _;
    let mut trust = ClientTrust::new(CLIENT_CA, own.clone(), issued);
    for ca in &config.client_cas {
        let path = config.state_path(&ca.certificate);
        let cert = read_certs(&path)?.swap_remove(0);
        trust = trust
            .with_outside_ca(&ca.name, cert, ca.revocation)
            .map_err(StartError::Config)?;
    }
    Ok(trust)
}

/// Where each outside client CA's CRL comes from.
fn client_crl_sources(config: &Config) -> Vec<crate::client_crls::CrlSource> {
    config
        .client_cas
        .iter()
        .filter_map(|ca| {
            ca.crl.as_ref().map(|crl| crate::client_crls::CrlSource {
                ca: ca.name.clone(),
                location: crate::client_crls::Location::parse(crl, config),
                every: Duration::from_secs(ca.crl_refresh_secs),
            })
        })
        .collect()
}

fn crl_issuer(name: &str, ca: &Certificate, key: Arc<KeyInfo>) -> CrlIssuer {
    CrlIssuer {
        name: name.into(),
        issuer: x509::Issuer::from_certificate(ca, key.algorithm.default_scheme()),
        key,
    }
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

/// The directory PDFs are spooled to, owner-only: `spool/` in the state directory.
fn spool_dir(config: &Config) -> Result<PathBuf, StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = config.state_path(Path::new("spool"));
    let io =
        |e: std::io::Error| StartError::Config(format!("spool directory {}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(dir)
}

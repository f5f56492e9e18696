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
/// again — for the client policy), listening where `listen` or the config says. Each step
/// of the start is a function below, in this order; none serves before all have run.
pub async fn run(
    config: Config,
    source: crate::config_source::ConfigSource,
    listen: ListenOverrides,
) -> Result<(), StartError> {
    let notifier = Notifier::from_env();
    let layout = StateLayout::new(&config.state_dir);
    let _state = StateLock::acquire(layout.root())?;
    // The store first: a database that cannot be reached or is newer than this Signet
    // stops the start before the token or the audit log is touched.
    notifier.status("opening the store");
    let store = tokio::task::block_in_place(|| Store::open_configured(&config, &layout))?;
    tracing::info!(backend = store.kind(), "store open");
    notifier.status("opening the HSM token");
    let hsm_settings = crate::settings::hsm(&config).map_err(StartError::Config)?;
    let hsm = tokio::task::block_in_place(|| Hsm::open(&hsm_settings))?;
    tracing::info!(
        token = hsm.token_label(),
        workers = hsm.workers(),
        "HSM token logged in"
    );
    notifier.status("checking the keys against their certificates");
    let (certs, keys) = tokio::task::block_in_place(|| own_keys(&config, &layout, &hsm))?;
    // Handshakes, time-stamps, OCSP, CRLs and audit checkpoints go in the HSM's urgent
    // lane: the signing API's batches must not hold up the work everyone depends on.
    let urgent = hsm.urgent();
    notifier.status("checking the audit anchor");
    let audit = open_audit(&config, &source, &layout, &urgent, Arc::clone(&keys.audit))?;
    let opened = Opened {
        config: &config,
        layout: &layout,
        hsm: &hsm,
        urgent: &urgent,
        certs: &certs,
        keys: &keys,
        audit: &audit,
        notifier: &notifier,
    };
    let served = opened.serve(store, source, listen).await;
    if served.is_err() {
        // A start that fails once the audit log is open seals it as a stop does, so that
        // its writer's thread lets go of the HSM while this thread waits: otherwise it
        // finalises and unloads the module while the process exits (libsofthsm2's
        // destructors on two threads crashed signetd).
        audit.close().await;
    }
    served
}

/// What a start has opened by the time the audit log is: the rest of the start, then
/// serving, use it.
struct Opened<'a> {
    config: &'a Config,
    layout: &'a StateLayout,
    hsm: &'a Hsm,
    urgent: &'a Hsm,
    certs: &'a OwnCerts,
    keys: &'a OwnKeys,
    audit: &'a AuditLog,
    notifier: &'a Notifier,
}

impl Opened<'_> {
    /// The rest of the start (services, published statuses, the API's state, listeners,
    /// the user), then serve until stopped.
    async fn serve(
        self,
        store: Store,
        source: crate::config_source::ConfigSource,
        listen: ListenOverrides,
    ) -> Result<(), StartError> {
        let Opened {
            config,
            layout,
            hsm,
            urgent,
            certs,
            keys,
            audit,
            notifier,
        } = self;
        let (tsa, services) = services(config, store, hsm, urgent, certs, keys)?;
        notifier.status("publishing CRLs and OCSP responses");
        services
            .status
            .publish_all()
            .await
            .map_err(StartError::Publish)?;
        let edges = edges(config, layout, hsm, certs, keys, (tsa, &services), audit).await?;
        notifier.status("binding the listeners");
        let listeners = bind_listeners(config, listen).await?;
        if let Some(user) = &config.process.user {
            drop_privileges(
                user,
                &listeners.admin_path,
                listeners.admin_group,
                &edges.app.spool_dir,
                config.profile,
            )?;
        }
        let running = Running {
            config,
            layout,
            hsm,
            services: &services,
            audit,
            notifier,
        };
        running.serve(source, edges, listeners).await
    }
}

/// What the listeners serve: the API's shared state, its TLS, and who may call it.
struct Edges {
    app: Arc<App>,
    /// What a scrape reads its gauges from.
    sources: Arc<crate::metrics::Sources>,
    tls: Arc<rustls::ServerConfig>,
    trust: Arc<ClientTrust>,
    authz: Arc<Authorizer>,
    signing_keys: Arc<KeyRing>,
    disk: Arc<crate::disk::DiskWatch>,
    public_tally: Arc<crate::disk::PublicTally>,
}

/// The API's state over the services: client trust (with the outside CAs' CRLs), TLS
/// with its key in the HSM's urgent lane, the client policy, the signing keys, the spool
/// and its disk.
async fn edges(
    config: &Config,
    layout: &StateLayout,
    hsm: &Hsm,
    certs: &OwnCerts,
    keys: &OwnKeys,
    (tsa, services): (TsaService, &Services),
    audit: &AuditLog,
) -> Result<Edges, StartError> {
    let trust = Arc::new(client_trust(config, &certs.client_ca[0], &services.ocsp)?);
    crate::client_crls::load_all(&trust, config).await;
    let tls = tls::server_config(
        to_rustls(&certs.tls_chain, &layout.tls_chain())?,
        Arc::new(HsmSigningKey::new(
            hsm.urgent(),
            Arc::clone(&keys.tls),
            f64::from(config.api.handshake_signatures_per_sec),
            f64::from(config.api.handshake_signature_burst),
        )),
        Arc::clone(&trust),
    )?;
    let signing_keys = Arc::new(KeyRing::load(config, hsm).map_err(StartError::Config)?);
    let authz = Arc::new(Authorizer::new(
        Policy::new(&config.clients).map_err(StartError::Config)?,
    ));
    let spool_dir = spool_dir(config)?;
    let disk =
        crate::disk::DiskWatch::new(&layout.audit_dir(), &spool_dir, config.disk.min_free_bytes);
    let public_tally = Arc::new(crate::disk::PublicTally::default());
    let api = &config.api;
    let app = Arc::new(App {
        tsa,
        ocsp: Arc::clone(&services.ocsp),
        crls: Arc::clone(&services.crls),
        authz: Arc::clone(&authz),
        trust: Arc::clone(&trust),
        keys: Arc::clone(&signing_keys),
        hsm: hsm.clone(),
        store: services.status.store().clone(),
        max_json_bytes: api.max_json_bytes,
        max_batch: api.max_batch,
        max_stream_bytes: api.max_stream_bytes,
        max_body_bytes: api.max_body_bytes,
        body_timeout: Duration::from_secs(api.request_timeout_secs),
        spool_dir,
        spool_quota: crate::spool::SpoolQuota::new(config.disk.spool_quota_bytes),
        spool_slots: Arc::new(tokio::sync::Semaphore::new(config.disk.spool_max_in_flight)),
        disk: Arc::clone(&disk),
        public_tally: Arc::clone(&public_tally),
        audit: audit.clone(),
        metrics: Arc::new(crate::metrics::Metrics::new(
            config.metrics.listen.is_some(),
        )),
        csc_sads: Arc::new(crate::api::csc::SadStore::new(Duration::from_secs(
            config.api.csc_sad_lifetime_secs,
        ))),
        public_tsa: public_tsa_budget(config),
    });
    let serials = Arc::clone(&app);
    let sources = Arc::new(crate::metrics::Sources {
        hsm: hsm.clone(),
        tsa: Arc::new(move || serials.tsa.serials_left()),
        ocsp: Arc::clone(&services.ocsp),
        crls: Arc::clone(&services.crls),
        keys: Arc::clone(&signing_keys),
        ocsp_validity: Duration::from_secs(config.ocsp.validity_secs),
        infrastructure: infrastructure_expiry(certs),
    });
    Ok(Edges {
        app,
        sources,
        tls,
        trust,
        authz,
        signing_keys,
        disk,
        public_tally,
    })
}

/// The notAfter of the certificates read at start, by name (the OCSP signer's, which
/// renews itself, and the signing keys', which an import replaces, are read at each scrape).
fn infrastructure_expiry(certs: &OwnCerts) -> Vec<(String, std::time::SystemTime)> {
    let not_after = |c: &Certificate| c.tbs_certificate.validity.not_after.to_system_time();
    [
        ("root", certs.root.first()),
        ("tsa", certs.tsa.first()),
        ("tls-server", certs.tls_chain.first()),
        ("client-ca", certs.client_ca.first()),
        ("audit", certs.audit.first()),
    ]
    .into_iter()
    .filter_map(|(name, cert)| Some((name.to_owned(), not_after(cert?))))
    .collect()
}

/// The started daemon's parts that its tasks share.
struct Running<'a> {
    config: &'a Config,
    layout: &'a StateLayout,
    hsm: &'a Hsm,
    services: &'a Services,
    audit: &'a AuditLog,
    notifier: &'a Notifier,
}

impl Running<'_> {
    /// Serve on `listeners` until SIGTERM or SIGINT, then stop every task, seal the audit
    /// log with a last checkpoint and remove the admin socket.
    async fn serve(
        self,
        source: crate::config_source::ConfigSource,
        edges: Edges,
        listeners: Listeners,
    ) -> Result<(), StartError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let daemon = crate::admin::daemon_ops::Daemon {
            authority: Arc::clone(&self.services.status),
            ocsp: Arc::clone(&self.services.ocsp),
            hsm: self.hsm.clone(),
            authz: Arc::clone(&edges.authz),
            config: source.clone(),
            audit: self.audit.clone(),
            keys: Arc::clone(&edges.signing_keys),
            edits: tokio::sync::Mutex::new(()),
            state_dir: self.layout.root().to_owned(),
            sources: Arc::clone(&edges.sources),
            node: node_name(self.config),
        };
        let (config, audit) = (self.config, self.audit);
        let admin = admin_context(config, self.layout, listeners.admin_group, audit, daemon)?;
        tasks.spawn(crate::admin::server::serve(
            listeners.admin,
            Arc::new(admin),
            stopped(),
        ));
        tasks.spawn(reload_on_sighup(
            source,
            Arc::clone(&edges.authz),
            stopped(),
        ));
        self.spawn_upkeep_tasks(&mut tasks, &edges, listeners.metrics, &stopped);
        let public = listeners.public;
        spawn_listeners(&mut tasks, config, public, listeners.api, edges, &stopped);
        // Every listener is bound and its server task runs: connections are answered from here.
        self.notifier.ready("serving");
        shutdown_signal().await;
        self.notifier.stopping();
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Every answer has gone out; seal the log with a last checkpoint.
        audit.close().await;
        let _ = std::fs::remove_file(&listeners.admin_path);
        tracing::info!("stopped");
        Ok(())
    }

    /// What runs beside the listeners: disk and public-request tallies, client CRLs,
    /// re-signing, health, certificate expiry warnings, and the metrics listener.
    fn spawn_upkeep_tasks<F, Fut>(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        edges: &Edges,
        metrics: Option<tokio::net::TcpListener>,
        stopped: &F,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (config, audit) = (self.config, self.audit);
        tasks.spawn(Arc::clone(&edges.disk).run(stopped()));
        let every = Duration::from_secs(config.disk.public_summary_secs);
        let tally = Arc::clone(&edges.public_tally);
        tasks.spawn(tally.run(audit.clone(), every, stopped()));
        let crl_sources = client_crl_sources(config);
        tasks.spawn(crate::client_crls::refresh(
            Arc::clone(&edges.trust),
            crl_sources,
            stopped(),
        ));
        let status = &self.services.status;
        let ocsp = &self.services.ocsp;
        spawn_upkeep(tasks, config, self.layout, self.hsm, status, ocsp, stopped);
        spawn_health(tasks, self.hsm, self.notifier, audit, stopped);
        tasks.spawn(warn_of_expiry(Arc::clone(&edges.sources), stopped()));
        if let Some(listener) = metrics {
            // With mTLS (required beyond loopback): only clients granted `metrics`.
            let gate = config.metrics.mtls.then(|| {
                // The API's TLS, speaking HTTP/1.1 only (the metrics listener's one protocol).
                let mut tls = (*edges.tls).clone();
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(crate::metrics::server::MtlsGate {
                    acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
                    trust: Arc::clone(&edges.trust),
                    authz: Arc::clone(&edges.authz),
                })
            });
            let serve = crate::metrics::server::serve(
                listener,
                Arc::clone(&edges.app.metrics),
                Arc::clone(&edges.sources),
                gate,
                stopped(),
            );
            tasks.spawn(serve);
        }
    }
}

/// The public listener (if any) and the mutual-TLS API listener, each with its budgets.
fn spawn_listeners<F, Fut>(
    tasks: &mut tokio::task::JoinSet<()>,
    config: &Config,
    public: Option<tokio::net::TcpListener>,
    api_listener: tokio::net::TcpListener,
    edges: Edges,
    stopped: &F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let api = &config.api;
    if let Some(public) = public {
        let public_config = &config.public;
        let limits = listener_limits(
            api,
            public_config.max_connections,
            &public_config.connections,
        );
        let app = Arc::clone(&edges.app);
        tasks.spawn(server::serve(public, None, app, limits, stopped()));
    }
    let limits = listener_limits(api, api.max_connections, &api.connections);
    let tls = Some(edges.tls);
    tasks.spawn(server::serve(
        api_listener,
        tls,
        edges.app,
        limits,
        stopped(),
    ));
}

/// Once a day (the first at start), a warning for each certificate the appliance depends
/// on that is close to its end.
async fn warn_of_expiry(
    sources: Arc<crate::metrics::Sources>,
    stopped: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stopped);
    loop {
        let now = std::time::SystemTime::now();
        for (name, not_after) in sources.certificates() {
            let left = not_after.duration_since(now).ok();
            if crate::metrics::expiring(&name, left) {
                let days = left.map_or(0, |l| l.as_secs() / 86_400);
                tracing::warn!(certificate = %name, days_left = days, "certificate close to its end: renew it");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(86_400)) => {}
            () = &mut stopped => return,
        }
    }
}

/// What the admin socket's commands reach: the daemon's services, and who may use them.
fn admin_context(
    config: &Config,
    layout: &StateLayout,
    group: Option<nix::unistd::Gid>,
    audit: &AuditLog,
    daemon: crate::admin::daemon_ops::Daemon,
) -> Result<crate::admin::server::AdminContext, StartError> {
    Ok(crate::admin::server::AdminContext {
        authority: Arc::clone(&daemon.authority),
        audit: audit.clone(),
        group,
        officer: crate::admin::duties::resolve_group(
            "officer group",
            config.admin.officer_group.as_deref(),
        )
        .map_err(StartError::Config)?,
        layout: layout.clone(),
        daemon,
    })
}

/// The certificates of the appliance's own keys, as on disk.
struct OwnCerts {
    root: Vec<Certificate>,
    tls_chain: Vec<Certificate>,
    tsa: Vec<Certificate>,
    client_ca: Vec<Certificate>,
    ocsp_signer: Vec<Certificate>,
    audit: Vec<Certificate>,
}

/// The appliance's own keys in the token, each checked against its certificate.
struct OwnKeys {
    tls: Arc<KeyInfo>,
    tsa: Arc<KeyInfo>,
    root: Arc<KeyInfo>,
    client_ca: Arc<KeyInfo>,
    ocsp_signer: Arc<KeyInfo>,
    audit: Arc<KeyInfo>,
}

/// Read the certificates and find each key in the token: a key its certificate does not
/// certify stops the start. Blocking (files, the token).
fn own_keys(
    config: &Config,
    layout: &StateLayout,
    hsm: &Hsm,
) -> Result<(OwnCerts, OwnKeys), StartError> {
    let certs = OwnCerts {
        root: read_certs(&layout.root_ca())?,
        tls_chain: read_certs(&layout.tls_chain())?,
        tsa: read_certs(&layout.tsa_cert())?,
        client_ca: read_certs(&layout.client_ca())?,
        ocsp_signer: read_certs(&layout.ocsp_signer_cert())?,
        audit: read_certs(&layout.audit_cert())?,
    };
    let labels = &config.keys;
    let checked = |cert: &Certificate, label: &str, path: &Path| {
        let key = hsm.key_blocking(label)?;
        expect_certifies(cert, label, &key, path)?;
        Ok::<_, StartError>(key)
    };
    let client_ca = checked(
        &certs.client_ca[0],
        &labels.client_ca.label,
        &layout.client_ca(),
    )?;
    let root = checked(&certs.root[0], &labels.root_ca.label, &layout.root_ca())?;
    // The signer's key carries one of two labels (renewals alternate): take the one the
    // certificate on disk certifies.
    let ocsp_signer = crate::ocsp_renewal::load_signer_key(
        hsm,
        &labels.ocsp_signer.label,
        &certs.ocsp_signer[0],
    )?
    .ok_or_else(|| StartError::KeyMismatch {
        label: labels.ocsp_signer.label.clone(),
        cert: layout.ocsp_signer_cert(),
    })?;
    let tls = checked(
        &certs.tls_chain[0],
        &labels.tls_server.label,
        &layout.tls_chain(),
    )?;
    let tsa = checked(&certs.tsa[0], &labels.tsa.label, &layout.tsa_cert())?;
    let audit = checked(&certs.audit[0], &labels.audit.label, &layout.audit_cert())?;
    let keys = OwnKeys {
        tls,
        tsa,
        root,
        client_ca,
        ocsp_signer,
        audit,
    };
    Ok((certs, keys))
}

/// Open the audit log: its anchor checked against the audit key (and the TPM counter when
/// one is kept), its checkpoints signed in the HSM's urgent lane.
fn open_audit(
    config: &Config,
    source: &crate::config_source::ConfigSource,
    layout: &StateLayout,
    urgent: &Hsm,
    key: Arc<KeyInfo>,
) -> Result<AuditLog, StartError> {
    let audit_public =
        crate::audit::key_from_certificate(&layout.audit_cert()).map_err(StartError::Config)?;
    let counter = if config.audit.uses_tpm_counter(source.origin()) {
        Some(crate::audit::TpmCounter {
            tcti: source.tcti(),
            index: config.audit.tpm_counter_index,
        })
    } else {
        let why = "audit rollback protection is limited: the anchor is signed, but no TPM \
                   counter is kept, so an older log and anchor put back together are not \
                   detected";
        // Turned off by the operator: a warning. A clear-text dev config: what its own
        // warning ("without the TPM") already says.
        match config.audit.tpm_counter {
            signet_config::TpmCounterMode::Off => {
                tracing::warn!("{why} (audit.tpm_counter = \"off\")")
            }
            _ => tracing::info!("{why} (a clear-text config)"),
        }
        None
    };
    let audit = tokio::task::block_in_place(|| {
        AuditLog::open(
            &layout.audit_log(),
            &layout.audit_anchor(),
            AuditSigner {
                hsm: urgent.clone(),
                key,
            },
            CheckpointPolicy {
                every: config.audit.checkpoint_every,
                interval: Duration::from_secs(config.audit.checkpoint_secs),
            },
            crate::audit::log::AnchorPolicy {
                key: audit_public,
                counter,
            },
            Some(node_name(config)),
        )
    })?;
    Ok(audit)
}

/// The services the listeners, the admin socket and the upkeep tasks share (the TSA is
/// the API's alone, returned beside them).
struct Services {
    ocsp: Arc<OcspService>,
    crls: Arc<CrlService>,
    status: Arc<StatusAuthority>,
}

/// Assemble the TSA, the OCSP responder, the CRLs and the status authority over the store.
fn services(
    config: &Config,
    store: Store,
    hsm: &Hsm,
    urgent: &Hsm,
    certs: &OwnCerts,
    keys: &OwnKeys,
) -> Result<(TsaService, Services), StartError> {
    let signer = SignerIdentity::new(
        certs.tsa[0].clone(),
        certs.root.clone(),
        keys.tsa.algorithm.default_scheme(),
    )
    .map_err(|e| StartError::Config(format!("TSA signer: {e}")))?;
    let authority = TimeStampAuthority::new(signer, tsa_policy(config)?);
    let clock = if config.require_clock_sync() {
        ClockPolicy::Require
    } else {
        ClockPolicy::WarnOnly
    };
    let tsa = TsaService::new(
        authority,
        Arc::clone(&keys.tsa),
        urgent.clone(),
        SerialAllocator::new(store.clone(), "tsa", config.tsa.serial_block),
        clock,
    );
    let responder_err = |e: signet_pki::Error| StartError::Config(format!("OCSP responder: {e}"));
    let status_lock = Arc::new(tokio::sync::Mutex::new(()));
    let ocsp = Arc::new(OcspService::new(
        vec![
            CaResponder::new(
                ROOT_CA,
                certs.root[0].clone(),
                Arc::clone(&keys.root),
                certs.ocsp_signer[0].clone(),
                Arc::clone(&keys.ocsp_signer),
            )
            .map_err(responder_err)?,
            // The client CA answers for its own certificates (RFC 6960 2.2: the CA itself).
            CaResponder::new(
                CLIENT_CA,
                certs.client_ca[0].clone(),
                Arc::clone(&keys.client_ca),
                certs.client_ca[0].clone(),
                Arc::clone(&keys.client_ca),
            )
            .map_err(responder_err)?,
        ],
        store.clone(),
        urgent.clone(),
        ocsp_settings(config),
        Arc::clone(&status_lock),
    ));
    let crls = Arc::new(CrlService::new(
        vec![
            crl_issuer(ROOT_CA, &certs.root[0], Arc::clone(&keys.root)),
            crl_issuer(CLIENT_CA, &certs.client_ca[0], Arc::clone(&keys.client_ca)),
        ],
        store.clone(),
        urgent.clone(),
        Duration::from_secs(config.crl.validity_secs),
    ));
    let ca = Issuers::load(config, hsm).map_err(StartError::Config)?;
    let status = Arc::new(StatusAuthority::new(
        store,
        Some(Arc::new(ca)),
        Arc::clone(&ocsp),
        Arc::clone(&crls),
        status_lock,
    ));
    let tsa = tsa.with_status_index(Arc::clone(&ocsp));
    Ok((tsa, Services { ocsp, crls, status }))
}

/// The listeners, bound (or taken from systemd) before privileges are dropped.
struct Listeners {
    api: tokio::net::TcpListener,
    public: Option<tokio::net::TcpListener>,
    metrics: Option<tokio::net::TcpListener>,
    admin: tokio::net::UnixListener,
    admin_path: PathBuf,
    admin_group: Option<nix::unistd::Gid>,
}

async fn bind_listeners(config: &Config, listen: ListenOverrides) -> Result<Listeners, StartError> {
    let admin_group = crate::admin::server::admin_group(config.admin.group.as_deref())
        .map_err(StartError::Config)?;
    let activated = listen.activated;
    let api = match activated.api {
        Some(l) => adopt(l, "https")?,
        None => bind(listen.api.unwrap_or(config.api.listen), "https").await?,
    };
    let public = match (activated.public, listen.public.or(config.public.listen)) {
        (Some(l), _) => Some(adopt(l, "http")?),
        (None, Some(addr)) => Some(bind(addr, "http").await?),
        (None, None) => None,
    };
    let admin_path = config.state_path(&config.admin.socket);
    let admin = crate::admin::server::bind(&admin_path, admin_group).map_err(|source| {
        StartError::Admin {
            path: admin_path.clone(),
            source,
        }
    })?;
    tracing::info!(socket = %admin_path.display(), "admin socket ready");
    let metrics = match config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            let scheme = if config.metrics.mtls { "https" } else { "http" };
            tracing::info!("metrics at {scheme}://{bound}/metrics");
            Some(listener)
        }
        None => None,
    };
    Ok(Listeners {
        api,
        public,
        metrics,
        admin,
        admin_path,
        admin_group,
    })
}

/// A listener's limits: the API's request limits, and the connection budget of its own
/// (one listener can never starve the other).
fn listener_limits(
    api: &signet_config::ApiConfig,
    max_connections: usize,
    budget: &signet_config::ConnectionBudget,
) -> Limits {
    Limits {
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
    }
}

/// Follow the HSM's readiness (STATUS=, the audit log) and feed the service watchdog while
/// the reconnect loop is not stuck.
fn spawn_health<F, Fut>(
    tasks: &mut tokio::task::JoinSet<()>,
    hsm: &Hsm,
    notifier: &Notifier,
    audit: &AuditLog,
    stopped: &F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
}

/// This box's name among several: `[cluster] node`, or the hostname.
pub(crate) fn node_name(config: &Config) -> String {
    config.cluster.node.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unnamed".into())
    })
}

/// How often a box tells the shared database it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Tell the shared database this box is alive, every [`HEARTBEAT`], until `shutdown`.
async fn heartbeat(store: Store, node: String, shutdown: impl std::future::Future<Output = ()>) {
    let started = std::time::SystemTime::now();
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = store.heartbeat(&node, started).await {
            tracing::debug!(error = %e, "heartbeat not recorded");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

/// The background work that keeps what is served fresh: CRLs and OCSP answers re-signed
/// before they expire, and the delegated OCSP signer renewed at half its life.
fn spawn_upkeep<F, Fut>(
    tasks: &mut tokio::task::JoinSet<()>,
    config: &Config,
    layout: &StateLayout,
    hsm: &Hsm,
    status: &Arc<StatusAuthority>,
    ocsp: &Arc<OcspService>,
    stopped: &F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let refresh_every = Duration::from_secs((config.ocsp.validity_secs / 10).clamp(1, 300));
    tasks.spawn(Arc::clone(status).refresh(refresh_every, stopped()));
    // With PostgreSQL, what other boxes change reaches this box's answers, and they see
    // this box alive.
    tasks.spawn(Arc::clone(status).follow(stopped()));
    tasks.spawn(heartbeat(
        status.store().clone(),
        node_name(config),
        stopped(),
    ));
    tasks.spawn(
        crate::ocsp_renewal::Renewal {
            authority: Arc::clone(status),
            ocsp: Arc::clone(ocsp),
            hsm: hsm.clone(),
            cert_path: layout.ocsp_signer_cert(),
            base_label: config.keys.ocsp_signer.label.clone(),
            algorithm: crate::settings::key_algorithm(config.keys.ocsp_signer.algorithm),
            lifetime: Duration::from_secs(config.ocsp.signer_lifetime_secs),
            new_key: config.ocsp.signer_new_key,
        }
        .run(stopped()),
    );
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

/// With `[tsa] public`: what anonymous time-stamps may take.
fn public_tsa_budget(config: &Config) -> Option<crate::api::tsa::PublicBudget> {
    let tsa = &config.tsa;
    tsa.public.then(|| {
        crate::api::tsa::PublicBudget::new(
            (
                f64::from(tsa.public_per_source_per_sec),
                f64::from(tsa.public_per_source_burst),
            ),
            f64::from(tsa.public_total_per_sec),
        )
    })
}

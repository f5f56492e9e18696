//! The key ceremony: keys generated inside the token, certificates built with
//! prepare/sign/finish with the root CA key signing through the HSM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use der::Decode;
use serde::Serialize;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use signet_config::{Config, KeySpec};
use signet_pki::x509::{self, CertificateParams, Issuer, Profile, SubjectAltName};

use crate::issuance::{revocation_urls, CLIENT_CA, ROOT_CA};
use crate::settings;
use signet_hsm::{softhsm, token, Hsm, HsmError, KeyInfo};
use signet_state::layout::StateLayout;
use signet_state::statelock::{LockError, StateLock};
use signet_state::store::{Store, StoreError};

/// What can stop a ceremony.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// The state directory holds a PKI already.
    #[error("{0} exists: this appliance is initialised already (use --force to start over)")]
    AlreadyInitialised(PathBuf),
    /// HSM failure.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// Certificate building failed.
    #[error(transparent)]
    Pki(#[from] signet_pki::Error),
    /// Writing files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be made.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration lacks something the ceremony needs.
    #[error("{0}")]
    Config(String),
    /// A daemon or another signetctl owns the state directory.
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// What `init` made, for people and for `--json`.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// Root CA certificate.
    pub root_ca: PathBuf,
    /// TSA certificate.
    pub tsa_certificate: PathBuf,
    /// TLS server certificate chain.
    pub tls_certificate: PathBuf,
    /// The root CA's delegated OCSP signer certificate.
    pub ocsp_signer_certificate: PathBuf,
    /// The audit key's certificate.
    pub audit_certificate: PathBuf,
    /// The client CA's certificate: it issues API clients' certificates, nothing else.
    pub client_ca: PathBuf,
    /// Demo client certificate.
    pub client_certificate: PathBuf,
    /// Demo client key.
    pub client_key: PathBuf,
    /// The database.
    pub database: PathBuf,
}

/// One certificate the root signs in the ceremony, for a key it makes in the token.
struct Step {
    key: KeySpec,
    profile: Profile,
    subject: String,
    lifetime: Duration,
    /// When validity starts, if not a few minutes ago.
    not_before: Option<SystemTime>,
    /// Where it is written; with `with_root`, the root's certificate follows it there.
    file: PathBuf,
    with_root: bool,
    /// Its profile in the database.
    recorded_as: &'static str,
}

/// What the root certifies, in order: the infrastructure keys, then (dev) the
/// document-signing keys the config declares, so that the quick start signs at once.
// A table reads best a row per certificate.
#[rustfmt::skip]
fn steps(config: &Config, layout: &StateLayout) -> Vec<Step> {
    let (keys, pki) = (&config.keys, &config.pki);
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    let (leaf, long) = (days(pki.leaf_days), days(pki.root_days));
    // Short-lived: signetd renews it at half its life (`ocsp.signer_lifetime_secs`).
    let signer = Duration::from_secs(config.ocsp.signer_lifetime_secs);
    let step = |key: &KeySpec, profile, subject: &str, lifetime, file, with_root, recorded_as| Step {
        key: key.clone(), profile, subject: subject.to_owned(), lifetime, not_before: None,
        file, with_root, recorded_as,
    };
    let tls_server = Profile::TlsServer(alt_names(&pki.tls_names));
    let mut steps = vec![
        step(&keys.tsa, Profile::TimeStamping, &pki.tsa_subject, leaf, layout.tsa_cert(), false, "tsa"),
        step(&keys.tls_server, tls_server, &pki.tls_subject, leaf, layout.tls_chain(), true, "tls-server"),
        Step {
            not_before: Some(crate::ocsp_renewal::not_before(signer)),
            ..step(&keys.ocsp_signer, Profile::OcspSigning, &pki.ocsp_signer_subject, signer,
                   layout.ocsp_signer_cert(), false, "ocsp-signer")
        },
        // The audit key signs checkpoints, not documents; its certificate only names it.
        step(&keys.audit, Profile::DocumentSigning, &pki.audit_subject, long, layout.audit_cert(), true, "audit"),
        // Client certificates come from a CA of their own, so that trusting it for client
        // authentication trusts nothing the root signs for the infrastructure.
        step(&keys.client_ca, Profile::Ca { path_len: Some(0) }, &pki.client_ca_subject, long,
             layout.client_ca(), false, "ca"),
    ];
    if config.profile == signet_config::Profile::Dev {
        for declared in &config.signing_keys {
            let key = KeySpec { label: declared.label.clone(), algorithm: declared.algorithm };
            let subject = format!("CN=Signet Dev Signer {},O=Signet", declared.label);
            let file = config.state_path(&declared.certificate_chain);
            steps.push(step(&key, Profile::DocumentSigning, &subject, leaf, file, true, "document-signing"));
        }
    }
    steps
}

/// Run the ceremony for `config`. With `force`, an existing PKI and its keys are replaced.
pub fn init(config: &Config, force: bool) -> Result<InitReport, CeremonyError> {
    let layout = StateLayout::new(&config.state_dir);
    if layout.root_ca().exists() && !force {
        return Err(CeremonyError::AlreadyInitialised(layout.root_ca()));
    }
    create_private_dir(layout.root())?;
    let _state = StateLock::acquire(layout.root())?;
    create_private_dir(&layout.pki_dir())?;
    create_private_dir(&layout.demo_dir())?;
    let hsm = open_token(config, force)?;
    if force {
        destroy_old_keys(&hsm, config)?;
    }

    let signer = Signer::new(&hsm, config, force)?;
    let mut made = Vec::new();
    let mut client_ca = None;
    for step in steps(config, &layout) {
        let (key, cert) = signer.certify(&step)?;
        if step.key.label == config.keys.client_ca.label {
            client_ca = Some((key, cert.clone()));
        }
        made.push((step, cert));
    }
    let client_ca = client_ca.ok_or_else(|| CeremonyError::Config("no client CA".into()))?;
    let (client_key_pem, client) = signer.demo_client(config, &client_ca)?;

    let root = &signer.root;
    write_pem(&layout.root_ca(), &[root])?;
    for (step, cert) in &made {
        match step.with_root {
            true => write_pem(&step.file, &[cert, root])?,
            false => write_pem(&step.file, &[cert])?,
        }
    }
    write_pem(&layout.demo_cert(), &[&client])?;
    write_private(&layout.demo_key(), client_key_pem.as_bytes())?;
    set_old_audit_log_aside(&layout)?;
    let store = Store::open_configured(config, &layout)?;
    let mut issued = vec![(ROOT_CA, "ca", root)];
    issued.extend(
        made.iter()
            .map(|(step, cert)| (ROOT_CA, step.recorded_as, cert)),
    );
    issued.push((CLIENT_CA, "tls-client", &client));
    store.replace_certificates(&issued)?;
    Ok(InitReport::of(&layout, config))
}

/// The root CA, made first (its key and self-signed certificate), and what it signs with.
struct Signer<'a> {
    hsm: &'a Hsm,
    config: &'a Config,
    force: bool,
    root_key: Arc<KeyInfo>,
    root: Certificate,
    issuer: Issuer,
    now: SystemTime,
}

impl<'a> Signer<'a> {
    fn new(hsm: &'a Hsm, config: &'a Config, force: bool) -> Result<Self, CeremonyError> {
        let pki = &config.pki;
        let root_key = fresh_key(hsm, &config.keys.root_ca, force)?;
        let now = SystemTime::now() - Duration::from_secs(300);
        let lifetime = Duration::from_secs(u64::from(pki.root_days) * 86_400);
        let params = CertificateParams {
            profile: Profile::Ca { path_len: None },
            subject: x509::parse_name(&pki.root_subject)?,
            public_key: root_key.spki.clone(),
            serial: hsm.random_blocking(16)?,
            not_before: now,
            lifetime,
            revocation: revocation_urls(config, ROOT_CA),
        };
        let root = sign_certificate(hsm, &root_key, params, None)?;
        let issuer = Issuer::from_certificate(&root, root_key.algorithm.default_scheme());
        Ok(Signer {
            hsm,
            config,
            force,
            root_key,
            root,
            issuer,
            now,
        })
    }

    /// Make `step`'s key in the token and its certificate, signed by the root.
    fn certify(&self, step: &Step) -> Result<(Arc<KeyInfo>, Certificate), CeremonyError> {
        let key = fresh_key(self.hsm, &step.key, self.force)?;
        let params = CertificateParams {
            profile: step.profile.clone(),
            subject: x509::parse_name(&step.subject)?,
            public_key: key.spki.clone(),
            serial: self.hsm.random_blocking(16)?,
            not_before: step.not_before.unwrap_or(self.now),
            lifetime: step.lifetime,
            // Where relying parties check status (RFC 5280 4.2.2.1, 4.2.1.13).
            revocation: revocation_urls(self.config, ROOT_CA),
        };
        let cert = sign_certificate(self.hsm, &self.root_key, params, Some(&self.issuer))?;
        Ok((key, cert))
    }

    /// The demo application's client certificate, from the client CA, for a software key.
    fn demo_client(
        &self,
        config: &Config,
        (ca_key, ca_cert): &(Arc<KeyInfo>, Certificate),
    ) -> Result<(zeroize::Zeroizing<String>, Certificate), CeremonyError> {
        let issuer = Issuer::from_certificate(ca_cert, ca_key.algorithm.default_scheme());
        let (key_pem, spki) = demo_client_key()?;
        let pki = &config.pki;
        let params = CertificateParams {
            profile: Profile::TlsClient(Vec::new()),
            subject: x509::parse_name(&pki.demo_client_subject)?,
            public_key: spki,
            serial: self.hsm.random_blocking(16)?,
            not_before: self.now,
            lifetime: Duration::from_secs(u64::from(pki.leaf_days) * 86_400),
            revocation: revocation_urls(config, CLIENT_CA),
        };
        let cert = sign_certificate(self.hsm, ca_key, params, Some(&issuer))?;
        Ok((key_pem, cert))
    }
}

/// The token, made first if the module has none with the configured label (and SoftHSM's
/// own files, dev).
fn open_token(config: &Config, force: bool) -> Result<Hsm, CeremonyError> {
    let hsm_settings = settings::hsm(config).map_err(CeremonyError::Config)?;
    if let Some(dir) = &config.hsm.softhsm_dir {
        prepare_softhsm_dir(&config.state_path(dir), force)?;
    }
    if !token::exists(&config.hsm.module, &config.hsm.token_label)? {
        make_token(config)?;
    }
    Ok(Hsm::open(&hsm_settings)?)
}

/// With `--force`: every key the ceremony makes, gone before any new one is made.
fn destroy_old_keys(hsm: &Hsm, config: &Config) -> Result<(), CeremonyError> {
    // All before any generation: tpm2-pkcs11 hands out the object handles it frees again,
    // and after a destroy/generate/destroy interleaving its search returned a handle whose
    // object has no CKA_SENSITIVE.
    let keys = &config.keys;
    let dev_signers = config.signing_keys.iter().map(|k| k.label.as_str());
    for label in [
        &keys.root_ca.label,
        &keys.tsa.label,
        &keys.tls_server.label,
        &keys.ocsp_signer.label,
        &keys.audit.label,
        &keys.client_ca.label,
    ]
    .into_iter()
    .map(String::as_str)
    .chain(dev_signers.filter(|_| config.profile == signet_config::Profile::Dev))
    {
        hsm.destroy_blocking(label)?;
    }
    // The OCSP signer's key after a renewal (renewals alternate between two labels).
    hsm.destroy_blocking(&crate::ocsp_renewal::alternate_label(
        &keys.ocsp_signer.label,
    ))?;
    Ok(())
}

/// A new PKI starts a new audit chain; the old log is kept aside, never deleted (it
/// verifies with the old audit certificate, which an auditor keeps with it).
fn set_old_audit_log_aside(layout: &StateLayout) -> Result<(), CeremonyError> {
    let audit_dir = layout.audit_dir();
    if !audit_dir.exists() {
        return Ok(());
    }
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = layout.root().join(format!("audit.before-{secs}"));
    std::fs::rename(&audit_dir, &aside).map_err(|source| CeremonyError::Io {
        path: aside,
        source,
    })
}

impl InitReport {
    fn of(layout: &StateLayout, config: &Config) -> Self {
        InitReport {
            state_dir: layout.root().to_owned(),
            token_label: config.hsm.token_label.clone(),
            root_ca: layout.root_ca(),
            tsa_certificate: layout.tsa_cert(),
            tls_certificate: layout.tls_chain(),
            ocsp_signer_certificate: layout.ocsp_signer_cert(),
            audit_certificate: layout.audit_cert(),
            client_ca: layout.client_ca(),
            client_certificate: layout.demo_cert(),
            client_key: layout.demo_key(),
            database: layout.database(),
        }
    }
}

/// Issue a certificate: prepare the TBSCertificate, sign its digest in the HSM, finish.
/// `issuer` `None` makes `key`'s own self-signed certificate.
pub fn sign_certificate(
    hsm: &Hsm,
    signing_key: &KeyInfo,
    params: CertificateParams,
    issuer: Option<&Issuer>,
) -> Result<Certificate, CeremonyError> {
    let prepared = x509::prepare(&params, issuer, signing_key.algorithm.default_scheme())?;
    let signature = hsm.sign_blocking(signing_key, prepared.scheme(), prepared.tbs_der())?;
    Ok(prepared.finish(&signature)?)
}

/// SoftHSM's own files (dev profile): with `force`, or when there is no token yet, start
/// from an empty token directory and a fresh config pointing at it.
fn prepare_softhsm_dir(dir: &Path, force: bool) -> Result<(), CeremonyError> {
    let tokens = dir.join("tokens");
    let has_token = std::fs::read_dir(&tokens)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has_token && !force {
        return Ok(());
    }
    if tokens.exists() {
        std::fs::remove_dir_all(&tokens).map_err(|source| CeremonyError::Io {
            path: tokens.clone(),
            source,
        })?;
    }
    softhsm::write_conf(dir).map_err(|source| CeremonyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    Ok(())
}

/// Make the configured token in a free slot of the module (C_InitToken), for any module
/// that offers one: SoftHSM, tpm2-pkcs11. A token that exists already is kept; `--force`
/// replaces the keys in it, not the token.
fn make_token(config: &Config) -> Result<(), CeremonyError> {
    let so_pin = config.hsm.so_pin.as_ref().ok_or_else(|| {
        CeremonyError::Config(format!(
            "no token labelled {:?}, and hsm.so_pin is needed to create one",
            config.hsm.token_label
        ))
    })?;
    let user_pin = config.hsm.user_pin.as_ref().ok_or_else(|| {
        CeremonyError::Config("hsm.user_pin is needed to create the token".into())
    })?;
    token::init(
        &config.hsm.module,
        &config.hsm.token_label,
        so_pin,
        user_pin,
    )?;
    Ok(())
}

/// Generate `spec` in the token; with `force`, whatever carries its label goes first.
fn fresh_key(hsm: &Hsm, spec: &KeySpec, force: bool) -> Result<Arc<KeyInfo>, CeremonyError> {
    if force {
        hsm.destroy_blocking(&spec.label)?;
    }
    Ok(hsm.generate_key_blocking(&spec.label, settings::key_algorithm(spec.algorithm))?)
}

fn alt_names(names: &[String]) -> Vec<SubjectAltName> {
    names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => SubjectAltName::Ip(ip),
            Err(_) => SubjectAltName::Dns(n.clone()),
        })
        .collect()
}

/// The demo application's key: a software P-256 key written to disk, for the demo only.
fn demo_client_key(
) -> Result<(zeroize::Zeroizing<String>, SubjectPublicKeyInfoOwned), CeremonyError> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| signet_pki::Error::Invalid("demo key encoding"))?;
    let spki_der = secret
        .public_key()
        .to_public_key_der()
        .map_err(|_| signet_pki::Error::Invalid("demo key encoding"))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(signet_pki::Error::from)?;
    Ok((pem, spki))
}

fn write_pem(path: &Path, certs: &[&Certificate]) -> Result<(), CeremonyError> {
    let mut text = String::new();
    for c in certs {
        text.push_str(&x509::certificate_to_pem(c)?);
    }
    std::fs::write(path, text).map_err(|source| CeremonyError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CeremonyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CeremonyError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

fn create_private_dir(path: &Path) -> Result<(), CeremonyError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| CeremonyError::Io {
            path: path.to_owned(),
            source,
        })
}

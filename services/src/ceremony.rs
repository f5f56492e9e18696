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
use signet_state::store::{certs, Store, StoreError};

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

    let hsm_settings = settings::hsm(config).map_err(CeremonyError::Config)?;
    if let Some(dir) = &config.hsm.softhsm_dir {
        prepare_softhsm_dir(&config.state_path(dir), force)?;
    }
    if !token::exists(&config.hsm.module, &config.hsm.token_label)? {
        make_token(config)?;
    }
    let hsm = Hsm::open(&hsm_settings)?;
    let keys = &config.keys;
    if force {
        // Every old key goes before any new one is made: tpm2-pkcs11 hands out the object
        // handles it frees again, and after a destroy/generate/destroy interleaving its
        // search returned a handle whose object has no CKA_SENSITIVE.
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
    }
    let root_key = fresh_key(&hsm, &keys.root_ca, force)?;
    let tsa_key = fresh_key(&hsm, &keys.tsa, force)?;
    let tls_key = fresh_key(&hsm, &keys.tls_server, force)?;
    let ocsp_key = fresh_key(&hsm, &keys.ocsp_signer, force)?;
    let audit_key = fresh_key(&hsm, &keys.audit, force)?;
    let client_ca_key = fresh_key(&hsm, &keys.client_ca, force)?;
    // Where relying parties check the status of what each CA issues (RFC 5280 4.2.2.1, 4.2.1.13).
    let revocation = revocation_urls(config, ROOT_CA);

    let pki = &config.pki;
    let now = SystemTime::now() - Duration::from_secs(300);
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    let params = |profile,
                  subject: &str,
                  key: SubjectPublicKeyInfoOwned,
                  lifetime|
     -> Result<CertificateParams, CeremonyError> {
        Ok(CertificateParams {
            profile,
            subject: x509::parse_name(subject)?,
            public_key: key,
            serial: hsm.random_blocking(16)?,
            not_before: now,
            lifetime,
            revocation: revocation.clone(),
        })
    };

    let root_scheme = root_key.algorithm.default_scheme();
    let root = sign_certificate(
        &hsm,
        &root_key,
        params(
            Profile::Ca { path_len: None },
            &pki.root_subject,
            root_key.spki.clone(),
            days(pki.root_days),
        )?,
        None,
    )?;
    let issuer = Issuer::from_certificate(&root, root_scheme);
    let tsa = sign_certificate(
        &hsm,
        &root_key,
        params(
            Profile::TimeStamping,
            &pki.tsa_subject,
            tsa_key.spki.clone(),
            days(pki.leaf_days),
        )?,
        Some(&issuer),
    )?;
    let tls = sign_certificate(
        &hsm,
        &root_key,
        params(
            Profile::TlsServer(alt_names(&pki.tls_names)),
            &pki.tls_subject,
            tls_key.spki.clone(),
            days(pki.leaf_days),
        )?,
        Some(&issuer),
    )?;
    // Short-lived: signetd renews it at half its life (`ocsp.signer_lifetime_secs`).
    let signer_lifetime = Duration::from_secs(config.ocsp.signer_lifetime_secs);
    let ocsp_signer = sign_certificate(
        &hsm,
        &root_key,
        CertificateParams {
            not_before: crate::ocsp_renewal::not_before(signer_lifetime),
            ..params(
                Profile::OcspSigning,
                &pki.ocsp_signer_subject,
                ocsp_key.spki.clone(),
                signer_lifetime,
            )?
        },
        Some(&issuer),
    )?;
    // The audit key signs checkpoints, not documents; its certificate only names it.
    let audit = sign_certificate(
        &hsm,
        &root_key,
        params(
            Profile::DocumentSigning,
            &pki.audit_subject,
            audit_key.spki.clone(),
            days(pki.root_days),
        )?,
        Some(&issuer),
    )?;
    // Dev: the document-signing keys the config declares, so the quick start signs at once.
    let mut document_signers = Vec::new();
    if config.profile == signet_config::Profile::Dev {
        for declared in &config.signing_keys {
            let key = fresh_key(
                &hsm,
                &KeySpec {
                    label: declared.label.clone(),
                    algorithm: declared.algorithm,
                },
                force,
            )?;
            let cert = sign_certificate(
                &hsm,
                &root_key,
                params(
                    Profile::DocumentSigning,
                    &format!("CN=Signet Dev Signer {},O=Signet", declared.label),
                    key.spki.clone(),
                    days(pki.leaf_days),
                )?,
                Some(&issuer),
            )?;
            document_signers.push((config.state_path(&declared.certificate_chain), cert));
        }
    }
    // Client certificates come from a CA of their own, so that trusting it for client
    // authentication trusts nothing the root signs for the infrastructure.
    let client_ca = sign_certificate(
        &hsm,
        &root_key,
        params(
            Profile::Ca { path_len: Some(0) },
            &pki.client_ca_subject,
            client_ca_key.spki.clone(),
            days(pki.root_days),
        )?,
        Some(&issuer),
    )?;
    let client_issuer =
        Issuer::from_certificate(&client_ca, client_ca_key.algorithm.default_scheme());
    let (client_key_pem, client_spki) = demo_client_key()?;
    let client = sign_certificate(
        &hsm,
        &client_ca_key,
        CertificateParams {
            revocation: revocation_urls(config, CLIENT_CA),
            ..params(
                Profile::TlsClient(Vec::new()),
                &pki.demo_client_subject,
                client_spki,
                days(pki.leaf_days),
            )?
        },
        Some(&client_issuer),
    )?;

    write_pem(&layout.root_ca(), &[&root])?;
    write_pem(&layout.tsa_cert(), &[&tsa])?;
    write_pem(&layout.tls_chain(), &[&tls, &root])?;
    write_pem(&layout.ocsp_signer_cert(), &[&ocsp_signer])?;
    write_pem(&layout.client_ca(), &[&client_ca])?;
    write_pem(&layout.audit_cert(), &[&audit, &root])?;
    // A new PKI starts a new audit chain; the old log is kept aside, never deleted (it
    // verifies with the old audit certificate, which an auditor keeps with it).
    let audit_dir = layout.audit_dir();
    if audit_dir.exists() {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = layout.root().join(format!("audit.before-{secs}"));
        std::fs::rename(&audit_dir, &aside).map_err(|source| CeremonyError::Io {
            path: aside,
            source,
        })?;
    }
    for (path, cert) in &document_signers {
        write_pem(path, &[cert, &root])?;
    }
    write_pem(&layout.demo_cert(), &[&client])?;
    write_private(&layout.demo_key(), client_key_pem.as_bytes())?;
    let store = Store::open(&layout.database())?;
    store.with_blocking(|c| {
        let tx = c.transaction()?;
        certs::clear(&tx)?;
        for (profile, cert) in [
            ("ca", &root),
            ("tsa", &tsa),
            ("tls-server", &tls),
            ("ocsp-signer", &ocsp_signer),
            ("audit", &audit),
            ("ca", &client_ca),
        ] {
            certs::record(&tx, ROOT_CA, profile, cert)?;
        }
        certs::record(&tx, CLIENT_CA, "tls-client", &client)?;
        for (_, cert) in &document_signers {
            certs::record(&tx, ROOT_CA, "document-signing", cert)?;
        }
        tx.commit()?;
        Ok(())
    })?;

    Ok(InitReport {
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
    })
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

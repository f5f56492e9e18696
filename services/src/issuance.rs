//! Issuing certificates from PKCS#10 requests: the CA key signs through the HSM, and every
//! certificate is recorded (and so answerable by OCSP) before it is handed out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use signet_config::Config;
use signet_pki::x509::{self, csr, CertificateParams, Issuer, Profile, Revocation, SubjectAltName};

use crate::ServiceError;
use signet_hsm::{Hsm, KeyInfo};
use signet_state::layout::StateLayout;

/// The name of the appliance's root CA: its CRL is `/crl/root.crl`.
pub const ROOT_CA: &str = "root";

/// The name of the appliance's client CA (issued by the root; issues API clients'
/// certificates only): its CRL is `/crl/client-ca.crl`.
pub const CLIENT_CA: &str = signet_config::OWN_CLIENT_CA;

/// Where relying parties learn the status of what CA `ca` issues: its OCSP responder and
/// CRL under `public.url`, none without one.
pub fn revocation_urls(config: &Config, ca: &str) -> Revocation {
    config
        .public
        .base_url()
        .map(|base| Revocation {
            ocsp_url: Some(format!("{base}/ocsp")),
            crl_url: Some(format!("{base}/crl/{ca}.crl")),
        })
        .unwrap_or_default()
}

/// The appliance's two CAs: the root signs infrastructure and document-signing
/// certificates, the client CA signs the certificates API clients authenticate with.
pub struct Issuers {
    /// The root CA.
    pub root: CertificateAuthority,
    /// The client CA.
    pub clients: CertificateAuthority,
}

impl Issuers {
    /// Both CAs of `config`'s state directory, their keys found in `hsm`.
    pub fn load(config: &Config, hsm: &Hsm) -> Result<Self, String> {
        let layout = StateLayout::new(&config.state_dir);
        Ok(Issuers {
            root: CertificateAuthority::load(
                config,
                hsm,
                ROOT_CA,
                &layout.root_ca(),
                &config.keys.root_ca.label,
            )?,
            clients: CertificateAuthority::load(
                config,
                hsm,
                CLIENT_CA,
                &layout.client_ca(),
                &config.keys.client_ca.label,
            )?,
        })
    }

    /// The CA that issues `profile`: client certificates from the client CA, the rest
    /// from the root.
    pub fn for_profile(&self, profile: &str) -> &CertificateAuthority {
        if profile == "tls-client" {
            &self.clients
        } else {
            &self.root
        }
    }

    /// The CA called `name`.
    pub fn named(&self, name: &str) -> Option<&CertificateAuthority> {
        [&self.root, &self.clients]
            .into_iter()
            .find(|ca| ca.name == name)
    }
}

/// What an operator asks to have issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRequest {
    /// The PKCS#10 request, PEM.
    pub csr_pem: String,
    /// `tls-client`, `document-signing`, `tsa` or `ocsp-signer`.
    pub profile: String,
    /// Lifetime in days (default: `pki.leaf_days`).
    #[serde(default)]
    pub days: Option<u32>,
    /// DNS names for the subjectAltName.
    #[serde(default)]
    pub san_dns: Vec<String>,
    /// URIs for the subjectAltName.
    #[serde(default)]
    pub san_uri: Vec<String>,
}

/// The profiles `cert issue` offers.
pub const PROFILES: [&str; 4] = ["tls-client", "document-signing", "tsa", "ocsp-signer"];

/// The appliance's CA, able to sign.
pub struct CertificateAuthority {
    /// Its name (`root`).
    pub name: String,
    cert: Certificate,
    key: Arc<KeyInfo>,
    hsm: Hsm,
    revocation: Revocation,
    default_days: u32,
}

impl CertificateAuthority {
    /// CA `name` with its certificate at `path` and its key labelled `label` in `hsm`.
    fn load(
        config: &Config,
        hsm: &Hsm,
        name: &str,
        path: &std::path::Path,
        label: &str,
    ) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cert =
            x509::certificate_from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        let key =
            tokio::task::block_in_place(|| hsm.key_blocking(label)).map_err(|e| e.to_string())?;
        if !certifies(&cert, &key) {
            return Err(format!(
                "key {label:?} in the token does not match {}",
                path.display()
            ));
        }
        Ok(CertificateAuthority {
            name: name.into(),
            cert,
            key,
            hsm: hsm.clone(),
            revocation: revocation_urls(config, name),
            default_days: config.pki.leaf_days,
        })
    }

    /// The HSM the CA signs with.
    pub fn hsm(&self) -> &Hsm {
        &self.hsm
    }

    /// The CA's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Check the request and sign the certificate. The caller records it.
    pub async fn issue(&self, req: &IssueRequest) -> Result<(String, Certificate), ServiceError> {
        let bad = ServiceError::BadRequest;
        let csr = csr::verify_csr_pem(&req.csr_pem).map_err(|e| bad(format!("CSR: {e}")))?;
        self.issue_for(csr.subject, csr.public_key, req).await
    }

    /// Sign a certificate for `public_key` (a key the appliance holds, or one a CSR proved)
    /// with `subject` and the profile, lifetime and names of `req`.
    pub async fn issue_for(
        &self,
        subject: x509_cert::name::Name,
        public_key: spki::SubjectPublicKeyInfoOwned,
        req: &IssueRequest,
    ) -> Result<(String, Certificate), ServiceError> {
        let bad = ServiceError::BadRequest;
        let mut names: Vec<SubjectAltName> = req
            .san_dns
            .iter()
            .cloned()
            .map(SubjectAltName::Dns)
            .collect();
        names.extend(req.san_uri.iter().cloned().map(SubjectAltName::Uri));
        let profile = match req.profile.as_str() {
            "tls-client" => Profile::TlsClient(names),
            "document-signing" => Profile::DocumentSigning,
            "tsa" => Profile::TimeStamping,
            "ocsp-signer" => Profile::OcspSigning,
            other => {
                return Err(bad(format!(
                    "unknown profile {other:?}; one of {}",
                    PROFILES.join(", ")
                )))
            }
        };
        let days = req.days.unwrap_or(self.default_days);
        if days == 0 || days > 3650 {
            return Err(bad("days must be between 1 and 3650".into()));
        }
        // A little backdating absorbs clock skew between the appliance and relying parties.
        let not_before = SystemTime::now() - Duration::from_secs(300);
        let lifetime = Duration::from_secs(u64::from(days) * 86_400);
        let cert = self
            .sign_certificate(profile, subject, public_key, not_before, lifetime)
            .await?;
        Ok((req.profile.clone(), cert))
    }

    /// Sign a certificate of `profile` for `public_key`, valid from `not_before` for
    /// `lifetime`, with a fresh random serial. The caller records it.
    pub async fn sign_certificate(
        &self,
        profile: Profile,
        subject: x509_cert::name::Name,
        public_key: spki::SubjectPublicKeyInfoOwned,
        not_before: SystemTime,
        lifetime: Duration,
    ) -> Result<Certificate, ServiceError> {
        let bad = ServiceError::BadRequest;
        let serial = self.hsm.random(16).await.map_err(ServiceError::internal)?;
        let params = CertificateParams {
            profile,
            subject,
            public_key,
            serial,
            not_before,
            lifetime,
            revocation: self.revocation.clone(),
        };
        let scheme = self.key.algorithm.default_scheme();
        let issuer = Issuer::from_certificate(&self.cert, scheme);
        let prepared =
            x509::prepare(&params, Some(&issuer), scheme).map_err(|e| bad(e.to_string()))?;
        let signature = self
            .hsm
            .sign(&self.key, prepared.scheme(), prepared.tbs_der())
            .await
            .map_err(ServiceError::internal)?;
        prepared.finish(&signature).map_err(ServiceError::internal)
    }
}

/// Whether `cert` certifies `key`.
pub fn certifies(cert: &Certificate, key: &KeyInfo) -> bool {
    use der::Encode;
    match (
        cert.tbs_certificate.subject_public_key_info.to_der(),
        key.spki.to_der(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

//! The mutual-TLS server configuration: TLS 1.2 and 1.3 only, a client certificate required,
//! verified against the client CAs and admitted by [`ClientTrust`] (client authentication
//! purpose, issuer, revocation), and a server key that never leaves the HSM (a rustls
//! [`SigningKey`] that signs through the worker pool).

mod client_verifier;
mod hsm_key;

pub use hsm_key::HsmSigningKey;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::authz::ClientTrust;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA set is unusable.
    #[error("client CAs: {0}")]
    ClientCa(String),
}

/// The one crypto provider Signet's TLS uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the server config: `chain` is the server certificate then its issuers, `key` signs
/// in the HSM, `trust` names the client CAs and admits each client certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: Arc<HsmSigningKey>,
    trust: Arc<ClientTrust>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in trust.anchors() {
        roots
            .add(CertificateDer::from(ca))
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::ClientCa("no client CA certificate".into()));
    }
    let chains = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    let verifier = Arc::new(client_verifier::ClientVerifier::new(chains, trust));
    let certified = Arc::new(CertifiedKey::new(chain, key));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(FixedCert(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

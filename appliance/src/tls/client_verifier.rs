//! The client certificate check of the handshake: webpki builds and verifies the chain to a
//! client CA, then [`ClientTrust`] admits the certificate (client authentication purpose,
//! the issuing CA, revocation). A revoked client is refused before any request is read.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};

use crate::authz::ClientTrust;

/// See the module documentation.
#[derive(Debug)]
pub struct ClientVerifier {
    chains: Arc<dyn ClientCertVerifier>,
    trust: Arc<ClientTrust>,
}

impl ClientVerifier {
    /// `chains` verifies the chain; `trust` admits the certificate.
    pub fn new(chains: Arc<dyn ClientCertVerifier>, trust: Arc<ClientTrust>) -> Self {
        ClientVerifier { chains, trust }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chains.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chains
            .verify_client_cert(end_entity, intermediates, now)?;
        match self.trust.identify(end_entity) {
            Ok(_) => Ok(verified),
            // The refusal travels as the error, so that the handshake's audit record names
            // the certificate and the reason (a revocation among them).
            Err(refusal) => {
                tracing::warn!(reason = %refusal, "client certificate refused at the handshake");
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(refusal)),
                )))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chains.supported_verify_schemes()
    }
}

//! What the policy looks at in a client certificate (already verified by the TLS layer and
//! admitted by [`super::ClientTrust`]).

use std::sync::Arc;

use sha2::Digest;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// The client certificate's issuing CA, serial, subject, alternative names and fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// The configured client CA that issued it (`client-ca` or a `[[client_cas]]` name).
    pub issuer: Arc<str>,
    /// Its serial number (INTEGER content octets).
    pub serial: Vec<u8>,
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// URIs of the subjectAltName.
    pub san_uris: Vec<String>,
    /// DNS names of the subjectAltName.
    pub san_dns: Vec<String>,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
}

impl PeerCert {
    /// Read `cert` (whose DER is `der`), issued by client CA `issuer`.
    pub fn read(cert: &Certificate, der: &[u8], issuer: Arc<str>, serial: Vec<u8>) -> PeerCert {
        let mut san_uris = Vec::new();
        let mut san_dns = Vec::new();
        if let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() {
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(u) => san_uris.push(u.to_string()),
                    GeneralName::DnsName(d) => san_dns.push(d.to_string()),
                    _ => {}
                }
            }
        }
        PeerCert {
            issuer,
            serial,
            subject: cert.tbs_certificate.subject.to_string(),
            san_uris,
            san_dns,
            fingerprint: sha2::Sha256::digest(der).into(),
        }
    }
}

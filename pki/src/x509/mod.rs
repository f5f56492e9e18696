//! Certificates Signet issues: profiles, and the prepare/finish split around the CA's signature.
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate TBSCertificate,
//!     signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }   -- RFC 5280 4.1
//! ```

pub mod chain;
pub mod csr;
mod profile;

pub use profile::{Profile, Revocation, SubjectAltName};

use std::time::{Duration, SystemTime};

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use sha1::Digest as _;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::alg::SignatureScheme;
use crate::error::{Error, Result};

/// Who signs a certificate: the CA's name, key identifier and signature scheme.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The issuer's subject name.
    pub name: Name,
    /// The issuer's subjectKeyIdentifier, copied into authorityKeyIdentifier.
    pub key_id: Vec<u8>,
    /// How the issuer's key signs.
    pub scheme: SignatureScheme,
}

impl Issuer {
    /// The issuer described by its own certificate.
    pub fn from_certificate(cert: &Certificate, scheme: SignatureScheme) -> Self {
        Issuer {
            name: cert.tbs_certificate.subject.clone(),
            key_id: key_identifier(&cert.tbs_certificate.subject_public_key_info),
            scheme,
        }
    }
}

/// What a certificate says: everything but the issuer and the signature.
#[derive(Clone, Debug)]
pub struct CertificateParams {
    /// The profile: which extensions the certificate carries.
    pub profile: Profile,
    /// Subject distinguished name, e.g. `CN=Signet TSA,O=Example`.
    pub subject: Name,
    /// The subject's public key.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// Serial number bytes: at least 64 bits of randomness from the HSM (RFC 5280 4.1.2.2 and CA/B BR).
    pub serial: Vec<u8>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// Length of validity.
    pub lifetime: Duration,
    /// OCSP and CRL locations, written into certificates a CA issues (ignored when
    /// self-signed).
    pub revocation: Revocation,
}

/// A TBSCertificate waiting for its signature.
#[derive(Clone, Debug)]
pub struct PreparedCertificate {
    tbs: TbsCertificate,
    tbs_der: Vec<u8>,
    scheme: SignatureScheme,
}

/// Build the TBSCertificate. `issuer` is `None` for a self-signed certificate, which then
/// signs with `self_scheme`.
pub fn prepare(
    params: &CertificateParams,
    issuer: Option<&Issuer>,
    self_scheme: SignatureScheme,
) -> Result<PreparedCertificate> {
    let subject_key_id = key_identifier(&params.public_key);
    let (issuer_name, authority_key_id, scheme) = match issuer {
        Some(i) => (i.name.clone(), Some(i.key_id.clone()), i.scheme),
        None => (params.subject.clone(), None, self_scheme),
    };
    let mut serial = params.serial.clone();
    // A serial is a positive INTEGER: clear the top bit rather than grow past 20 octets.
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
    }
    let not_after = params.not_before + params.lifetime;
    let mut extensions: Vec<Extension> = params
        .profile
        .extensions(&subject_key_id, authority_key_id.as_deref())?;
    if issuer.is_some() {
        extensions.extend(params.revocation.extensions()?);
    }
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial)?,
        signature: scheme.algorithm_identifier()?,
        issuer: issuer_name,
        validity: Validity {
            not_before: Time::try_from(params.not_before)?,
            not_after: Time::try_from(not_after)?,
        },
        subject: params.subject.clone(),
        subject_public_key_info: params.public_key.clone(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der()?;
    Ok(PreparedCertificate {
        tbs,
        tbs_der,
        scheme,
    })
}

impl PreparedCertificate {
    /// The scheme the issuer must sign with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The DER TBSCertificate: the message the issuer's key signs.
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }

    /// Attach the signature (DER for ECDSA) and return the certificate.
    pub fn finish(self, signature: &[u8]) -> Result<Certificate> {
        Ok(Certificate {
            signature_algorithm: self.scheme.algorithm_identifier()?,
            tbs_certificate: self.tbs,
            signature: BitString::from_bytes(signature)?,
        })
    }
}

/// The subjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// Parse a distinguished name written as `CN=...,O=...` (RFC 4514 order).
pub fn parse_name(dn: &str) -> Result<Name> {
    use std::str::FromStr;
    Name::from_str(dn).map_err(Error::Der)
}

/// Read a certificate from PEM text.
pub fn certificate_from_pem(pem: &str) -> Result<Certificate> {
    use der::DecodePem;
    Ok(Certificate::from_pem(pem.as_bytes())?)
}

/// Read every certificate from a PEM bundle, in order.
pub fn certificates_from_pem(pem: &str) -> Result<Vec<Certificate>> {
    Ok(Certificate::load_pem_chain(pem.as_bytes())?)
}

/// Write a certificate as PEM.
pub fn certificate_to_pem(cert: &Certificate) -> Result<String> {
    use der::EncodePem;
    Ok(cert.to_pem(der::pem::LineEnding::LF)?)
}

/// Encode an extension value.
pub(crate) fn extension(
    oid: const_oid::ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Decode a certificate from DER, refusing trailing bytes.
pub fn certificate_from_der(der: &[u8]) -> Result<Certificate> {
    Ok(Certificate::from_der(der)?)
}

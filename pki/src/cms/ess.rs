//! ESS signing-certificate-v2 (RFC 5035 section 3 / RFC 5816): binds a signature to the
//! certificate of the key that made it.
//!
//! ```text
//! SigningCertificateV2 ::= SEQUENCE {
//!     certs        SEQUENCE OF ESSCertIDv2,
//!     policies     SEQUENCE OF PolicyInformation OPTIONAL }
//! ESSCertIDv2 ::= SEQUENCE {
//!     hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
//!     certHash      Hash,
//!     issuerSerial  IssuerSerial OPTIONAL }
//! IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }
//! ```

use der::asn1::OctetString;
use der::{Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::alg::HashAlg;
use crate::error::Result;

/// IssuerSerial.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerSerial {
    /// The issuer as GeneralNames (a directoryName).
    pub issuer: Vec<GeneralName>,
    /// The certificate's serial number.
    pub serial_number: SerialNumber,
}

/// ESSCertIDv2. `hash_algorithm` is `None` for SHA-256, the DEFAULT, which DER omits.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct EssCertIdV2 {
    /// Hash algorithm, absent for SHA-256.
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// Hash of the whole DER certificate.
    pub cert_hash: OctetString,
    /// The certificate's issuer and serial.
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// SigningCertificateV2 without policies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SigningCertificateV2 {
    /// The signer's certificate first.
    pub certs: Vec<EssCertIdV2>,
}

impl SigningCertificateV2 {
    /// Identify `cert` by its SHA-256 hash and issuer/serial.
    pub fn for_certificate(cert: &Certificate) -> Result<Self> {
        let der = cert.to_der()?;
        Ok(SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(HashAlg::Sha256.digest(&der))?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        cert.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: cert.tbs_certificate.serial_number.clone(),
                }),
            }],
        })
    }
}

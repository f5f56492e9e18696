//! PKCS#10 certification requests (RFC 2986): decoded, and their proof of possession
//! checked; and built for a key of the appliance (prepare, the token signs, finish) for an
//! outside CA.
//!
//! ```text
//! CertificationRequest ::= SEQUENCE { certificationRequestInfo CertificationRequestInfo,
//!     signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }      -- RFC 2986 4.2
//! CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) },
//!     subject Name, subjectPKInfo SubjectPublicKeyInfo,
//!     attributes [0] Attributes }                                         -- RFC 2986 4.1
//! ExtensionReq ::= SEQUENCE SIZE (1..MAX) OF Extension                    -- RFC 5272 3.1
//! ```

use der::asn1::{BitString, SetOfVec};
use der::{DecodePem, Encode, EncodePem};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use super::profile::{push_san, SubjectAltName};

use crate::alg::SignatureScheme;
use crate::error::{Error, Result};
use crate::verify::PublicKey;

/// A request whose signature verifies with the key it carries.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    /// The subject asked for.
    pub subject: Name,
    /// The key to certify.
    pub public_key: SubjectPublicKeyInfoOwned,
}

/// Decode a PEM CSR and check that its signature verifies with its own key (the requester
/// holds the private key). RSA PKCS#1 v1.5, RSASSA-PSS and ECDSA with SHA-256/384/512 are
/// taken, as for certificates.
pub fn verify_csr_pem(pem: &str) -> Result<VerifiedCsr> {
    let req = CertReq::from_pem(pem.as_bytes())?;
    let scheme = SignatureScheme::from_algorithm_identifier(&req.algorithm)?;
    let key = PublicKey::from_spki_der(&req.info.public_key.to_der()?)?;
    let signed = req.info.to_der()?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or(Error::Invalid("CSR signature has unused bits"))?;
    key.verify_message(scheme, &signed, signature)?;
    Ok(VerifiedCsr {
        subject: req.info.subject,
        public_key: req.info.public_key,
    })
}

/// A CertificationRequestInfo waiting for the signature of the key it names.
#[derive(Clone, Debug)]
pub struct PreparedCsr {
    info: CertReqInfo,
    info_der: Vec<u8>,
    scheme: SignatureScheme,
}

/// Build the request for `public_key` with `subject`, asking (through an ExtensionReq
/// attribute) for a subjectAltName of `names` when there are any. The key's holder signs
/// [`PreparedCsr::tbs_der`] with `scheme`.
pub fn prepare_csr(
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    names: &[SubjectAltName],
    scheme: SignatureScheme,
) -> Result<PreparedCsr> {
    // Refuse a scheme that cannot be written before the token is asked to sign.
    scheme.algorithm_identifier()?;
    let mut extensions = Vec::new();
    push_san(&mut extensions, names)?;
    let mut attributes = SetOfVec::new();
    if !extensions.is_empty() {
        attributes.insert(Attribute::try_from(ExtensionReq(extensions))?)?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key,
        attributes,
    };
    let info_der = info.to_der()?;
    Ok(PreparedCsr {
        info,
        info_der,
        scheme,
    })
}

impl PreparedCsr {
    /// The scheme the key must sign with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// The DER CertificationRequestInfo: the message the key signs.
    pub fn tbs_der(&self) -> &[u8] {
        &self.info_der
    }

    /// Attach the signature (DER for ECDSA), check it with the request's own key (a
    /// request an outside CA would refuse never leaves), and return the request.
    pub fn finish(self, signature: &[u8]) -> Result<CertReq> {
        let key = PublicKey::from_spki_der(&self.info.public_key.to_der()?)?;
        key.verify_message(self.scheme, &self.info_der, signature)?;
        Ok(CertReq {
            info: self.info,
            algorithm: self.scheme.algorithm_identifier()?,
            signature: BitString::from_bytes(signature)?,
        })
    }
}

/// Write a request as PEM (`CERTIFICATE REQUEST`).
pub fn csr_to_pem(req: &CertReq) -> Result<String> {
    Ok(req.to_pem(der::pem::LineEnding::LF)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys;
    use const_oid::db::rfc5912;

    #[test]
    fn built_requests_verify_and_carry_the_subject_key_and_names() {
        for key in [test_keys::p256(7), test_keys::rsa()] {
            let subject = crate::x509::parse_name("CN=doc signer,O=Example").unwrap();
            let names = [SubjectAltName::Dns("signer.example".into())];
            let prepared = prepare_csr(subject.clone(), key.spki(), &names, key.scheme()).unwrap();
            let signature = key.sign(prepared.tbs_der());
            let pem = csr_to_pem(&prepared.finish(&signature).unwrap()).unwrap();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
            let verified = verify_csr_pem(&pem).unwrap();
            assert_eq!(verified.subject, subject);
            assert_eq!(verified.public_key, key.spki());
            let req = CertReq::from_pem(pem.as_bytes()).unwrap();
            let attr = req.info.attributes.iter().next().unwrap();
            assert_eq!(attr.oid, rfc5912::ID_EXTENSION_REQ);
        }
    }

    #[test]
    fn a_signature_by_another_key_is_refused_at_finish() {
        let key = test_keys::p256(7);
        let other = test_keys::p256(8);
        let subject = crate::x509::parse_name("CN=x").unwrap();
        let prepared = prepare_csr(subject, key.spki(), &[], key.scheme()).unwrap();
        assert!(prepared.tbs_der().len() > 10);
        let wrong = other.sign(prepared.tbs_der());
        assert!(matches!(prepared.finish(&wrong), Err(Error::BadSignature)));
    }

    #[test]
    fn garbage_and_wrong_labels_are_refused() {
        assert!(verify_csr_pem("not pem").is_err());
        assert!(verify_csr_pem(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
        .is_err());
    }
}

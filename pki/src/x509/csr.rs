//! PKCS#10 certification requests (RFC 2986): decoded, and their proof of possession checked.
//!
//! ```text
//! CertificationRequest ::= SEQUENCE { certificationRequestInfo CertificationRequestInfo,
//!     signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }      -- RFC 2986 4.2
//! ```

use const_oid::db::rfc5912;
use der::{DecodePem, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::name::Name;
use x509_cert::request::CertReq;

use crate::alg::{HashAlg, SignatureScheme};
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
/// holds the private key). RSA PKCS#1 v1.5 and ECDSA with SHA-256/384/512 are taken.
pub fn verify_csr_pem(pem: &str) -> Result<VerifiedCsr> {
    let req = CertReq::from_pem(pem.as_bytes())?;
    let scheme = match req.algorithm.oid {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha384),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha512),
        rfc5912::ECDSA_WITH_SHA_256 => SignatureScheme::Ecdsa(HashAlg::Sha256),
        rfc5912::ECDSA_WITH_SHA_384 => SignatureScheme::Ecdsa(HashAlg::Sha384),
        rfc5912::ECDSA_WITH_SHA_512 => SignatureScheme::Ecdsa(HashAlg::Sha512),
        other => return Err(Error::UnsupportedAlgorithm(other)),
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_wrong_labels_are_refused() {
        assert!(verify_csr_pem("not pem").is_err());
        assert!(verify_csr_pem(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
        .is_err());
    }
}

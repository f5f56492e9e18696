//! Checking a certificate chain an outside CA hands back (leaf first): each certificate is
//! signed by the next, names the next as its issuer, and is valid now; every issuer is a CA.
//! The last certificate is the anchor the relying parties trust: when it is self-signed its
//! own signature is checked too.
//!
//! This is the shape check an operator needs before a chain is put in service, not RFC 5280
//! path validation (no policies, name constraints or revocation: the relying party does those).

use std::time::SystemTime;

use der::Encode;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use crate::alg::SignatureScheme;
use crate::verify::PublicKey;

/// Why a chain was refused; `index` counts from the leaf (0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// No certificate at all.
    #[error("the chain holds no certificate")]
    Empty,
    /// Validity starts later.
    #[error("certificate {index} ({subject}) is not valid yet")]
    NotYetValid {
        /// Position in the chain.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// Validity has ended.
    #[error("certificate {index} ({subject}) has expired")]
    Expired {
        /// Position in the chain.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// The next certificate is not the one this one names as issuer.
    #[error("certificate {index} is issued by {issuer}, but the next one is {next}")]
    IssuerMismatch {
        /// Position in the chain.
        index: usize,
        /// The issuer it names.
        issuer: String,
        /// The subject of the next certificate.
        next: String,
    },
    /// An issuer that is not a CA (no basicConstraints cA TRUE).
    #[error("certificate {index} ({subject}) issues certificates but is not a CA")]
    NotACa {
        /// Position in the chain.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// The signature does not verify with the issuer's key.
    #[error("the signature of certificate {index} does not verify with its issuer's key")]
    BadSignature {
        /// Position in the chain.
        index: usize,
    },
    /// A signature algorithm or key that cannot be checked.
    #[error("certificate {index}: {reason}")]
    Unsupported {
        /// Position in the chain.
        index: usize,
        /// What could not be checked.
        reason: String,
    },
}

/// Check `chain` (leaf first) at `now`.
pub fn verify_chain(chain: &[Certificate], now: SystemTime) -> Result<(), ChainError> {
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }
    for (index, cert) in chain.iter().enumerate() {
        let tbs = &cert.tbs_certificate;
        let subject = || tbs.subject.to_string();
        if now < tbs.validity.not_before.to_system_time() {
            return Err(ChainError::NotYetValid {
                index,
                subject: subject(),
            });
        }
        if now > tbs.validity.not_after.to_system_time() {
            return Err(ChainError::Expired {
                index,
                subject: subject(),
            });
        }
        let issuer = match chain.get(index + 1) {
            Some(next) => next,
            // The anchor: checked against itself only when it claims to be its own issuer.
            None if same_name(&tbs.issuer, &tbs.subject) => cert,
            None => continue,
        };
        if !same_name(&tbs.issuer, &issuer.tbs_certificate.subject) {
            return Err(ChainError::IssuerMismatch {
                index,
                issuer: tbs.issuer.to_string(),
                next: issuer.tbs_certificate.subject.to_string(),
            });
        }
        if !is_ca(issuer) {
            return Err(ChainError::NotACa {
                index: index + usize::from(!std::ptr::eq(issuer, cert)),
                subject: issuer.tbs_certificate.subject.to_string(),
            });
        }
        signed_by(cert, issuer).map_err(|e| match e {
            crate::Error::BadSignature => ChainError::BadSignature { index },
            other => ChainError::Unsupported {
                index,
                reason: other.to_string(),
            },
        })?;
    }
    Ok(())
}

/// Names compared as DER, as issuers write them.
fn same_name(a: &x509_cert::name::Name, b: &x509_cert::name::Name) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(x), Ok(y)) if x == y)
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .get::<BasicConstraints>()
        .ok()
        .flatten()
        .is_some_and(|(_, bc)| bc.ca)
}

/// Whether `cert`'s signature verifies with `issuer`'s public key.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> crate::error::Result<()> {
    let scheme = SignatureScheme::from_algorithm_identifier(&cert.signature_algorithm)?;
    let key = PublicKey::from_spki_der(&issuer.tbs_certificate.subject_public_key_info.to_der()?)?;
    let signature = cert.signature.as_bytes().ok_or(crate::Error::Invalid(
        "signature bit string has unused bits",
    ))?;
    key.verify_message(scheme, &cert.tbs_certificate.to_der()?, signature)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_keys::{self, SoftKey};
    use crate::x509::Profile;

    fn chain() -> (Vec<Certificate>, SoftKey) {
        let root_key = test_keys::p256(1);
        let root = test_keys::ca(&root_key, "CN=Outside Root,O=Elsewhere");
        let leaf_key = test_keys::rsa();
        let leaf = test_keys::issue(
            &root,
            &root_key,
            Profile::DocumentSigning,
            "CN=signer",
            &leaf_key,
        );
        (vec![leaf, root], root_key)
    }

    #[test]
    fn a_good_chain_passes_with_or_without_its_anchor() {
        let (c, _) = chain();
        let now = SystemTime::now();
        assert_eq!(verify_chain(&c, now), Ok(()));
        assert_eq!(verify_chain(&c[..1], now), Ok(()));
        assert_eq!(verify_chain(&c[1..], now), Ok(()));
    }

    #[test]
    fn broken_chains_name_what_is_wrong() {
        let (mut c, _) = chain();
        let now = SystemTime::now();
        assert_eq!(verify_chain(&[], now), Err(ChainError::Empty));
        assert!(matches!(
            verify_chain(&c, now + Duration::from_secs(2 * 86_400)),
            Err(ChainError::Expired { index: 0, .. })
        ));
        assert!(matches!(
            verify_chain(&c, now - Duration::from_secs(2 * 3600)),
            Err(ChainError::NotYetValid { index: 0, .. })
        ));
        // Another root with the same name: the names agree, the signature does not.
        let impostor = test_keys::ca(&test_keys::p256(2), "CN=Outside Root,O=Elsewhere");
        let swapped = vec![c[0].clone(), impostor];
        assert_eq!(
            verify_chain(&swapped, now),
            Err(ChainError::BadSignature { index: 0 })
        );
        // The wrong issuer altogether.
        let other = test_keys::ca(&test_keys::p256(3), "CN=Someone Else");
        assert!(matches!(
            verify_chain(&[c[0].clone(), other], now),
            Err(ChainError::IssuerMismatch { index: 0, .. })
        ));
        // A leaf cannot issue, even with a good signature.
        let below = test_keys::issue(
            &c[0],
            &test_keys::rsa(),
            Profile::DocumentSigning,
            "CN=below",
            &test_keys::p256(4),
        );
        c.insert(0, below);
        assert!(matches!(
            verify_chain(&c, now),
            Err(ChainError::NotACa { index: 1, .. })
        ));
    }
}

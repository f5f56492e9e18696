//! Which CertIDs name the CA this responder answers for.
//!
//! ```text
//! issuerNameHash: the hash of the issuer's distinguished name (DN), calculated over the
//!     DER encoding of the issuer's name field in the certificate being checked.
//! issuerKeyHash: the hash of the issuer's public key, calculated over the value (excluding
//!     tag and length) of the subject public key field in the issuer's certificate.
//!                                                                   -- RFC 6960 4.1.1
//! ```

use der::Encode;
use x509_cert::Certificate;

use super::RequestedCert;
use crate::alg::HashAlg;
use crate::error::Result;

/// One CA, with its name and key hashes precomputed for every hash a CertID may use.
#[derive(Clone, Debug)]
pub struct IssuerMatcher {
    /// (hash, issuerNameHash, issuerKeyHash) for SHA-1, SHA-256, SHA-384 and SHA-512.
    hashes: Vec<(HashAlg, Vec<u8>, Vec<u8>)>,
}

impl IssuerMatcher {
    /// The CA whose certificate is `ca_cert`. Fails only if its subject does not encode.
    pub fn new(ca_cert: &Certificate) -> Result<Self> {
        let tbs = &ca_cert.tbs_certificate;
        let name = tbs.subject.to_der()?;
        let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
        let hashes = [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ]
        .into_iter()
        .map(|h| (h, h.digest(&name), h.digest(key)))
        .collect();
        Ok(IssuerMatcher { hashes })
    }

    /// Whether `id` names this CA: its hash algorithm is one computed here and both
    /// issuerNameHash and issuerKeyHash are equal. The serial number is not looked at.
    pub fn matches(&self, id: &RequestedCert) -> bool {
        let Some(hash) = id.hash else {
            return false;
        };
        self.hashes.iter().any(|(h, name, key)| {
            *h == hash
                && id.cert_id.issuer_name_hash.as_bytes() == name.as_slice()
                && id.cert_id.issuer_key_hash.as_bytes() == key.as_slice()
        })
    }
}

//! Hash and signature algorithms, their OIDs and their AlgorithmIdentifiers.

use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use der::{Any, Encode};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;

use crate::error::{Error, Result};

/// A message digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1: only for legacy time-stamp imprints, never for signatures.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// The algorithm's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => rfc5912::ID_SHA_1,
            HashAlg::Sha256 => rfc5912::ID_SHA_256,
            HashAlg::Sha384 => rfc5912::ID_SHA_384,
            HashAlg::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    /// The algorithm for an OID, if this crate knows it.
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ]
        .into_iter()
        .find(|h| h.oid() == oid)
    }

    /// Length of the digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Hash `data` in one go.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The AlgorithmIdentifier, with absent parameters (RFC 5754 section 2: SHOULD omit).
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }

    /// The DER DigestInfo prefix that PKCS#1 v1.5 puts before the digest (RFC 8017 section 9.2).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// A hash computed piece by piece (a document streaming in).
#[derive(Clone, Debug)]
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hash of kind `alg`.
    pub fn new(alg: HashAlg) -> Self {
        match alg {
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feed `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// The kind and size of an asymmetric key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA with a modulus of this many bits.
    Rsa(u32),
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
}

impl std::fmt::Display for KeyAlgorithm {
    /// As the config names it: `rsa-2048`, `ec-p256`, `ec-p384`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyAlgorithm::Rsa(bits) => write!(f, "rsa-{bits}"),
            KeyAlgorithm::EcP256 => f.write_str("ec-p256"),
            KeyAlgorithm::EcP384 => f.write_str("ec-p384"),
        }
    }
}

impl KeyAlgorithm {
    /// The signature scheme a key of this kind uses unless asked otherwise.
    pub fn default_scheme(self) -> SignatureScheme {
        match self {
            KeyAlgorithm::Rsa(_) => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
            KeyAlgorithm::EcP256 => SignatureScheme::Ecdsa(HashAlg::Sha256),
            KeyAlgorithm::EcP384 => SignatureScheme::Ecdsa(HashAlg::Sha384),
        }
    }

    /// Whether `scheme` can be computed with a key of this kind.
    pub fn fits(self, scheme: SignatureScheme) -> bool {
        matches!(
            (self, scheme),
            (
                KeyAlgorithm::Rsa(_),
                SignatureScheme::RsaPkcs1v15(_) | SignatureScheme::RsaPss(_)
            ) | (
                KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384,
                SignatureScheme::Ecdsa(_)
            )
        )
    }
}

/// A signature scheme: how a digest becomes a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 (RFC 8017 section 8.2).
    RsaPkcs1v15(HashAlg),
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the digest (RFC 8017 section 8.1).
    RsaPss(HashAlg),
    /// ECDSA, the signature DER-encoded as Ecdsa-Sig-Value (RFC 5480 / RFC 5758).
    Ecdsa(HashAlg),
}

impl SignatureScheme {
    /// The hash whose digest the HSM signs.
    pub fn hash(self) -> HashAlg {
        match self {
            SignatureScheme::RsaPkcs1v15(h)
            | SignatureScheme::RsaPss(h)
            | SignatureScheme::Ecdsa(h) => h,
        }
    }

    /// The signature AlgorithmIdentifier, as X.509 and CMS write it.
    pub fn algorithm_identifier(self) -> Result<AlgorithmIdentifierOwned> {
        let null = || Some(Any::from(AnyRef::NULL));
        let (oid, parameters) = match self {
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha256) => {
                (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, null())
            }
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha384) => {
                (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, null())
            }
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha512) => {
                (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, null())
            }
            SignatureScheme::Ecdsa(HashAlg::Sha256) => (rfc5912::ECDSA_WITH_SHA_256, None),
            SignatureScheme::Ecdsa(HashAlg::Sha384) => (rfc5912::ECDSA_WITH_SHA_384, None),
            SignatureScheme::Ecdsa(HashAlg::Sha512) => (rfc5912::ECDSA_WITH_SHA_512, None),
            SignatureScheme::RsaPss(h @ (HashAlg::Sha256 | HashAlg::Sha384 | HashAlg::Sha512)) => {
                (rfc5912::ID_RSASSA_PSS, Some(pss_params(h)?))
            }
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha1)
            | SignatureScheme::RsaPss(HashAlg::Sha1)
            | SignatureScheme::Ecdsa(HashAlg::Sha1) => {
                return Err(Error::UnsupportedAlgorithm(rfc5912::ID_SHA_1))
            }
        };
        Ok(AlgorithmIdentifierOwned { oid, parameters })
    }
}

impl SignatureScheme {
    /// The scheme a signature AlgorithmIdentifier (of a certificate or a request) names.
    /// RSASSA-PSS is taken only with the parameters this crate writes itself (MGF1 over the
    /// same hash, salt as long as the digest); SHA-1 is refused.
    pub fn from_algorithm_identifier(alg: &AlgorithmIdentifierOwned) -> Result<Self> {
        let scheme = match alg.oid {
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha384),
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha512),
            rfc5912::ECDSA_WITH_SHA_256 => SignatureScheme::Ecdsa(HashAlg::Sha256),
            rfc5912::ECDSA_WITH_SHA_384 => SignatureScheme::Ecdsa(HashAlg::Sha384),
            rfc5912::ECDSA_WITH_SHA_512 => SignatureScheme::Ecdsa(HashAlg::Sha512),
            rfc5912::ID_RSASSA_PSS => {
                let given = alg
                    .parameters
                    .as_ref()
                    .ok_or(Error::Invalid("RSASSA-PSS without parameters"))?;
                [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
                    .into_iter()
                    .find(|h| pss_params(*h).is_ok_and(|p| &p == given))
                    .map(SignatureScheme::RsaPss)
                    .ok_or(Error::Invalid("RSASSA-PSS parameters other than the usual"))?
            }
            other => return Err(Error::UnsupportedAlgorithm(other)),
        };
        Ok(scheme)
    }
}

/// RSASSA-PSS-params for `hash`, MGF1 with the same hash, salt length = digest length.
fn pss_params(hash: HashAlg) -> Result<Any> {
    let params = match hash {
        HashAlg::Sha256 => pkcs1::RsaPssParams::new::<sha2::Sha256>(32),
        HashAlg::Sha384 => pkcs1::RsaPssParams::new::<sha2::Sha384>(48),
        HashAlg::Sha512 => pkcs1::RsaPssParams::new::<sha2::Sha512>(64),
        HashAlg::Sha1 => return Err(Error::UnsupportedAlgorithm(rfc5912::ID_SHA_1)),
    };
    Ok(Any::from_der(&params.to_der()?)?)
}

use der::Decode as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_prefix_matches_der_of_digest_info() {
        for h in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let prefix = h.digest_info_prefix();
            // SEQUENCE length covers the rest of the prefix plus the digest.
            assert_eq!(prefix[1] as usize, prefix.len() - 2 + h.output_len());
            assert_eq!(*prefix.last().unwrap_or(&0) as usize, h.output_len());
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
    }

    #[test]
    fn streamed_hashing_equals_one_shot() {
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let mut h = Hasher::new(alg);
            h.update(b"hello, ");
            h.update(b"signet");
            assert_eq!(h.finish(), alg.digest(b"hello, signet"), "{alg:?}");
        }
    }

    #[test]
    fn schemes_fit_only_their_key_kind() {
        assert!(KeyAlgorithm::Rsa(2048).fits(SignatureScheme::RsaPss(HashAlg::Sha256)));
        assert!(!KeyAlgorithm::Rsa(2048).fits(SignatureScheme::Ecdsa(HashAlg::Sha256)));
        assert!(!KeyAlgorithm::EcP256.fits(SignatureScheme::RsaPkcs1v15(HashAlg::Sha256)));
    }

    #[test]
    fn algorithm_identifiers_map_back_to_their_schemes() {
        for scheme in [
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
            SignatureScheme::RsaPkcs1v15(HashAlg::Sha512),
            SignatureScheme::RsaPss(HashAlg::Sha384),
            SignatureScheme::Ecdsa(HashAlg::Sha256),
            SignatureScheme::Ecdsa(HashAlg::Sha384),
        ] {
            let id = scheme.algorithm_identifier().unwrap();
            assert_eq!(
                SignatureScheme::from_algorithm_identifier(&id).unwrap(),
                scheme
            );
        }
        let mut pss = SignatureScheme::RsaPss(HashAlg::Sha256)
            .algorithm_identifier()
            .unwrap();
        pss.parameters = pss_params(HashAlg::Sha512).ok();
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
                parameters: None
            })
            .ok(),
            None
        );
        // PSS takes its hash from its parameters.
        assert_eq!(
            SignatureScheme::from_algorithm_identifier(&pss).unwrap(),
            SignatureScheme::RsaPss(HashAlg::Sha512)
        );
    }

    #[test]
    fn sha1_signatures_are_refused() {
        assert!(SignatureScheme::RsaPkcs1v15(HashAlg::Sha1)
            .algorithm_identifier()
            .is_err());
        assert!(SignatureScheme::RsaPss(HashAlg::Sha384)
            .algorithm_identifier()
            .is_ok());
    }
}

//! Software verification of a signature over a digest, with the public key from an SPKI.
//!
//! The appliance checks every signature the HSM makes before it leaves the box: this defeats
//! RSA-CRT fault attacks and catches a misbehaving token, at a fraction of the signing cost.

use const_oid::db::rfc5912;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;

use crate::alg::{HashAlg, KeyAlgorithm, SignatureScheme};
use crate::error::{Error, Result};

/// A public key that can verify signatures over digests.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// RSA.
    Rsa(rsa::RsaPublicKey),
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(Error::Invalid("public key bit string has unused bits"))?;
        match spki.algorithm.oid {
            rfc5912::RSA_ENCRYPTION => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::RsaPublicKey::from_pkcs1_der(bits)
                    .map(PublicKey::Rsa)
                    .map_err(|_| Error::Invalid("RSA public key"))
            }
            rfc5912::ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .ok_or(Error::Invalid("EC key without curve"))?
                    .decode_as::<const_oid::ObjectIdentifier>()?;
                match curve {
                    rfc5912::SECP_256_R_1 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P256)
                        .map_err(|_| Error::Invalid("P-256 point")),
                    rfc5912::SECP_384_R_1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P384)
                        .map_err(|_| Error::Invalid("P-384 point")),
                    other => Err(Error::UnsupportedAlgorithm(other)),
                }
            }
            other => Err(Error::UnsupportedAlgorithm(other)),
        }
    }

    /// The kind and size of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                KeyAlgorithm::Rsa(u32::try_from(k.n().bits()).unwrap_or(u32::MAX))
            }
            PublicKey::P256(_) => KeyAlgorithm::EcP256,
            PublicKey::P384(_) => KeyAlgorithm::EcP384,
        }
    }

    /// Verify `signature` (DER for ECDSA) over `digest` made with `scheme`.
    pub fn verify_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        if digest.len() != scheme.hash().output_len() {
            return Err(Error::Invalid("digest length does not match its hash"));
        }
        match (self, scheme) {
            (PublicKey::Rsa(k), SignatureScheme::RsaPkcs1v15(h)) => {
                let padding = match h {
                    HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                    HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                };
                k.verify(padding, digest, signature)
                    .map_err(|_| Error::BadSignature)
            }
            (PublicKey::Rsa(k), SignatureScheme::RsaPss(h)) => {
                let padding = match h {
                    HashAlg::Sha1 => rsa::Pss::new::<sha1::Sha1>(),
                    HashAlg::Sha256 => rsa::Pss::new::<sha2::Sha256>(),
                    HashAlg::Sha384 => rsa::Pss::new::<sha2::Sha384>(),
                    HashAlg::Sha512 => rsa::Pss::new::<sha2::Sha512>(),
                };
                k.verify(padding, digest, signature)
                    .map_err(|_| Error::BadSignature)
            }
            (PublicKey::P256(k), SignatureScheme::Ecdsa(_)) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| Error::BadSignature)?;
                k.verify_prehash(digest, &sig)
                    .map_err(|_| Error::BadSignature)
            }
            (PublicKey::P384(k), SignatureScheme::Ecdsa(_)) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| Error::BadSignature)?;
                k.verify_prehash(digest, &sig)
                    .map_err(|_| Error::BadSignature)
            }
            _ => Err(Error::KeyMismatch("signature scheme does not fit the key")),
        }
    }
}

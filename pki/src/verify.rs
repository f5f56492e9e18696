//! Software verification of a signature over a digest, with the public key from an SPKI.
//!
//! The appliance checks every signature the HSM makes before it leaves the box: this defeats
//! RSA-CRT fault attacks and catches a misbehaving token, at a fraction of the signing cost.

use const_oid::db::rfc5912;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;

use crate::alg::{HashAlg, KeyAlgorithm, SignatureScheme};
use crate::error::{Error, Result};

mod p256_table;
mod rsa_pkcs1;
use p256_table::P256Table;
use rsa_pkcs1::RsaChecker;

/// A public key that can verify signatures, over a message (with ring) or over a digest
/// alone (with OpenSSL, for raw-digest signing: ring has no prehash API).
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: KeyMaterial,
    /// The subjectPublicKey bits: PKCS#1 RSAPublicKey or the SEC1 point, as ring takes them.
    raw: Vec<u8>,
    /// The same key for OpenSSL's EVP_PKEY_verify.
    evp: openssl::pkey::PKey<openssl::pkey::Public>,
}

#[derive(Clone, Debug)]
enum KeyMaterial {
    /// An RSA key, with its OpenSSL form for PKCS#1 v1.5 checks if
    /// [`PublicKey::for_many_checks`] made one.
    Rsa(rsa::RsaPublicKey, Option<std::sync::Arc<RsaChecker>>),
    /// A valid P-256 point (checked at parse time), with its verification table if
    /// [`PublicKey::for_many_checks`] made one.
    P256(Option<std::sync::Arc<P256Table>>),
    /// A valid P-384 point (checked at parse time).
    P384,
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(Error::Invalid("public key bit string has unused bits"))?;
        let key = match spki.algorithm.oid {
            rfc5912::RSA_ENCRYPTION => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::RsaPublicKey::from_pkcs1_der(bits)
                    .map(|k| KeyMaterial::Rsa(k, None))
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
                        .map(|_| KeyMaterial::P256(None))
                        .map_err(|_| Error::Invalid("P-256 point")),
                    rfc5912::SECP_384_R_1 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(|_| KeyMaterial::P384)
                        .map_err(|_| Error::Invalid("P-384 point")),
                    other => Err(Error::UnsupportedAlgorithm(other)),
                }
            }
            other => Err(Error::UnsupportedAlgorithm(other)),
        }?;
        let evp = openssl::pkey::PKey::public_key_from_der(der)
            .map_err(|_| Error::Invalid("public key not readable by OpenSSL"))?;
        Ok(PublicKey {
            key,
            raw: bits.to_vec(),
            evp,
        })
    }

    /// The same key, made to check many signatures fast, for the token's own keys: never for
    /// a key that came from outside (a certificate, a CSR, a CRL's issuer), each of which
    /// would cost the making to parse.
    /// - A P-256 key gets a precomputed table of its point (`p256_table`), which halves
    ///   each check but takes about 20 ms and 150 KB to build.
    /// - An RSA key gets its OpenSSL form (`rsa_pkcs1`), which keeps its Montgomery
    ///   constants between PKCS#1 v1.5 checks: a fifth off each.
    pub fn for_many_checks(mut self) -> Result<Self> {
        match &mut self.key {
            KeyMaterial::P256(table @ None) => {
                let built = P256Table::new(&self.raw)
                    .map_err(|_| Error::Invalid("P-256 point not readable by OpenSSL"))?;
                *table = Some(std::sync::Arc::new(built));
            }
            KeyMaterial::Rsa(_, checker @ None) => {
                let parsed = RsaChecker::new(&self.raw)
                    .map_err(|_| Error::Invalid("RSA public key not readable by OpenSSL"))?;
                *checker = Some(std::sync::Arc::new(parsed));
            }
            _ => {}
        }
        Ok(self)
    }

    /// Verify `signature` (DER for ECDSA) over `message` made with `scheme`.
    pub fn verify_message(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        use ring::signature as rs;
        let alg: &dyn rs::VerificationAlgorithm = match (&self.key, scheme) {
            // Faster by the key's own form than by ring.
            (KeyMaterial::Rsa(_, Some(_)), SignatureScheme::RsaPkcs1v15(_))
            | (KeyMaterial::P256(Some(_)), _) => {
                return self.verify_digest(scheme, &scheme.hash().digest(message), signature)
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPkcs1v15(HashAlg::Sha256)) => {
                &rs::RSA_PKCS1_2048_8192_SHA256
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPkcs1v15(HashAlg::Sha384)) => {
                &rs::RSA_PKCS1_2048_8192_SHA384
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPkcs1v15(HashAlg::Sha512)) => {
                &rs::RSA_PKCS1_2048_8192_SHA512
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPss(HashAlg::Sha256)) => {
                &rs::RSA_PSS_2048_8192_SHA256
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPss(HashAlg::Sha384)) => {
                &rs::RSA_PSS_2048_8192_SHA384
            }
            (KeyMaterial::Rsa(..), SignatureScheme::RsaPss(HashAlg::Sha512)) => {
                &rs::RSA_PSS_2048_8192_SHA512
            }
            (KeyMaterial::P256(None), SignatureScheme::Ecdsa(HashAlg::Sha256)) => {
                &rs::ECDSA_P256_SHA256_ASN1
            }
            (KeyMaterial::P256(None), SignatureScheme::Ecdsa(HashAlg::Sha384)) => {
                &rs::ECDSA_P256_SHA384_ASN1
            }
            (KeyMaterial::P384, SignatureScheme::Ecdsa(HashAlg::Sha256)) => {
                &rs::ECDSA_P384_SHA256_ASN1
            }
            (KeyMaterial::P384, SignatureScheme::Ecdsa(HashAlg::Sha384)) => {
                &rs::ECDSA_P384_SHA384_ASN1
            }
            // ring has no such pairing (SHA-1, SHA-512 with ECDSA, RSA under 2048 bits is
            // refused by ring anyway): take the digest path.
            _ => return self.verify_digest(scheme, &scheme.hash().digest(message), signature),
        };
        rs::UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, signature)
            .map_err(|_| Error::BadSignature)
    }

    /// The kind and size of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match &self.key {
            KeyMaterial::Rsa(k, _) => {
                use rsa::traits::PublicKeyParts;
                KeyAlgorithm::Rsa(u32::try_from(k.n().bits()).unwrap_or(u32::MAX))
            }
            KeyMaterial::P256(_) => KeyAlgorithm::EcP256,
            KeyMaterial::P384 => KeyAlgorithm::EcP384,
        }
    }

    /// Verify `signature` (DER for ECDSA) over `digest` made with `scheme`: by the key's
    /// own form if it has one for the scheme, by OpenSSL's EVP_PKEY_verify otherwise.
    pub fn verify_digest(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        if digest.len() != scheme.hash().output_len() {
            return Err(Error::Invalid("digest length does not match its hash"));
        }
        if !self.algorithm().fits(scheme) {
            return Err(Error::KeyMismatch("signature scheme does not fit the key"));
        }
        let fast = match (&self.key, scheme) {
            (KeyMaterial::P256(Some(table)), _) => {
                Some(matches!(table.verify(digest, signature), Ok(true)))
            }
            (KeyMaterial::Rsa(_, Some(checker)), SignatureScheme::RsaPkcs1v15(hash)) => {
                Some(checker.verify(hash, digest, signature))
            }
            _ => None,
        };
        if let Some(good) = fast {
            return good.then_some(()).ok_or(Error::BadSignature);
        }
        self.evp_verify(scheme, digest, signature)
            .map_err(|_| Error::BadSignature)?
            .then_some(())
            .ok_or(Error::BadSignature)
    }

    fn evp_verify(
        &self,
        scheme: SignatureScheme,
        digest: &[u8],
        signature: &[u8],
    ) -> std::result::Result<bool, openssl::error::ErrorStack> {
        use openssl::md::Md;
        use openssl::pkey_ctx::PkeyCtx;
        use openssl::rsa::Padding;
        let md = match scheme.hash() {
            HashAlg::Sha1 => Md::sha1(),
            HashAlg::Sha256 => Md::sha256(),
            HashAlg::Sha384 => Md::sha384(),
            HashAlg::Sha512 => Md::sha512(),
        };
        let mut ctx = PkeyCtx::new(&self.evp)?;
        ctx.verify_init()?;
        match scheme {
            SignatureScheme::RsaPkcs1v15(_) => {
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(md)?;
            }
            SignatureScheme::RsaPss(h) => {
                // MGF1 with the same hash, salt as long as the hash (RFC 4055 defaults).
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_signature_md(md)?;
                ctx.set_rsa_mgf1_md(md)?;
                ctx.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(
                    h.output_len() as i32
                ))?;
            }
            // DER Ecdsa-Sig-Value, as everywhere in Signet.
            SignatureScheme::Ecdsa(_) => {}
        }
        ctx.verify(digest, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;

    #[test]
    fn a_p256_key_checks_alike_with_and_without_its_table() {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        let key =
            openssl::pkey::PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey");
        let spki = key.public_key_to_der().expect("SPKI");
        let plain = PublicKey::from_spki_der(&spki).expect("parse");
        let tabled = plain.clone().for_many_checks().expect("table");
        assert!(matches!(plain.key, KeyMaterial::P256(None)));
        assert!(matches!(tabled.key, KeyMaterial::P256(Some(_))));
        let message = b"signet";
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
            .expect("signer");
        let good = signer.sign_oneshot_to_vec(message).expect("sign");
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let scheme = SignatureScheme::Ecdsa(HashAlg::Sha256);
        let digest = scheme.hash().digest(message);
        for k in [&plain, &tabled] {
            assert!(k.verify_message(scheme, message, &good).is_ok());
            assert!(k.verify_digest(scheme, &digest, &good).is_ok());
            assert!(k.verify_message(scheme, message, &bad).is_err());
            assert!(k.verify_digest(scheme, &digest, &bad).is_err());
        }
    }

    #[test]
    fn an_rsa_key_checks_alike_with_and_without_its_own_form() {
        let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("key"))
            .expect("pkey");
        let spki = key.public_key_to_der().expect("SPKI");
        let plain = PublicKey::from_spki_der(&spki).expect("parse");
        let formed = plain.clone().for_many_checks().expect("form");
        assert!(matches!(plain.key, KeyMaterial::Rsa(_, None)));
        assert!(matches!(formed.key, KeyMaterial::Rsa(_, Some(_))));
        let message = b"signet";
        let md = openssl::hash::MessageDigest::sha256();
        let pkcs1 = openssl::sign::Signer::new(md, &key)
            .and_then(|mut s| s.sign_oneshot_to_vec(message))
            .expect("sign");
        // PSS takes the EVP path with or without the form.
        let pss = openssl::sign::Signer::new(md, &key)
            .and_then(|mut s| {
                s.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
                s.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)?;
                s.set_rsa_mgf1_md(md)?;
                s.sign_oneshot_to_vec(message)
            })
            .expect("sign PSS");
        for (scheme, good) in [
            (SignatureScheme::RsaPkcs1v15(HashAlg::Sha256), pkcs1),
            (SignatureScheme::RsaPss(HashAlg::Sha256), pss),
        ] {
            let mut bad = good.clone();
            bad[17] ^= 0x40;
            let digest = scheme.hash().digest(message);
            for k in [&plain, &formed] {
                assert!(
                    k.verify_message(scheme, message, &good).is_ok(),
                    "{scheme:?}"
                );
                assert!(
                    k.verify_digest(scheme, &digest, &good).is_ok(),
                    "{scheme:?}"
                );
                assert!(
                    k.verify_message(scheme, message, &bad).is_err(),
                    "{scheme:?}"
                );
                assert!(
                    k.verify_digest(scheme, &digest, &bad).is_err(),
                    "{scheme:?}"
                );
                assert!(
                    k.verify_message(scheme, b"signeT", &good).is_err(),
                    "{scheme:?}"
                );
            }
        }
    }

    #[test]
    fn an_rsa_key_with_its_own_form_checks_a_signature_openssl_made() {
        use der::{DecodePem, Encode};
        // An RSA-2048 PKCS#10 request OpenSSL's command line signed (tests/data/csr).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/csr/rsa.csr");
        let pem = std::fs::read_to_string(path).expect(path);
        let csr = x509_cert::request::CertReq::from_pem(pem).expect("CSR");
        let spki = csr.info.public_key.to_der().expect("SPKI");
        let key = PublicKey::from_spki_der(&spki)
            .and_then(PublicKey::for_many_checks)
            .expect("key");
        assert!(matches!(key.key, KeyMaterial::Rsa(_, Some(_))));
        let mut info = csr.info.to_der().expect("info");
        let signature = csr.signature.as_bytes().expect("signature");
        let scheme = SignatureScheme::RsaPkcs1v15(HashAlg::Sha256);
        assert!(key.verify_message(scheme, &info, signature).is_ok());
        let last = info.len() - 1;
        info[last] ^= 1;
        assert!(key.verify_message(scheme, &info, signature).is_err());
    }
}

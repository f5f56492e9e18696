//! RSASSA-PKCS1-v1_5 verification for one fixed public key, a fifth faster than a plain
//! verify.
//!
//! The appliance checks every signature its few RSA keys make. A plain verify (ring's, or
//! OpenSSL's EVP_PKEY_verify) spends a fifth of its time or more beside the modular
//! exponentiation: parsing the key and computing its Montgomery constants again (ring), or
//! setting up a context and fetching the digest (EVP). Here the key is parsed once into
//! OpenSSL's RSA form, which keeps its Montgomery context between calls, and each check is
//! the bare public operation (RSAVP1, which refuses a representative not below n) followed
//! by RFC 8017 section 8.2.2's comparison: the expected encoding is built from the digest
//! and compared whole with the recovered one, so no padding is ever parsed.

use openssl::error::ErrorStack;
use openssl::pkey::Public;
use openssl::rsa::{Padding, Rsa};

use crate::alg::HashAlg;

/// An RSA public key parsed once for many PKCS#1 v1.5 checks.
pub(super) struct RsaChecker {
    key: Rsa<Public>,
    /// The modulus's length in bytes: k in RFC 8017.
    size: usize,
}

impl std::fmt::Debug for RsaChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaChecker({} bits)", 8 * self.size)
    }
}

impl RsaChecker {
    /// The key from its PKCS#1 RSAPublicKey DER.
    pub(super) fn new(pkcs1: &[u8]) -> Result<Self, ErrorStack> {
        let key = Rsa::public_key_from_der_pkcs1(pkcs1)?;
        let size = usize::try_from(key.size()).unwrap_or(0);
        Ok(RsaChecker { key, size })
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature over `digest` made with `hash`.
    pub(super) fn verify(&self, hash: HashAlg, digest: &[u8], signature: &[u8]) -> bool {
        // Step 1: a signature is exactly k octets.
        if signature.len() != self.size || digest.len() != hash.output_len() {
            return false;
        }
        let Some(expected) = encoded(hash, digest, self.size) else {
            return false;
        };
        // Step 2: RSAVP1. OpenSSL refuses a representative that is not below n.
        let mut recovered = vec![0u8; self.size];
        match self
            .key
            .public_decrypt(signature, &mut recovered, Padding::NONE)
        {
            Ok(len) if len == self.size => recovered == expected,
            _ => false,
        }
    }
}

/// EMSA-PKCS1-v1_5 (RFC 8017 section 9.2): 0x00 0x01, 0xff padding, 0x00, the DigestInfo.
/// `None` when the key is too short for the digest (fewer than 8 bytes of padding).
fn encoded(hash: HashAlg, digest: &[u8], size: usize) -> Option<Vec<u8>> {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + digest.len();
    let padding = size.checked_sub(t_len + 3).filter(|&p| p >= 8)?;
    let mut em = Vec::with_capacity(size);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + padding, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(digest);
    Some(em)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;

    fn new_key(bits: u32) -> (PKey<openssl::pkey::Private>, RsaChecker) {
        let rsa = Rsa::generate(bits).expect("key");
        let pkcs1 = rsa.public_key_to_der_pkcs1().expect("public key");
        (
            PKey::from_rsa(rsa).expect("pkey"),
            RsaChecker::new(&pkcs1).expect("checker"),
        )
    }

    fn signed(key: &PKey<openssl::pkey::Private>, md: MessageDigest, message: &[u8]) -> Vec<u8> {
        Signer::new(md, key)
            .and_then(|mut s| s.sign_oneshot_to_vec(message))
            .expect("sign")
    }

    #[test]
    fn accepts_what_openssl_signs_with_each_hash() {
        let (key, checker) = new_key(2048);
        for (hash, md) in [
            (HashAlg::Sha1, MessageDigest::sha1()),
            (HashAlg::Sha256, MessageDigest::sha256()),
            (HashAlg::Sha384, MessageDigest::sha384()),
            (HashAlg::Sha512, MessageDigest::sha512()),
        ] {
            let signature = signed(&key, md, b"signet");
            assert!(
                checker.verify(hash, &hash.digest(b"signet"), &signature),
                "{hash:?}"
            );
        }
    }

    #[test]
    fn refuses_another_message_hash_or_key_and_any_changed_bit() {
        let (key, checker) = new_key(2048);
        let (_, other) = new_key(2048);
        let signature = signed(&key, MessageDigest::sha256(), b"signet");
        let digest = HashAlg::Sha256.digest(b"signet");
        assert!(!checker.verify(
            HashAlg::Sha256,
            &HashAlg::Sha256.digest(b"signeT"),
            &signature
        ));
        // The same digest bytes under another hash's DigestInfo are another encoding.
        let sha384 = HashAlg::Sha384.digest(b"signet");
        assert!(!checker.verify(HashAlg::Sha384, &sha384, &signature));
        assert!(!other.verify(HashAlg::Sha256, &digest, &signature));
        for bit in [0, 7, 8 * 128 + 3, 8 * 255 + 7] {
            let mut bad = signature.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(!checker.verify(HashAlg::Sha256, &digest, &bad), "bit {bit}");
        }
    }

    #[test]
    fn refuses_wrong_lengths_and_a_representative_not_below_the_modulus() {
        let (key, checker) = new_key(2048);
        let signature = signed(&key, MessageDigest::sha256(), b"signet");
        let digest = HashAlg::Sha256.digest(b"signet");
        assert!(!checker.verify(HashAlg::Sha256, &digest, &signature[1..]));
        let mut longer = vec![0u8];
        longer.extend_from_slice(&signature);
        assert!(!checker.verify(HashAlg::Sha256, &digest, &longer));
        assert!(!checker.verify(HashAlg::Sha256, &digest[1..], &signature));
        assert!(!checker.verify(HashAlg::Sha256, &digest, &[0xff; 256]));
        assert!(!checker.verify(HashAlg::Sha256, &digest, &[]));
    }

    #[test]
    fn the_encoding_matches_rfc_8017() {
        let digest = [0xabu8; 32];
        let em = encoded(HashAlg::Sha256, &digest, 256).expect("fits");
        assert_eq!(em.len(), 256);
        let t_len = 19 + 32;
        assert_eq!(&em[..2], &[0x00, 0x01]);
        assert!(em[2..256 - t_len - 1].iter().all(|&b| b == 0xff));
        assert_eq!(em[256 - t_len - 1], 0x00);
        assert_eq!(
            &em[256 - t_len..256 - 32],
            HashAlg::Sha256.digest_info_prefix()
        );
        assert_eq!(&em[256 - 32..], &digest);
        // A 512-bit key leaves SHA-512's DigestInfo no room for 8 bytes of padding.
        assert!(encoded(HashAlg::Sha512, &[0u8; 64], 64).is_none());
    }
}

//! Signature and hash algorithms as CSC names them: dotted OIDs.

use der::asn1::ObjectIdentifier;
use der::{Any, Decode};
use spki::AlgorithmIdentifierOwned;

use signet_pki::{HashAlg, KeyAlgorithm, SignatureScheme};

use super::error::CscError;

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// The signature algorithms a key can make, as `credentials/info` lists them in `key.algo`:
/// the combined OIDs (hash and signature in one, what clients look for) first, then the
/// key's own algorithm (which `signHash` takes with `hashAlgo`).
pub fn key_algorithms(key: KeyAlgorithm) -> Vec<String> {
    let hashes = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];
    let mut out: Vec<String> = match key {
        KeyAlgorithm::Rsa(_) => hashes
            .iter()
            .map(|h| SignatureScheme::RsaPkcs1v15(*h))
            .filter_map(|s| s.algorithm_identifier().ok())
            .map(|a| a.oid.to_string())
            .chain([RSASSA_PSS.to_owned(), RSA_ENCRYPTION.to_owned()])
            .collect(),
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => hashes
            .iter()
            .map(|h| SignatureScheme::Ecdsa(*h))
            .filter_map(|s| s.algorithm_identifier().ok())
            .map(|a| a.oid.to_string())
            .chain([EC_PUBLIC_KEY.to_owned()])
            .collect(),
    };
    out.dedup();
    out
}

/// The key's size in bits, as `key.len` gives it.
pub fn key_bits(key: KeyAlgorithm) -> u32 {
    match key {
        KeyAlgorithm::Rsa(bits) => bits,
        KeyAlgorithm::EcP256 => 256,
        KeyAlgorithm::EcP384 => 384,
    }
}

/// The curve's OID, for `key.curve` (EC keys only).
pub fn key_curve(key: KeyAlgorithm) -> Option<&'static str> {
    match key {
        KeyAlgorithm::Rsa(_) => None,
        KeyAlgorithm::EcP256 => Some("1.2.840.10045.3.1.7"),
        KeyAlgorithm::EcP384 => Some("1.3.132.0.34"),
    }
}

/// A hash algorithm OID (`hashAlgo` / `hashAlgorithmOID`); SHA-1 is refused.
pub fn hash(oid: &str) -> Result<HashAlg, CscError> {
    let parsed = ObjectIdentifier::new(oid).map_err(|_| CscError::parameter("hashAlgorithmOID"))?;
    match HashAlg::from_oid(parsed) {
        Some(HashAlg::Sha1) | None => Err(CscError::parameter("hashAlgorithmOID")),
        Some(h) => Ok(h),
    }
}

/// The scheme that `signAlgo` (with its base64 DER `signAlgoParams`, and `hashAlgo` where
/// the signature OID does not name the hash) asks for.
pub fn scheme(
    sign_algo: &str,
    params_b64: Option<&str>,
    hash_algo: Option<&str>,
) -> Result<SignatureScheme, CscError> {
    let hash = hash_algo.map(hash).transpose()?;
    let scheme = match sign_algo {
        RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(
            hash.ok_or_else(|| CscError::missing("string", "hashAlgorithmOID"))?,
        ),
        EC_PUBLIC_KEY => SignatureScheme::Ecdsa(
            hash.ok_or_else(|| CscError::missing("string", "hashAlgorithmOID"))?,
        ),
        _ => {
            let oid =
                ObjectIdentifier::new(sign_algo).map_err(|_| CscError::parameter("signAlgo"))?;
            let parameters = match params_b64 {
                None => None,
                Some(b64) => {
                    use base64::Engine;
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|_| CscError::parameter("signAlgoParams"))?;
                    Some(Any::from_der(&der).map_err(|_| CscError::parameter("signAlgoParams"))?)
                }
            };
            let alg = AlgorithmIdentifierOwned { oid, parameters };
            SignatureScheme::from_algorithm_identifier(&alg)
                .map_err(|_| CscError::parameter("signAlgo"))?
        }
    };
    if hash.is_some_and(|h| h != scheme.hash()) {
        return Err(CscError::invalid(
            "hashAlgorithmOID does not match the hash of signAlgo",
        ));
    }
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_oids_name_their_scheme_and_key_oids_take_the_hash_apart() {
        let sha256 = "2.16.840.1.101.3.4.2.1";
        assert_eq!(
            scheme("1.2.840.113549.1.1.11", None, None).ok(),
            Some(SignatureScheme::RsaPkcs1v15(HashAlg::Sha256))
        );
        assert_eq!(
            scheme("1.2.840.10045.4.3.3", None, None).ok(),
            Some(SignatureScheme::Ecdsa(HashAlg::Sha384))
        );
        assert_eq!(
            scheme(RSA_ENCRYPTION, None, Some(sha256)).ok(),
            Some(SignatureScheme::RsaPkcs1v15(HashAlg::Sha256))
        );
        assert_eq!(
            scheme(EC_PUBLIC_KEY, None, Some(sha256)).ok(),
            Some(SignatureScheme::Ecdsa(HashAlg::Sha256))
        );
        assert!(scheme(RSA_ENCRYPTION, None, None).is_err());
    }

    #[test]
    fn pss_takes_its_parameters_and_a_mismatched_hash_is_refused() {
        use base64::Engine;
        use der::Encode;
        let pss = SignatureScheme::RsaPss(HashAlg::Sha256)
            .algorithm_identifier()
            .expect("PSS");
        let params = pss.parameters.expect("params").to_der().expect("der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(params);
        assert_eq!(
            scheme(RSASSA_PSS, Some(&b64), None).ok(),
            Some(SignatureScheme::RsaPss(HashAlg::Sha256))
        );
        assert!(scheme(RSASSA_PSS, None, None).is_err());
        let sha512 = "2.16.840.1.101.3.4.2.3";
        assert_eq!(
            scheme("1.2.840.113549.1.1.11", None, Some(sha512))
                .err()
                .map(|e| e.code()),
            Some("invalid_request")
        );
        assert!(scheme("1.2.3.4", None, None).is_err());
        assert!(scheme("not an oid", None, None).is_err());
        assert!(hash("1.3.14.3.2.26").is_err(), "SHA-1 is refused");
    }

    #[test]
    fn keys_list_combined_oids_before_their_own() {
        let rsa = key_algorithms(KeyAlgorithm::Rsa(3072));
        assert_eq!(rsa[0], "1.2.840.113549.1.1.11");
        assert!(rsa.contains(&RSASSA_PSS.to_owned()));
        let ec = key_algorithms(KeyAlgorithm::EcP256);
        assert_eq!(ec[0], "1.2.840.10045.4.3.2");
        assert!(!ec.contains(&RSA_ENCRYPTION.to_owned()));
    }
}

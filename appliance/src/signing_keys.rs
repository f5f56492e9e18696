//! The keys the signing API offers: declared in the config with their purpose and
//! certificate chain, found in the token at start, and checked against their certificates.

use std::collections::HashMap;
use std::sync::Arc;

use der::{Encode, EncodePem};
use x509_cert::Certificate;

use signet_config::Config;
use signet_pki::{HashAlg, KeyAlgorithm, SignatureScheme};

use crate::ceremony::certifies;
use crate::hsm::{Hsm, KeyInfo};

/// One key of the signing API.
pub struct SigningKey {
    /// Its label (the API's name for it).
    pub label: String,
    /// What it is for.
    pub purpose: String,
    /// The key in the token.
    pub key: Arc<KeyInfo>,
    /// Its certificate, then the issuers.
    pub chain: Vec<Certificate>,
    /// The same chain, PEM, one certificate each.
    pub chain_pem: Vec<String>,
    /// Its SubjectPublicKeyInfo, PEM.
    pub spki_pem: String,
}

impl SigningKey {
    /// The scheme for `family` with `hash` on this key, if the key can make it.
    pub fn scheme(&self, family: SchemeFamily, hash: HashAlg) -> Option<SignatureScheme> {
        let scheme = match family {
            SchemeFamily::Pkcs1v15 => SignatureScheme::RsaPkcs1v15(hash),
            SchemeFamily::Pss => SignatureScheme::RsaPss(hash),
            SchemeFamily::Ecdsa => SignatureScheme::Ecdsa(hash),
        };
        self.key.algorithm.fits(scheme).then_some(scheme)
    }

    /// The scheme CMS signatures with this key use for `hash`: PKCS#1 v1.5 for RSA (what
    /// every validator takes), ECDSA for EC.
    pub fn cms_scheme(&self, hash: HashAlg) -> SignatureScheme {
        match self.key.algorithm {
            KeyAlgorithm::Rsa(_) => SignatureScheme::RsaPkcs1v15(hash),
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => SignatureScheme::Ecdsa(hash),
        }
    }
}

/// A signature scheme as the API names it, without its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemeFamily {
    /// RSASSA-PKCS1-v1_5.
    Pkcs1v15,
    /// RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    Pss,
    /// ECDSA, signature DER-encoded (RFC 3279 Ecdsa-Sig-Value).
    Ecdsa,
}

/// The keys by label.
#[derive(Default)]
pub struct KeyRing {
    keys: HashMap<String, Arc<SigningKey>>,
}

impl KeyRing {
    /// Find every declared key in the token and read its chain; any mismatch stops the start.
    pub fn load(config: &Config, hsm: &Hsm) -> Result<KeyRing, String> {
        let mut keys = HashMap::new();
        for declared in &config.signing_keys {
            let path = config.state_path(&declared.certificate_chain);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let chain = signet_pki::x509::certificates_from_pem(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let Some(leaf) = chain.first() else {
                return Err(format!("{}: no certificate", path.display()));
            };
            let key = tokio::task::block_in_place(|| hsm.key_blocking(&declared.label))
                .map_err(|e| format!("signing key {:?}: {e}", declared.label))?;
            if !certifies(leaf, &key) {
                return Err(format!(
                    "key {:?} in the token does not match {}",
                    declared.label,
                    path.display()
                ));
            }
            let wanted = crate::settings::key_algorithm(declared.algorithm);
            if key.algorithm != wanted {
                return Err(format!(
                    "key {:?} is {:?} in the token, the config says {:?}",
                    declared.label, key.algorithm, wanted
                ));
            }
            let chain_pem = chain
                .iter()
                .map(|c| c.to_pem(der::pem::LineEnding::LF))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let spki_pem = der::pem::encode_string(
                "PUBLIC KEY",
                der::pem::LineEnding::LF,
                &key.spki.to_der().map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            keys.insert(
                declared.label.clone(),
                Arc::new(SigningKey {
                    label: declared.label.clone(),
                    purpose: declared.purpose.clone(),
                    key,
                    chain,
                    chain_pem,
                    spki_pem,
                }),
            );
        }
        Ok(KeyRing { keys })
    }

    /// The key labelled `label`.
    pub fn get(&self, label: &str) -> Option<&Arc<SigningKey>> {
        self.keys.get(label)
    }
}

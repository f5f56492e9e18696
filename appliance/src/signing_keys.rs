//! The keys the signing API offers: declared in the config with their purpose and
//! certificate chain, found in the token at start, and checked against their certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

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

/// The keys by label. An imported certificate chain replaces a key's entry while the
/// daemon runs (`signetctl cert import`); requests in flight keep the entry they took.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, Arc<SigningKey>>>,
}

impl SigningKey {
    /// The key `label` in the token, for `purpose`, certified by `chain` (leaf first), which
    /// must certify it.
    pub fn new(
        label: &str,
        purpose: &str,
        key: Arc<KeyInfo>,
        chain: Vec<Certificate>,
    ) -> Result<SigningKey, String> {
        let Some(leaf) = chain.first() else {
            return Err("no certificate".into());
        };
        if !certifies(leaf, &key) {
            return Err(format!(
                "the certificate does not certify key {label:?} in the token"
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
        Ok(SigningKey {
            label: label.to_owned(),
            purpose: purpose.to_owned(),
            key,
            chain,
            chain_pem,
            spki_pem,
        })
    }
}

/// Where the chain of key `label` lives: the file its `[[signing_keys]]` entry names, or,
/// for a key the config does not offer (yet), `pki/keys/LABEL.pem` under the state
/// directory. The bool says whether the key is declared.
pub fn chain_path(config: &Config, label: &str) -> (PathBuf, bool) {
    match config.signing_keys.iter().find(|k| k.label == label) {
        Some(k) => (config.state_path(&k.certificate_chain), true),
        None => (
            crate::layout::StateLayout::new(&config.state_dir)
                .pki_dir()
                .join("keys")
                .join(format!("{label}.pem")),
            false,
        ),
    }
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
            let key = tokio::task::block_in_place(|| hsm.key_blocking(&declared.label))
                .map_err(|e| format!("signing key {:?}: {e}", declared.label))?;
            let wanted = crate::settings::key_algorithm(declared.algorithm);
            if key.algorithm != wanted {
                return Err(format!(
                    "key {:?} is {:?} in the token, the config says {:?}",
                    declared.label, key.algorithm, wanted
                ));
            }
            let signing = SigningKey::new(&declared.label, &declared.purpose, key, chain)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            keys.insert(declared.label.clone(), Arc::new(signing));
        }
        Ok(KeyRing {
            keys: RwLock::new(keys),
        })
    }

    /// The key labelled `label`.
    pub fn get(&self, label: &str) -> Option<Arc<SigningKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(label)
            .cloned()
    }

    /// Put `chain` in service for the key `label` the API offers; `false` when it offers no
    /// such key (its chain is then used from the next start that declares it).
    pub fn replace_chain(&self, label: &str, chain: Vec<Certificate>) -> Result<bool, String> {
        let Some(old) = self.get(label) else {
            return Ok(false);
        };
        let new = SigningKey::new(label, &old.purpose, Arc::clone(&old.key), chain)?;
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(label.to_owned(), Arc::new(new));
        Ok(true)
    }
}

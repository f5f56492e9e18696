//! The keys the signing API offers: declared in the config with their purpose and
//! certificate chain, found in the token at start, and checked against their certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use der::{Encode, EncodePem};
use x509_cert::Certificate;

use signet_config::{Config, Profile, SigningKeyConfig};
use signet_pki::{HashAlg, KeyAlgorithm, SignatureScheme};

use crate::infrastructure::Infrastructure;
use crate::issuance::certifies;
use signet_hsm::{Hsm, KeyInfo, KeyOrigin};

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
            signet_state::layout::StateLayout::new(&config.state_dir)
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
        let infrastructure = if config.signing_keys.is_empty() {
            Infrastructure::default()
        } else {
            Infrastructure::load(config, hsm)?
        };
        for declared in &config.signing_keys {
            let path = config.state_path(&declared.certificate_chain);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let chain = signet_pki::x509::certificates_from_pem(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // A key marked imported may be extractable now: its mark says the operator knows.
            let key = tokio::task::block_in_place(|| {
                if declared.imported {
                    hsm.key_even_if_exposed_blocking(&declared.label)
                } else {
                    hsm.key_blocking(&declared.label)
                }
            })
            .map_err(|e| format!("signing key {:?}: {e}", declared.label))?;
            if let Some(name) = infrastructure.purpose_of(&key.spki) {
                return Err(format!(
                    "signing key {:?} is the infrastructure key keys.{name} (the same public \
                     key): it is never offered for signing",
                    declared.label
                ));
            }
            if let Some(warning) = check_origin(config, declared, &key)? {
                tracing::warn!(key = %declared.label, "{warning}");
            }
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

    /// Every key the API offers.
    pub fn all(&self) -> Vec<Arc<SigningKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
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

/// Whether `key`, declared as `declared`, may be offered for signing by where it comes
/// from: a key generated in the token may; an imported one (CKA_NEVER_EXTRACTABLE or
/// CKA_ALWAYS_SENSITIVE false or not reported) only when the operator marks it
/// `imported = true`, and in production only with `hsm.allow_imported_keys`. A key that is
/// extractable (or not sensitive) now reaches here only when marked, and is taken on the
/// same terms. Returns a warning to log for a key accepted on its mark.
pub fn check_origin(
    config: &Config,
    declared: &SigningKeyConfig,
    key: &KeyInfo,
) -> Result<Option<String>, String> {
    let label = &declared.label;
    let origin = key.origin.describe();
    match (key.origin, declared.imported) {
        (KeyOrigin::Generated, false) => Ok(None),
        (KeyOrigin::Generated, true) => Ok(Some(format!(
            "signing key {label:?} is marked imported but was {origin}"
        ))),
        (KeyOrigin::Imported { .. }, false) => Err(format!(
            "signing key {label:?} is {origin}: it was not generated in the token; if it is \
             meant to be used, mark it `imported = true` in its [[signing_keys]] entry"
        )),
        (KeyOrigin::Imported { .. }, true)
            if config.profile == Profile::Production && !config.hsm.allow_imported_keys =>
        {
            Err(format!(
                "signing key {label:?} is {origin}; the production profile refuses imported \
                 keys unless hsm.allow_imported_keys = true"
            ))
        }
        (KeyOrigin::Imported { .. }, true) => Ok(Some(format!(
            "signing key {label:?} is {origin}: accepted because it is marked imported"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(production: bool, allow: bool, imported: bool) -> (Config, SigningKeyConfig) {
        let text = signet_config::PRODUCTION_EXAMPLE_TOML
            .replacen(
                "allow_imported_keys = false",
                &format!("allow_imported_keys = {allow}"),
                1,
            )
            .replacen("\nimported = false", &format!("\nimported = {imported}"), 1);
        let text = if production {
            text
        } else {
            text.replacen("profile = \"production\"", "profile = \"dev\"", 1)
        };
        let config =
            signet_config::Config::parse_as("t.toml", &text, signet_config::Origin::Sealed)
                .or_else(|_| {
                    // production, marked, not allowed: the config check refuses it already; the
                    // key check must refuse it on its own too.
                    let mut c = signet_config::Config::parse_as(
                        "t.toml",
                        &text.replacen("\nimported = true", "\nimported = false", 1),
                        signet_config::Origin::Sealed,
                    )?;
                    c.signing_keys[0].imported = true;
                    Ok::<_, signet_config::ConfigError>(c)
                })
                .expect("config");
        let declared = config.signing_keys[0].clone();
        (config, declared)
    }

    fn key(origin: KeyOrigin) -> KeyInfo {
        use p256::pkcs8::EncodePublicKey;
        let der = p256::SecretKey::from_slice(&[7u8; 32])
            .expect("key")
            .public_key()
            .to_public_key_der()
            .expect("spki");
        let spki = <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(der.as_bytes())
            .expect("spki");
        let der = der.as_bytes();
        let public = signet_pki::verify::PublicKey::from_spki_der(der).expect("public");
        KeyInfo {
            label: "invoices-2026".into(),
            algorithm: public.algorithm(),
            spki,
            public,
            origin,
        }
    }

    #[test]
    fn an_imported_key_needs_its_mark_and_in_production_the_allowance() {
        let imported = KeyOrigin::from_attributes(Some(false), Some(true));
        let unreported = KeyOrigin::from_attributes(None, Some(true));
        assert!(matches!(unreported, KeyOrigin::Imported { .. }));
        assert_eq!(
            imported.describe(),
            "imported (CKA_NEVER_EXTRACTABLE false)"
        );
        for production in [false, true] {
            for allow in [false, true] {
                let (c, d) = config(production, allow, false);
                let refused = check_origin(&c, &d, &key(imported)).unwrap_err();
                assert!(refused.contains("mark it `imported = true`"), "{refused}");
                assert!(check_origin(&c, &d, &key(unreported)).is_err());
                assert_eq!(check_origin(&c, &d, &key(KeyOrigin::Generated)), Ok(None));
                let (c, d) = config(production, allow, true);
                let marked = check_origin(&c, &d, &key(imported));
                if production && !allow {
                    let e = marked.unwrap_err();
                    assert!(e.contains("hsm.allow_imported_keys"), "{e}");
                } else {
                    assert!(marked.unwrap().unwrap().contains("accepted"));
                }
            }
        }
    }
}

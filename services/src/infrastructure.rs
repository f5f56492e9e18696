//! The infrastructure keys: every key of the config's `[keys]` (root CA, TSA, TLS server,
//! OCSP signer, audit, and whatever is added there), known by public key rather than by
//! label. They create trust or guard the appliance, so they are never offered for signing
//! (`[[signing_keys]]`), and a CSR or an imported chain for one is a CA officer's duty.
//!
//! A key is recognised by its SubjectPublicKeyInfo, compared with the public key under each
//! `[keys]` label in the token and with the certificates the appliance holds for them: a
//! second label on the same key, or a label spelled another way, is still caught.

use spki::SubjectPublicKeyInfoOwned;

use signet_config::Config;

use signet_hsm::{Hsm, HsmError};
use signet_state::layout::StateLayout;

/// The public keys of the infrastructure, each with its `[keys]` name.
#[derive(Clone, Debug, Default)]
pub struct Infrastructure {
    keys: Vec<(String, SubjectPublicKeyInfoOwned)>,
    labels: Vec<(String, String)>,
}

impl Infrastructure {
    /// Read the infrastructure keys of `config` from `hsm` and the state directory. A key
    /// not (yet) in the token is skipped; a token that cannot answer is an error, so that
    /// a check built on this fails closed.
    pub fn load(config: &Config, hsm: &Hsm) -> Result<Self, String> {
        let mut found = Infrastructure::default();
        for (name, spec) in config.keys.entries() {
            match blocking(|| hsm.key_blocking(&spec.label)) {
                Ok(k) => found.keys.push((name.clone(), k.spki.clone())),
                Err(HsmError::KeyNotFound(_)) => {}
                Err(e) => {
                    return Err(format!(
                        "infrastructure key keys.{name} ({:?}): {e}",
                        spec.label
                    ))
                }
            }
            found.labels.push((name, spec.label));
        }
        let layout = StateLayout::new(&config.state_dir);
        for (name, path) in [
            ("root_ca", layout.root_ca()),
            ("client_ca", layout.client_ca()),
            ("tsa", layout.tsa_cert()),
            ("ocsp_signer", layout.ocsp_signer_cert()),
            ("audit", layout.audit_cert()),
            ("tls_server", layout.tls_chain()),
        ] {
            // A certificate not made yet: the key in the token (if any) is known already.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(chain) = signet_pki::x509::certificates_from_pem(&text) else {
                continue;
            };
            if let Some(leaf) = chain.first() {
                found.keys.push((
                    name.to_owned(),
                    leaf.tbs_certificate.subject_public_key_info.clone(),
                ));
            }
        }
        Ok(found)
    }

    /// The `[keys]` name of the infrastructure key whose public key is `spki`, if any.
    pub fn purpose_of(&self, spki: &SubjectPublicKeyInfoOwned) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, k)| k == spki)
            .map(|(name, _)| name.as_str())
    }

    /// The `[keys]` name whose label is `label`, if any.
    pub fn named(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(_, l)| l == label)
            .map(|(name, _)| name.as_str())
    }

    /// The `[keys]` name of key `label` in `hsm`: by its public key, or by the label when
    /// the token has no such key. `None` when it is no infrastructure key.
    pub fn of_label(&self, hsm: &Hsm, label: &str) -> Result<Option<String>, String> {
        if let Some(name) = self.named(label) {
            return Ok(Some(name.to_owned()));
        }
        match blocking(|| hsm.key_blocking(label)) {
            Ok(k) => Ok(self.purpose_of(&k.spki).map(str::to_owned)),
            Err(HsmError::KeyNotFound(_)) => Ok(None),
            Err(e) => Err(format!("key {label:?}: {e}")),
        }
    }
}

/// Run `f`, which blocks, telling a multi-threaded tokio runtime so.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

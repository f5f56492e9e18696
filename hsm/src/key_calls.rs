//! The key calls on the handle, and random bytes: a key's public side read once and cached,
//! key pairs generated, listed and destroyed. The worker side is in [`super::keys`].

use std::sync::Arc;
use std::time::Duration;

use signet_pki::KeyAlgorithm;

use super::error::HsmError;
use super::keys::{self, KeyInfo};
use super::pool::Hsm;

/// The longest wait for a key pair to be generated.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(600);

impl Hsm {
    /// The public side of the key labelled `label`, read once and cached. A key that could
    /// leave the token now (extractable, or not sensitive) is refused.
    pub fn key_blocking(&self, label: &str) -> Result<Arc<KeyInfo>, HsmError> {
        let key = self.key_even_if_exposed_blocking(label)?;
        keys::refuse_exposed(label, key.origin)?;
        Ok(key)
    }

    /// Like [`Hsm::key_blocking`], but a key that could leave the token is returned too, its
    /// origin saying so: for a signing key the operator marked imported, and to show keys.
    pub fn key_even_if_exposed_blocking(&self, label: &str) -> Result<Arc<KeyInfo>, HsmError> {
        if let Some(k) = self.cached_key(label) {
            return Ok(k);
        }
        let l = label.to_owned();
        let info = self.run_blocking(move |w| {
            w.with_retry(|w| {
                let origin = w.signing_key(&l)?.origin;
                keys::read_public_key(w.session()?, &l, origin)
            })
        })?;
        Ok(self.cache_key(info))
    }

    fn cached_key(&self, label: &str) -> Option<Arc<KeyInfo>> {
        self.shared().keys.read().ok()?.get(label).cloned()
    }

    fn cache_key(&self, info: KeyInfo) -> Arc<KeyInfo> {
        let info = Arc::new(info);
        if let Ok(mut keys) = self.shared().keys.write() {
            keys.insert(info.label.clone(), Arc::clone(&info));
        }
        info
    }

    /// Generate a key pair inside the token (sensitive, never extractable) and return its public side.
    pub fn generate_key_blocking(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<Arc<KeyInfo>, HsmError> {
        let id = self.random_blocking(16)?;
        let l = label.to_owned();
        let quirks = self.quirks();
        // Generating an RSA key takes seconds on some tokens: not bound by the signing timeout.
        let info = self.run_blocking_within(KEYGEN_TIMEOUT, move |w| {
            if let KeyAlgorithm::Rsa(bits) = algorithm {
                w.check_rsa_size(&l, bits)?;
            }
            w.with_retry(|w| keys::generate(w.session()?, &l, algorithm, &id, quirks))?;
            w.forget_handles();
            w.with_retry(|w| {
                let origin = w.signing_key(&l)?.origin;
                keys::read_public_key(w.session()?, &l, origin)
            })
        })?;
        Ok(self.cache_key(info))
    }

    /// Labels of every private key in the token.
    pub fn key_labels_blocking(&self) -> Result<Vec<String>, HsmError> {
        self.run_blocking(|w| w.with_retry(|w| keys::private_key_labels(w.session()?)))
    }

    /// Destroy every object labelled `label`; returns how many there were.
    pub fn destroy_blocking(&self, label: &str) -> Result<usize, HsmError> {
        if let Ok(mut keys) = self.shared().keys.write() {
            keys.remove(label);
        }
        let l = label.to_owned();
        self.run_blocking(move |w| {
            let n = w.with_retry(|w| keys::destroy(w.session()?, &l))?;
            w.forget_handles();
            Ok(n)
        })
    }

    /// `len` random bytes from the token's generator.
    pub fn random_blocking(&self, len: u32) -> Result<Vec<u8>, HsmError> {
        self.run_blocking(move |w| w.with_retry(|w| Ok(w.session()?.generate_random_vec(len)?)))
    }

    /// `len` random bytes from the token's generator, without blocking the executor.
    pub async fn random(&self, len: u32) -> Result<Vec<u8>, HsmError> {
        self.run(move |w| w.with_retry(|w| Ok(w.session()?.generate_random_vec(len)?)))
            .await
    }
}

//! A rustls signing key whose private half stays in the HSM.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme as TlsScheme};

use signet_pki::{HashAlg, KeyAlgorithm, SignatureScheme};

use crate::authz::TokenBucket;
use crate::hsm::{Hsm, KeyInfo};

/// The TLS server's key, signing handshakes through the HSM pool, at most at a set rate:
/// a TLS 1.3 server signs before the client shows a certificate, so every anonymous
/// handshake would otherwise be HSM time.
#[derive(Debug)]
pub struct HsmSigningKey {
    hsm: Hsm,
    key: Arc<KeyInfo>,
    budget: Arc<Mutex<TokenBucket>>,
}

impl HsmSigningKey {
    /// Sign with `key` through `hsm`, at most `per_sec` handshakes a second on average and
    /// `burst` at once.
    pub fn new(hsm: Hsm, key: Arc<KeyInfo>, per_sec: f64, burst: f64) -> Self {
        HsmSigningKey {
            hsm,
            key,
            budget: Arc::new(Mutex::new(TokenBucket::new(
                per_sec,
                burst.max(1.0),
                Instant::now(),
            ))),
        }
    }

    /// The TLS schemes this key can make, most preferred first.
    fn schemes(&self) -> &'static [(TlsScheme, SignatureScheme)] {
        match self.key.algorithm {
            KeyAlgorithm::EcP256 => &[(
                TlsScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::Ecdsa(HashAlg::Sha256),
            )],
            KeyAlgorithm::EcP384 => &[(
                TlsScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::Ecdsa(HashAlg::Sha384),
            )],
            KeyAlgorithm::Rsa(_) => &[
                (
                    TlsScheme::RSA_PSS_SHA256,
                    SignatureScheme::RsaPss(HashAlg::Sha256),
                ),
                (
                    TlsScheme::RSA_PSS_SHA384,
                    SignatureScheme::RsaPss(HashAlg::Sha384),
                ),
                (
                    TlsScheme::RSA_PKCS1_SHA256,
                    SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
                ),
            ],
        }
    }
}

impl SigningKey for HsmSigningKey {
    fn choose_scheme(&self, offered: &[TlsScheme]) -> Option<Box<dyn Signer>> {
        let (tls, ours) = self.schemes().iter().find(|(s, _)| offered.contains(s))?;
        Some(Box::new(HsmSigner {
            budget: Arc::clone(&self.budget),
            hsm: self.hsm.clone(),
            key: Arc::clone(&self.key),
            tls: *tls,
            ours: *ours,
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.algorithm {
            KeyAlgorithm::Rsa(_) => SignatureAlgorithm::RSA,
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => SignatureAlgorithm::ECDSA,
        }
    }
}

#[derive(Debug)]
struct HsmSigner {
    budget: Arc<Mutex<TokenBucket>>,
    hsm: Hsm,
    key: Arc<KeyInfo>,
    tls: TlsScheme,
    ours: SignatureScheme,
}

impl Signer for HsmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let spent = self
            .budget
            .lock()
            .map(|mut b| b.take(Instant::now()).is_err())
            .unwrap_or(false);
        if spent {
            return Err(rustls::Error::General(
                "too many handshakes: the handshake signature budget is spent".into(),
            ));
        }
        // rustls asks synchronously mid-handshake; the wait is announced to Tokio
        // (block_in_place) so other connections keep being served.
        self.hsm
            .sign_blocking(&self.key, self.ours, message)
            .map_err(|e| rustls::Error::General(format!("HSM signing failed: {e}")))
    }

    fn scheme(&self) -> TlsScheme {
        self.tls
    }
}

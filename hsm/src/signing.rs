//! The signing calls on the handle: a message or digests queued for a worker, and every
//! signature verified with the public key before it leaves. The PKCS#11 call itself is in
//! [`super::sign`].

use std::sync::Arc;

use signet_pki::SignatureScheme;

use super::error::HsmError;
use super::keys::KeyInfo;
use super::pool::Hsm;
use super::session::WorkerSession;
use super::sign::sign_digest;

/// Digests in one job of a batch: small, so that a batch holds a worker for a few
/// signatures at a time (about 150 ms on a token that makes 55 a second) and the urgent
/// lane gets the next free worker soon.
const BATCH_JOB: usize = 8;

impl Hsm {
    /// Sign `message` with `key`: hashed here, the digest signed in the token, the signature
    /// verified over the message before it is returned (DER for ECDSA).
    pub async fn sign(
        &self,
        key: &KeyInfo,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let (label, digest) = (key.label.clone(), scheme.hash().digest(message));
        let signature = self
            .run(move |w| sign_digest(w, &label, scheme, &digest))
            .await?;
        verified(
            key,
            key.public.verify_message(scheme, message, &signature),
            signature,
        )
    }

    /// [`Hsm::sign`] for callers outside async code.
    pub fn sign_blocking(
        &self,
        key: &KeyInfo,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let (label, digest) = (key.label.clone(), scheme.hash().digest(message));
        let signature = self.run_blocking(move |w| sign_digest(w, &label, scheme, &digest))?;
        verified(
            key,
            key.public.verify_message(scheme, message, &signature),
            signature,
        )
    }

    /// Sign a digest computed elsewhere (the message is not at hand): verification then
    /// goes over the digest, which is slower.
    pub async fn sign_digest(
        &self,
        key: &KeyInfo,
        scheme: SignatureScheme,
        digest: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let (label, d) = (key.label.clone(), digest.to_vec());
        let signature = self
            .run(move |w| sign_digest(w, &label, scheme, &d))
            .await?;
        verified(
            key,
            key.public.verify_digest(scheme, digest, &signature),
            signature,
        )
    }

    /// Sign many digests with one key. The batch is cut into jobs of a few digests; at
    /// most one per worker is queued at a time, so parallel batches and single requests
    /// take turns, and each job is timed on its own: a long batch on a slow token is not a
    /// token that stopped answering. If the caller goes away the jobs not yet begun are
    /// dropped. One result per digest, in order; a full queue or a timeout fails the whole
    /// batch.
    pub async fn sign_digests(
        &self,
        key: &Arc<KeyInfo>,
        scheme: SignatureScheme,
        digests: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Vec<u8>, HsmError>>, HsmError> {
        let window = self.workers().max(1);
        let mut chunks = digests.chunks(BATCH_JOB).map(<[Vec<u8>]>::to_vec);
        let mut pending = std::collections::VecDeque::with_capacity(window);
        let mut results = Vec::with_capacity(digests.len());
        loop {
            while pending.len() < window {
                let Some(chunk) = chunks.next() else { break };
                let key = Arc::clone(key);
                let rx = self.submit(move |w| Ok(sign_and_verify_all(w, &key, scheme, &chunk)))?;
                pending.push_back((rx, self.deadline()));
            }
            let Some((rx, (deadline, done))) = pending.pop_front() else {
                return Ok(results);
            };
            results.extend(self.wait(rx, deadline, done).await?);
        }
    }
}

/// Sign each of `digests` and check each signature; one result per digest.
fn sign_and_verify_all(
    w: &mut WorkerSession,
    key: &KeyInfo,
    scheme: SignatureScheme,
    digests: &[Vec<u8>],
) -> Vec<Result<Vec<u8>, HsmError>> {
    digests
        .iter()
        .map(|d| {
            let signature = sign_digest(w, &key.label, scheme, d)?;
            verified(
                key,
                key.public.verify_digest(scheme, d, &signature),
                signature,
            )
        })
        .collect()
}

/// Release a signature only if it verified with the key's public key.
fn verified(
    key: &KeyInfo,
    check: Result<(), signet_pki::Error>,
    signature: Vec<u8>,
) -> Result<Vec<u8>, HsmError> {
    match check {
        Ok(()) => Ok(signature),
        Err(_) => {
            tracing::error!(key = %key.label, "the token returned a signature that does not verify");
            Err(HsmError::BadSignature(key.label.clone()))
        }
    }
}

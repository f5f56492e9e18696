//! The raw signing rate, for `signetctl hsm bench`: C_Sign in a tight loop on sessions of
//! its own, past the queue, the ceiling every protocol is measured against.

use std::sync::Arc;

use signet_pki::SignatureScheme;

use super::error::HsmError;
use super::keys::KeyInfo;
use super::pool::Hsm;
use super::session::WorkerSession;
use super::sign::sign_digest;

impl Hsm {
    /// The raw C_Sign ceiling: `threads` threads, each with its own session, signing
    /// `digest` with `key` in a tight loop for `duration`; no queue, no verification.
    /// Returns signatures per second. For benchmarks.
    pub fn raw_sign_rate(
        &self,
        key: &KeyInfo,
        scheme: SignatureScheme,
        threads: usize,
        duration: std::time::Duration,
    ) -> Result<f64, HsmError> {
        let module = self.module();
        let digest = vec![0x5a; scheme.hash().output_len()];
        let start = std::time::Instant::now();
        let counts: Vec<Result<u64, HsmError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let mut w = WorkerSession::new(
                        &module,
                        self.token_label().to_owned(),
                        Arc::clone(&self.shared().pin),
                    );
                    let label = key.label.clone();
                    let digest = digest.clone();
                    s.spawn(move || -> Result<u64, HsmError> {
                        let mut n = 0u64;
                        while start.elapsed() < duration {
                            sign_digest(&mut w, &label, scheme, &digest)?;
                            n += 1;
                        }
                        Ok(n)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(HsmError::Unavailable)))
                .collect()
        });
        let mut total = 0;
        for c in counts {
            total += c?;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }
}

//! The worker pool and the handle the rest of the appliance uses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use signet_pki::{KeyAlgorithm, SignatureScheme};

use super::error::HsmError;
use super::keys::{self, KeyInfo};
use super::quirks::Quirks;
use super::session::{find_slot, open_logged_in, WorkerSession};
use super::sign::sign_digest;

/// How to reach the token.
#[derive(Clone)]
pub struct HsmSettings {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN.
    pub pin: SecretString,
    /// Worker threads, one session each.
    pub workers: usize,
    /// Jobs that may wait for a worker.
    pub queue_depth: usize,
}

type Job = Box<dyn FnOnce(&mut WorkerSession) + Send>;

/// A handle on the HSM: cheap to clone, safe to share.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hsm {
    // Never the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("token", &self.inner.token_label)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `None` only while dropping.
    jobs: Option<SyncSender<Job>>,
    keys: RwLock<HashMap<String, Arc<KeyInfo>>>,
    ctx: Pkcs11,
    token_label: String,
    pin: Arc<AuthPin>,
    workers: usize,
    threads: Vec<JoinHandle<()>>,
    quirks: Quirks,
}

impl Drop for Inner {
    /// Close the queue and wait for the workers: their sessions must be closed before the
    /// module is finalised, or the module's teardown races them (SoftHSM crashes at exit).
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Hsm {
    /// Load the module, find the token, check the PIN, and start the workers.
    pub fn open(settings: &HsmSettings) -> Result<Hsm, HsmError> {
        let ctx = load_module(&settings.module)?;
        let quirks = Quirks::of(&ctx);
        let slot = find_slot(&ctx, &settings.token_label)?;
        let pin = Arc::new(AuthPin::new(settings.pin.expose_secret().into()));
        // Log in once here so a wrong PIN stops the start instead of every request.
        drop(open_logged_in(&ctx, slot, &pin)?);
        let (tx, rx) = sync_channel::<Job>(settings.queue_depth);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut threads = Vec::with_capacity(settings.workers);
        for n in 0..settings.workers {
            let rx = Arc::clone(&rx);
            let mut worker = WorkerSession::new(
                ctx.clone(),
                settings.token_label.clone(),
                Arc::clone(&pin),
                slot,
            );
            let thread = std::thread::Builder::new()
                .name(format!("hsm-{n}"))
                .spawn(move || loop {
                    // Hold the lock only to take one job.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(&mut worker),
                        Err(_) => return, // every sender is gone: shut down
                    }
                })
                .map_err(|_| HsmError::Unavailable)?;
            threads.push(thread);
        }
        Ok(Hsm {
            inner: Arc::new(Inner {
                jobs: Some(tx),
                keys: RwLock::new(HashMap::new()),
                ctx,
                token_label: settings.token_label.clone(),
                pin,
                workers: settings.workers,
                threads,
                quirks,
            }),
        })
    }

    /// Number of worker threads (sessions).
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.inner.token_label
    }

    /// The module's context (for this module's tests).
    #[cfg(test)]
    pub(super) fn context(&self) -> Pkcs11 {
        self.inner.ctx.clone()
    }

    /// Queue `op` for a worker. Fails at once with [`HsmError::Busy`] when the queue is full.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, HsmError>>, HsmError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            // The caller may have gone away (timeout); nothing to do then.
            let _ = tx.send(op(w));
        });
        let jobs = self.inner.jobs.as_ref().ok_or(HsmError::Unavailable)?;
        match jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(HsmError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(HsmError::Unavailable),
        }
    }

    /// Run `op` on a worker and wait for it without blocking the async executor.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        self.submit(op)?.await.map_err(|_| HsmError::Unavailable)?
    }

    /// Run `op` on a worker and block this thread until it is done. Inside a Tokio runtime
    /// the wait is announced with `block_in_place`, so other tasks move to other threads.
    pub(crate) fn run_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        let rx = self.submit(op)?;
        let wait = move || rx.blocking_recv().map_err(|_| HsmError::Unavailable);
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            // A current-thread runtime cannot lend its thread: refuse rather than deadlock.
            Ok(_) => return Err(HsmError::Unavailable),
            Err(_) => wait(),
        };
        result?
    }

    /// The public side of the key labelled `label`, read once and cached.
    /// The private key's attributes are checked on the way.
    pub fn key_blocking(&self, label: &str) -> Result<Arc<KeyInfo>, HsmError> {
        if let Some(k) = self.cached_key(label) {
            return Ok(k);
        }
        let l = label.to_owned();
        let info = self.run_blocking(move |w| {
            w.with_retry(|w| {
                w.private_key(&l)?;
                keys::read_public_key(w.session()?, &l)
            })
        })?;
        Ok(self.cache_key(info))
    }

    fn cached_key(&self, label: &str) -> Option<Arc<KeyInfo>> {
        self.inner.keys.read().ok()?.get(label).cloned()
    }

    fn cache_key(&self, info: KeyInfo) -> Arc<KeyInfo> {
        let info = Arc::new(info);
        if let Ok(mut keys) = self.inner.keys.write() {
            keys.insert(info.label.clone(), Arc::clone(&info));
        }
        info
    }

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

    /// Sign many digests with one key: the batch is split into one share per worker, and
    /// each worker signs and verifies its share in one job (no queue round trip per digest).
    /// One result per digest, in order; a full queue fails the whole batch with `Busy`.
    pub async fn sign_digests(
        &self,
        key: &Arc<KeyInfo>,
        scheme: SignatureScheme,
        digests: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Vec<u8>, HsmError>>, HsmError> {
        let share = digests.len().div_ceil(self.inner.workers.max(1)).max(1);
        let mut pending = Vec::new();
        let mut rest = digests;
        while !rest.is_empty() {
            let tail = rest.split_off(share.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            let key = Arc::clone(key);
            pending.push(self.submit(move |w| {
                Ok(chunk
                    .iter()
                    .map(|d| {
                        let signature = sign_digest(w, &key.label, scheme, d)?;
                        verified(
                            &key,
                            key.public.verify_digest(scheme, d, &signature),
                            signature,
                        )
                    })
                    .collect::<Vec<_>>())
            })?);
        }
        let mut results = Vec::new();
        for rx in pending {
            results.extend(rx.await.map_err(|_| HsmError::Unavailable)??);
        }
        Ok(results)
    }

    /// Generate a key pair inside the token (sensitive, never extractable) and return its public side.
    pub fn generate_key_blocking(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<Arc<KeyInfo>, HsmError> {
        let id = self.random_blocking(16)?;
        let l = label.to_owned();
        let quirks = self.inner.quirks;
        let info = self.run_blocking(move |w| {
            if let KeyAlgorithm::Rsa(bits) = algorithm {
                w.check_rsa_size(&l, bits)?;
            }
            w.with_retry(|w| keys::generate(w.session()?, &l, algorithm, &id, quirks))?;
            w.forget_handles();
            w.with_retry(|w| keys::read_public_key(w.session()?, &l))
        })?;
        Ok(self.cache_key(info))
    }

    /// Labels of every private key in the token.
    pub fn key_labels_blocking(&self) -> Result<Vec<String>, HsmError> {
        self.run_blocking(|w| w.with_retry(|w| keys::private_key_labels(w.session()?)))
    }

    /// Destroy every object labelled `label`; returns how many there were.
    pub fn destroy_blocking(&self, label: &str) -> Result<usize, HsmError> {
        if let Ok(mut keys) = self.inner.keys.write() {
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

    /// Whether a worker answers within `within`: one byte from C_GenerateRandom. A full
    /// queue is not a fault (every worker is signing), so it is retried until the deadline.
    pub async fn answers(&self, within: std::time::Duration) -> bool {
        let probe = async {
            loop {
                match self.random(1).await {
                    Ok(_) => return true,
                    Err(HsmError::Busy) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "HSM health probe failed");
                        return false;
                    }
                }
            }
        };
        tokio::time::timeout(within, probe).await.unwrap_or(false)
    }

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
        let slot = find_slot(&self.inner.ctx, &self.inner.token_label)?;
        let digest = vec![0x5a; scheme.hash().output_len()];
        let start = std::time::Instant::now();
        let counts: Vec<Result<u64, HsmError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let ctx = self.inner.ctx.clone();
                    let pin = Arc::clone(&self.inner.pin);
                    let token = self.inner.token_label.clone();
                    let label = key.label.clone();
                    let digest = digest.clone();
                    s.spawn(move || -> Result<u64, HsmError> {
                        let mut w = WorkerSession::new(ctx, token, pin, slot);
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

/// Load and initialise a PKCS#11 module. Already initialised in this process is fine.
pub(super) fn load_module(path: &std::path::Path) -> Result<Pkcs11, HsmError> {
    let module_err = |source| HsmError::Module {
        path: path.to_owned(),
        source,
    };
    let ctx = Pkcs11::new(path).map_err(module_err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(module_err(e)),
    }
}

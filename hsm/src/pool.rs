//! The worker pool and the handle the rest of the appliance uses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use signet_pki::{KeyAlgorithm, SignatureScheme};

use super::error::HsmError;
use super::health::{Health, Readiness};
use super::keys::{self, KeyInfo};
use super::module::find_slot;
use super::module::{load_module, Module};
use super::queue::{Call, Lane, Queue, Refused, Reply};
use super::quirks::Quirks;
use super::reconnect;
use super::session::{open_logged_in, WorkerSession};
use super::shared::Shared;
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
    /// Longest a caller waits for one operation, queue included.
    pub op_timeout: Duration,
}

/// The longest wait for a key pair to be generated.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(600);

/// Digests in one job of a batch: small, so that a batch holds a worker for a few
/// signatures at a time (about 150 ms on a token that makes 55 a second) and the urgent
/// lane gets the next free worker soon.
const BATCH_JOB: usize = 8;

/// A handle on the HSM: cheap to clone, safe to share. Each handle queues its jobs in
/// one lane (see [`Hsm::urgent`]).
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
    lane: Lane,
}

impl std::fmt::Debug for Hsm {
    // Never the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("token", &self.inner.shared.token_label)
            .field("workers", &self.inner.workers)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

struct Inner {
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    workers: usize,
    threads: Vec<JoinHandle<()>>,
    quirks: Quirks,
    monitor: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    /// Stop the reconnect loop, close the queue and wait for the workers: their sessions
    /// must be closed before the module is finalised, or the module's teardown races them
    /// (SoftHSM crashes at exit).
    fn drop(&mut self) {
        self.shared.health.stop();
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        self.queue.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Hsm {
    /// Load the module, find the token, check the PIN, and start the workers and the
    /// reconnect loop.
    pub fn open(settings: &HsmSettings) -> Result<Hsm, HsmError> {
        let ctx = load_module(&settings.module)?;
        let quirks = Quirks::of(&ctx);
        let slot = find_slot(&ctx, &settings.token_label)?;
        let pin = Arc::new(AuthPin::new(settings.pin.expose_secret().into()));
        // Log in once here so a wrong PIN stops the start instead of every request.
        drop(open_logged_in(&ctx, slot, &pin)?);
        let module = Module {
            ctx,
            slot,
            generation: 0,
        };
        let health = Arc::new(Health::new());
        let mut workers = Vec::with_capacity(settings.workers);
        for _ in 0..settings.workers {
            workers.push(
                WorkerSession::new(&module, settings.token_label.clone(), Arc::clone(&pin))
                    .watched_by(Arc::clone(&health)),
            );
        }
        let shared = Arc::new(Shared {
            module: RwLock::new(module),
            health,
            keys: RwLock::new(HashMap::new()),
            token_label: settings.token_label.clone(),
            pin,
            op_timeout: settings.op_timeout,
        });
        let queue = Arc::new(Queue::new(settings.queue_depth));
        let mut threads = Vec::with_capacity(settings.workers);
        for (n, mut worker) in workers.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("hsm-{n}"))
                // Ends once the queue is closed and drained.
                .spawn(move || {
                    while let Some(job) = queue.pop() {
                        // Read-locked while the job runs: the module is not initialised
                        // again under a call in flight.
                        let module = shared.module.read().unwrap_or_else(|p| p.into_inner());
                        worker.adopt(&module);
                        shared.health.job_begun();
                        job.run(&mut worker);
                        drop(module);
                        shared.health.job_done();
                    }
                })
                .map_err(|_| HsmError::Unavailable)?;
            threads.push(thread);
        }
        let monitor = {
            let (shared, queue) = (Arc::clone(&shared), Arc::clone(&queue));
            std::thread::Builder::new()
                .name("hsm-reconnect".into())
                .spawn(move || reconnect::run(shared, queue))
                .map_err(|_| HsmError::Unavailable)?
        };
        Ok(Hsm {
            lane: Lane::Bulk,
            inner: Arc::new(Inner {
                queue,
                shared,
                workers: settings.workers,
                threads,
                quirks,
                monitor: Some(monitor),
            }),
        })
    }

    /// A handle whose jobs go in the urgent lane: for TLS handshakes, the TSA, OCSP, CRLs
    /// and audit checkpoints, which must not wait behind the signing API's batches.
    pub fn urgent(&self) -> Hsm {
        Hsm {
            inner: Arc::clone(&self.inner),
            lane: Lane::Urgent,
        }
    }

    /// Whether the token answers now (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.shared.health.is_ready()
    }

    /// Every change between ready and lost.
    pub fn readiness(&self) -> tokio::sync::watch::Receiver<Readiness> {
        self.inner.shared.health.subscribe()
    }

    /// Whether the reconnect loop is not stuck: it probes or retries at least this often
    /// unless a call into the module does not return. For the service watchdog: a lost
    /// HSM is reported, not a reason to be restarted; a wedged module is.
    pub fn alive(&self) -> bool {
        let longest = self.inner.shared.op_timeout
            + reconnect::PROBE_INTERVAL
            + reconnect::MAX_BACKOFF
            + Duration::from_secs(1);
        self.inner.shared.health.since_beat() <= longest
    }

    /// Mark the token lost as a worker would on CKR_DEVICE_ERROR.
    #[cfg(test)]
    pub(super) fn force_lost(&self) {
        self.inner.shared.health.mark_lost("forced by a test");
    }

    /// Number of worker threads (sessions).
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.inner.shared.token_label
    }

    /// The module's context (for this module's tests).
    #[cfg(test)]
    pub(super) fn context(&self) -> cryptoki::context::Pkcs11 {
        self.module().ctx.clone()
    }

    fn module(&self) -> std::sync::RwLockReadGuard<'_, Module> {
        self.inner
            .shared
            .module
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `op` for a worker, its result for `reply`. Fails at once with
    /// [`HsmError::Lost`] while the token is lost and with [`HsmError::Busy`] when the
    /// queue is full.
    fn submit_with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
        reply: Reply<T>,
    ) -> Result<(), HsmError> {
        if !self.is_ready() {
            return Err(HsmError::Lost);
        }
        match self.inner.queue.push(self.lane, Call::job(op, reply)) {
            Ok(()) => Ok(()),
            Err(Refused::Full) => Err(HsmError::Busy),
            Err(Refused::Closed) => Err(HsmError::Unavailable),
        }
    }

    /// Queue `op` for a worker; its result comes on the receiver. Dropping the receiver
    /// before a worker takes the job drops the job.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, HsmError>>, HsmError> {
        let (tx, rx) = oneshot::channel();
        self.submit_with(op, Reply::Async(tx))?;
        Ok(rx)
    }

    /// Wait for a submitted job until `deadline`; `done_before` is [`Health::jobs_done`]
    /// when it was submitted.
    async fn wait<T>(
        &self,
        rx: oneshot::Receiver<Result<T, HsmError>>,
        deadline: tokio::time::Instant,
        done_before: u64,
    ) -> Result<T, HsmError> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(HsmError::Unavailable),
            Err(_) => Err(self.timed_out(self.inner.shared.op_timeout, done_before)),
        }
    }

    /// A wait of `limit` ran out. If every worker is in a job and none finished one
    /// meanwhile, they are stuck in a token that does not answer: it is marked lost, so that
    /// the callers after this one are refused at once instead of each waiting out the
    /// timeout. One slow call while other workers are free is not that.
    fn timed_out(&self, limit: Duration, done_before: u64) -> HsmError {
        let health = &self.inner.shared.health;
        let all_busy = health.busy() >= self.inner.workers as u64;
        if all_busy && health.jobs_done() == done_before {
            health.mark_lost(&format!("no answer within {limit:?} and no job finished"));
        }
        HsmError::Timeout(limit)
    }

    fn deadline(&self) -> (tokio::time::Instant, u64) {
        (
            tokio::time::Instant::now() + self.inner.shared.op_timeout,
            self.inner.shared.health.jobs_done(),
        )
    }

    /// Run `op` on a worker and wait for it, at most the operation timeout, without
    /// blocking the async executor.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        let (deadline, done) = self.deadline();
        self.wait(self.submit(op)?, deadline, done).await
    }

    /// Run `op` on a worker and block this thread until it is done, at most the operation
    /// timeout. Inside a Tokio runtime the wait is announced with `block_in_place`, so
    /// other tasks move to other threads.
    pub(crate) fn run_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        self.run_blocking_within(self.inner.shared.op_timeout, op)
    }

    /// [`Hsm::run_blocking`] with a wait of `limit` instead.
    fn run_blocking_within<T: Send + 'static>(
        &self,
        limit: Duration,
        op: impl FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done_before = self.inner.shared.health.jobs_done();
        self.submit_with(op, Reply::Blocking(tx))?;
        let wait = move || match rx.recv_timeout(limit) {
            Ok(result) => Ok(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(self.timed_out(limit, done_before))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(HsmError::Unavailable),
        };
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            // A current-thread runtime cannot lend its thread: refuse rather than deadlock.
            Ok(_) => return Err(HsmError::Unavailable),
            Err(_) => wait(),
        };
        result?
    }

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
        self.inner.shared.keys.read().ok()?.get(label).cloned()
    }

    fn cache_key(&self, info: KeyInfo) -> Arc<KeyInfo> {
        let info = Arc::new(info);
        if let Ok(mut keys) = self.inner.shared.keys.write() {
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
        let window = self.inner.workers.max(1);
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

    /// Generate a key pair inside the token (sensitive, never extractable) and return its public side.
    pub fn generate_key_blocking(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<Arc<KeyInfo>, HsmError> {
        let id = self.random_blocking(16)?;
        let l = label.to_owned();
        let quirks = self.inner.quirks;
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
        if let Ok(mut keys) = self.inner.shared.keys.write() {
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
                        self.inner.shared.token_label.clone(),
                        Arc::clone(&self.inner.shared.pin),
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

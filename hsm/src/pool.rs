//! The worker pool and the handle the rest of the appliance uses: opening the token, the
//! lanes, and running a job on a worker within the operation timeout. The calls made
//! through it are in `signing.rs`, `key_calls.rs` and `bench.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use super::error::HsmError;
use super::health::{Health, Readiness};
use super::module::find_slot;
use super::module::{load_module, Module};
use super::queue::{Call, Lane, Queue, Refused, Reply};
use super::quirks::Quirks;
use super::reconnect;
use super::session::{open_logged_in, WorkerSession};
use super::shared::Shared;

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
        if let Some(first) = workers.first_mut() {
            log_mechanisms(&settings.token_label, first);
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

    /// Jobs waiting in the urgent and the bulk lane.
    pub fn queued(&self) -> (usize, usize) {
        self.inner.queue.depth()
    }

    /// Workers in a job now.
    pub fn busy_workers(&self) -> u64 {
        self.inner.shared.health.busy()
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

    /// What the workers share: the module, the health, the key cache, the PIN.
    pub(super) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// What this token does differently.
    pub(super) fn quirks(&self) -> Quirks {
        self.inner.quirks
    }

    /// The module, read-locked: it is not initialised again while this is held.
    pub(super) fn module(&self) -> std::sync::RwLockReadGuard<'_, Module> {
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
    pub(super) async fn wait<T>(
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
        super::metrics::timed_out();
        HsmError::Timeout(limit)
    }

    /// The deadline of a job submitted now, and [`Health::jobs_done`] now.
    pub(super) fn deadline(&self) -> (tokio::time::Instant, u64) {
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
    pub(super) fn run_blocking_within<T: Send + 'static>(
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
}

/// One line at start: the token and which of the mechanisms Signet signs with it offers.
fn log_mechanisms(token: &str, worker: &mut WorkerSession) {
    use cryptoki::mechanism::MechanismType;
    match worker.token_mechanisms() {
        Ok(offered) => {
            let used: Vec<String> = [
                MechanismType::RSA_PKCS,
                MechanismType::RSA_PKCS_PSS,
                MechanismType::ECDSA,
            ]
            .into_iter()
            .filter(|m| offered.contains(m))
            .map(|m| m.to_string())
            .collect();
            tracing::info!(
                token,
                offered = offered.len(),
                signs_with = %used.join(", "),
                "token mechanisms"
            );
        }
        Err(e) => tracing::info!(token, error = %e, "token mechanisms not listed yet"),
    }
}

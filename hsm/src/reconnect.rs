//! Bringing a lost token back: one background thread probes the token while it is ready
//! and, once it is lost, initialises the module again with a capped backoff until the
//! token is found by its label, the PIN logs in, and every key in use is found again by
//! its label with the same public key as before (the one its certificate names).
//!
//! Measured with p11-kit's client module (`p11-kit server` killed under load, then
//! restarted): calls on open sessions fail with CKR_DEVICE_ERROR, and so does
//! C_GetSlotList; the module never reconnects by itself. C_Finalize then C_Initialize
//! reconnects: while the server is down that C_Initialize succeeds with no slots, so it is
//! repeated until the token shows up.

use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, RwLock, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::error::HsmError;
use super::health::Wake;
use super::keys;
use super::module::Module;
use super::queue::{Call, Reply};
use super::queue::{Lane, Queue};
use super::session::open_logged_in;
use super::shared::Shared;

/// How often a ready token is probed when nothing else shows it is gone.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between two reconnect attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The reconnect loop; returns when the pool stops.
pub(super) fn run(shared: Arc<Shared>, queue: Arc<Queue>) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_failure = String::new();
    loop {
        shared.health.beat();
        if shared.health.is_ready() {
            backoff = FIRST_BACKOFF;
            last_failure.clear();
            match shared.health.wait(PROBE_INTERVAL) {
                Wake::Stop => return,
                Wake::Lost => continue,
                Wake::Idle => probe(&shared, &queue),
            }
            continue;
        }
        let started = Instant::now();
        match reconnect(&shared) {
            Ok(()) => {
                tracing::info!(took = ?started.elapsed(), "HSM reconnected; keys checked");
                super::metrics::reconnected();
                shared.health.mark_ready();
                continue;
            }
            Err(e) => {
                let why = e.to_string();
                if why != last_failure {
                    tracing::warn!(error = %why, "HSM still unavailable; retrying");
                    last_failure = why;
                }
            }
        }
        if shared.health.sleep(backoff) {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Ask a worker for one random byte. An error says the token is lost; so does silence
/// while no worker finishes any job (they are stuck in the token). A full queue or a slow
/// one that still moves is load, not loss.
fn probe(shared: &Arc<Shared>, queue: &Queue) {
    let done_before = shared.health.jobs_done();
    let (tx, rx) = sync_channel(1);
    let probe = Call::job(
        |w| w.with_retry(|w| Ok(w.session()?.generate_random_vec(1)?)),
        Reply::Blocking(tx),
    );
    // In the urgent lane: the next free worker takes it, whatever bulk work waits.
    if queue.push(Lane::Urgent, probe).is_err() {
        return;
    }
    match rx.recv_timeout(shared.op_timeout) {
        Ok(Ok(_)) | Err(RecvTimeoutError::Disconnected) => {}
        Ok(Err(HsmError::Lost)) => {}
        Ok(Err(e)) => shared
            .health
            .mark_lost(&format!("health probe failed: {e}")),
        Err(RecvTimeoutError::Timeout) if shared.health.jobs_done() == done_before => {
            shared.health.mark_lost(&format!(
                "no answer within {:?} and no job finished",
                shared.op_timeout
            ))
        }
        Err(RecvTimeoutError::Timeout) => {}
    }
}

/// One attempt: initialise the module again, log in, and check every key in use.
fn reconnect(shared: &Shared) -> Result<(), HsmError> {
    let mut module = write_within(&shared.module, shared.op_timeout)
        .ok_or(HsmError::Timeout(shared.op_timeout))?;
    module.reinitialize(&shared.token_label)?;
    let session = open_logged_in(&module.ctx, module.slot, &shared.pin)?;
    let in_use: Vec<_> = match shared.keys.read() {
        Ok(keys) => keys.values().cloned().collect(),
        Err(_) => return Err(HsmError::Unavailable),
    };
    for key in in_use {
        keys::check_same_key(&session, &key)?;
    }
    Ok(())
}

/// The module write-locked, once the workers have left it; `None` if they have not within
/// `limit` (stuck in a call that does not return). Polled rather than blocked on, so that
/// no worker queues behind the writer: while the token is lost their jobs end at once.
fn write_within(lock: &RwLock<Module>, limit: Duration) -> Option<RwLockWriteGuard<'_, Module>> {
    let deadline = Instant::now() + limit;
    loop {
        match lock.try_write() {
            Ok(guard) => return Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

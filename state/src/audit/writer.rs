//! The writer: one thread owns the log file. Callers hand it events and wait for their
//! record to be durable; it takes every event waiting at that moment (and, while requests
//! are on their way to a record, those that come within a short commit delay), appends them
//! in one write, and makes them durable with one `fdatasync` (group commit) of the
//! write-ahead ring beside the log, the log itself synced at checkpoints (`ring.rs`). After
//! `checkpoint_every` records, or `checkpoint_secs` with records not yet covered, it adds a
//! checkpoint signed by the audit key in the HSM and notes it in the anchor file, signed
//! too, with the TPM counter's next value; then it increments the counter. All of that is
//! on this thread, once per checkpoint, never on a request's path.
//!
//! A request alone (no record waiting for the thread, no other request on its way to one)
//! commits its own record on its own thread instead ([`Writer::commit_alone`]): the same
//! append and ring sync, without waking this thread and being woken by it. Never a
//! checkpoint there, and never after a write that was slow, failed, or carried several
//! records (a sign of load).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use signet_config::sealed::CounterState;
use signet_hsm::{Hsm, KeyInfo};

use super::anchor::{Anchor, TpmCounter};
use super::commit_delay::CommitDelay;
use super::error::AuditError;
use super::record::{Event, Record, GENESIS};
use super::ring::Ring;
use super::verify::scheme_name;
use crate::clock::now_ms;
use crate::metrics::Committer;

/// Why a checkpoint cannot be signed after the close.
const CLOSED: &str = "the audit log is closed";
/// Events taken into one write at most.
const MAX_BATCH: usize = 4096;
/// A record alone commits on its caller's thread only while writes take less than this: a
/// disk that stalls holds the writer's thread, not an API thread, from the next record on.
const ALONE_WRITE_BELOW: Duration = Duration::from_millis(2);
/// Room a lone record needs in the ring, with a margin (a record is a few hundred bytes):
/// one that would fill it goes to the thread, which syncs the log and begins the ring again.
const MAX_RECORD: usize = 64 * 1024;
/// Only a batch smaller than this waits: a sync's cost shared by four records or more is a
/// small part of each.
const LINGER_BELOW: usize = 4;
/// After a checkpoint could not be signed (the HSM lost), the next try waits this long:
/// neither a log line per request nor a busy loop while the HSM is away.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// When checkpoints are made.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    /// After this many records.
    pub every: u64,
    /// Or after this long with records not covered.
    pub interval: Duration,
}

/// The audit key in the token.
pub struct AuditSigner {
    /// The HSM.
    pub hsm: Hsm,
    /// The key.
    pub key: Arc<KeyInfo>,
}

/// What the handle asks of the writer.
pub(super) enum Job {
    // Boxed: an event is large, and every job moves through the channel.
    Record(Box<Event>, Option<oneshot::Sender<Result<u64, AuditError>>>),
    Checkpoint(oneshot::Sender<Result<u64, AuditError>>),
    Close(oneshot::Sender<()>),
    /// Nothing to write: the thread times its wait again (a record committed alone is
    /// now the oldest not covered, and its checkpoint falls due `interval` after it).
    Tick,
}

/// Lock `m`, even if a thread panicked holding it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer, shared by its thread and by a request that commits its own record when it
/// is alone (see [`Writer::commit_alone`]).
pub(super) type Shared = Arc<Mutex<Writer>>;

/// Whether a commit may sign a checkpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checkpoints {
    /// One now, if any record is not covered.
    Forced,
    /// One if it is due.
    IfDue,
    /// None: the commit runs on a request's thread, where the HSM and the TPM do not go.
    Never,
}

/// The thread that owns the log file: the chain after its last record, and what a
/// checkpoint needs.
pub(super) struct Writer {
    file: File,
    anchor: PathBuf,
    /// The box's name, in every record.
    node: Option<String>,
    next_seq: u64,
    prev: String,
    uncovered: u64,
    oldest_uncovered: Option<Instant>,
    /// The audit key; `None` once the log is closed (see [`Writer::take`]).
    signer: Option<AuditSigner>,
    policy: CheckpointPolicy,
    /// The log's length up to its last durable record, shared with the handle.
    pub(super) durable: Arc<AtomicU64>,
    /// How many records are durable, shared with the handle.
    pub(super) records: Arc<AtomicU64>,
    /// Since when writes fail, if they do.
    failing: Option<Failure>,
    /// A failed write may have left part of itself after the last durable record, and
    /// cutting it off failed too: the next write cuts first.
    torn: bool,
    /// Not before then is a due checkpoint tried again after one failed.
    checkpoint_retry: Option<Instant>,
    counter: Option<TpmCounter>,
    /// Held while the anchor and the counter change together; shared with the handle.
    pub(super) anchor_lock: Arc<Mutex<()>>,
    /// Requests on their way to a record, counted by the handle.
    pub(super) coming: Arc<AtomicUsize>,
    /// How long a small batch waits for them (see [`linger`]).
    commit_delay: CommitDelay,
    /// Where batches are made durable; `None` if it could not be begun (then the log is
    /// synced on every batch).
    ring: Option<Ring>,
    /// How long the last write took to be durable.
    last_write: Duration,
    /// How many records it carried.
    last_batch: usize,
    /// Sealed by a close: nothing more is written.
    closed: bool,
    /// Whose thread runs the commit under way.
    committer: Committer,
    /// The thread's wait ends when the oldest record not covered needs its checkpoint.
    timed: bool,
}

type Reply = oneshot::Sender<Result<u64, AuditError>>;

/// Writes failing since `since`: the first error, and how many records were not written.
struct Failure {
    error: String,
    since: Instant,
    refused: u64,
}

/// The chain after the last durable record: what a failed write goes back to.
struct ChainHead {
    next_seq: u64,
    prev: String,
    uncovered: u64,
    oldest_uncovered: Option<Instant>,
}

impl Writer {
    /// A writer for `file`, `len` bytes long with `tail` its last record; checkpoints are
    /// noted in the anchor file at `anchor` (and the TPM `counter`, if kept).
    pub(super) fn new(
        file: File,
        len: u64,
        tail: Option<&Record>,
        anchor: &Path,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        counter: Option<TpmCounter>,
    ) -> Writer {
        let mut writer = Writer {
            file,
            anchor: anchor.to_owned(),
            node: None,
            next_seq: tail.map_or(0, |r| r.seq + 1),
            prev: tail.map_or(GENESIS.to_owned(), |r| r.hash.clone()),
            uncovered: 0,
            oldest_uncovered: None,
            signer: Some(signer),
            policy: CheckpointPolicy {
                every: policy.every.max(1),
                interval: policy.interval.max(Duration::from_millis(10)),
            },
            durable: Arc::new(AtomicU64::new(len)),
            records: Arc::new(AtomicU64::new(tail.map_or(0, |r| r.seq + 1))),
            failing: None,
            torn: false,
            checkpoint_retry: None,
            counter,
            anchor_lock: Arc::new(Mutex::new(())),
            coming: Arc::new(AtomicUsize::new(0)),
            commit_delay: CommitDelay::default(),
            ring: None,
            last_write: Duration::ZERO,
            last_batch: 0,
            closed: false,
            committer: Committer::writer,
            timed: false,
        };
        // Records after the last checkpoint (before a crash) count as not covered.
        if tail.is_some_and(|r| !matches!(r.event, Event::Checkpoint { .. })) {
            writer.uncovered = 1;
            writer.oldest_uncovered = Some(Instant::now());
        }
        writer
    }

    /// Start the writer's thread; it takes jobs from the sender returned, and counts down
    /// `pending` by the jobs it has committed.
    pub(super) fn spawn(
        self,
        pending: Arc<AtomicUsize>,
    ) -> std::io::Result<(Shared, mpsc::Sender<Job>)> {
        let coming = Arc::clone(&self.coming);
        let shared = Arc::new(Mutex::new(self));
        let writer = Arc::clone(&shared);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(&writer, &rx, &coming, &pending))?;
        Ok((shared, tx))
    }

    /// How long the thread may wait for a job: until a checkpoint falls due.
    fn idle_wait(&mut self) -> Duration {
        self.timed = self.oldest_uncovered.is_some();
        let backoff = self
            .checkpoint_retry
            .map(|r| r.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        match self.oldest_uncovered {
            Some(t) => self
                .policy
                .interval
                .saturating_sub(t.elapsed())
                .max(backoff),
            None => Duration::from_secs(3600),
        }
    }

    /// Chain `jobs` and commit them in one write. Returns the reply owed to a close, which
    /// ends the thread.
    fn take(&mut self, jobs: Vec<Job>) -> Option<oneshot::Sender<()>> {
        let head = self.head();
        let mut records = Vec::new();
        if let Some(f) = &self.failing {
            // Tried first in the next write: if it lands, the log says what it missed.
            let resumed = Event::WritesResumed {
                error: f.error.clone(),
                refused: f.refused,
                failed_ms: u64::try_from(f.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            records.push(self.append(resumed));
        }
        let mut waiting: Vec<(Option<Reply>, Option<u64>)> = Vec::new();
        let mut checkpoints = Checkpoints::IfDue;
        let mut close = None;
        for job in jobs {
            match job {
                Job::Record(event, reply) => {
                    self.commit_delay.observe(&event);
                    let r = self.append(*event);
                    waiting.push((reply, Some(r.seq)));
                    records.push(r);
                }
                Job::Checkpoint(reply) => {
                    checkpoints = Checkpoints::Forced;
                    waiting.push((Some(reply), None));
                }
                Job::Close(reply) => {
                    checkpoints = Checkpoints::Forced;
                    close = Some(reply);
                }
                Job::Tick => {}
            }
        }
        self.commit(head, records, waiting, checkpoints);
        if close.is_some() {
            self.closed = true;
            // Let go of the HSM before the close is answered: if this is its last handle,
            // the module is finalised and unloaded here, while the daemon waits, and not
            // on this thread while the process exits (libsofthsm2's destructors, run by
            // two threads at once, crashed signetd at exit).
            self.signer = None;
        }
        close
    }

    /// Commit `event` alone, on the caller's thread, if the writer is in the plain state
    /// where that is one append and one sync of the ring; otherwise give it back. The
    /// caller must be alone: no other record waiting or on its way, so that no batch is
    /// lost by it, and its thread has nothing else to run meanwhile. And the last write
    /// carried one record: under load the first request after a sync is briefly alone too,
    /// and its own sync would come between the others' and the thread's. A request alone then
    /// spends no wake-up of the writer's thread and none of its own after the sync: two of
    /// the four hand-offs of a lone request (see the README's cost section).
    pub(super) fn commit_alone(
        &mut self,
        event: Box<Event>,
    ) -> Result<Result<u64, AuditError>, Box<Event>> {
        let plain = !self.closed
            && self.failing.is_none()
            && !self.torn
            && self.ring.as_ref().is_some_and(|r| r.fits(MAX_RECORD))
            && self.last_write < ALONE_WRITE_BELOW
            && self.last_batch <= 1
            && !self.checkpoint_due(1);
        if !plain {
            return Err(event);
        }
        self.commit_delay.observe(&event);
        let head = self.head();
        let r = self.append(*event);
        let seq = r.seq;
        let (reply, mut answer) = oneshot::channel();
        self.committer = Committer::request;
        self.commit(
            head,
            vec![r],
            vec![(Some(reply), Some(seq))],
            Checkpoints::Never,
        );
        self.committer = Committer::writer;
        Ok(answer.try_recv().unwrap_or(Err(AuditError::Closed)))
    }

    /// Whether the thread must be sent a [`Job::Tick`]: records committed alone are not
    /// covered and its wait does not end for their checkpoint. Counted as sent.
    pub(super) fn needs_tick(&mut self) -> bool {
        let needs = self.oldest_uncovered.is_some() && !self.timed;
        self.timed |= needs;
        needs
    }

    fn head(&self) -> ChainHead {
        ChainHead {
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            uncovered: self.uncovered,
            oldest_uncovered: self.oldest_uncovered,
        }
    }

    /// Name `node` in every record from now on.
    pub(super) fn naming(mut self, node: Option<String>) -> Writer {
        self.node = node;
        self
    }

    /// Make batches durable in the ring at `path` (see [`super::ring`]), begun at the
    /// log's end. Without it (a ring that cannot be made) every batch syncs the log, as
    /// safe and slower.
    pub(super) fn with_ring(mut self, path: &Path) -> Writer {
        let end = self.durable.load(Ordering::Acquire);
        match Ring::begin(path, &self.file, end, self.next_seq, &self.prev) {
            Ok(ring) => self.ring = Some(ring),
            Err(e) => tracing::warn!(
                error = %e,
                ring = %path.display(),
                "audit ring not begun: every batch syncs the log itself"
            ),
        }
        self
    }

    /// Forget the records chained since `head`: they were not written.
    fn rewind(&mut self, head: ChainHead) {
        self.next_seq = head.next_seq;
        self.prev = head.prev;
        self.uncovered = head.uncovered;
        self.oldest_uncovered = head.oldest_uncovered;
    }

    /// Chain `event` after the last record.
    fn append(&mut self, event: Event) -> Record {
        let r = Record::seal(
            self.next_seq,
            now_ms(),
            self.prev.clone(),
            self.node.clone(),
            event,
        );
        self.next_seq += 1;
        self.prev = r.hash.clone();
        if !matches!(r.event, Event::Checkpoint { .. }) {
            self.uncovered += 1;
            self.oldest_uncovered.get_or_insert_with(Instant::now);
        }
        r
    }

    /// Write `records` (and a checkpoint if one is due or `force`d) in one write, sync,
    /// then answer everyone waiting.
    fn commit(
        &mut self,
        head: ChainHead,
        mut records: Vec<Record>,
        waiting: Vec<(Option<Reply>, Option<u64>)>,
        checkpoints: Checkpoints,
    ) {
        let mut checkpoint = None;
        let signed = match checkpoints {
            Checkpoints::Never => None,
            c => self.checkpoint_if_due(c == Checkpoints::Forced),
        };
        if let Some(r) = signed {
            checkpoint = Some((r.seq, r.hash.clone()));
            records.push(r);
        }
        let outcome = if records.is_empty() {
            Ok(())
        } else {
            // The log itself is synced under a checkpoint: the anchor names it next.
            self.write(&records, checkpoint.is_some())
        };
        match &outcome {
            Err(AuditError::Write(e)) => {
                self.rewind(head);
                let lost = records
                    .iter()
                    .filter(|r| !matches!(r.event, Event::WritesResumed { .. }))
                    .count() as u64;
                match &mut self.failing {
                    Some(f) => f.refused += lost,
                    None => {
                        tracing::error!(error = %e, "audit log write failed: refusing requests until it takes writes again");
                        self.failing = Some(Failure {
                            error: e.clone(),
                            since: Instant::now(),
                            refused: lost,
                        });
                    }
                }
            }
            Ok(()) if !records.is_empty() => {
                if let Some(f) = self.failing.take() {
                    tracing::warn!(
                        refused = f.refused,
                        after = ?f.since.elapsed(),
                        "audit log takes writes again"
                    );
                }
            }
            _ => {}
        }
        if outcome.is_ok() {
            for r in &records {
                emit(r);
            }
            if let Some((seq, hash)) = &checkpoint {
                crate::metrics::checkpointed();
                if let Err(e) = self.anchor(*seq, hash) {
                    tracing::error!(error = %e, seq, "audit anchor not written");
                }
            }
        }
        let last_checkpoint = checkpoint.as_ref().map(|a| a.0);
        for (reply, seq) in waiting {
            let Some(reply) = reply else { continue };
            let answer = match (&outcome, seq) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), Some(seq)) => Ok(seq),
                (Ok(()), None) => Ok(last_checkpoint.unwrap_or(self.next_seq.saturating_sub(1))),
            };
            let _ = reply.send(answer);
        }
    }

    /// A signed checkpoint, if records are not covered and one is due (or `force`d), and
    /// writes do not fail. After one could not be signed, not again before
    /// [`CHECKPOINT_RETRY`] unless forced.
    fn checkpoint_if_due(&mut self, force: bool) -> Option<Record> {
        if self.uncovered > 0 && (self.checkpoint_due(0) || force) && self.failing.is_none() {
            match self.sign_checkpoint() {
                Ok(r) => {
                    self.checkpoint_retry = None;
                    return Some(r);
                }
                Err(e) => {
                    self.checkpoint_retry = Some(Instant::now() + CHECKPOINT_RETRY);
                    tracing::error!(error = %e, "audit checkpoint not signed; retrying later")
                }
            }
        }
        None
    }

    /// Whether a checkpoint is due once `more` records are added (and not put off by a
    /// failed one).
    fn checkpoint_due(&self, more: u64) -> bool {
        let due = self.uncovered + more >= self.policy.every
            || self
                .oldest_uncovered
                .is_some_and(|t| t.elapsed() >= self.policy.interval);
        let backing_off = self.checkpoint_retry.is_some_and(|r| Instant::now() < r);
        due && !backing_off
    }

    fn sign_checkpoint(&mut self) -> Result<Record, String> {
        let seq = self.next_seq;
        let time_ms = now_ms();
        let prev = super::record::hash_from_hex(&self.prev).ok_or("bad chain head")?;
        let signer = self.signer.as_ref().ok_or(CLOSED)?;
        let scheme = signer.key.algorithm.default_scheme();
        let message = Record::signed_bytes(seq, time_ms, &prev);
        let signature = signer
            .hsm
            .sign_blocking(&signer.key, scheme, &message)
            .map_err(|e| e.to_string())?;
        use base64::Engine;
        let r = Record::seal(
            seq,
            time_ms,
            self.prev.clone(),
            self.node.clone(),
            Event::Checkpoint {
                algorithm: scheme_name(scheme),
                signature: base64::engine::general_purpose::STANDARD.encode(signature),
            },
        );
        self.next_seq += 1;
        self.prev = r.hash.clone();
        self.uncovered = 0;
        self.oldest_uncovered = None;
        Ok(r)
    }

    /// Note checkpoint `seq` (hash `hash`, durable) in the anchor: read the TPM counter,
    /// sign the anchor with its next value, write it, then increment the counter. A crash
    /// between the last two leaves the anchor one ahead, which verifies; the other order
    /// would leave the counter ahead, a rollback. A failure leaves the anchor as it was (the
    /// log still reaches it) until the next checkpoint.
    fn anchor(&mut self, seq: u64, hash: &str) -> Result<(), String> {
        let _both = lock(&self.anchor_lock);
        let mut tpm = match &self.counter {
            Some(c) => Some(c.open().map_err(|e| e.to_string())?),
            None => None,
        };
        let next = match (&self.counter, &mut tpm) {
            (Some(c), Some(tpm)) => match tpm.counter_state(c.index).map_err(|e| e.to_string())? {
                CounterState::Value(v) => Some(v.saturating_add(1)),
                other => return Err(format!("the TPM counter holds no value ({other:?})")),
            },
            _ => None,
        };
        let signer = self.signer.as_ref().ok_or(CLOSED)?;
        let scheme = signer.key.algorithm.default_scheme();
        let anchor = Anchor::sign(seq, hash, next, scheme, |m| {
            signer.hsm.sign_blocking(&signer.key, scheme, m)
        })?;
        write_anchor(&self.anchor, &anchor).map_err(|e| e.to_string())?;
        if let (Some(c), Some(tpm)) = (&self.counter, &mut tpm) {
            let now = tpm
                .counter_increment(c.index)
                .map_err(|e| format!("the anchor is written, the counter not incremented: {e}"))?;
            if Some(now) != next {
                tracing::warn!(
                    counter = now,
                    anchor = next,
                    "the TPM counter moved besides the audit log: is another program using NV index {:#010x}?",
                    c.index
                );
            }
        }
        Ok(())
    }

    fn write(&mut self, records: &[Record], sync_log: bool) -> Result<(), AuditError> {
        if self.torn {
            self.cut_back()
                .map_err(|e| AuditError::Write(format!("cutting off a failed write: {e}")))?;
        }
        let mut buf = Vec::with_capacity(records.len() * 400);
        for r in records {
            buf.extend_from_slice(r.to_line().as_bytes());
            buf.push(b'\n');
        }
        let started = std::time::Instant::now();
        let written = self
            .file
            .write_all(&buf)
            .and_then(|_| self.make_durable(&buf, sync_log));
        if let Err(e) = written {
            // Part of the write may be in the file (a disk that filled midway): cut it
            // off, so that the next write follows the last durable record.
            self.torn = self.cut_back().is_err();
            return Err(AuditError::Write(e.to_string()));
        }
        self.last_write = started.elapsed();
        self.last_batch = records.len();
        crate::metrics::committed(records.len(), self.last_write, self.committer);
        self.durable.fetch_add(buf.len() as u64, Ordering::AcqRel);
        self.records.store(self.next_seq, Ordering::Release);
        Ok(())
    }
}

impl Writer {
    /// Make `lines`, just appended to the log, durable: in the ring; or in the log itself
    /// when the ring is full, the log must be synced (`sync_log`), or there is no ring,
    /// and then the ring begins again at the log's end.
    fn make_durable(&mut self, lines: &[u8], sync_log: bool) -> std::io::Result<()> {
        let Some(ring) = &mut self.ring else {
            return self.file.sync_data();
        };
        if !sync_log && ring.fits(lines.len()) {
            return ring.append(lines);
        }
        self.file.sync_data()?;
        let end = self.durable.load(Ordering::Acquire) + lines.len() as u64;
        // The records are durable in the log whatever happens to the ring now.
        if let Err(e) = ring.restart(end, self.next_seq, &self.prev) {
            tracing::error!(error = %e, "audit ring not begun again: every batch syncs the log itself until signetd restarts");
            self.ring = None;
        }
        Ok(())
    }

    /// Cut the file back to its last durable record. Shrinking needs no free space.
    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.durable.load(Ordering::Acquire))?;
        self.file.sync_data()?;
        self.torn = false;
        Ok(())
    }
}

/// The writer's thread: wait for jobs (or a checkpoint's time), take every job waiting,
/// linger for more under load, commit them as one batch.
fn run(
    writer: &Mutex<Writer>,
    rx: &mpsc::Receiver<Job>,
    coming: &AtomicUsize,
    pending: &AtomicUsize,
) {
    loop {
        let wait = lock(writer).idle_wait();
        let first = match rx.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let mut writer = lock(writer);
                let head = writer.head();
                writer.commit(head, Vec::new(), Vec::new(), Checkpoints::Forced);
                return;
            }
        };
        let mut jobs: Vec<Job> = first
            .into_iter()
            .chain(rx.try_iter().take(MAX_BATCH))
            .collect();
        let delay = lock(writer).commit_delay.current();
        linger(rx, &mut jobs, coming, delay);
        let taken = jobs.len();
        let close = lock(writer).take(jobs);
        pending.fetch_sub(taken, Ordering::AcqRel);
        if let Some(reply) = close {
            let _ = reply.send(());
            return;
        }
    }
}

/// Under load, take more jobs into a small batch: while requests are on their way to a
/// record (`coming`) and fewer than [`LINGER_BELOW`] records (and nothing else) wait, sleep
/// `delay` once, then take what came meanwhile (PostgreSQL's `commit_delay` with
/// `commit_siblings` = 1). A sync costs this machine's kernel tens of microseconds of CPU
/// however little it carries; under load, a sync that waits a moment carries several
/// records. Alone, a request never waits. One sleep rather than a wake-up per arriving
/// record: each wake-up costs about what the sync saves. A batch that is already large
/// (fast answers arrive several per sync) goes at once: waiting would only add latency.
/// The delay follows the requests' recent time ([`CommitDelay`]).
fn linger(rx: &mpsc::Receiver<Job>, jobs: &mut Vec<Job>, coming: &AtomicUsize, delay: Duration) {
    let only_records = jobs.iter().all(|j| matches!(j, Job::Record(..)));
    if jobs.is_empty()
        || jobs.len() >= LINGER_BELOW
        || !only_records
        || coming.load(Ordering::Acquire) == 0
    {
        return;
    }
    std::thread::sleep(delay);
    jobs.extend(rx.try_iter().take(MAX_BATCH.saturating_sub(jobs.len())));
}

/// Each record may also go to the daemon's log, at DEBUG (`RUST_LOG=signet::audit=debug`):
/// the log file is the record, and a second encoding and a log line per request on the
/// way to every answer cost more than the copy is worth by default. The macro encodes the
/// record only when that level is on.
fn emit(r: &Record) {
    tracing::debug!(
        target: "signet::audit",
        seq = r.seq,
        kind = r.event.kind(),
        record = %r.to_line(),
        "audit"
    );
}

fn write_anchor(path: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(anchor).map_err(std::io::Error::other)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Job {
        let start = Event::Start {
            version: "test".into(),
            torn_bytes: 0,
        };
        Job::Record(Box::new(start), None)
    }

    /// Long enough that a record sent 20 ms in arrives within it on a loaded machine.
    const DELAY: Duration = Duration::from_millis(500);

    #[test]
    fn a_record_on_its_way_joins_the_batch() {
        let (tx, rx) = mpsc::channel();
        let coming = AtomicUsize::new(1);
        let mut jobs = vec![record()];
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(record()).expect("send");
        });
        linger(&rx, &mut jobs, &coming, DELAY);
        sender.join().expect("sender");
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn nobody_waits_alone_or_for_a_checkpoint_or_in_a_large_batch() {
        let (_tx, rx) = mpsc::channel();
        let started = Instant::now();
        let mut alone = vec![record()];
        linger(&rx, &mut alone, &AtomicUsize::new(0), DELAY);
        let (reply, _) = oneshot::channel();
        let mut checkpoint = vec![record(), Job::Checkpoint(reply)];
        linger(&rx, &mut checkpoint, &AtomicUsize::new(3), DELAY);
        let mut large: Vec<Job> = (0..LINGER_BELOW).map(|_| record()).collect();
        linger(&rx, &mut large, &AtomicUsize::new(3), DELAY);
        let mut none = Vec::new();
        linger(&rx, &mut none, &AtomicUsize::new(3), DELAY);
        assert!(started.elapsed() < DELAY, "{:?}", started.elapsed());
        assert_eq!((alone.len(), checkpoint.len(), none.len()), (1, 2, 0));
        assert_eq!(large.len(), LINGER_BELOW);
    }
}

//! The writer: one thread owns the log file. Callers hand it events and wait for their
//! record to be durable; it takes every event waiting at that moment, appends them in one
//! write, and makes them durable with one `fdatasync` (group commit). After
//! `checkpoint_every` records, or `checkpoint_secs` with records not yet covered, it adds a
//! checkpoint signed by the audit key in the HSM and notes it in the anchor file, signed
//! too, with the TPM counter's next value; then it increments the counter. All of that is
//! on this thread, once per checkpoint, never on a request's path.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use signet_config::sealed::CounterState;
use signet_pki::verify::PublicKey;

use super::anchor::{check_rollback, Anchor, AnchorError, TpmCounter};
use super::record::{Event, Record, GENESIS};
use super::verify::scheme_name;
use signet_hsm::{Hsm, KeyInfo};

/// Events taken into one write at most.
const MAX_BATCH: usize = 4096;
/// After a checkpoint could not be signed (the HSM lost), the next try waits this long:
/// neither a log line per request nor a busy loop while the HSM is away.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// Why a record could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// Writing or syncing the log failed: the records of this write are not in the log (it
    /// is cut back to its last durable record) and their requests are refused; the next
    /// write tries again.
    #[error("audit log write failed: {0}")]
    Write(String),
    /// The writer is gone (shutting down).
    #[error("audit log closed")]
    Closed,
    /// Opening the log.
    #[error("audit log {path}: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The anchor does not hold, or the log was rolled back: signetd does not start on it
    /// (it would sign a new anchor over the damage).
    #[error(
        "{0}; signetd does not start on it (README: the audit log). After restoring the \
         state directory from a backup on purpose, move the anchor aside and give the \
         counter a new index (audit.tpm_counter_index)"
    )]
    Anchor(#[from] AnchorError),
    /// The log ends before the checkpoint the anchor names.
    #[error(
        "the audit log ends at record {last}, but the anchor names checkpoint {anchor}: the \
         log was truncated; signetd does not start on it"
    )]
    Truncated {
        /// The last record in the log (none: empty).
        last: String,
        /// The anchor's checkpoint.
        anchor: u64,
    },
    /// The TPM counter could not be read or prepared.
    #[error("audit TPM counter (NV index {index:#010x}): {message}")]
    Counter {
        /// The NV index.
        index: u32,
        /// What went wrong.
        message: String,
    },
}

/// What protects the anchor: the audit key's public half (to check the anchor found at
/// start) and the TPM counter, when one is kept.
pub struct AnchorPolicy {
    /// The audit certificate's key.
    pub key: PublicKey,
    /// The TPM counter.
    pub counter: Option<TpmCounter>,
}

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

enum Job {
    Record(Event, Option<oneshot::Sender<Result<u64, AuditError>>>),
    Checkpoint(oneshot::Sender<Result<u64, AuditError>>),
    Close(oneshot::Sender<()>),
}

/// A handle on the log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    durable: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
    path: PathBuf,
    anchor: PathBuf,
    counter: Option<TpmCounter>,
    /// Held while the anchor and the counter change together, and while both are read.
    anchor_lock: Arc<Mutex<()>>,
}

impl AuditLog {
    /// Open (or create) the log at `path`, cut a torn last line left by a crash, check the
    /// anchor (its signature, the TPM counter, that the log reaches it), prepare the TPM
    /// counter, and start the writer with a `start` record. Blocking (files, the TPM).
    pub fn open(
        path: &Path,
        anchor: &Path,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        protection: AnchorPolicy,
    ) -> Result<AuditLog, AuditError> {
        let open_err = |message: String| AuditError::Open {
            path: path.to_owned(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| open_err(e.to_string()))?;
        let (tail, torn) = recover(&mut file).map_err(open_err)?;
        let needs_anchor = check_at_start(anchor, tail.as_ref(), &protection)?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| open_err(e.to_string()))?;
        let durable = Arc::new(AtomicU64::new(len));
        let records = Arc::new(AtomicU64::new(tail.as_ref().map_or(0, |r| r.seq + 1)));
        let (tx, rx) = mpsc::channel();
        let mut writer = Writer {
            file,
            anchor: anchor.to_owned(),
            next_seq: tail.as_ref().map_or(0, |r| r.seq + 1),
            prev: tail.as_ref().map_or(GENESIS.to_owned(), |r| r.hash.clone()),
            uncovered: 0,
            oldest_uncovered: None,
            signer,
            policy: CheckpointPolicy {
                every: policy.every.max(1),
                interval: policy.interval.max(Duration::from_millis(10)),
            },
            durable: Arc::clone(&durable),
            records: Arc::clone(&records),
            failing: None,
            torn: false,
            checkpoint_retry: None,
            counter: protection.counter.clone(),
            anchor_lock: Arc::new(Mutex::new(())),
        };
        let anchor_lock = Arc::clone(&writer.anchor_lock);
        // Records after the last checkpoint (before a crash) count as not covered.
        if tail
            .as_ref()
            .is_some_and(|r| !matches!(r.event, Event::Checkpoint { .. }))
        {
            writer.uncovered = 1;
            writer.oldest_uncovered = Some(Instant::now());
        }
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| open_err(e.to_string()))?;
        let log = AuditLog {
            tx,
            durable,
            records,
            path: path.to_owned(),
            anchor: anchor.to_owned(),
            counter: protection.counter,
            anchor_lock,
        };
        log.record_detached(Event::Start {
            version: env!("CARGO_PKG_VERSION").into(),
            torn_bytes: torn,
        });
        if needs_anchor {
            // A checkpoint now, so that the anchor is signed (and carries the counter) from
            // the start; nobody waits for it.
            let (tx, _) = oneshot::channel();
            let _ = log.tx.send(Job::Checkpoint(tx));
        }
        Ok(log)
    }

    /// Append `event`; returns its sequence number once it is durable.
    pub async fn record(&self, event: Event) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Record(event, Some(tx)))
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Append `event` without waiting (nothing is answered on the strength of it).
    pub fn record_detached(&self, event: Event) {
        let _ = self.tx.send(Job::Record(event, None));
    }

    /// Write a checkpoint now (if any record is not covered); returns the sequence number
    /// of the last checkpoint.
    pub async fn checkpoint(&self) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Checkpoint(tx))
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Seal the log with a last checkpoint and stop the writer.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The log's bytes that are durable now (a record being written is left out).
    pub fn durable_bytes(&self) -> std::io::Result<Vec<u8>> {
        let len = self.durable.load(Ordering::Acquire);
        let mut buf = Vec::new();
        File::open(&self.path)?.take(len).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The last `n` durable records' lines.
    pub fn durable_tail(&self, n: usize) -> std::io::Result<Vec<u8>> {
        tail_bytes(&self.path, self.durable.load(Ordering::Acquire), n)
    }

    /// How many records are durable.
    pub fn head(&self) -> u64 {
        self.records.load(Ordering::Acquire)
    }

    /// The anchor file's path.
    pub fn anchor_path(&self) -> &Path {
        &self.anchor
    }

    /// The anchor and what the TPM counter holds (`None` when no counter is kept), read
    /// together: no checkpoint moves either in between. Blocking (the TPM).
    pub fn anchor_and_counter(&self) -> Result<(Option<Anchor>, Option<CounterState>), String> {
        let _both = lock(&self.anchor_lock);
        let state = match &self.counter {
            None => None,
            Some(c) => Some(c.state().map_err(|e| e.to_string())?),
        };
        Ok((read_anchor(&self.anchor)?, state))
    }

    /// The TPM counter kept, if any.
    pub fn counter(&self) -> Option<&TpmCounter> {
        self.counter.as_ref()
    }
}

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Before anything is appended: the anchor found must be signed by the audit key, the TPM
/// counter must not be ahead of it, and the log must reach its checkpoint. Otherwise the
/// next checkpoint would sign a fresh anchor over a rolled-back log. Then the counter is
/// defined (once) and given its first value. Returns whether a checkpoint should be made
/// at once, so that the anchor is signed and carries the counter.
fn check_at_start(
    path: &Path,
    tail: Option<&Record>,
    protection: &AnchorPolicy,
) -> Result<bool, AuditError> {
    let counter_err = |index: u32| {
        move |e: signet_config::sealed::CounterError| AuditError::Counter {
            index,
            message: e.to_string(),
        }
    };
    let anchor = read_anchor(path).map_err(|message| AuditError::Open {
        path: path.to_owned(),
        message,
    })?;
    // An anchor of an older version has no signature: it is taken as no anchor (and
    // replaced at once) unless a counter says otherwise below.
    let anchor = match anchor {
        Some(a) => match a.check_signature(&protection.key) {
            Ok(()) => Some(a),
            Err(AnchorError::Unsigned { .. }) => {
                tracing::warn!(
                    seq = a.seq,
                    "the audit anchor is not signed (an older signetd wrote it): signing a new one"
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(a) = &anchor {
        if tail.is_none_or(|t| t.seq < a.seq) {
            return Err(AuditError::Truncated {
                last: tail.map_or("none (empty)".into(), |t| t.seq.to_string()),
                anchor: a.seq,
            });
        }
    }
    if let Some(c) = &protection.counter {
        let state = c.state().map_err(counter_err(c.index))?;
        check_rollback(anchor.as_ref(), state)?;
        let value = c.prepare().map_err(counter_err(c.index))?;
        tracing::info!(
            index = format!("{:#010x}", c.index),
            value,
            "audit rollback protection: TPM counter"
        );
    }
    Ok(match &anchor {
        None => protection.counter.is_some() || tail.is_some(),
        Some(a) => protection.counter.is_some() && a.tpm_counter.is_none(),
    })
}

/// Read the anchor at `path`; `None` if there is none yet.
pub fn read_anchor(path: &Path) -> Result<Option<Anchor>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Cut an incomplete last line (a write a crash interrupted: no one was answered for it);
/// returns the last complete record and how many bytes were cut. It reads the file backward
/// from its end, so starting costs the same whatever the log's length.
fn recover(file: &mut File) -> Result<(Option<Record>, u64), String> {
    recover_with_chunk(file, 64 * 1024)
}

fn recover_with_chunk(file: &mut File, chunk: u64) -> Result<(Option<Record>, u64), String> {
    let io = |e: std::io::Error| e.to_string();
    let len = file.metadata().map_err(io)?.len();
    let complete = rfind_newlines(file, len, 1, chunk)
        .map_err(io)?
        .map_or(0, |i| i + 1);
    let torn = len - complete;
    if torn > 0 {
        tracing::warn!(torn, "audit log: cutting an incomplete last line");
        file.set_len(complete)
            .and_then(|_| file.sync_all())
            .map_err(io)?;
    }
    if complete == 0 {
        return Ok((None, torn));
    }
    let line = read_last_lines(file, complete, 1, chunk).map_err(io)?;
    let last = serde_json::from_slice::<Record>(line.trim_ascii_end())
        .map_err(|e| format!("the last record does not parse ({e}); the log needs an operator"))?;
    Ok((Some(last), torn))
}

/// The last `n` whole lines of the log at `path` among its first `end` bytes (a torn line
/// at the end is left out), read backward: `audit tail` costs the same however long the log.
pub fn tail_bytes(path: &Path, end: u64, n: usize) -> std::io::Result<Vec<u8>> {
    const CHUNK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let complete = rfind_newlines(&mut file, end, 1, CHUNK)?.map_or(0, |i| i + 1);
    read_last_lines(&mut file, complete, n, CHUNK)
}

/// The bytes of the last `n` lines before `end` (`end` just after a newline, or 0).
fn read_last_lines(file: &mut File, end: u64, n: usize, chunk: u64) -> std::io::Result<Vec<u8>> {
    if n == 0 || end == 0 {
        return Ok(Vec::new());
    }
    // The last line's own newline is at end - 1; the n-th newline before it ends the line
    // just before the first one wanted.
    let start = rfind_newlines(file, end - 1, n, chunk)?.map_or(0, |i| i + 1);
    let mut bytes = vec![0; (end - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The offset of the `n`-th `\n` counted backward from `end` (exclusive), reading `chunk`
/// bytes at a time; `None` if there are fewer.
fn rfind_newlines(file: &mut File, end: u64, n: usize, chunk: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0; chunk as usize];
    let mut pos = end;
    let mut seen = 0;
    while pos > 0 {
        let from = pos.saturating_sub(chunk);
        let window = &mut buf[..(pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(window)?;
        for (i, _) in window
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'\n')
        {
            seen += 1;
            if seen == n {
                return Ok(Some(from + i as u64));
            }
        }
        pos = from;
    }
    Ok(None)
}

struct Writer {
    file: File,
    anchor: PathBuf,
    next_seq: u64,
    prev: String,
    uncovered: u64,
    oldest_uncovered: Option<Instant>,
    signer: AuditSigner,
    policy: CheckpointPolicy,
    durable: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
    /// Since when writes fail, if they do.
    failing: Option<Failure>,
    /// A failed write may have left part of itself after the last durable record, and
    /// cutting it off failed too: the next write cuts first.
    torn: bool,
    /// Not before then is a due checkpoint tried again after one failed.
    checkpoint_retry: Option<Instant>,
    counter: Option<TpmCounter>,
    anchor_lock: Arc<Mutex<()>>,
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
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        loop {
            let backoff = self
                .checkpoint_retry
                .map(|r| r.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let wait = match self.oldest_uncovered {
                Some(t) => self
                    .policy
                    .interval
                    .saturating_sub(t.elapsed())
                    .max(backoff),
                None => Duration::from_secs(3600),
            };
            let first = match rx.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(self.head(), Vec::new(), Vec::new(), true);
                    return;
                }
            };
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
            let mut force = false;
            let mut close = None;
            for job in first.into_iter().chain(rx.try_iter().take(MAX_BATCH)) {
                match job {
                    Job::Record(event, reply) => {
                        let r = self.append(event);
                        waiting.push((reply, Some(r.seq)));
                        records.push(r);
                    }
                    Job::Checkpoint(reply) => {
                        force = true;
                        waiting.push((Some(reply), None));
                    }
                    Job::Close(reply) => {
                        force = true;
                        close = Some(reply);
                    }
                }
            }
            self.commit(head, records, waiting, force);
            if let Some(reply) = close {
                let _ = reply.send(());
                return;
            }
        }
    }

    fn head(&self) -> ChainHead {
        ChainHead {
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            uncovered: self.uncovered,
            oldest_uncovered: self.oldest_uncovered,
        }
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
        let r = Record::seal(self.next_seq, now_ms(), self.prev.clone(), event);
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
        force: bool,
    ) {
        let due = self.uncovered >= self.policy.every
            || self
                .oldest_uncovered
                .is_some_and(|t| t.elapsed() >= self.policy.interval);
        let backing_off = self.checkpoint_retry.is_some_and(|r| Instant::now() < r);
        let mut checkpoint = None;
        if self.uncovered > 0 && (due && !backing_off || force) && self.failing.is_none() {
            match self.sign_checkpoint() {
                Ok(r) => {
                    self.checkpoint_retry = None;
                    checkpoint = Some((r.seq, r.hash.clone()));
                    records.push(r);
                }
                Err(e) => {
                    self.checkpoint_retry = Some(Instant::now() + CHECKPOINT_RETRY);
                    tracing::error!(error = %e, "audit checkpoint not signed; retrying later")
                }
            }
        }
        let outcome = if records.is_empty() {
            Ok(())
        } else {
            self.write(&records)
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

    fn sign_checkpoint(&mut self) -> Result<Record, String> {
        let seq = self.next_seq;
        let time_ms = now_ms();
        let prev = super::record::hash_from_hex(&self.prev).ok_or("bad chain head")?;
        let scheme = self.signer.key.algorithm.default_scheme();
        let message = Record::signed_bytes(seq, time_ms, &prev);
        let signature = self
            .signer
            .hsm
            .sign_blocking(&self.signer.key, scheme, &message)
            .map_err(|e| e.to_string())?;
        use base64::Engine;
        let r = Record::seal(
            seq,
            time_ms,
            self.prev.clone(),
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
        let scheme = self.signer.key.algorithm.default_scheme();
        let anchor = Anchor::sign(seq, hash, next, scheme, |m| {
            self.signer.hsm.sign_blocking(&self.signer.key, scheme, m)
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

    fn write(&mut self, records: &[Record]) -> Result<(), AuditError> {
        if self.torn {
            self.cut_back()
                .map_err(|e| AuditError::Write(format!("cutting off a failed write: {e}")))?;
        }
        let mut buf = Vec::with_capacity(records.len() * 400);
        for r in records {
            buf.extend_from_slice(r.to_line().as_bytes());
            buf.push(b'\n');
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data());
        if let Err(e) = written {
            // Part of the write may be in the file (a disk that filled midway): cut it
            // off, so that the next write follows the last durable record.
            self.torn = self.cut_back().is_err();
            return Err(AuditError::Write(e.to_string()));
        }
        self.durable.fetch_add(buf.len() as u64, Ordering::AcqRel);
        self.records.store(self.next_seq, Ordering::Release);
        Ok(())
    }
}

impl Writer {
    /// Cut the file back to its last durable record. Shrinking needs no free space.
    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.durable.load(Ordering::Acquire))?;
        self.file.sync_data()?;
        self.torn = false;
        Ok(())
    }
}

/// Each record also goes to the daemon's log (the journal, or stdout/stderr as JSON).
fn emit(r: &Record) {
    tracing::info!(
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64) -> String {
        let event = Event::Checkpoint {
            algorithm: "ecdsa-sha256".into(),
            signature: "x".repeat(50),
        };
        Record::seal(seq, 1_000 + seq, GENESIS.to_owned(), event).to_line()
    }

    fn file_with(text: &str) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_last_complete_record_is_found_from_the_end_and_a_torn_tail_cut() {
        let whole = format!("{}\n{}\n{}\n", line(0), line(1), line(2));
        // Chunks smaller than a line, of a line's size, and larger than the file.
        for chunk in [7, 64, 100_000] {
            let mut f = file_with(&whole);
            let (last, torn) = recover_with_chunk(&mut f, chunk).unwrap();
            assert_eq!((last.map(|r| r.seq), torn), (Some(2), 0), "chunk {chunk}");

            let mut f = file_with(&format!("{whole}{{\"seq\":3,\"ti"));
            let (last, torn) = recover_with_chunk(&mut f, chunk).unwrap();
            assert_eq!((last.map(|r| r.seq), torn), (Some(2), 12), "chunk {chunk}");
            assert_eq!(f.metadata().unwrap().len(), whole.len() as u64);
        }
    }

    #[test]
    fn the_last_lines_are_read_backward_whatever_the_chunk() {
        let lines: Vec<String> = (0..5).map(|i| format!("{}\n", line(i))).collect();
        let whole = lines.concat();
        for chunk in [3, 64, 100_000] {
            let mut f = file_with(&whole);
            for n in 0..=7 {
                let got = read_last_lines(&mut f, whole.len() as u64, n, chunk).unwrap();
                let want = lines[lines.len().saturating_sub(n)..].concat();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    want,
                    "chunk {chunk}, n {n}"
                );
            }
            // Only the first `end` bytes count (the daemon's durable length).
            let end = (lines[0].len() + lines[1].len()) as u64;
            let got = read_last_lines(&mut f, end, 1, chunk).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), lines[1], "chunk {chunk}");
        }
    }

    #[test]
    fn a_tail_leaves_out_a_torn_last_line() {
        let whole = format!("{}\n{}\n", line(0), line(1));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("{whole}{{\"seq\":2")).unwrap();
        let len = file.as_file().metadata().unwrap().len();
        let got = tail_bytes(file.path(), len, 5).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), whole);
    }

    #[test]
    fn an_empty_or_wholly_torn_log_has_no_last_record() {
        let mut f = file_with("");
        assert_eq!(recover_with_chunk(&mut f, 8).unwrap().1, 0);
        let mut f = file_with("{\"seq\":0");
        let (last, torn) = recover_with_chunk(&mut f, 4).unwrap();
        assert!(last.is_none());
        assert_eq!((torn, f.metadata().unwrap().len()), (8, 0));
    }

    #[test]
    fn a_last_line_that_is_not_a_record_needs_an_operator() {
        let mut f = file_with(&format!("{}\nnot json\n", line(0)));
        let e = recover_with_chunk(&mut f, 5).unwrap_err();
        assert!(e.contains("needs an operator"), "{e}");
    }
}

//! The handle on the audit log, and opening it: a torn last line cut, the anchor and the TPM
//! counter checked before anything is appended (a log rolled back is not signed over), then
//! the writer started. What the writer does is in `writer.rs`, the backward reads in
//! `backward.rs`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use signet_config::sealed::CounterState;
use signet_pki::verify::PublicKey;

use super::anchor::{check_rollback, Anchor, AnchorError, TpmCounter};
use super::backward::recover;
use super::record::{Event, Record};
use super::ring::{self, Replayed};
use super::writer::{lock, Job, Shared, Writer};

pub use super::backward::tail_bytes;
pub use super::error::AuditError;
pub use super::writer::{AuditSigner, CheckpointPolicy};

/// What protects the anchor: the audit key's public half (to check the anchor found at
/// start) and the TPM counter, when one is kept.
pub struct AnchorPolicy {
    /// The audit certificate's key.
    pub key: PublicKey,
    /// The TPM counter.
    pub counter: Option<TpmCounter>,
}

/// A handle on the log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    /// The writer itself, for a record that commits alone (see [`AuditLog::record`]).
    writer: Shared,
    /// Jobs handed to the writer's thread and not yet committed.
    pending: Arc<AtomicUsize>,
    durable: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
    path: PathBuf,
    anchor: PathBuf,
    counter: Option<TpmCounter>,
    /// Held while the anchor and the counter change together, and while both are read.
    anchor_lock: Arc<Mutex<()>>,
    /// Requests on their way to a record (see [`AuditLog::expect_record`]).
    coming: Arc<AtomicUsize>,
}

/// A request that will hand the log a record: while any is alive, the writer waits a
/// little for it before it syncs (see `Writer::linger`). Dropped when the record is handed
/// over, or when the request ends without one.
pub struct Coming(Arc<AtomicUsize>);

impl Drop for Coming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuditLog {
    /// Open (or create) the log at `path`, cut a torn last line left by a crash, check the
    /// anchor (its signature, the TPM counter, that the log reaches it), prepare the TPM
    /// counter, and start the writer with a `start` record. Every record names `node`, the
    /// box. Blocking (files, the TPM).
    pub fn open(
        path: &Path,
        anchor: &Path,
        signer: AuditSigner,
        policy: CheckpointPolicy,
        protection: AnchorPolicy,
        node: Option<String>,
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
        let ring_path = ring::path_for(path);
        replay_ring(&ring_path, &mut file).map_err(open_err)?;
        let (tail, torn) = recover(&mut file).map_err(open_err)?;
        let needs_anchor = check_at_start(anchor, tail.as_ref(), &protection)?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| open_err(e.to_string()))?;
        let writer = Writer::new(
            file,
            len,
            tail.as_ref(),
            anchor,
            signer,
            policy,
            protection.counter.clone(),
        )
        .naming(node)
        .with_ring(&ring_path);
        let durable = Arc::clone(&writer.durable);
        let records = Arc::clone(&writer.records);
        let anchor_lock = Arc::clone(&writer.anchor_lock);
        let coming = Arc::clone(&writer.coming);
        let pending = Arc::new(AtomicUsize::new(0));
        let (writer, tx) = writer
            .spawn(Arc::clone(&pending))
            .map_err(|e| open_err(e.to_string()))?;
        let log = AuditLog {
            tx,
            writer,
            pending,
            durable,
            records,
            path: path.to_owned(),
            anchor: anchor.to_owned(),
            counter: protection.counter,
            anchor_lock,
            coming,
        };
        log.record_detached(Event::Start {
            version: env!("CARGO_PKG_VERSION").into(),
            torn_bytes: torn,
        });
        if needs_anchor {
            // A checkpoint now, so that the anchor is signed (and carries the counter) from
            // the start; nobody waits for it.
            let (tx, _) = oneshot::channel();
            let _ = log.send(Job::Checkpoint(tx));
        }
        Ok(log)
    }

    /// Say that a request has begun which will [`record`](AuditLog::record) its outcome:
    /// under concurrent load the writer then takes its record into the same sync as the
    /// records already waiting, if it comes within the commit delay.
    pub fn expect_record(&self) -> Coming {
        self.coming.fetch_add(1, Ordering::AcqRel);
        Coming(Arc::clone(&self.coming))
    }

    /// Append `event`; returns its sequence number once it is durable.
    ///
    /// A record alone (none waiting for the writer, no other request on its way to one)
    /// is committed on this thread, when the runtime has another to serve meanwhile: it
    /// is then one append and one sync, with no thread to wake and none to be woken by.
    /// Otherwise the writer's thread commits it with the others in one sync.
    pub async fn record(&self, event: Event) -> Result<u64, AuditError> {
        let event = match self.commit_alone(Box::new(event)) {
            Ok(answer) => return answer,
            Err(event) => event,
        };
        let (tx, rx) = oneshot::channel();
        self.send(Job::Record(event, Some(tx)))?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Commit `event` here if it is alone and the writer is free; otherwise give it back.
    fn commit_alone(&self, event: Box<Event>) -> Result<Result<u64, AuditError>, Box<Event>> {
        let alone = self.coming.load(Ordering::Acquire) == 0
            && self.pending.load(Ordering::Acquire) == 0
            && runtime_lends_a_thread();
        if !alone {
            return Err(event);
        }
        let Ok(mut writer) = self.writer.try_lock() else {
            return Err(event);
        };
        let answer = writer.commit_alone(event)?;
        let tick = writer.needs_tick();
        drop(writer);
        if tick {
            // Once per checkpoint at most: the thread, asleep until a job, times its wait
            // for this record's checkpoint.
            let _ = self.send(Job::Tick);
        }
        Ok(answer)
    }

    /// Hand `job` to the writer's thread.
    fn send(&self, job: Job) -> Result<(), AuditError> {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.tx.send(job).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            AuditError::Closed
        })
    }

    /// Append `event` without waiting (nothing is answered on the strength of it).
    pub fn record_detached(&self, event: Event) {
        let _ = self.send(Job::Record(Box::new(event), None));
    }

    /// Write a checkpoint now (if any record is not covered); returns the sequence number
    /// of the last checkpoint.
    pub async fn checkpoint(&self) -> Result<u64, AuditError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Checkpoint(tx))?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Seal the log with a last checkpoint and stop the writer.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Job::Close(tx)).is_ok() {
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

/// Whether the current runtime has another worker thread to run tasks while this one
/// waits for a sync: a multi-threaded runtime with two or more.
fn runtime_lends_a_thread() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| {
        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && h.metrics().num_workers() > 1
    })
}

/// Give the log back what a power cut took from its unsynced tail, from the ring beside it.
fn replay_ring(ring_path: &Path, file: &mut File) -> Result<(), String> {
    let replayed = ring::replay(ring_path, file).map_err(|e| {
        format!(
            "{e}; the ring {} holds records the log may lack",
            ring_path.display()
        )
    })?;
    match replayed {
        Replayed::Nothing => {}
        Replayed::Restored(n) => tracing::warn!(
            records = n,
            "audit log: restored the records its unsynced tail lost (a power cut?) from the ring"
        ),
        Replayed::Foreign(why) => tracing::warn!(
            ring = %ring_path.display(),
            why,
            "audit ring left out: it does not follow this log (one restored from a backup?)"
        ),
    }
    Ok(())
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

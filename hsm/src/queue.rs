//! The workers' queue: two lanes, so that bulk signing cannot starve the work the whole
//! appliance depends on.
//!
//! The urgent lane carries TLS handshakes, time-stamps, OCSP answers, CRLs, audit
//! checkpoints and the health probe; the bulk lane carries the signing API (single
//! signatures, batches cut into small jobs, CMS and PDF). A free worker takes the urgent
//! lane first; after [`URGENT_STREAK`] urgent jobs in a row with bulk work waiting it takes
//! one bulk job, so that a flood on the urgent lane (which is rate-limited at its sources)
//! slows the bulk lane down but never stops it. Each lane is bounded on its own: a full
//! bulk lane never refuses a time-stamp.
//!
//! A job whose caller has gone (timed out, or its connection closed) is dropped when a
//! worker takes it, before it reaches the token.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::error::HsmError;

use super::session::WorkerSession;

/// Which lane a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Work others wait on: handshakes, the TSA, OCSP, CRLs, audit checkpoints.
    Urgent,
    /// The signing API.
    Bulk,
}

/// Urgent jobs taken in a row, with bulk work waiting, before one bulk job is.
const URGENT_STREAK: u32 = 8;

/// One unit of work for a worker.
pub(super) trait Work: Send {
    /// Whether nobody waits for the result any more.
    fn abandoned(&self) -> bool;
    /// Do it on `worker`.
    fn run(self: Box<Self>, worker: &mut WorkerSession);
}

/// A queued unit of work.
pub(super) type Job = Box<dyn Work>;

/// A call: `op` run on a worker, a lost device noted, the result sent to the caller.
pub(super) struct Call<T, Op> {
    op: Op,
    reply: Reply<T>,
}

/// Where a call's result goes.
pub(super) enum Reply<T> {
    /// An async caller; dropping the receiver abandons the call.
    Async(oneshot::Sender<Result<T, HsmError>>),
    /// A thread that blocks on the result.
    Blocking(SyncSender<Result<T, HsmError>>),
}

impl<T, Op> Call<T, Op>
where
    T: Send + 'static,
    Op: FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send + 'static,
{
    pub(super) fn job(op: Op, reply: Reply<T>) -> Job {
        Box::new(Call { op, reply })
    }
}

impl<T, Op> Work for Call<T, Op>
where
    T: Send,
    Op: FnOnce(&mut WorkerSession) -> Result<T, HsmError> + Send,
{
    fn abandoned(&self) -> bool {
        match &self.reply {
            Reply::Async(tx) => tx.is_closed(),
            // A blocked thread waits out its timeout; its calls are short admin ones.
            Reply::Blocking(_) => false,
        }
    }

    fn run(self: Box<Self>, worker: &mut WorkerSession) {
        let result = (self.op)(worker);
        if let Err(e) = &result {
            worker.observe(e);
        }
        match self.reply {
            // The caller may have gone away meanwhile; nothing to do then.
            Reply::Async(tx) => drop(tx.send(result)),
            Reply::Blocking(tx) => drop(tx.try_send(result)),
        }
    }
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its lane is full.
    Full,
    /// The pool is shutting down.
    Closed,
}

#[derive(Default)]
struct Lanes {
    urgent: VecDeque<Job>,
    bulk: VecDeque<Job>,
    /// Urgent jobs taken in a row while bulk work waited.
    streak: u32,
    /// Workers waiting for a job. A push wakes one only when there is one to wake: std's
    /// `Condvar::notify_one` makes a system call even when nobody waits, and under load
    /// the workers are busy when most jobs come.
    idle: usize,
    closed: bool,
}

/// See the module documentation.
pub(super) struct Queue {
    lanes: Mutex<Lanes>,
    work: Condvar,
    /// Jobs that may wait in each lane.
    capacity: usize,
}

impl Queue {
    /// A queue holding at most `capacity` jobs in each lane.
    pub(super) fn new(capacity: usize) -> Queue {
        Queue {
            lanes: Mutex::new(Lanes::default()),
            work: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // A worker never panics while holding the lock; a poisoned queue is still usable.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `job` in `lane`, or refuse at once.
    pub(super) fn push(&self, lane: Lane, job: Job) -> Result<(), Refused> {
        let mut lanes = self.lock();
        if lanes.closed {
            return Err(Refused::Closed);
        }
        let queue = match lane {
            Lane::Urgent => &mut lanes.urgent,
            Lane::Bulk => &mut lanes.bulk,
        };
        if queue.len() >= self.capacity {
            return Err(Refused::Full);
        }
        queue.push_back(job);
        let someone_waits = lanes.idle > 0;
        drop(lanes);
        if someone_waits {
            self.work.notify_one();
        }
        Ok(())
    }

    /// The next job still wanted, waiting for one; `None` once the queue is closed and
    /// drained.
    pub(super) fn pop(&self) -> Option<Job> {
        let mut lanes = self.lock();
        loop {
            while let Some(job) = lanes.next() {
                if !job.abandoned() {
                    return Some(job);
                }
            }
            if lanes.closed {
                return None;
            }
            lanes.idle += 1;
            lanes = self.work.wait(lanes).unwrap_or_else(|p| p.into_inner());
            lanes.idle -= 1;
        }
    }

    /// Refuse new jobs and wake every worker; queued jobs are still handed out.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }

    /// Jobs waiting, urgent and bulk.
    pub(super) fn depth(&self) -> (usize, usize) {
        let lanes = self.lock();
        (lanes.urgent.len(), lanes.bulk.len())
    }
}

impl Lanes {
    fn next(&mut self) -> Option<Job> {
        let bulk_turn = self.streak >= URGENT_STREAK && !self.bulk.is_empty();
        if !bulk_turn {
            if let Some(job) = self.urgent.pop_front() {
                self.streak = if self.bulk.is_empty() {
                    0
                } else {
                    self.streak + 1
                };
                return Some(job);
            }
        }
        self.streak = 0;
        self.bulk.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A job that says which it is when asked whether it is wanted (`pop` asks once,
    /// right before handing it out) and is never run: a unit test has no session.
    struct Probe {
        tag: &'static str,
        seen: Arc<Mutex<Vec<&'static str>>>,
        gone: Arc<AtomicBool>,
    }

    impl Work for Probe {
        fn abandoned(&self) -> bool {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.tag);
            self.gone.load(Ordering::SeqCst)
        }
        fn run(self: Box<Self>, _: &mut WorkerSession) {}
    }

    struct Jobs {
        seen: Arc<Mutex<Vec<&'static str>>>,
        gone: Arc<AtomicBool>,
    }

    impl Jobs {
        fn new() -> Jobs {
            Jobs {
                seen: Arc::default(),
                gone: Arc::default(),
            }
        }
        fn job(&self, tag: &'static str) -> Job {
            Box::new(Probe {
                tag,
                seen: Arc::clone(&self.seen),
                gone: Arc::clone(&self.gone),
            })
        }
        fn seen(&self) -> Vec<&'static str> {
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }

    #[test]
    fn urgent_jobs_pass_bulk_ones_but_bulk_still_moves() {
        let (q, jobs) = (Queue::new(100), Jobs::new());
        for _ in 0..3 {
            q.push(Lane::Bulk, jobs.job("bulk")).unwrap();
        }
        for _ in 0..20 {
            q.push(Lane::Urgent, jobs.job("urgent")).unwrap();
        }
        for _ in 0..23 {
            assert!(q.pop().is_some());
        }
        // Eight urgent, one bulk, eight urgent, one bulk, four urgent, one bulk.
        let mut want = vec!["urgent"; 8];
        want.push("bulk");
        want.extend(["urgent"; 8]);
        want.push("bulk");
        want.extend(["urgent"; 4]);
        want.push("bulk");
        assert_eq!(jobs.seen(), want);
    }

    #[test]
    fn each_lane_is_bounded_on_its_own() {
        let (q, jobs) = (Queue::new(2), Jobs::new());
        q.push(Lane::Bulk, jobs.job("b")).unwrap();
        q.push(Lane::Bulk, jobs.job("b")).unwrap();
        assert_eq!(q.push(Lane::Bulk, jobs.job("b")), Err(Refused::Full));
        q.push(Lane::Urgent, jobs.job("u")).unwrap();
        assert_eq!(q.depth(), (1, 2));
        q.close();
        assert_eq!(q.push(Lane::Urgent, jobs.job("u")), Err(Refused::Closed));
        // Closed, but what was queued is still handed out, then the end.
        assert!(q.pop().is_some() && q.pop().is_some() && q.pop().is_some());
        assert!(q.pop().is_none());
    }

    #[test]
    fn a_waiting_worker_is_woken_by_each_push() {
        let q = Arc::new(Queue::new(8));
        let jobs = Jobs::new();
        let (done, finished) = std::sync::mpsc::channel();
        let worker = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for _ in 0..2 {
                    let got = q.pop().is_some();
                    let _ = done.send(got);
                }
            })
        };
        for round in 0..2 {
            // Push only once the worker sleeps in `pop`, so that the push must wake it.
            let asleep = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while q.lock().idle == 0 {
                assert!(
                    std::time::Instant::now() < asleep,
                    "the worker never waited"
                );
                std::thread::yield_now();
            }
            q.push(Lane::Urgent, jobs.job("u")).unwrap();
            let woken = finished.recv_timeout(std::time::Duration::from_secs(5));
            assert_eq!(
                woken,
                Ok(true),
                "round {round}: the push did not wake the worker"
            );
        }
        worker.join().unwrap();
        assert_eq!(q.lock().idle, 0);
    }

    #[test]
    fn a_job_whose_caller_left_is_never_handed_out() {
        let (q, jobs) = (Queue::new(4), Jobs::new());
        q.push(Lane::Bulk, jobs.job("left")).unwrap();
        q.push(Lane::Urgent, jobs.job("left")).unwrap();
        jobs.gone.store(true, Ordering::SeqCst);
        q.close();
        assert!(q.pop().is_none());
        assert_eq!(jobs.seen(), ["left", "left"]);
    }
}

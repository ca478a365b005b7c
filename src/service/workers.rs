//! The threads one module context's operations run on: `sessions` threads fed by one bounded
//! queue. Under load a thread takes the next operation as soon as it is done with one, without
//! going to sleep, and nothing is spawned per operation; the task that queued the operation is
//! woken once, with the result (the blocking pool needed a permit hand-off, a task spawn and a
//! thread wake-up for every operation: docs/performance.md).
//!
//! Every operation has a deadline. One still queued at its deadline, or whose caller has gone, is
//! dropped unrun. One still running at its deadline, or when its context fails under it, is
//! abandoned: its thread is left to the call it is stuck in (a hung HSM, a broken connection) and
//! a new thread takes its place, so the context keeps `sessions` threads free of stuck calls; a
//! stuck thread that comes back leaves.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// An operation's progress, shared by the waiting task and the thread that runs it.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
const DROPPED: u8 = 3;
const ABANDONED: u8 = 4;

/// An operation, as its thread runs it: returns whether the thread was replaced meanwhile.
type Job = Box<dyn FnOnce() -> bool + Send>;

/// Why an operation has no result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_queue` operations are already waiting.
    Full,
    /// The deadline passed while the operation was still queued; it was not run.
    Expired,
    /// The deadline passed while the operation was running (a hung call): its thread is replaced.
    Overran,
    /// The context failed while the operation waited or ran (another call on it found the device
    /// gone): its thread, if it had one, is replaced, as a call in flight on a broken connection
    /// may never return (p11-kit's client can leave one waiting for a reply that never comes).
    Lost,
    /// The operation panicked.
    Panicked,
}

/// The worker threads of one module context, and the queue that feeds them.
#[derive(Debug)]
pub(crate) struct Workers {
    queue: Sender<Job>,
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    name: String,
    /// The number of threads free of hung calls to keep.
    threads: usize,
    /// Threads alive, a stuck one included.
    alive: AtomicUsize,
    /// Operations running now.
    running: AtomicUsize,
    jobs: Receiver<Job>,
}

impl Workers {
    /// `threads` threads named after `name`, at most `max_queue` operations waiting for one.
    pub(crate) fn new(name: String, threads: usize, max_queue: usize) -> Self {
        let (queue, jobs) = crossbeam_channel::bounded(max_queue);
        let pool = Arc::new(Pool {
            name,
            threads,
            alive: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            jobs,
        });
        for _ in 0..threads {
            pool.spawn();
        }
        Self { queue, pool }
    }

    /// Runs `f` on one of the threads, before `until`, unless `lost` (the context failed) comes
    /// first.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        until: Instant,
        lost: impl Future<Output = ()>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, mut rx) = oneshot::channel();
        let claim = Claim(Arc::new(AtomicU8::new(QUEUED)));
        let state = claim.0.clone();
        let pool = self.pool.clone();
        let job: Job = Box::new(move || {
            if state
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return false; // its caller gave up while it was queued
            }
            pool.running.fetch_add(1, Ordering::SeqCst);
            let result = catch_unwind(AssertUnwindSafe(f));
            pool.running.fetch_sub(1, Ordering::SeqCst);
            let replaced = state.swap(DONE, Ordering::AcqRel) == ABANDONED;
            if let Ok(value) = result {
                let _ = tx.send(value);
            }
            replaced
        });
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            // The threads only leave once this queue is gone.
            TrySendError::Disconnected(_) => Refused::Panicked,
        })?;
        let gave_up = tokio::select! {
            biased;
            result = tokio::time::timeout_at(until, &mut rx) => match result {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(_)) => return Err(Refused::Panicked),
                Err(_) => Refused::Overran,
            },
            () = lost => Refused::Lost,
        };
        let state = &claim.0;
        let swap = |from, to| state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire);
        if swap(QUEUED, DROPPED).is_ok() {
            return Err(match gave_up {
                Refused::Overran => Refused::Expired,
                other => other,
            });
        }
        if swap(RUNNING, ABANDONED).is_ok() {
            self.pool.replace();
            return Err(gave_up);
        }
        // Done just now: its result is on the way.
        rx.await.map_err(|_| Refused::Panicked)
    }

    /// Threads not running an operation now.
    pub(crate) fn idle(&self) -> usize {
        self.pool
            .threads
            .saturating_sub(self.pool.running.load(Ordering::Relaxed))
    }

    /// Operations waiting for a thread, and operations running.
    pub(crate) fn load(&self) -> (usize, usize) {
        (self.queue.len(), self.pool.running.load(Ordering::Relaxed))
    }
}

/// Drops its operation if it is still queued when the waiting task gives up or goes away (a
/// cancelled hedge, a dropped request).
struct Claim(Arc<AtomicU8>);

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = self
            .0
            .compare_exchange(QUEUED, DROPPED, Ordering::AcqRel, Ordering::Acquire);
    }
}

impl Pool {
    /// Starts one more thread.
    fn spawn(self: &Arc<Self>) {
        let pool = self.clone();
        self.alive.fetch_add(1, Ordering::SeqCst);
        let started = std::thread::Builder::new()
            .name(format!("signet-hsm-{}", self.name))
            .spawn(move || pool.work());
        if let Err(e) = started {
            self.alive.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(hsm = %self.name, error = %e, "could not start an HSM worker thread");
        }
    }

    /// Starts a thread in place of one left in a stuck call.
    fn replace(self: &Arc<Self>) {
        self.spawn();
        let stuck = self
            .alive
            .load(Ordering::SeqCst)
            .saturating_sub(self.threads);
        tracing::warn!(hsm = %self.name, stuck,
            "an HSM call did not come back in time; its worker thread is left to it and replaced");
    }

    /// Runs operations until the queue is gone, or until it comes back from an operation it was
    /// replaced for (stuck past the deadline).
    fn work(&self) {
        while let Ok(job) = self.jobs.recv() {
            if job() {
                break;
            }
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    fn never() -> std::future::Pending<()> {
        std::future::pending()
    }

    #[tokio::test]
    async fn runs_operations_and_returns_their_results() {
        let workers = Workers::new("t".into(), 2, 4);
        let mut results = Vec::new();
        for i in 0..8 {
            results.push(workers.run(soon(5_000), never(), move || i * 2).await);
        }
        assert_eq!(results, (0..8).map(|i| Ok(i * 2)).collect::<Vec<_>>());
        assert_eq!(workers.load(), (0, 0));
        assert_eq!(workers.idle(), 2);
    }

    #[tokio::test]
    async fn a_hung_operation_is_abandoned_and_its_thread_replaced() {
        let workers = Workers::new("t".into(), 1, 4);
        let (release, hung) = mpsc::channel::<()>();
        let stuck = workers
            .run(soon(100), never(), move || hung.recv().is_ok())
            .await;
        assert_eq!(stuck, Err(Refused::Overran));
        // The replacement thread serves the next operation while the first is still stuck.
        assert_eq!(workers.run(soon(5_000), never(), || 7).await, Ok(7));
        assert_eq!(workers.pool.alive.load(Ordering::SeqCst), 2);
        // Once the stuck call returns, its thread is one too many and leaves.
        release.send(()).unwrap();
        for _ in 0..100 {
            if workers.pool.alive.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(workers.pool.alive.load(Ordering::SeqCst), 1);
        assert_eq!(workers.run(soon(5_000), never(), || 8).await, Ok(8));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_an_expired_operation_never_runs() {
        let workers = Arc::new(Workers::new("t".into(), 1, 1));
        let (release, hung) = mpsc::channel::<()>();
        let blocker = {
            let w = workers.clone();
            tokio::spawn(async move {
                w.run(soon(5_000), never(), move || hung.recv().is_ok())
                    .await
            })
        };
        while workers.load().1 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let queued = {
            let (w, ran) = (workers.clone(), ran.clone());
            tokio::spawn(async move {
                w.run(soon(100), never(), move || {
                    ran.fetch_add(1, Ordering::SeqCst)
                })
                .await
            })
        };
        while workers.load().0 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            workers.run(soon(100), never(), || ()).await,
            Err(Refused::Full)
        );
        assert_eq!(queued.await.unwrap(), Err(Refused::Expired));
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(true));
        // The expired operation keeps its place in the queue until a thread drops it.
        while workers.load().0 > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(workers.run(soon(5_000), never(), || ()).await, Ok(()));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "an expired operation never runs"
        );
    }

    #[tokio::test]
    async fn a_lost_context_gives_up_running_and_queued_operations() {
        let workers = Arc::new(Workers::new("t".into(), 1, 4));
        let (release, hung) = mpsc::channel::<()>();
        let (fail, failed) = tokio::sync::watch::channel(());
        let lost = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            let _ = rx.changed().await;
        };
        let running = {
            let (w, rx) = (workers.clone(), failed.clone());
            tokio::spawn(async move {
                w.run(soon(5_000), lost(rx), move || hung.recv().is_ok())
                    .await
            })
        };
        while workers.load().1 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let queued = {
            let (w, rx) = (workers.clone(), failed.clone());
            tokio::spawn(async move { w.run(soon(5_000), lost(rx), || 1).await })
        };
        while workers.load().0 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fail.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Err(Refused::Lost));
        assert_eq!(queued.await.unwrap(), Err(Refused::Lost));
        // The stuck thread was replaced: the next operation runs at once.
        assert_eq!(workers.run(soon(5_000), never(), || 2).await, Ok(2));
        release.send(()).unwrap();
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_error_and_the_thread_lives_on() {
        let workers = Workers::new("t".into(), 1, 1);
        let result = workers.run(soon(5_000), never(), || panic!("boom")).await;
        assert_eq!(result, Err::<(), _>(Refused::Panicked));
        assert_eq!(workers.run(soon(5_000), never(), || 1).await, Ok(1));
    }

    #[test]
    fn the_threads_leave_with_the_queue() {
        let workers = Workers::new("t".into(), 3, 1);
        let pool = workers.pool.clone();
        drop(workers);
        for _ in 0..200 {
            if pool.alive.load(Ordering::SeqCst) == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{} threads still alive", pool.alive.load(Ordering::SeqCst));
    }
}

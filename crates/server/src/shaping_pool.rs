//! Where `files` templates and the per-object shapes run: a few threads of their own, off the
//! async workers (a render that takes a while must not stall `/healthz` or other mounts), each
//! with a stack large enough for the deepest value a template's fuel lets it build
//! ([`RENDER_STACK_BYTES`]), at most one mount per thread at a time, and never past the mount's
//! deadline: the caller stops waiting at the deadline, and the job stops at its next file (every
//! template is bounded by its fuel, a few milliseconds), so nothing is shaped, nor logged `ok`,
//! after the driver gave up.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use csi_secrets_provider_core::Error;
use csi_secrets_provider_core::deadline::ANSWER_MARGIN;
use csi_secrets_provider_core::shaping::bounds::RENDER_STACK_BYTES;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The jobs waiting for a thread. A thread waits on the condition variable, not on a lock
/// another waiting thread holds: a job wakes one thread, and only that one (a receiver shared
/// behind a mutex woke a second thread to take the lock over at every job).
#[derive(Default)]
struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, job: Job) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).push_back(job);
        self.ready.notify_one();
    }

    /// The next job, waiting for one.
    fn next(&self) -> Job {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = jobs.pop_front() {
                return job;
            }
            jobs = self.ready.wait(jobs).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

/// The threads, started at the first job; they live as long as the process.
#[derive(Debug)]
struct Workers {
    queue: Arc<Queue>,
}

/// A pool of shaping threads; cheap to clone (every clone shares the threads).
#[derive(Debug, Clone)]
pub struct ShapingPool {
    threads: usize,
    workers: Arc<OnceLock<Result<Workers, String>>>,
    /// One permit a thread: a mount waits for one (until its deadline) before its job is
    /// queued, and the job holds it until it ends, so jobs never queue behind stopped ones.
    permits: Arc<Semaphore>,
}

impl Default for ShapingPool {
    fn default() -> Self {
        Self::new(2)
    }
}

impl ShapingPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        Self { threads, workers: Arc::new(OnceLock::new()), permits: Arc::new(Semaphore::new(threads)) }
    }

    fn workers(&self) -> Result<&Workers, Error> {
        let started = self.workers.get_or_init(|| {
            let queue = Arc::new(Queue::default());
            for index in 0..self.threads {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("shaping-{index}"))
                    .stack_size(RENDER_STACK_BYTES)
                    .spawn(move || {
                        loop {
                            (queue.next())();
                        }
                    })
                    .map_err(|e| format!("cannot start a shaping thread: {e}"))?;
            }
            Ok(Workers { queue })
        });
        started.as_ref().map_err(|e| Error::internal(e.clone()))
    }

    /// Runs `job` on a shaping thread and waits for it until `deadline` (less the margin the
    /// answer needs to reach the driver). `job` is given a flag that turns true when the caller
    /// stopped waiting: it should stop at its next step. A job that panics is an internal error
    /// (the thread lives on).
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        job: impl FnOnce(&AtomicBool) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let budget = deadline.saturating_duration_since(Instant::now()).saturating_sub(ANSWER_MARGIN);
        let late = || {
            Error::deadline_exceeded(
                "shaping the files (templates, formats, expandKeys, decode) did not finish before the driver's deadline for this mount",
            )
        };
        let waited = async {
            let permit: OwnedSemaphorePermit = Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .map_err(|_| Error::internal("the shaping pool is closed"))?;
            let stop = Arc::new(AtomicBool::new(false));
            let (answer, answered) = oneshot::channel();
            let flag = Arc::clone(&stop);
            let boxed: Job = Box::new(move || {
                let _permit = permit;
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| job(&flag)));
                let _ = answer.send(result.map_err(|_| ()));
            });
            self.workers()?.queue.push(boxed);
            let _stop_on_drop = StopOnDrop(stop);
            match answered.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(())) => Err(Error::internal(
                    "shaping the files failed unexpectedly (panic); see the provider log",
                )),
                Err(_) => Err(Error::internal("a shaping thread ended without an answer")),
            }
        };
        tokio::time::timeout(budget, waited).await.unwrap_or_else(|_| Err(late()))
    }
}

/// Tells the job to stop when the caller stops waiting (the timeout dropped the wait).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_job_past_the_deadline_is_told_to_stop_and_the_caller_answers_in_time() -> Result<(), Error> {
        let pool = ShapingPool::new(1);
        let stopped = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&stopped);
        let started = Instant::now();
        let result = pool
            .run(Instant::now() + ANSWER_MARGIN + Duration::from_millis(200), move |stop| {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                seen.store(true, Ordering::Relaxed);
            })
            .await;
        assert!(result.is_err_and(|e| e.kind() == csi_secrets_provider_core::ErrorKind::DeadlineExceeded));
        assert!(started.elapsed() < Duration::from_secs(2));
        // The job saw the flag and ended; the thread serves the next job.
        assert_eq!(pool.run(Instant::now() + Duration::from_secs(5), |_| 7).await?, 7);
        assert!(stopped.load(Ordering::Relaxed));
        Ok(())
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_thread_lives_on() -> Result<(), Error> {
        let pool = ShapingPool::new(1);
        let deadline = || Instant::now() + Duration::from_secs(5);
        let failed = pool.run(deadline(), |_| -> u8 { panic!("boom") }).await;
        assert!(failed.is_err_and(|e| e.message().contains("panic")));
        assert_eq!(pool.run(deadline(), |_| 1).await?, 1);
        Ok(())
    }

    /// Frames far deeper than a 2 MiB stack holds: what dropping or printing a value nested as
    /// deep as a template's fuel allows needs.
    fn depth(n: usize) -> usize {
        let pad = std::hint::black_box([0u8; 512]);
        if n == 0 { usize::from(pad[0]) } else { 1 + depth(n - 1) + usize::from(pad[1]) }
    }

    #[tokio::test]
    async fn jobs_run_on_a_stack_that_holds_deep_recursion() -> Result<(), Error> {
        let pool = ShapingPool::new(1);
        assert_eq!(pool.run(Instant::now() + Duration::from_secs(30), |_| depth(100_000)).await?, 100_000);
        Ok(())
    }
}

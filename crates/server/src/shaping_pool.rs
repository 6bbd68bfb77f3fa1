//! Where `files` templates and the per-object shapes run: a few threads of their own, off the
//! async workers (a render that takes a while must not stall `/healthz` or other mounts), each
//! with a stack large enough for the deepest value a template's fuel lets it build
//! ([`RENDER_STACK_BYTES`]), at most one mount per thread at a time, and never past the mount's
//! deadline: the caller stops waiting at the deadline, and the job stops at its next file (every
//! template is bounded by its fuel, a few milliseconds), so nothing is shaped, nor logged `ok`,
//! after the driver gave up.
//!
//! In the provider's own runtime, whose threads all have such stacks ([`mark_render_thread`]),
//! a job runs on the mount's own thread instead, in `block_in_place` (the runtime hands that
//! worker's other tasks to another thread first): the same bound on jobs at once and the same
//! stop before the next file past the deadline, without the two thread wake-ups of a hand-over
//! (~10 µs of a templated mount, docs/benchmarks.md).

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::Instant;

use csi_secrets_provider_core::Error;
use csi_secrets_provider_core::deadline::ANSWER_MARGIN;
use csi_secrets_provider_core::shaping::bounds::RENDER_STACK_BYTES;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Whether this thread's stack is [`RENDER_STACK_BYTES`] (see [`mark_render_thread`]).
    static RENDER_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as started with a [`RENDER_STACK_BYTES`] stack: a runtime built
/// with `thread_stack_size(RENDER_STACK_BYTES)` calls this in `on_thread_start`, and jobs then
/// run on its workers (see the module's account).
pub fn mark_render_thread() {
    RENDER_STACK.with(|marked| marked.set(true));
}

/// Whether a job may run here, in `block_in_place`: a thread with a render stack, of a
/// multi-threaded runtime (`block_in_place` panics on any other).
fn can_run_here() -> bool {
    RENDER_STACK.with(Cell::get)
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// The threads, started at the first job.
#[derive(Debug)]
struct Workers {
    jobs: mpsc::Sender<Job>,
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
            let (jobs, queue) = mpsc::channel::<Job>();
            let queue = Arc::new(Mutex::new(queue));
            for index in 0..self.threads {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("shaping-{index}"))
                    .stack_size(RENDER_STACK_BYTES)
                    .spawn(move || {
                        loop {
                            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        }
                    })
                    .map_err(|e| format!("cannot start a shaping thread: {e}"))?;
            }
            Ok(Workers { jobs })
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
        job: impl FnOnce(&dyn Fn() -> bool) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let budget = deadline.saturating_duration_since(Instant::now()).saturating_sub(ANSWER_MARGIN);
        let late = || {
            Error::deadline_exceeded(
                "shaping the files (templates, formats, expandKeys, decode) did not finish before the driver's deadline for this mount",
            )
        };
        let stop_at = Instant::now() + budget;
        let permits = Arc::clone(&self.permits);
        let permit = match tokio::time::timeout(budget, permits.acquire_owned()).await {
            Err(_elapsed) => return Err(late()),
            Ok(Err(_closed)) => return Err(Error::internal("the shaping pool is closed")),
            Ok(Ok(permit)) => permit,
        };
        if can_run_here() {
            let _permit = permit;
            let ran = tokio::task::block_in_place(|| {
                std::panic::catch_unwind(AssertUnwindSafe(|| job(&|| Instant::now() >= stop_at)))
            });
            return match ran {
                Ok(_) if Instant::now() >= stop_at => Err(late()),
                Ok(value) => Ok(value),
                Err(_panic) => Err(panicked()),
            };
        }
        let remaining = stop_at.saturating_duration_since(Instant::now());
        let waited = async {
            let permit: OwnedSemaphorePermit = permit;
            let stop = Arc::new(AtomicBool::new(false));
            let (answer, answered) = oneshot::channel();
            let flag = Arc::clone(&stop);
            let boxed: Job = Box::new(move || {
                let _permit = permit;
                let stopped = || flag.load(Ordering::Relaxed);
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| job(&stopped)));
                let _ = answer.send(result.map_err(|_| ()));
            });
            self.workers()?.jobs.send(boxed).map_err(|_| Error::internal("the shaping threads are gone"))?;
            let _stop_on_drop = StopOnDrop(stop);
            match answered.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(())) => Err(panicked()),
                Err(_) => Err(Error::internal("a shaping thread ended without an answer")),
            }
        };
        tokio::time::timeout(remaining, waited).await.unwrap_or_else(|_| Err(late()))
    }
}

fn panicked() -> Error {
    Error::internal("shaping the files failed unexpectedly (panic); see the provider log")
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
                while !stop() {
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

    /// The provider's runtime: every thread with a render stack, marked.
    fn provider_runtime() -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(RENDER_STACK_BYTES)
            .on_thread_start(mark_render_thread)
            .enable_all()
            .build()
    }

    #[test]
    fn on_a_render_stack_jobs_run_on_the_mount_s_thread_with_the_same_bounds()
    -> Result<(), Box<dyn std::error::Error>> {
        let runtime = provider_runtime()?;
        runtime.block_on(async {
            let pool = ShapingPool::new(1);
            let here = std::thread::current().id();
            let (ran_on, deep) = tokio::spawn(async move {
                let caller = std::thread::current().id();
                let ran = pool
                    .run(Instant::now() + Duration::from_secs(30), |_| {
                        (std::thread::current().id(), depth(100_000))
                    })
                    .await;
                (caller, ran)
            })
            .await?;
            let (thread, depth) = deep?;
            assert_eq!(thread, ran_on, "the job ran on the mount's worker");
            assert_ne!(thread, here);
            assert_eq!(depth, 100_000);
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
        runtime.block_on(async {
            let pool = ShapingPool::new(1);
            let started = Instant::now();
            let deadline = Instant::now() + ANSWER_MARGIN + Duration::from_millis(200);
            let late = tokio::spawn(async move {
                pool.run(deadline, |stop| {
                    while !stop() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
                .await
            })
            .await?;
            assert!(late.is_err_and(|e| e.kind() == csi_secrets_provider_core::ErrorKind::DeadlineExceeded));
            assert!(started.elapsed() < Duration::from_secs(2));
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
        Ok(())
    }
}

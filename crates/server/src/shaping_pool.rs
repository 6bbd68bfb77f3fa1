//! Where `files` templates and the per-object shapes run: a few threads of their own, off the
//! async workers (a render that takes a while must not stall `/healthz` or other mounts), each
//! with a stack large enough for the deepest value a template's fuel lets it build
//! ([`RENDER_STACK_BYTES`]), at most one mount per thread at a time, and never past the mount's
//! deadline: the caller stops waiting at the deadline, and the job stops at its next file (every
//! template is bounded by its fuel, a few milliseconds), so nothing is shaped, nor logged `ok`,
//! after the driver gave up.
//!
//! Handing a mount to a shaping thread and back costs two thread wake-ups, which on a VM cost
//! more than the templates of a usual mount: some 90 µs of CPU and of latency a mount on the
//! project's 2-core machine (docs/benchmarks.md). So where the runtime's workers have the same
//! stacks ([`ShapingPool::with_inline`]), a mount may start its shaping on the worker that serves
//! it, within bounds: at most [`INLINE_BUDGET`] of the worker's time and then one template (the
//! rest moves to the shaping threads), fewer such mounts at a time than there are workers (one
//! worker is always free for `/healthz` and other mounts), only for mounts of at most
//! [`INLINE_MAX_BYTES`], never for `files` that needed more [`SLOW_AFTER`](csi_secrets_provider_core::shaping::SLOW_AFTER)
//! mounts in a row, and the same deadline.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use csi_secrets_provider_core::deadline::ANSWER_MARGIN;
use csi_secrets_provider_core::shaping::bounds::RENDER_STACK_BYTES;
use csi_secrets_provider_core::shaping::{self, FilesSpec, ShapedKinds};
use csi_secrets_provider_core::{Error, ErrorKind, FileMode, MountResponse};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The most of a worker's time one mount's shaping may take before the rest of it moves to the
/// shaping threads (checked before each file; a template in progress finishes, bounded by its
/// fuel). A usual mount's templates take some 50 µs.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// The most bytes a mount's files may hold together for it to start its shaping on its worker:
/// decoding, `expandKeys` and formats are linear in them, and one such step cannot be stopped
/// half-way, so a larger mount is shaped on the shaping threads from the start.
pub const INLINE_MAX_BYTES: usize = 256 * 1024;

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
    /// Mounts that may shape on the worker serving them, at once (see the module's text);
    /// `None`: every mount is shaped on the shaping threads.
    inline: Option<Arc<Semaphore>>,
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
        Self {
            threads,
            workers: Arc::new(OnceLock::new()),
            permits: Arc::new(Semaphore::new(threads)),
            inline: None,
        }
    }

    /// Lets up to `mounts` mounts at a time start their shaping on the worker that serves them
    /// (0: none). Only for a runtime whose worker threads have [`RENDER_STACK_BYTES`] stacks,
    /// and with fewer mounts than workers, so that one worker stays free.
    #[must_use]
    pub fn with_inline(mut self, mounts: usize) -> Self {
        self.inline = (mounts > 0).then(|| Arc::new(Semaphore::new(mounts)));
        self
    }

    /// Shapes a mount's answer (`shaping::shape`) within its deadline: on the caller's thread
    /// when allowed (see the module's text; decoding first, once), and the rest, or all of it,
    /// on a shaping thread.
    pub async fn shape(
        &self,
        deadline: Instant,
        mut response: MountResponse,
        files: FilesSpec,
        default_mode: FileMode,
        cap: usize,
    ) -> Result<(MountResponse, ShapedKinds), Error> {
        let mut kinds = ShapedKinds::new();
        let small = response.files.iter().map(|f| f.contents.len()).sum::<usize>() <= INLINE_MAX_BYTES;
        let slot = self
            .inline
            .as_ref()
            .filter(|_| small && !files.is_slow())
            .and_then(|slots| slots.try_acquire().ok());
        if slot.is_some() {
            kinds.extend(std::iter::repeat_n("decoded", shaping::decode_files(&mut response)?));
            let stop_at = deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline);
            if let Some(shaped) = shape_here(&mut response, &files, default_mode, cap, stop_at)? {
                kinds.extend(shaped);
                return Ok((response, kinds));
            }
            // What this thread built is dropped; the response is as it was before it started.
        }
        drop(slot);
        let (response, shaped) = self
            .run(deadline, move |stop| {
                let shaped = shaping::shape_until(&mut response, &files, default_mode, cap, stop);
                (response, shaped)
            })
            .await?;
        kinds.extend(shaped?);
        Ok((response, kinds))
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
                Ok(Err(())) => Err(panicked()),
                Err(_) => Err(Error::internal("a shaping thread ended without an answer")),
            }
        };
        tokio::time::timeout(budget, waited).await.unwrap_or_else(|_| Err(late()))
    }
}

/// Shapes `response` on this thread for at most [`INLINE_BUDGET`] (and not past `stop_at`):
/// `Ok(None)` when it stopped to move the rest to the shaping threads. A mount over the budget
/// (moved, or its last file took the time) counts towards the files' being shaped on the
/// shaping threads from the start ([`FilesSpec::is_slow`]).
fn shape_here(
    response: &mut MountResponse,
    files: &FilesSpec,
    default_mode: FileMode,
    cap: usize,
    stop_at: Instant,
) -> Result<Option<ShapedKinds>, Error> {
    let started = Instant::now();
    let moved = Cell::new(false);
    let go_on = || {
        let now = Instant::now();
        if now >= stop_at {
            Err(late())
        } else if now.saturating_duration_since(started) > INLINE_BUDGET {
            // The error stops the shaping and is dropped: `moved` says why it stopped.
            moved.set(true);
            Err(late())
        } else {
            Ok(())
        }
    };
    let shaped = std::panic::catch_unwind(AssertUnwindSafe(|| {
        shaping::shape_while(response, files, default_mode, cap, &go_on)
    }))
    .map_err(|_| panicked())?;
    files.record_time(started.elapsed() > INLINE_BUDGET);
    // Moved only when `go_on` stopped it; any other error is the mount's.
    if moved.get() && shaped.as_ref().is_err_and(|e| e.kind() == ErrorKind::DeadlineExceeded) {
        return Ok(None);
    }
    if Instant::now() >= stop_at {
        // Its last file ran past the deadline: the driver has given up.
        return Err(late());
    }
    shaped.map(Some)
}

fn late() -> Error {
    Error::deadline_exceeded(
        "shaping the files (templates, formats, expandKeys, decode) did not finish before the driver's deadline for this mount",
    )
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
    use csi_secrets_provider_core::MountedFile;

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

    /// A mount of one base64-decoded object and `files` from `template` repeated `count` times.
    fn mount_and_files(template: &str, count: usize) -> Result<(MountResponse, FilesSpec), Error> {
        use csi_secrets_provider_core::shaping::{Decoding, FileShape};
        let decoded = FileShape::decoded(Some(Decoding::Base64));
        let response = MountResponse {
            files: vec![MountedFile::new("s", FileMode::DEFAULT, b"c2VjcmV0".to_vec()).shaped("s", decoded)],
            ..MountResponse::default()
        };
        let files: Vec<serde_json::Value> = (0..count)
            .map(|i| serde_json::json!({ "path": format!("f{i}"), "template": template }))
            .collect();
        let files = FilesSpec::parse(Some(&serde_json::Value::from(files).to_string()))
            .map_err(Error::from_problems)?;
        Ok((response, files))
    }

    fn contents(response: &MountResponse) -> Vec<(String, String)> {
        response
            .files
            .iter()
            .map(|f| (f.path.clone(), String::from_utf8_lossy(f.contents.expose()).into_owned()))
            .collect()
    }

    #[tokio::test]
    async fn a_quick_mount_is_shaped_on_its_worker_and_decoded_once() -> Result<(), Error> {
        let pool = ShapingPool::new(1).with_inline(1);
        let (response, files) = mount_and_files("{{ objects.s }}!", 2)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let (shaped, kinds) =
            pool.shape(deadline, response, files.clone(), FileMode::DEFAULT, 1 << 20).await?;
        assert_eq!(kinds, ["decoded", "template", "template"]);
        let expected = [("s", "secret"), ("f0", "secret!"), ("f1", "secret!")]
            .map(|(p, c)| (p.to_owned(), c.to_owned()));
        assert_eq!(contents(&shaped), expected);
        assert!(pool.workers.get().is_none(), "no shaping thread was needed");
        assert!(!files.is_slow());
        Ok(())
    }

    #[tokio::test]
    async fn a_mount_past_the_inline_budget_moves_to_the_shaping_threads() -> Result<(), Error> {
        let pool = ShapingPool::new(1).with_inline(1);
        // Each template spins through its fuel: a few hundred µs, so the budget passes within a few.
        let (response, files) = mount_and_files("{% for i in range(5000) %}{% endfor %}{{ objects.s }}", 40)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (shaped, kinds) =
            pool.shape(deadline, response, files.clone(), FileMode::DEFAULT, 1 << 20).await?;
        assert_eq!(kinds.len(), 41, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "decoded").count(), 1);
        let shaped = contents(&shaped);
        assert_eq!(shaped.len(), 41);
        assert!(shaped.iter().all(|(_, contents)| contents == "secret"), "decoded once: {shaped:?}");
        assert!(pool.workers.get().is_some(), "the rest ran on a shaping thread");
        assert!(!files.is_slow(), "one mount over the budget may be the machine's hiccup");
        // The same text over the budget SLOW_AFTER mounts in a row: later mounts of it start on
        // the shaping threads.
        for _ in 1..csi_secrets_provider_core::shaping::SLOW_AFTER {
            let (response, again) =
                mount_and_files("{% for i in range(5000) %}{% endfor %}{{ objects.s }}", 40)?;
            pool.shape(deadline, response, again, FileMode::DEFAULT, 1 << 20).await?;
        }
        let (_, again) = mount_and_files("{% for i in range(5000) %}{% endfor %}{{ objects.s }}", 40)?;
        assert!(again.is_slow());
        Ok(())
    }

    /// A mount within the budget between two over it: the count starts again.
    #[test]
    fn a_quick_mount_between_slow_ones_starts_the_count_again() -> Result<(), Error> {
        let (_, files) = mount_and_files("{{ objects.s }} once", 1)?;
        let over = || files.record_time(true);
        for _ in 1..csi_secrets_provider_core::shaping::SLOW_AFTER {
            over();
        }
        files.record_time(false);
        over();
        assert!(!files.is_slow());
        for _ in 1..csi_secrets_provider_core::shaping::SLOW_AFTER {
            over();
        }
        assert!(files.is_slow());
        files.record_time(false);
        assert!(files.is_slow(), "once slow, for the process's life");
        Ok(())
    }

    /// Its one file started in time and finished past the deadline: the driver has given up,
    /// so the mount is not answered `ok`.
    #[test]
    fn a_mount_that_finishes_here_past_its_deadline_is_late() -> Result<(), Error> {
        // A loop near its fuel: milliseconds, where reaching the file takes microseconds.
        let (mut response, files) =
            mount_and_files("{% for i in range(9000) %}{% endfor %}{{ objects.s }}", 1)?;
        let stop_at = Instant::now() + Duration::from_micros(300);
        let shaped = shape_here(&mut response, &files, FileMode::DEFAULT, 1 << 20, stop_at);
        assert!(
            matches!(&shaped, Err(e) if e.kind() == csi_secrets_provider_core::ErrorKind::DeadlineExceeded),
            "{shaped:?}"
        );
        let (mut response, files) = mount_and_files("{{ objects.s }}", 1)?;
        let in_time = shape_here(
            &mut response,
            &files,
            FileMode::DEFAULT,
            1 << 20,
            Instant::now() + Duration::from_secs(5),
        )?;
        assert_eq!(in_time, Some(vec!["decoded", "template"]));
        Ok(())
    }

    #[tokio::test]
    async fn a_large_mount_is_decoded_and_shaped_on_the_shaping_threads() -> Result<(), Error> {
        let pool = ShapingPool::new(1).with_inline(1);
        let (mut response, files) = mount_and_files("{{ objects.s }}", 1)?;
        let large = vec![b'x'; INLINE_MAX_BYTES];
        response.files.push(MountedFile::new("large", FileMode::DEFAULT, large));
        let deadline = Instant::now() + Duration::from_secs(5);
        let (shaped, kinds) = pool.shape(deadline, response, files, FileMode::DEFAULT, 1 << 20).await?;
        assert_eq!(kinds, ["decoded", "template"]);
        assert!(pool.workers.get().is_some(), "shaped on a shaping thread");
        let shaped = contents(&shaped);
        assert_eq!(shaped.first(), Some(&("s".to_owned(), "secret".to_owned())));
        assert_eq!(shaped.last(), Some(&("f0".to_owned(), "secret".to_owned())));
        Ok(())
    }

    #[tokio::test]
    async fn a_mount_without_a_free_inline_slot_or_time_left_is_not_shaped_on_its_worker() -> Result<(), Error>
    {
        let pool = ShapingPool::new(1).with_inline(1);
        let held = pool.inline.as_ref().map(|slots| slots.try_acquire());
        assert!(held.as_ref().is_some_and(Result::is_ok));
        let (response, files) = mount_and_files("{{ objects.s }}", 1)?;
        pool.shape(Instant::now() + Duration::from_secs(5), response, files, FileMode::DEFAULT, 1 << 20)
            .await?;
        assert!(pool.workers.get().is_some(), "the only slot was taken: shaped on a shaping thread");
        drop(held);
        let pool = ShapingPool::new(1).with_inline(1);
        let (response, files) = mount_and_files("{{ objects.s }}", 1)?;
        let late =
            pool.shape(Instant::now() + ANSWER_MARGIN / 2, response, files, FileMode::DEFAULT, 1 << 20).await;
        assert!(late.is_err_and(|e| e.kind() == csi_secrets_provider_core::ErrorKind::DeadlineExceeded));
        Ok(())
    }

    #[tokio::test]
    async fn jobs_run_on_a_stack_that_holds_deep_recursion() -> Result<(), Error> {
        let pool = ShapingPool::new(1);
        assert_eq!(pool.run(Instant::now() + Duration::from_secs(30), |_| depth(100_000)).await?, 100_000);
        Ok(())
    }
}

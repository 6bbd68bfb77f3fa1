//! Cloud reads shared between mounts of one identity.
//!
//! Since driver v1.6 every kubelet republish reaches the provider as a Mount for a target path
//! it already served. A [`SharedReads`] cache lets those remounts reuse a read of the same
//! (identity, object) finished within a window, and lets every mount join an identical read
//! that is already in flight (single-flight), so a burst of pod starts costs one read too.
//!
//! Rules, in one place:
//! - a key is everything that decides the answer: the backend builds it from the identity that
//!   authorizes the read and the object's address, so nothing is shared across identities;
//! - first mounts never take a finished read: they read fresh (or join one in flight);
//! - a remount takes a finished read only if it finished after that target's own previous
//!   mount answered (so a remount never gets a value older than the one it already has: a
//!   single pod's remount reads afresh, while the pods of one identity remounting in one round
//!   share the read the first of them made), and only while it is younger than the window;
//! - failures are never kept: the next mount asks again;
//! - stale on outage (opt-in per SecretProviderClass, `staleIfError`): when a read fails because
//!   the cloud is unreachable, answers 5xx, throttles or runs out of time, a mount may be served
//!   the last good value of the same key (so the same identity) if it is younger than its
//!   `staleIfError`; never after a refusal, a not-found or a bad request;
//! - what is kept is bounded in bytes, dropped when its window (or the longest `staleIfError`
//!   it was read for) ends, and held in the caller's zeroizing types ([`crate::SecretBytes`]);
//!   nothing reaches disk.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
// tokio's clock (the system's, unless a test pauses time), so paused-time tests see windows end.
use tokio::time::Instant;

use crate::error::Result;
use crate::files::SecretBytes;

mod read_policy;
pub use read_policy::{MountKind, ReadPolicy, Served};

/// How long and how much a backend may share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharingOptions {
    /// How old a finished read may be for a remount to reuse it; zero turns sharing off (every
    /// mount reads on its own, as the official providers do).
    pub window: Duration,
    /// The most bytes of values held at once, over all of a backend's shared reads.
    pub max_bytes: usize,
}

impl SharingOptions {
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

    /// Every mount reads on its own.
    pub const fn disabled() -> Self {
        Self { window: Duration::ZERO, max_bytes: 0 }
    }

    pub fn is_enabled(&self) -> bool {
        !self.window.is_zero()
    }
}

impl Default for SharingOptions {
    fn default() -> Self {
        Self { window: Self::DEFAULT_WINDOW, max_bytes: Self::DEFAULT_MAX_BYTES }
    }
}

/// The size a kept value counts against [`SharingOptions::max_bytes`].
pub trait HeldBytes {
    fn held_bytes(&self) -> usize;
}

impl HeldBytes for SecretBytes {
    fn held_bytes(&self) -> usize {
        self.len()
    }
}

impl HeldBytes for String {
    fn held_bytes(&self) -> usize {
        self.len()
    }
}

impl<T: HeldBytes> HeldBytes for Vec<T> {
    fn held_bytes(&self) -> usize {
        self.iter().map(HeldBytes::held_bytes).sum()
    }
}

impl<T: HeldBytes> HeldBytes for Arc<T> {
    fn held_bytes(&self) -> usize {
        self.as_ref().held_bytes()
    }
}

/// What one backend's sharing did, for `/metrics`. Shared by all caches of the backend.
#[derive(Debug, Default)]
pub struct SharingStats {
    remount_hits: AtomicU64,
    in_flight_joins: AtomicU64,
    bytes_held: AtomicU64,
}

impl SharingStats {
    /// Reads a remount took from a finished read instead of asking the cloud.
    pub fn remount_hits(&self) -> u64 {
        self.remount_hits.load(Ordering::Relaxed)
    }

    /// Reads a mount took from an identical read already in flight.
    pub fn in_flight_joins(&self) -> u64 {
        self.in_flight_joins.load(Ordering::Relaxed)
    }

    /// Bytes of values held right now.
    pub fn bytes_held(&self) -> u64 {
        self.bytes_held.load(Ordering::Relaxed)
    }
}

/// A cache of reads by key, with single-flight. Cheap to clone (one shared state).
pub struct SharedReads<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for SharedReads<K, V> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V> std::fmt::Debug for SharedReads<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("SharedReads")
            .field("options", &self.inner.options)
            .field("kept", &state.kept.len())
            .field("in_flight", &state.in_flight.len())
            .field("bytes", &state.bytes)
            .finish()
    }
}

type Outcome<V> = Option<Result<V>>;

struct Inner<K, V> {
    options: SharingOptions,
    stats: Arc<SharingStats>,
    state: Mutex<State<K, V>>,
    /// Whether the sweeper task runs: one per cache while it holds values, rather than a
    /// timer per value (a busy node keeps thousands of reads per window).
    sweeping: AtomicBool,
}

struct State<K, V> {
    kept: HashMap<K, Kept<V>>,
    in_flight: HashMap<K, watch::Receiver<Outcome<V>>>,
    bytes: usize,
}

struct Kept<V> {
    value: V,
    read_at: Instant,
    bytes: usize,
    /// How long after `read_at` the value is held: the window, or longer for `staleIfError`.
    retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Keep a success, for the window or this long (`staleIfError`, `refreshInterval`),
    /// whichever is longer.
    Yes(Duration),
    No,
}

enum Role<V> {
    Lead(watch::Sender<Outcome<V>>),
    Follow(watch::Receiver<Outcome<V>>),
}

impl<K, V> SharedReads<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    pub fn new(options: SharingOptions, stats: Arc<SharingStats>) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                stats,
                state: Mutex::new(State { kept: HashMap::new(), in_flight: HashMap::new(), bytes: 0 }),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// The value for `key`: for a remount, a read finished within the window and after the
    /// target's previous mount (see [`MountKind`]); otherwise the
    /// result of an identical read in flight, or of `fetch`, which this call then runs for
    /// everyone who asks meanwhile. A successful fetch is kept for later remounts (and, with
    /// `stale_if_error`, for mounts during an outage: see [`Self::or_stale`]).
    pub async fn read<F, Fut>(&self, key: K, policy: impl Into<ReadPolicy>, fetch: F) -> Result<Served<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let policy = policy.into();
        self.run(key, policy, Keep::Yes(policy.retention()), fetch).await
    }

    /// `result` of a read of `key` as the mount gets it: a success as it is; an outage
    /// (unreachable, 5xx, throttled, out of time) replaced by the last good value of `key` when
    /// it is younger than the policy's `stale_if_error`; any other failure (denied, not found,
    /// bad request) as it is, since serving a value then would hide a decision or a mistake.
    pub fn or_stale(&self, key: &K, result: Result<Served<V>>, policy: ReadPolicy) -> Result<Served<V>> {
        let error = match result {
            Ok(served) => return Ok(served),
            Err(error) => error,
        };
        let Some(max_age) = policy.stale_if_error.filter(|_| error.is_outage()) else {
            return Err(error);
        };
        let state = self.inner.lock();
        match state.kept.get(key).map(|kept| (kept, kept.read_at.elapsed())) {
            Some((kept, age)) if age < max_age && age < kept.retention => {
                Ok(Served { value: kept.value.clone(), stale: Some((age, error)), shared: false })
            }
            _ => Err(error),
        }
    }

    /// The result of an identical read in flight, or of `fetch`, run once for everyone who asks
    /// meanwhile; nothing is kept (for one call that answers several keys, each then kept with
    /// [`Self::keep`]).
    pub async fn single_flight<F, Fut>(&self, key: K, fetch: F) -> Result<Served<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        self.run(key, MountKind::First.into(), Keep::No, fetch).await
    }

    async fn run<F, Fut>(&self, key: K, policy: ReadPolicy, keep: Keep, fetch: F) -> Result<Served<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        if !self.inner.options.is_enabled() {
            // No sharing, but a value may still be kept for `staleIfError` and reused under the
            // SPC's own `refreshInterval`.
            if let Some(value) = self.inner.reuse(&self.inner.lock(), &key, policy) {
                return Ok(Served::shared(value));
            }
            let result = fetch().await;
            if let (Ok(value), Keep::Yes(retention)) = (&result, keep) {
                Inner::keep(&self.inner, key, value.clone(), retention);
            }
            return result.map(Served::fresh);
        }
        loop {
            let role = {
                let mut state = self.inner.lock();
                if let Some(value) = self.inner.reuse(&state, &key, policy) {
                    return Ok(Served::shared(value));
                }
                match state.in_flight.get(&key) {
                    Some(receiver) => Role::Follow(receiver.clone()),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        state.in_flight.insert(key.clone(), receiver);
                        Role::Lead(sender)
                    }
                }
            };
            match role {
                Role::Follow(mut receiver) => {
                    let outcome = receiver.wait_for(Option::is_some).await.ok().and_then(|o| o.clone());
                    if let Some(result) = outcome {
                        self.inner.stats.in_flight_joins.fetch_add(1, Ordering::Relaxed);
                        return result.map(Served::shared);
                    }
                    // The leading mount was abandoned (its caller gave up): read again.
                }
                Role::Lead(sender) => {
                    let flight = Flight { inner: &self.inner, key: &key, keep, sender: Some(sender) };
                    let result = fetch().await;
                    flight.finish(&result);
                    return result.map(Served::fresh);
                }
            }
        }
    }

    /// A read this mount may reuse (see [`ReadPolicy`]), without asking anyone: `None` for a
    /// first mount.
    pub fn recent(&self, key: &K, policy: impl Into<ReadPolicy>) -> Option<Served<V>> {
        self.inner.reuse(&self.inner.lock(), key, policy.into()).map(Served::shared)
    }

    /// Keeps a value read outside [`Self::read`] (one call that answered several keys), for
    /// remounts and for mounts during an outage, as long as `policy` asks.
    pub fn keep(&self, key: K, value: V, policy: ReadPolicy) {
        Inner::keep(&self.inner, key, value, policy.retention());
    }

    /// Bytes held by this cache.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Values held by this cache.
    pub fn len(&self) -> usize {
        self.inner.lock().kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> Inner<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept value of `key` a mount under `policy` may reuse (the remount rule and the
    /// window, or the SPC's `refreshInterval`), counted as a remount hit.
    fn reuse(&self, state: &State<K, V>, key: &K, policy: ReadPolicy) -> Option<V>
    where
        K: Eq + Hash,
        V: Clone,
    {
        let kept = state
            .kept
            .get(key)
            .filter(|k| policy.may_reuse(k.read_at, self.options.window) && Self::is_retained(k))?;
        self.stats.remount_hits.fetch_add(1, Ordering::Relaxed);
        Some(kept.value.clone())
    }

    /// Whether `kept` is still held at all.
    fn is_retained(kept: &Kept<V>) -> bool {
        kept.read_at.elapsed() < kept.retention
    }

    /// How often the sweeper looks: a quarter of the shortest retention there can be.
    fn sweep_period(&self) -> Duration {
        let shortest = if self.options.is_enabled() { self.options.window } else { Duration::from_secs(60) };
        (shortest / 4).max(Duration::from_millis(100))
    }
}

impl<K, V> Inner<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    fn keep(this: &Arc<Self>, key: K, value: V, held_for: Duration) {
        let bytes = value.held_bytes();
        {
            let mut state = this.lock();
            // A value read for a longer `staleIfError` or `refreshInterval` before stays held as
            // long.
            let earlier = state.kept.get(&key).map_or(Duration::ZERO, |kept| kept.retention);
            let retention = this.options.window.max(held_for).max(earlier);
            this.forget(&mut state, &key);
            if retention.is_zero() || bytes > this.options.max_bytes {
                return;
            }
            // Over the cap: expired values first (the sweeper may not have run yet), then the
            // oldest, until the new value fits.
            if state.bytes + bytes > this.options.max_bytes {
                this.forget_expired(&mut state);
            }
            while state.bytes + bytes > this.options.max_bytes {
                let Some(oldest) = state.kept.iter().min_by_key(|(_, k)| k.read_at).map(|(k, _)| k.clone())
                else {
                    break;
                };
                this.forget(&mut state, &oldest);
            }
            state.bytes += bytes;
            this.stats.bytes_held.fetch_add(bytes as u64, Ordering::Relaxed);
            state.kept.insert(key, Kept { value, read_at: Instant::now(), bytes, retention });
        }
        Self::start_sweeping(this);
    }

    /// Drops values whose window ended without waiting for the next access: a sweep every
    /// quarter window (so a value is gone at most a quarter window after its end) while the
    /// cache holds anything.
    fn start_sweeping(this: &Arc<Self>) {
        if this.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            this.sweeping.store(false, Ordering::SeqCst);
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(this);
        let period = this.sweep_period();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { break };
                let mut state = inner.lock();
                inner.forget_expired(&mut state);
                if state.kept.is_empty() {
                    // Under the lock: a keep() after this sees `false` and starts a new sweeper.
                    inner.sweeping.store(false, Ordering::SeqCst);
                    break;
                }
            }
        });
    }

    /// Forgets every value whose retention has ended.
    fn forget_expired(&self, state: &mut State<K, V>) {
        let expired: Vec<K> = state
            .kept
            .iter()
            .filter(|(_, kept)| !Self::is_retained(kept))
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.forget(state, &key);
        }
    }

    fn forget(&self, state: &mut State<K, V>, key: &K) {
        if let Some(old) = state.kept.remove(key) {
            state.bytes -= old.bytes;
            self.stats.bytes_held.fetch_sub(old.bytes as u64, Ordering::Relaxed);
        }
    }
}

/// The leading read of a key. Dropped without [`Flight::finish`] (the mount was abandoned), it
/// clears the in-flight entry so waiting mounts read again instead of waiting forever.
struct Flight<'a, K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    inner: &'a Arc<Inner<K, V>>,
    key: &'a K,
    keep: Keep,
    sender: Option<watch::Sender<Outcome<V>>>,
}

impl<K, V> Flight<'_, K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    fn finish(mut self, result: &Result<V>) {
        if let (Ok(value), Keep::Yes(stale_if_error)) = (result, self.keep) {
            Inner::keep(self.inner, self.key.clone(), value.clone(), stale_if_error);
        }
        self.inner.lock().in_flight.remove(self.key);
        if let Some(sender) = self.sender.take() {
            // Nobody waiting is fine.
            let _ = sender.send(Some(result.clone()));
        }
    }
}

impl<K, V> Drop for Flight<'_, K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.inner.lock().in_flight.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests;

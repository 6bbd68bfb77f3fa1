//! Caches of identities: credentials and tokens until shortly before they expire, and the
//! clients built for an identity while it is in use.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::error::Result;

type Slot<V> = Arc<tokio::sync::Mutex<Option<V>>>;

/// Values (credentials, access tokens) by identity, each kept until `refresh_margin` before it
/// expires; concurrent callers for one identity wait for a single fetch. A value without an
/// expiry is never kept (nobody could say when to stop using it). Entries nobody uses whose
/// value is gone are dropped, so the map does not grow with every identity ever seen.
pub struct ExpiringCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    refresh_margin: Duration,
    expiry_of: fn(&V) -> Option<SystemTime>,
    /// The most identities kept: past it a new one's value is fetched and not kept.
    max_slots: usize,
}

impl<K, V> std::fmt::Debug for ExpiringCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("ExpiringCache")
            .field("identities", &slots)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

impl<K: Eq + Hash, V: Clone> ExpiringCache<K, V> {
    /// A cache reading each value's expiry with `expiry_of`.
    pub fn new(refresh_margin: Duration, expiry_of: fn(&V) -> Option<SystemTime>) -> Self {
        Self { slots: Mutex::default(), refresh_margin, expiry_of, max_slots: usize::MAX }
    }

    /// The same cache keeping at most `max_slots` keys (for keys an SPC chooses): a key past
    /// them is fetched every time, never kept.
    pub fn with_max_slots(mut self, max_slots: usize) -> Self {
        self.max_slots = max_slots;
        self
    }

    /// The kept value for `key` while fresh; otherwise the result of `fetch`, run once for all
    /// who ask meanwhile. A failure is not kept: the next caller fetches again.
    pub async fn get_or_fetch<F, Fut>(&self, key: K, fetch: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            self.prune(&mut slots);
            (slots.len() < self.max_slots || slots.contains_key(&key))
                .then(|| Arc::clone(slots.entry(key).or_default()))
        };
        // Past `max_slots` a new key is fetched and not kept.
        let Some(slot) = slot else { return fetch().await };
        let mut kept = slot.lock().await;
        if let Some(value) = kept.as_ref().filter(|v| self.is_fresh(v)) {
            return Ok(value.clone());
        }
        let value = fetch().await?;
        *kept = (self.expiry_of)(&value).is_some().then(|| value.clone());
        Ok(value)
    }

    /// Identities with a slot right now.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_fresh(&self, value: &V) -> bool {
        (self.expiry_of)(value).is_some_and(|expiry| expiry > SystemTime::now() + self.refresh_margin)
    }

    fn prune(&self, slots: &mut HashMap<K, Slot<V>>) {
        slots.retain(|_, slot| {
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            match slot.try_lock() {
                Ok(kept) => kept.as_ref().is_some_and(|v| self.is_fresh(v)),
                Err(_) => true,
            }
        });
    }
}

/// Things built for an identity (SDK clients, credential objects) by key, dropped once unused
/// for `idle`: built once per identity, not once per mount, and not kept for identities gone.
pub struct IdleCache<K, V> {
    entries: Mutex<HashMap<K, (Arc<V>, Instant)>>,
    idle: Duration,
}

impl<K, V> std::fmt::Debug for IdleCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("IdleCache").field("entries", &entries).field("idle", &self.idle).finish()
    }
}

impl<K: Eq + Hash, V> IdleCache<K, V> {
    pub fn new(idle: Duration) -> Self {
        Self { entries: Mutex::default(), idle }
    }

    /// The entry for `key`, built with `make` when there is none (a failure builds nothing).
    /// Mounts still holding an evicted entry keep it; only the cache forgets it.
    pub fn get_or_try_insert(&self, key: K, make: impl FnOnce() -> Result<V>) -> Result<Arc<V>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|_, (_, used)| now.duration_since(*used) < self.idle);
        if let Some((entry, used)) = entries.get_mut(&key) {
            *used = now;
            return Ok(Arc::clone(entry));
        }
        let entry = Arc::new(make()?);
        entries.insert(key, (Arc::clone(&entry), now));
        Ok(entry)
    }

    /// The entry for `key`, if there is one (marked used).
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (entry, used) = entries.get_mut(key)?;
        *used = Instant::now();
        Some(Arc::clone(entry))
    }

    /// Keeps `value` for `key` unless an entry was put there meanwhile (a builder that had to
    /// await, racing another): the entry kept is returned, so both callers share it.
    pub fn get_or_insert(&self, key: K, value: V) -> Arc<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        entries.retain(|_, (_, used)| now.duration_since(*used) < self.idle);
        let (entry, used) = entries.entry(key).or_insert_with(|| (Arc::new(value), now));
        *used = now;
        Arc::clone(entry)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone)]
    struct Token(Option<SystemTime>);

    fn expiry(token: &Token) -> Option<SystemTime> {
        token.0
    }

    #[tokio::test]
    async fn one_fetch_per_identity_until_shortly_before_expiry() -> Result<()> {
        let cache = ExpiringCache::new(Duration::from_secs(300), expiry);
        let fetches = AtomicUsize::new(0);
        let hour = Some(SystemTime::now() + Duration::from_secs(3600));
        let fetch = |expires| {
            fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Token(expires)) }
        };
        let both = futures::future::join(
            cache.get_or_fetch("a", || fetch(hour)),
            cache.get_or_fetch("a", || fetch(hour)),
        );
        let (first, second) = both.await;
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "concurrent callers share one fetch");
        cache.get_or_fetch("b", || fetch(hour)).await?;
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "another identity fetches its own");
        // Within the margin of its expiry, and without one: fetched each time.
        let soon = Some(SystemTime::now() + Duration::from_secs(60));
        cache.get_or_fetch("c", || fetch(soon)).await?;
        cache.get_or_fetch("c", || fetch(soon)).await?;
        cache.get_or_fetch("d", || fetch(None)).await?;
        cache.get_or_fetch("d", || fetch(None)).await?;
        assert_eq!(fetches.load(Ordering::SeqCst), 6);
        // A failure is not kept.
        let failed = cache.get_or_fetch("e", || async { Err::<Token, _>(Error::unavailable("503")) }).await;
        assert!(failed.is_err());
        cache.get_or_fetch("e", || fetch(hour)).await?;
        assert_eq!(fetches.load(Ordering::SeqCst), 7);
        Ok(())
    }

    #[test]
    fn idle_entries_are_dropped_and_used_ones_kept() -> Result<()> {
        let cache = IdleCache::new(Duration::from_millis(50));
        let built = AtomicUsize::new(0);
        let make = || {
            built.fetch_add(1, Ordering::SeqCst);
            Ok("client")
        };
        cache.get_or_try_insert("a", make)?;
        cache.get_or_try_insert("a", make)?;
        assert_eq!(built.load(Ordering::SeqCst), 1);
        assert!(cache.get_or_try_insert("b", || Err::<&str, _>(Error::invalid_config("bad"))).is_err());
        assert_eq!(cache.len(), 1, "a failure builds nothing");
        std::thread::sleep(Duration::from_millis(60));
        cache.get_or_try_insert("c", make)?;
        assert_eq!(cache.len(), 1, "the idle entry is gone");
        assert!(cache.get(&"a").is_none());
        assert_eq!(*cache.get_or_insert("c", "other"), "client", "an entry put meanwhile is kept");
        assert_eq!(*cache.get_or_insert("d", "built"), "built");
        Ok(())
    }
}

//! One object's read as a mount makes it.

use std::future::Future;
use std::hash::Hash;
use std::time::Instant;

use crate::deadline::before_deadline;
use crate::error::Result;
use crate::outcome::SkippedObject;
use crate::request::MountRequest;
use crate::sharing::{HeldBytes, ReadPolicy, Served, SharedReads};

/// An object's value as the mount got it, or why an optional object was skipped.
pub type ObjectOutcome<V> = std::result::Result<Served<V>, SkippedObject>;

/// The reads of one mount from one cache: the mount's read policy (remount rule,
/// `staleIfError`) and deadline applied to every read.
#[derive(Debug)]
pub struct ObjectReads<'a, K, V> {
    cache: &'a SharedReads<K, V>,
    policy: ReadPolicy,
    deadline: Option<Instant>,
    /// Who is asked, for the deadline's message ("Key Vault", "Secrets Manager").
    service: &'a str,
}

impl<K, V> Clone for ObjectReads<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for ObjectReads<'_, K, V> {}

impl<'a, K, V> ObjectReads<'a, K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    /// The reads `request` makes from `cache`, asking `service`.
    pub fn new(cache: &'a SharedReads<K, V>, request: &MountRequest, service: &'a str) -> Self {
        Self { cache, policy: request.read_policy(), deadline: request.deadline, service }
    }

    /// The same reads with an explicit policy and deadline (tests, benchmarks, batches).
    pub fn with_policy(
        cache: &'a SharedReads<K, V>,
        policy: ReadPolicy,
        deadline: Option<Instant>,
        service: &'a str,
    ) -> Self {
        Self { cache, policy, deadline, service }
    }

    pub fn policy(&self) -> ReadPolicy {
        self.policy
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn service(&self) -> &'a str {
        self.service
    }

    /// The value of `key` (named `object` in errors): a reusable shared read, the read in
    /// flight, or `fetch`; ended at the mount's deadline; during an outage the last good value
    /// when the mount accepts one.
    pub async fn read<F, Fut>(&self, key: K, object: &str, fetch: F) -> Result<Served<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let read = self.cache.read(key.clone(), self.policy, fetch);
        let result = before_deadline(self.deadline, self.service, &[object], read).await;
        self.cache.or_stale(&key, result, self.policy)
    }

    /// [`Self::read`] for an object that may be absent (`optional: true`): absent, it is
    /// skipped; any other failure fails the mount.
    pub async fn read_optional<F, Fut>(
        &self,
        key: K,
        object: &str,
        optional: bool,
        fetch: F,
    ) -> Result<ObjectOutcome<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        skip_if_absent(object, optional, self.read(key, object, fetch).await)
    }

    /// A finished read this mount may reuse without asking (a batch's first look).
    pub(crate) fn recent(&self, key: &K) -> Option<Served<V>> {
        self.cache.recent(key, self.policy)
    }

    /// Keeps a value one call answered for several keys (a batch), for later mounts.
    pub(crate) fn keep(&self, key: K, value: V) {
        self.cache.keep(key, value, self.policy);
    }

    /// `result` of a read made outside [`Self::read`] (a batch), served stale during an outage
    /// when the mount accepts it.
    pub(crate) fn or_stale(&self, key: &K, result: Result<Served<V>>) -> Result<Served<V>> {
        self.cache.or_stale(key, result, self.policy)
    }
}

/// `result` for an object that may be absent: a not-found of an optional object becomes a
/// skip; everything else (a refusal, an outage) stays, since skipping it would hide a fault.
pub fn skip_if_absent<T>(
    object: &str,
    optional: bool,
    result: Result<T>,
) -> Result<std::result::Result<T, SkippedObject>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => SkippedObject::from_error(object, optional, error).map(Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::files::SecretBytes;
    use crate::sharing::{MountKind, SharingOptions, SharingStats};
    use std::sync::Arc;
    use std::time::Duration;

    fn cache() -> SharedReads<&'static str, SecretBytes> {
        SharedReads::new(SharingOptions::default(), Arc::new(SharingStats::default()))
    }

    #[tokio::test]
    async fn a_read_ends_at_the_deadline_naming_the_object_and_the_service() {
        let cache = cache();
        let soon = Some(Instant::now() + Duration::from_millis(1100));
        let reads = ObjectReads::with_policy(&cache, MountKind::First.into(), soon, "Secret Manager");
        let result = reads.read("db", "db", std::future::pending).await;
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("Secret Manager did not answer") && error.contains("\"db\""), "{error}");
    }

    #[tokio::test]
    async fn an_absent_optional_object_is_skipped_and_other_failures_stay() -> Result<()> {
        let cache = cache();
        let reads = ObjectReads::with_policy(&cache, MountKind::First.into(), None, "Key Vault");
        let absent = reads.read_optional("a", "a", true, || async { Err(Error::not_found("gone")) }).await?;
        assert!(absent.is_err_and(|skipped| skipped.object == "a"));
        let required = reads.read_optional("b", "b", false, || async { Err(Error::not_found("gone")) }).await;
        assert!(required.is_err(), "a required object fails the mount");
        let denied =
            reads.read_optional("c", "c", true, || async { Err(Error::permission_denied("no")) }).await;
        assert!(denied.is_err(), "a refusal is never skipped");
        let present =
            reads.read_optional("d", "d", true, || async { Ok(SecretBytes::new(b"v".to_vec())) }).await?;
        assert!(present.is_ok_and(|served| served.value.expose() == b"v"));
        Ok(())
    }
}

//! Reads that one call answers for several objects (AWS `GetParameters`, ten to a call;
//! `BatchGetSecretValue`, twenty): the kit's read rules (a remount's recent reads first, the
//! same batch in flight joined, the mount's deadline, each value kept for remounts, `staleIfError`
//! when the call fails) applied to a batch, with every answer addressed by its key, never by its
//! place in the call.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use futures::StreamExt;

use crate::deadline::before_deadline;
use crate::error::{Error, Result};
use crate::sharing::{HeldBytes, Served, SharedReads};

use super::reads::ObjectReads;

/// What one batch call said about one key.
#[derive(Debug, Clone)]
pub enum BatchAnswer<V> {
    Value(V),
    /// A final word for this key (it does not exist, it cannot be decrypted), as a read of its
    /// own would have said.
    Failed(Error),
}

/// One batch call's answers, by key. A key the call gave no final word on is absent: the
/// mount reads it on its own.
#[derive(Debug, Clone)]
pub struct BatchAnswers<K, V> {
    answers: HashMap<K, BatchAnswer<V>>,
}

impl<K: Eq + Hash, V> Default for BatchAnswers<K, V> {
    fn default() -> Self {
        Self { answers: HashMap::new() }
    }
}

impl<K: Eq + Hash, V> BatchAnswers<K, V> {
    pub fn insert(&mut self, key: K, answer: BatchAnswer<V>) {
        self.answers.insert(key, answer);
    }

    pub fn get(&self, key: &K) -> Option<&BatchAnswer<V>> {
        self.answers.get(key)
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

impl<K, V: HeldBytes> HeldBytes for BatchAnswers<K, V> {
    fn held_bytes(&self) -> usize {
        self.answers
            .values()
            .map(|answer| match answer {
                BatchAnswer::Value(value) => value.held_bytes(),
                BatchAnswer::Failed(_) => 0,
            })
            .sum()
    }
}

/// What the keys of a call that failed as a whole get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenCallFails {
    /// Each key its last good value during an outage (`staleIfError`), else the call's error:
    /// the call was the only way to read them (SSM).
    ServeStale,
    /// No answer: each key is read on its own (Secrets Manager, whose single reads also fail
    /// over to another region).
    ReadEachAlone,
}

/// How a backend batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    /// Who is asked, for the deadline's message ("SSM Parameter Store").
    pub service: &'static str,
    /// Keys one call takes at most.
    pub size: usize,
    /// Fewer distinct keys to read than this, and no call is made (all are left to reads of
    /// their own).
    pub min_keys: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    pub when_call_fails: WhenCallFails,
}

/// One object a mount wants from a batch: its read key, its name for errors, and what the
/// backend's call needs to ask for it.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a, K, T> {
    pub key: &'a K,
    pub object: &'a str,
    pub request: T,
}

/// A mount's batch reads, by key: a value (recent, or from a call), a final error, or nothing
/// (read it on its own).
#[derive(Debug)]
pub struct Batched<K, V> {
    answers: HashMap<K, Result<Served<V>>>,
    /// The calls that failed as a whole (a refusal a backend may remember).
    pub call_failures: Vec<Error>,
}

impl<K: Eq + Hash, V: Clone> Batched<K, V> {
    /// What the batches said about `key`; `None`: read it on its own.
    pub fn answer(&self, key: &K) -> Option<Result<Served<V>>> {
        self.answers.get(key).cloned()
    }
}

impl<K, V> ObjectReads<'_, K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + HeldBytes + Send + Sync + 'static,
{
    /// Reads `items` through batch calls: each key's reusable recent read first; the distinct
    /// rest, when there are at least `plan.min_keys`, `plan.size` to a `call`, each joined with
    /// the identical call in flight (`in_flight`) and ended at the mount's deadline naming its
    /// objects; each value kept for remounts; a call that fails as a whole handled as
    /// `plan.when_call_fails` says.
    pub async fn read_batched<T, F, Fut>(
        &self,
        in_flight: &SharedReads<Vec<K>, BatchAnswers<K, V>>,
        items: &[BatchItem<'_, K, T>],
        plan: BatchPlan,
        call: F,
    ) -> Batched<K, V>
    where
        T: Copy + Send + Sync,
        F: Fn(Vec<(K, T)>) -> Fut + Sync,
        Fut: Future<Output = Result<BatchAnswers<K, V>>> + Send,
    {
        let mut answers: HashMap<K, Result<Served<V>>> = HashMap::new();
        let mut missing: Vec<&BatchItem<'_, K, T>> = Vec::new();
        for item in items {
            if answers.contains_key(item.key) || missing.iter().any(|m| m.key == item.key) {
                continue;
            }
            match self.recent(item.key) {
                Some(served) => {
                    answers.insert(item.key.clone(), Ok(served));
                }
                None => missing.push(item),
            }
        }
        let mut call_failures = Vec::new();
        if missing.is_empty() || missing.len() < plan.min_keys {
            return Batched { answers, call_failures };
        }
        // Futures made in a loop, not a closure: a closure here trips the `Send` check of the
        // backends' async-trait futures (higher-ranked lifetimes).
        let mut calls = Vec::new();
        for chunk in missing.chunks(plan.size.max(1)) {
            calls.push(self.one_call(in_flight, plan.service, chunk, &call));
        }
        let done: Vec<_> = futures::stream::iter(calls).buffered(plan.concurrency.max(1)).collect().await;
        for (chunk, result) in done {
            match result {
                Ok(served) => {
                    for item in chunk {
                        match served.value.get(item.key) {
                            Some(BatchAnswer::Value(value)) => {
                                self.keep(item.key.clone(), value.clone());
                                let fresh = Served { shared: served.shared, ..Served::fresh(value.clone()) };
                                answers.insert(item.key.clone(), Ok(fresh));
                            }
                            Some(BatchAnswer::Failed(error)) => {
                                answers.insert(item.key.clone(), Err(error.clone()));
                            }
                            None => {}
                        }
                    }
                }
                Err(error) => {
                    if plan.when_call_fails == WhenCallFails::ServeStale {
                        for item in chunk {
                            answers.insert(item.key.clone(), self.or_stale(item.key, Err(error.clone())));
                        }
                    }
                    call_failures.push(error);
                }
            }
        }
        Batched { answers, call_failures }
    }

    /// One call for `chunk`, joined with the identical one in flight, ended at the deadline.
    async fn one_call<'c, 'i, T, F, Fut>(
        &self,
        in_flight: &SharedReads<Vec<K>, BatchAnswers<K, V>>,
        service: &str,
        chunk: &'c [&'c BatchItem<'i, K, T>],
        call: &F,
    ) -> (&'c [&'c BatchItem<'i, K, T>], Result<Served<BatchAnswers<K, V>>>)
    where
        T: Copy + Send + Sync,
        F: Fn(Vec<(K, T)>) -> Fut + Sync,
        Fut: Future<Output = Result<BatchAnswers<K, V>>> + Send,
    {
        let keys: Vec<K> = chunk.iter().map(|item| item.key.clone()).collect();
        let names: Vec<&str> = chunk.iter().map(|item| item.object).collect();
        let requests: Vec<(K, T)> = chunk.iter().map(|item| (item.key.clone(), item.request)).collect();
        let shared = in_flight.single_flight(keys, || call(requests));
        (chunk, before_deadline(self.deadline(), service, &names, shared).await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::files::SecretBytes;
    use crate::sharing::{MountKind, ReadPolicy, SharingOptions, SharingStats};

    type Cache = SharedReads<&'static str, SecretBytes>;
    type InFlight = SharedReads<Vec<&'static str>, BatchAnswers<&'static str, SecretBytes>>;

    fn caches() -> (Cache, InFlight) {
        let stats = Arc::new(SharingStats::default());
        (
            SharedReads::new(SharingOptions::default(), Arc::clone(&stats)),
            SharedReads::new(SharingOptions::default(), stats),
        )
    }

    fn plan(min_keys: usize, when_call_fails: WhenCallFails) -> BatchPlan {
        BatchPlan { service: "SSM Parameter Store", size: 2, min_keys, concurrency: 2, when_call_fails }
    }

    fn items<'a>(keys: &'a [&'static str]) -> Vec<BatchItem<'a, &'static str, ()>> {
        keys.iter().map(|key| BatchItem { key, object: key, request: () }).collect()
    }

    fn value(text: &str) -> SecretBytes {
        SecretBytes::new(text.as_bytes().to_vec())
    }

    fn text(answer: Option<Result<Served<SecretBytes>>>) -> String {
        match answer {
            Some(Ok(served)) => String::from_utf8_lossy(served.value.expose()).into_owned(),
            Some(Err(error)) => format!("error: {error}"),
            None => "unanswered".into(),
        }
    }

    /// A call answering in its own order, with a final error for one key and nothing for
    /// another: each key gets its own answer, the unanswered one is left to its own read, the
    /// same key under two names is asked once, and calls take at most `size` keys.
    #[tokio::test]
    async fn answers_go_to_their_keys_whatever_the_order() {
        let (cache, in_flight) = caches();
        let reads = ObjectReads::with_policy(&cache, MountKind::First.into(), None, "SSM");
        let asked = std::sync::Mutex::new(Vec::new());
        let keys = ["a", "b", "a", "c", "d"];
        let batched = reads
            .read_batched(&in_flight, &items(&keys), plan(1, WhenCallFails::ReadEachAlone), |batch| {
                let names: Vec<&'static str> = batch.iter().map(|(key, ())| *key).collect();
                asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(names.clone());
                async move {
                    let mut answers = BatchAnswers::default();
                    for name in names.into_iter().rev() {
                        match name {
                            "b" => answers.insert(name, BatchAnswer::Failed(Error::not_found("no b"))),
                            "d" => {}
                            _ => answers.insert(name, BatchAnswer::Value(value(&format!("{name}-value")))),
                        }
                    }
                    Ok(answers)
                }
            })
            .await;
        assert_eq!(text(batched.answer(&"a")), "a-value");
        assert_eq!(text(batched.answer(&"b")), "error: no b");
        assert_eq!(text(batched.answer(&"c")), "c-value");
        assert_eq!(text(batched.answer(&"d")), "unanswered");
        let asked = asked.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert_eq!(asked, [vec!["a", "b"], vec!["c", "d"]]);
        assert!(reads.recent(&"a").is_none(), "a first mount reuses nothing, but the value is kept");
        let remount = ObjectReads::with_policy(
            &cache,
            MountKind::Remount { previous: tokio::time::Instant::now() - Duration::from_secs(1) }.into(),
            None,
            "SSM",
        );
        assert!(remount.recent(&"a").is_some(), "kept for remounts");
    }

    /// Recent reads are not asked again; fewer keys than `min_keys` make no call.
    #[tokio::test]
    async fn recent_reads_first_and_no_call_below_the_minimum() {
        let (cache, in_flight) = caches();
        let calls = AtomicUsize::new(0);
        let first = ObjectReads::with_policy(&cache, MountKind::First.into(), None, "SSM");
        let call = |batch: Vec<(&'static str, ())>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut answers = BatchAnswers::default();
                for (key, ()) in batch {
                    answers.insert(key, BatchAnswer::Value(value("v")));
                }
                Ok(answers)
            }
        };
        first
            .read_batched(&in_flight, &items(&["a", "b"]), plan(2, WhenCallFails::ReadEachAlone), call)
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let remount = ObjectReads::with_policy(
            &cache,
            MountKind::Remount { previous: tokio::time::Instant::now() - Duration::from_secs(1) }.into(),
            None,
            "SSM",
        );
        let batched = remount
            .read_batched(&in_flight, &items(&["a", "b", "c"]), plan(2, WhenCallFails::ReadEachAlone), call)
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one key left is below the minimum: no call");
        assert_eq!(
            (text(batched.answer(&"a")), text(batched.answer(&"c"))),
            ("v".into(), "unanswered".into())
        );
        assert!(batched.answer(&"a").is_some_and(|a| a.is_ok_and(|served| served.shared)));
    }

    /// A call that fails as a whole: its keys get their last good value during an outage
    /// (`ServeStale`, with `staleIfError`), or are left to reads of their own; the failure is
    /// reported either way.
    #[tokio::test]
    async fn a_failed_call_serves_stale_or_leaves_each_key_alone() {
        let (cache, in_flight) = caches();
        let policy =
            ReadPolicy { stale_if_error: Some(Duration::from_secs(3600)), ..MountKind::First.into() };
        let reads = ObjectReads::with_policy(&cache, policy, None, "SSM");
        reads.keep("a", value("old"));
        let failing = |_: Vec<(&'static str, ())>| async { Err(Error::unavailable("down")) };
        let stale = reads
            .read_batched(&in_flight, &items(&["a", "b"]), plan(1, WhenCallFails::ServeStale), failing)
            .await;
        assert!(stale.answer(&"a").is_some_and(|a| a.is_ok_and(|served| served.stale.is_some())));
        assert_eq!(text(stale.answer(&"b")), "error: down");
        assert_eq!(stale.call_failures.len(), 1);
        let alone = reads
            .read_batched(&in_flight, &items(&["a", "b"]), plan(1, WhenCallFails::ReadEachAlone), failing)
            .await;
        assert_eq!(
            (text(alone.answer(&"a")), text(alone.answer(&"b"))),
            ("unanswered".into(), "unanswered".into())
        );
        assert_eq!(alone.call_failures.len(), 1);
    }
}

//! Object reads shared between mounts of one identity (see `csi_secrets_provider_core::sharing`):
//! a remount takes a recent read of the same (identity, object), and concurrent mounts join one
//! read in flight. SSM parameters are read ten to a call, and Secrets Manager secrets twenty to a
//! `BatchGetSecretValue` when two or more current versions of one region set are read, so a
//! remount looks each one up on its own, reads only the missing ones, and keeps each answer
//! under its own key.

use csi_secrets_provider_core::kit::{self, BatchAnswers, skip_if_absent};
use csi_secrets_provider_core::{
    CloudCalls, Error, ErrorKind, HeldBytes, Served, SharedReads, SharingOptions, SharingStats, SkippedObject,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::batch::{self, SECRETS_BATCH};
use crate::credentials::IdentityKey;
use crate::fetch::{self, Fetched, RegionClients, SSM_BATCH};
use crate::params::{ObjectSpec, ObjectType};

impl HeldBytes for Fetched {
    fn held_bytes(&self) -> usize {
        self.value.len() + self.version.len() + self.arn.len()
    }
}

/// One region's attempt at an object: the name (or ARN) and the version asked for there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RegionalTarget {
    region: String,
    name: String,
    version: Option<String>,
    label: Option<String>,
}

/// Everything that decides a read's answer: whose credentials, and what is asked of which
/// region, in order (primary, then failover).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ObjectReadKey {
    identity: IdentityKey,
    object_type: ObjectType,
    targets: Vec<RegionalTarget>,
}

/// A batch call in flight, shared by the mounts asking the same objects.
type BatchesInFlight = SharedReads<Vec<ObjectReadKey>, BatchAnswers<ObjectReadKey, Fetched>>;

/// The backend's shared reads: objects by key, and SSM and Secrets Manager batches in flight.
#[derive(Debug)]
pub(crate) struct SharedObjects {
    pub(crate) objects: SharedReads<ObjectReadKey, Fetched>,
    parameter_batches: BatchesInFlight,
    secret_batches: BatchesInFlight,
    /// Identities whose IAM policy refused `BatchGetSecretValue`: they read one secret a call,
    /// so the refusal costs one call once.
    batch_refused: Mutex<HashSet<IdentityKey>>,
}

/// Identities remembered as refused at most; past it the memory starts again (one more refused
/// call each), so pod-scoped identities cannot grow it without bound.
const MAX_REFUSED_IDENTITIES: usize = 4096;

impl SharedObjects {
    pub(crate) fn new(options: SharingOptions, stats: &Arc<SharingStats>) -> Self {
        Self {
            objects: SharedReads::new(options, Arc::clone(stats)),
            parameter_batches: SharedReads::new(options, Arc::clone(stats)),
            secret_batches: SharedReads::new(options, Arc::clone(stats)),
            batch_refused: Mutex::default(),
        }
    }

    fn batch_refused(&self, identity: &IdentityKey) -> bool {
        self.batch_refused.lock().unwrap_or_else(PoisonError::into_inner).contains(identity)
    }

    fn refuse_batches(&self, identity: &IdentityKey) {
        let mut refused = self.batch_refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REFUSED_IDENTITIES {
            refused.clear();
        }
        refused.insert(identity.clone());
    }
}

/// The regions a mount reads from: the SecretProviderClass's (primary, then failover), and
/// those objects name with their own `region` (no failover).
#[derive(Debug)]
pub(crate) struct MountRegions {
    pub spc: Vec<RegionClients>,
    pub own: Vec<RegionClients>,
}

impl MountRegions {
    /// The regions to try for `object`, in order.
    pub(crate) fn of(&self, object: &ObjectSpec) -> &[RegionClients] {
        match &object.region {
            Some(region) => self
                .own
                .iter()
                .position(|clients| &clients.region == region)
                .map_or(&[][..], |index| &self.own[index..=index]),
            None => &self.spc,
        }
    }
}

/// An object's value (perhaps served stale during an outage), or why an optional object was
/// skipped.
pub(crate) type ObjectOutcome = Result<Served<Fetched>, SkippedObject>;

/// The reads of one mount.
#[derive(Debug)]
pub(crate) struct MountReads<'a> {
    pub regions: &'a MountRegions,
    pub identity: &'a IdentityKey,
    /// Each object's read (the kit's: sharing, remount rule, deadline, `staleIfError`).
    pub objects: kit::ObjectReads<'a, ObjectReadKey, Fetched>,
    /// The batches in flight and the identities refused batches.
    pub shared: &'a SharedObjects,
    pub calls: &'a CloudCalls,
    /// Objects (or SSM batches) read at once.
    pub concurrency: usize,
}

impl MountReads<'_> {
    fn key(&self, object: &ObjectSpec) -> ObjectReadKey {
        let targets = self
            .regions
            .of(object)
            .iter()
            .map(|clients| {
                let target = object.target(clients.failover);
                RegionalTarget {
                    region: clients.region.clone(),
                    name: target.name.to_owned(),
                    version: target.version.map(str::to_owned),
                    label: target.label.map(str::to_owned),
                }
            })
            .collect();
        ObjectReadKey { identity: self.identity.clone(), object_type: object.object_type, targets }
    }

    /// Secrets Manager objects, in order; a missing optional one is skipped. A remount's
    /// reusable reads first, then batches, then each remaining object on its own.
    pub(crate) async fn secrets(&self, objects: &[&ObjectSpec]) -> Result<Vec<ObjectOutcome>, Error> {
        let keys: Vec<ObjectReadKey> = objects.iter().map(|object| self.key(object)).collect();
        let batched = self.secret_batches(objects, &keys).await;
        // Futures collected first: a closure inside the stream trips the `Send` check of the
        // async-trait future (higher-ranked lifetimes).
        let reads: Vec<_> = objects
            .iter()
            .zip(&keys)
            .map(|(&object, key)| {
                let answer = batched.iter().find_map(|batched| batched.answer(key));
                async move {
                    let served = match answer {
                        Some(answer) => answer,
                        None => {
                            self.objects
                                .read(key.clone(), &object.name, move || {
                                    fetch::secret(self.regions.of(object), object, self.calls)
                                })
                                .await
                        }
                    };
                    skip_if_absent(&object.name, object.optional, served)
                }
            })
            .collect();
        futures::stream::iter(reads).buffered(self.concurrency.max(1)).try_collect().await
    }

    /// `BatchGetSecretValue` for the secrets worth it: in each region set, the current
    /// versions not answered yet, twenty to a call, when there are two or more distinct ones.
    /// What a batch gives no final word on is left to a read of its own; a call the identity's
    /// IAM policy refuses is remembered, so it is not asked again.
    async fn secret_batches(
        &self,
        objects: &[&ObjectSpec],
        keys: &[ObjectReadKey],
    ) -> Vec<kit::Batched<ObjectReadKey, Fetched>> {
        if self.shared.batch_refused(self.identity) {
            return Vec::new();
        }
        let plan = kit::BatchPlan {
            service: "Secrets Manager",
            size: SECRETS_BATCH,
            min_keys: 2,
            concurrency: self.concurrency,
            when_call_fails: kit::WhenCallFails::ReadEachAlone,
        };
        let batchable = objects
            .iter()
            .zip(keys)
            .filter(|(object, _)| batch::batchable(object) && !self.regions.of(object).is_empty());
        let mut batched = Vec::new();
        for group in by_region_set(batchable) {
            let Some(clients) = group.first().and_then(|item| self.regions.of(item.request).first()) else {
                continue;
            };
            let read = self
                .objects
                .read_batched(&self.shared.secret_batches, &group, plan, |batch| {
                    batch::secret_batch(clients, batch, self.calls)
                })
                .await;
            if read.call_failures.iter().any(|e| e.kind() == ErrorKind::PermissionDenied) {
                tracing::info!("BatchGetSecretValue refused; this identity reads one secret a call");
                self.shared.refuse_batches(self.identity);
            }
            batched.push(read);
        }
        batched
    }

    /// SSM parameters, in order: those of each region set read apart (ten to a call, since
    /// one call asks one region); a remount's reusable reads first; during an outage, each its
    /// last good value when the SecretProviderClass accepts one.
    pub(crate) async fn parameters(&self, objects: &[&ObjectSpec]) -> Result<Vec<ObjectOutcome>, Error> {
        let keys: Vec<ObjectReadKey> = objects.iter().map(|object| self.key(object)).collect();
        let plan = kit::BatchPlan {
            service: "SSM Parameter Store",
            size: SSM_BATCH,
            min_keys: 1,
            concurrency: self.concurrency,
            when_call_fails: kit::WhenCallFails::ServeStale,
        };
        let mut batched = Vec::new();
        for group in by_region_set(objects.iter().zip(&keys)) {
            let regions = group.first().map_or(&[][..], |item| self.regions.of(item.request));
            let read = self
                .objects
                .read_batched(&self.shared.parameter_batches, &group, plan, |batch| {
                    fetch::parameter_batch(regions, batch, self.calls)
                })
                .await;
            batched.push(read);
        }
        objects
            .iter()
            .zip(&keys)
            .map(|(object, key)| {
                let answer = batched.iter().find_map(|batched| batched.answer(key)).ok_or_else(|| {
                    Error::internal("SSM answered fewer parameters than asked").with_object(&object.name)
                })?;
                skip_if_absent(&object.name, object.optional, answer)
            })
            .collect()
    }
}

/// An object of a batch: its read key, its name, its spec.
type BatchItem<'a> = kit::BatchItem<'a, ObjectReadKey, &'a ObjectSpec>;

/// `objects` (each with its read key) grouped by the regions they are read from: the
/// SecretProviderClass's, or an object's own `region`; one call asks one region set.
fn by_region_set<'a>(
    objects: impl Iterator<Item = (&'a &'a ObjectSpec, &'a ObjectReadKey)>,
) -> Vec<Vec<BatchItem<'a>>> {
    let mut groups: Vec<(Option<&str>, Vec<BatchItem<'a>>)> = Vec::new();
    for (&object, key) in objects {
        let item = kit::BatchItem { key, object: object.name.as_str(), request: object };
        let region = object.region.as_deref();
        match groups.iter_mut().find(|(r, _)| *r == region) {
            Some((_, items)) => items.push(item),
            None => groups.push((region, vec![item])),
        }
    }
    groups.into_iter().map(|(_, items)| items).collect()
}

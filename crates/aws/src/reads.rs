//! Object reads shared between mounts of one identity (see `csi_secrets_provider_core::sharing`):
//! a remount takes a recent read of the same (identity, object), and concurrent mounts join one
//! read in flight. SSM parameters are read ten to a call, so a remount looks each one up on its
//! own, reads only the missing ones, and keeps each answer under its own key.

use csi_secrets_provider_core::{
    CloudCalls, Error, HeldBytes, ReadPolicy, Served, SharedReads, SharingOptions, SharingStats,
    SkippedObject, before_deadline,
};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

use crate::credentials::IdentityKey;
use crate::fetch::{self, Fetched, ParameterBatch, RegionClients, SSM_BATCH};
use crate::params::{ObjectSpec, ObjectType};

impl HeldBytes for Fetched {
    fn held_bytes(&self) -> usize {
        self.value.len() + self.version.len()
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

/// The backend's shared reads: objects by key, and SSM batches in flight.
#[derive(Debug)]
pub(crate) struct SharedObjects {
    objects: SharedReads<ObjectReadKey, Fetched>,
    batches: SharedReads<Vec<ObjectReadKey>, ParameterBatch>,
}

impl SharedObjects {
    pub(crate) fn new(options: SharingOptions, stats: &Arc<SharingStats>) -> Self {
        Self {
            objects: SharedReads::new(options, Arc::clone(stats)),
            batches: SharedReads::new(options, Arc::clone(stats)),
        }
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
pub(crate) struct ObjectReads<'a> {
    pub regions: &'a MountRegions,
    pub identity: &'a IdentityKey,
    /// Remount reuse and `staleIfError`.
    pub policy: ReadPolicy,
    pub shared: &'a SharedObjects,
    pub calls: &'a CloudCalls,
    /// Objects (or SSM batches) read at once.
    pub concurrency: usize,
    /// The mount's deadline: every read ends before it (see `core::deadline`).
    pub deadline: Option<std::time::Instant>,
}

impl ObjectReads<'_> {
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

    /// Secrets Manager objects, in order; a missing optional one is skipped.
    pub(crate) async fn secrets(&self, objects: &[&ObjectSpec]) -> Result<Vec<ObjectOutcome>, Error> {
        // Futures collected first: a closure inside the stream trips the `Send` check of the
        // async-trait future (higher-ranked lifetimes).
        let reads: Vec<_> = objects
            .iter()
            .map(|&object| async move {
                let key = self.key(object);
                let read = self.shared.objects.read(key.clone(), self.policy, move || {
                    fetch::secret(self.regions.of(object), object, self.calls)
                });
                let result = before_deadline(self.deadline, "Secrets Manager", &[&object.name], read).await;
                match self.shared.objects.or_stale(&key, result, self.policy) {
                    Ok(served) => Ok(Ok(served)),
                    Err(e) => SkippedObject::from_error(&object.name, object.optional, e).map(Err),
                }
            })
            .collect();
        futures::stream::iter(reads).buffered(self.concurrency.max(1)).try_collect().await
    }

    /// SSM parameters, in order: those of each region set read apart (ten to a call), since
    /// one call asks one region.
    pub(crate) async fn parameters(&self, objects: &[&ObjectSpec]) -> Result<Vec<ObjectOutcome>, Error> {
        let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
        for (index, object) in objects.iter().enumerate() {
            let region = object.region.as_deref();
            match groups.iter_mut().find(|(r, _)| *r == region) {
                Some((_, indices)) => indices.push(index),
                None => groups.push((region, vec![index])),
            }
        }
        let mut outcomes: Vec<Option<ObjectOutcome>> = vec![None; objects.len()];
        for (_, indices) in groups {
            let group: Vec<&ObjectSpec> = indices.iter().map(|&i| objects[i]).collect();
            for (index, outcome) in indices.into_iter().zip(self.parameters_of_one_region_set(&group).await?)
            {
                outcomes[index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .zip(objects)
            .map(|(outcome, object)| {
                outcome.ok_or_else(|| {
                    Error::internal("SSM answered fewer parameters than asked").with_object(&object.name)
                })
            })
            .collect()
    }

    /// Parameters read from the same regions: recent reads for a remount, the rest ten to a
    /// call.
    async fn parameters_of_one_region_set(
        &self,
        objects: &[&ObjectSpec],
    ) -> Result<Vec<ObjectOutcome>, Error> {
        let keys: Vec<ObjectReadKey> = objects.iter().map(|object| self.key(object)).collect();
        let mut found: Vec<Option<ObjectOutcome>> = keys
            .iter()
            .map(|key| self.shared.objects.recent(key, self.policy.kind).map(|v| Ok(Served::fresh(v))))
            .collect();
        let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
        let regions = objects.first().map_or(&[][..], |object| self.regions.of(object));
        let batches: Vec<_> = missing
            .chunks(SSM_BATCH)
            .map(|indices| {
                let batch: Vec<&ObjectSpec> = indices.iter().map(|&i| objects[i]).collect();
                let batch_keys: Vec<ObjectReadKey> = indices.iter().map(|&i| keys[i].clone()).collect();
                async move {
                    let answer = self
                        .shared
                        .batches
                        .single_flight(batch_keys.clone(), || {
                            fetch::parameter_batch(regions, &batch, self.calls)
                        })
                        .await;
                    let answer = match answer {
                        Ok(answer) => answer,
                        // The cloud is out: each parameter its last good value, or the error.
                        Err(error) => {
                            let outcomes = batch_keys
                                .iter()
                                .map(|key| {
                                    self.shared.objects.or_stale(key, Err(error.clone()), self.policy).map(Ok)
                                })
                                .collect::<Result<Vec<ObjectOutcome>, Error>>()?;
                            return Ok((indices, outcomes));
                        }
                    };
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for ((key, value), object) in batch_keys.into_iter().zip(&answer.values).zip(&batch) {
                        outcomes.push(match value {
                            Some(value) => {
                                self.shared.objects.keep(key, value.clone(), self.policy.stale_if_error);
                                Ok(Served::fresh(value.clone()))
                            }
                            None => Err(SkippedObject::from_error(
                                &object.name,
                                object.optional,
                                answer.missing(object),
                            )?),
                        });
                    }
                    Ok::<_, Error>((indices, outcomes))
                }
            })
            .collect();
        let answered: Vec<(&[usize], Vec<ObjectOutcome>)> =
            futures::stream::iter(batches).buffered(self.concurrency.max(1)).try_collect().await?;
        for (indices, outcomes) in answered {
            for (&index, outcome) in indices.iter().zip(outcomes) {
                found[index] = Some(outcome);
            }
        }
        found
            .into_iter()
            .zip(objects)
            .map(|(value, object)| {
                value.ok_or_else(|| {
                    Error::internal("SSM answered fewer parameters than asked").with_object(&object.name)
                })
            })
            .collect()
    }
}

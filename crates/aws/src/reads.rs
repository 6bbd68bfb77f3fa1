//! Object reads shared between mounts of one identity (see `csi_secrets_provider_core::sharing`):
//! a remount takes a recent read of the same (identity, object), and concurrent mounts join one
//! read in flight. SSM parameters are read ten to a call, and Secrets Manager secrets twenty to a
//! `BatchGetSecretValue` when two or more current versions of one region set are read, so a
//! remount looks each one up on its own, reads only the missing ones, and keeps each answer
//! under its own key.

use csi_secrets_provider_core::kit::{self, skip_if_absent};
use csi_secrets_provider_core::{
    CloudCalls, Error, HeldBytes, Served, SharedReads, SharingOptions, SharingStats, SkippedObject,
    before_deadline,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::batch::{self, BatchAnswer, SECRETS_BATCH, SecretBatch};
use crate::credentials::IdentityKey;
use crate::fetch::{self, Fetched, ParameterBatch, RegionClients, SSM_BATCH};
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

/// The backend's shared reads: objects by key, and SSM and Secrets Manager batches in flight.
#[derive(Debug)]
pub(crate) struct SharedObjects {
    pub(crate) objects: SharedReads<ObjectReadKey, Fetched>,
    batches: SharedReads<Vec<ObjectReadKey>, ParameterBatch>,
    secret_batches: SharedReads<Vec<ObjectReadKey>, SecretBatch>,
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
            batches: SharedReads::new(options, Arc::clone(stats)),
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

/// What is known of an object before its own read: its value or a final error, or `None` (it
/// still needs a read).
type Answer = Option<Result<Served<Fetched>, Error>>;

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
        let mut answered: Vec<Answer> = keys.iter().map(|key| self.objects.recent(key).map(Ok)).collect();
        if !self.shared.batch_refused(self.identity) {
            let batches: Vec<_> = self
                .secret_batches(objects, &keys, &answered)
                .into_iter()
                .map(|batch| self.secret_batch(objects, &keys, batch))
                .collect();
            let batched: Vec<Vec<(usize, Answer)>> =
                futures::stream::iter(batches).buffered(self.concurrency.max(1)).collect().await;
            for (index, answer) in batched.into_iter().flatten() {
                answered[index] = answer;
            }
        }
        // Futures collected first: a closure inside the stream trips the `Send` check of the
        // async-trait future (higher-ranked lifetimes).
        let reads: Vec<_> = objects
            .iter()
            .zip(keys)
            .zip(answered)
            .map(|((&object, key), answer)| async move {
                let served = match answer {
                    Some(answer) => answer,
                    None => {
                        self.objects
                            .read(key, &object.name, move || {
                                fetch::secret(self.regions.of(object), object, self.calls)
                            })
                            .await
                    }
                };
                skip_if_absent(&object.name, object.optional, served)
            })
            .collect();
        futures::stream::iter(reads).buffered(self.concurrency.max(1)).try_collect().await
    }

    /// The batches worth a call: for each region set, the distinct secrets not answered yet
    /// whose current version is read, twenty to a batch, when there are two or more. Each entry
    /// lists the indices (into `objects`) of one distinct secret.
    fn secret_batches(
        &self,
        objects: &[&ObjectSpec],
        keys: &[ObjectReadKey],
        answered: &[Answer],
    ) -> Vec<Vec<Vec<usize>>> {
        let mut groups: Vec<(Option<&str>, Vec<Vec<usize>>)> = Vec::new();
        for (index, object) in objects.iter().enumerate() {
            if answered[index].is_some() || !batch::batchable(object) || self.regions.of(object).is_empty() {
                continue;
            }
            let region = object.region.as_deref();
            let position = match groups.iter().position(|(r, _)| *r == region) {
                Some(position) => position,
                None => {
                    groups.push((region, Vec::new()));
                    groups.len() - 1
                }
            };
            let group = &mut groups[position].1;
            match group.iter_mut().find(|same| keys[same[0]] == keys[index]) {
                Some(same) => same.push(index),
                None => group.push(vec![index]),
            }
        }
        groups
            .into_iter()
            .filter(|(_, distinct)| distinct.len() >= 2)
            .flat_map(|(_, distinct)| distinct.chunks(SECRETS_BATCH).map(<[_]>::to_vec).collect::<Vec<_>>())
            .collect()
    }

    /// One `BatchGetSecretValue` (shared with identical batches in flight): each value kept for
    /// remounts, each client fault final, everything else left to a read of its own. A call the
    /// identity's IAM policy refuses is remembered, so it is not asked again.
    async fn secret_batch(
        &self,
        objects: &[&ObjectSpec],
        keys: &[ObjectReadKey],
        batch: Vec<Vec<usize>>,
    ) -> Vec<(usize, Answer)> {
        let specs: Vec<&ObjectSpec> = batch.iter().map(|same| objects[same[0]]).collect();
        let batch_keys: Vec<ObjectReadKey> = batch.iter().map(|same| keys[same[0]].clone()).collect();
        let names: Vec<&str> = specs.iter().map(|object| object.name.as_str()).collect();
        let regions = self.regions.of(specs[0]);
        let call = self
            .shared
            .secret_batches
            .single_flight(batch_keys.clone(), || batch::secret_batch(&regions[0], &specs, self.calls));
        let (answers, shared) = match before_deadline(
            self.objects.deadline(),
            "Secrets Manager",
            &names,
            call,
        )
        .await
        {
            Ok(answer) => (answer.value.answers, answer.shared),
            Err(error) => {
                if error.kind() == csi_secrets_provider_core::ErrorKind::PermissionDenied {
                    tracing::info!(error = %error, "BatchGetSecretValue refused; this identity reads one secret a call");
                    self.shared.refuse_batches(self.identity);
                }
                (vec![BatchAnswer::Unanswered; batch.len()], false)
            }
        };
        let mut out = Vec::new();
        for ((same, key), answer) in batch.into_iter().zip(batch_keys).zip(answers) {
            let answer = match answer {
                BatchAnswer::Value(fetched) => {
                    self.objects.keep(key, fetched.clone());
                    Some(Ok(Served { shared, ..Served::fresh(fetched) }))
                }
                BatchAnswer::Failed(error) => Some(Err(error)),
                BatchAnswer::Unanswered => None,
            };
            out.extend(same.into_iter().map(|index| (index, answer.clone())));
        }
        out
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
        let mut found: Vec<Option<ObjectOutcome>> =
            keys.iter().map(|key| self.objects.recent(key).map(Ok)).collect();
        // The same parameter under several aliases is asked once (SSM answers a name once, as
        // upstream writes every alias) and its answer given to each.
        let missing: Vec<usize> = (0..found.len())
            .filter(|&i| {
                found[i].is_none()
                    && !keys[..i].iter().enumerate().any(|(j, key)| *key == keys[i] && found[j].is_none())
            })
            .collect();
        let regions = objects.first().map_or(&[][..], |object| self.regions.of(object));
        let batches: Vec<_> = missing
            .chunks(SSM_BATCH)
            .map(|indices| {
                let batch: Vec<&ObjectSpec> = indices.iter().map(|&i| objects[i]).collect();
                let batch_keys: Vec<ObjectReadKey> = indices.iter().map(|&i| keys[i].clone()).collect();
                async move {
                    let names: Vec<&str> = batch.iter().map(|object| object.name.as_str()).collect();
                    // Bounded by the mount's deadline like every other read: a hanging SSM
                    // ends in an error naming the parameters, not in the driver's timeout.
                    let call = self.shared.batches.single_flight(batch_keys.clone(), || {
                        fetch::parameter_batch(regions, &batch, self.calls)
                    });
                    let answer =
                        before_deadline(self.objects.deadline(), "SSM Parameter Store", &names, call).await;
                    let answer = match answer {
                        Ok(answer) => answer,
                        // The cloud is out: each parameter its last good value, or the error.
                        Err(error) => {
                            let outcomes = batch_keys
                                .iter()
                                .map(|key| self.objects.or_stale(key, Err(error.clone())).map(Ok))
                                .collect::<Result<Vec<ObjectOutcome>, Error>>()?;
                            return Ok((indices, outcomes));
                        }
                    };
                    let mut outcomes = Vec::with_capacity(batch.len());
                    let shared = answer.shared;
                    for ((key, value), object) in batch_keys.into_iter().zip(&answer.value.values).zip(&batch)
                    {
                        outcomes.push(match value {
                            Some(value) => {
                                self.objects.keep(key, value.clone());
                                Ok(Served { shared, ..Served::fresh(value.clone()) })
                            }
                            None => Err(SkippedObject::from_error(
                                &object.name,
                                object.optional,
                                answer.value.missing(object),
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
        for index in 0..found.len() {
            if found[index].is_none() {
                found[index] = (0..index).find(|&j| keys[j] == keys[index]).and_then(|j| found[j].clone());
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

//! Object reads shared between mounts of one identity (see `csi_secrets_provider_core::sharing`):
//! a remount takes a recent read of the same (identity, object), and concurrent mounts join one
//! read in flight. SSM parameters are read ten to a call, so a remount looks each one up on its
//! own, reads only the missing ones, and keeps each answer under its own key.

use csi_secrets_provider_core::{
    CloudCalls, Error, HeldBytes, MountKind, SharedReads, SharingOptions, SharingStats,
};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

use crate::credentials::IdentityKey;
use crate::fetch::{self, Fetched, RegionClients, SSM_BATCH};
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
    batches: SharedReads<Vec<ObjectReadKey>, Vec<Fetched>>,
}

impl SharedObjects {
    pub(crate) fn new(options: SharingOptions, stats: &Arc<SharingStats>) -> Self {
        Self {
            objects: SharedReads::new(options, Arc::clone(stats)),
            batches: SharedReads::new(options, Arc::clone(stats)),
        }
    }
}

/// The reads of one mount.
#[derive(Debug)]
pub(crate) struct ObjectReads<'a> {
    pub regions: &'a [RegionClients],
    pub identity: &'a IdentityKey,
    pub kind: MountKind,
    pub shared: &'a SharedObjects,
    pub calls: &'a CloudCalls,
    /// Objects (or SSM batches) read at once.
    pub concurrency: usize,
}

impl ObjectReads<'_> {
    fn key(&self, object: &ObjectSpec) -> ObjectReadKey {
        let targets = self
            .regions
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

    /// Secrets Manager objects, in order.
    pub(crate) async fn secrets(&self, objects: &[&ObjectSpec]) -> Result<Vec<Fetched>, Error> {
        // Futures collected first: a closure inside the stream trips the `Send` check of the
        // async-trait future (higher-ranked lifetimes).
        let reads: Vec<_> = objects
            .iter()
            .map(|&object| {
                self.shared.objects.read(self.key(object), self.kind, move || {
                    fetch::secret(self.regions, object, self.calls)
                })
            })
            .collect();
        futures::stream::iter(reads).buffered(self.concurrency.max(1)).try_collect().await
    }

    /// SSM parameters, in order: recent reads for a remount, the rest ten to a call.
    pub(crate) async fn parameters(&self, objects: &[&ObjectSpec]) -> Result<Vec<Fetched>, Error> {
        let keys: Vec<ObjectReadKey> = objects.iter().map(|object| self.key(object)).collect();
        let mut found: Vec<Option<Fetched>> = match self.kind {
            MountKind::Remount => keys.iter().map(|key| self.shared.objects.recent(key)).collect(),
            MountKind::First => vec![None; keys.len()],
        };
        let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
        let batches: Vec<_> = missing
            .chunks(SSM_BATCH)
            .map(|indices| {
                let batch: Vec<&ObjectSpec> = indices.iter().map(|&i| objects[i]).collect();
                let batch_keys: Vec<ObjectReadKey> = indices.iter().map(|&i| keys[i].clone()).collect();
                async move {
                    let fetched = self
                        .shared
                        .batches
                        .single_flight(batch_keys.clone(), || {
                            fetch::parameter_batch(self.regions, &batch, self.calls)
                        })
                        .await?;
                    for (key, value) in batch_keys.into_iter().zip(&fetched) {
                        self.shared.objects.keep(key, value.clone());
                    }
                    Ok::<_, Error>((indices, fetched))
                }
            })
            .collect();
        let answered: Vec<(&[usize], Vec<Fetched>)> =
            futures::stream::iter(batches).buffered(self.concurrency.max(1)).try_collect().await?;
        for (indices, fetched) in answered {
            for (&index, value) in indices.iter().zip(fetched) {
                found[index] = Some(value);
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

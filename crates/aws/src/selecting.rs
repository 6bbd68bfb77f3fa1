//! `objectPrefix` entries at mount time: list (shared like reads), select, check the admin
//! policy for every selected secret before any of them is read, and plan their files.

use csi_secrets_provider_core::kit::{self, plan_selected};
use csi_secrets_provider_core::{MountRequest, Result, SkippedObject};

use crate::AwsBackend;
use crate::credentials::IdentityKey;
use crate::listing::{self, ListingKey};
use crate::params::{MountSpec, ObjectSpec, ObjectType};
use crate::reads::MountRegions;

/// What the prefix entries of a mount selected.
#[derive(Debug, Default)]
pub(crate) struct Selections {
    /// One object per selected secret, read like the named ones.
    pub objects: Vec<ObjectSpec>,
    /// Optional entries that selected nothing: the prefix, and why.
    pub empty: Vec<(String, SkippedObject)>,
}

impl AwsBackend {
    pub(crate) async fn select(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        identity: &IdentityKey,
        regions: &MountRegions,
    ) -> Result<Selections> {
        if spec.selections.is_empty() {
            return Ok(Selections::default());
        }
        let region_names: Vec<String> = regions.spc.iter().map(|clients| clients.region.clone()).collect();
        let listings = spec.selections.iter().map(|entry| {
            let key = ListingKey {
                identity: identity.clone(),
                regions: region_names.clone(),
                object_type: entry.object_type,
                prefix: entry.selection.prefix.clone(),
                tags: entry.selection.tags.clone(),
            };
            let service = match entry.object_type {
                ObjectType::SecretsManager => "Secrets Manager",
                ObjectType::SsmParameter => "SSM Parameter Store",
            };
            let reads = kit::ObjectReads::new(&self.listings, request, service);
            let label = entry.selection.label();
            async move {
                reads
                    .read(key, &label, || listing::list(&regions.spc, entry, &self.stats.cloud_calls))
                    .await
                    .map(|served| served.value)
            }
        });
        let listed = futures::future::try_join_all(listings).await?;

        let mut selections = Selections::default();
        let mut plan = spec.plan.clone();
        for (entry, listing) in spec.selections.iter().zip(&listed) {
            let selected = entry.selection.select(listing)?;
            if selected.is_empty() {
                let prefix = entry.selection.prefix.clone();
                let reason = entry.selection.empty_reason();
                selections.empty.push((prefix.clone(), SkippedObject { object: prefix, reason }));
                continue;
            }
            let names: Vec<String> = selected.iter().map(|s| s.name.clone()).collect();
            request.admit(&names)?;
            for secret in &selected {
                let object = entry.object(secret);
                plan_selected(
                    &mut plan,
                    &entry.selection,
                    &object.name,
                    &object.file_name,
                    object.mode,
                    object.shape,
                )?;
                for jmes in &object.jmes {
                    plan_selected(
                        &mut plan,
                        &entry.selection,
                        &object.name,
                        &jmes.file_name,
                        jmes.mode,
                        jmes.shape(),
                    )?;
                }
                selections.objects.push(object);
            }
        }
        Ok(selections)
    }
}

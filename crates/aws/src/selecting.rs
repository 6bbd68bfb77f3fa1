//! `objectPrefix` entries at mount time: list (shared like reads), select, check the admin
//! policy for every selected secret before any of them is read, and plan their files.

use csi_secrets_provider_core::kit::{self, Selections};
use csi_secrets_provider_core::{MountRequest, Result};

use crate::AwsBackend;
use crate::credentials::IdentityKey;
use crate::listing::{self, ListingKey};
use crate::params::{MountSpec, ObjectSpec, ObjectType};
use crate::reads::MountRegions;

impl AwsBackend {
    pub(crate) async fn select(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        identity: &IdentityKey,
        regions: &MountRegions,
    ) -> Result<Selections<ObjectSpec>> {
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

        kit::expand(
            &spec.selections,
            &listed,
            &spec.plan,
            request,
            |entry| &entry.selection,
            |entry, secret| entry.object(secret),
            |object: &ObjectSpec| kit::SelectedFiles {
                name: &object.name,
                resolved: spec.policy_name(
                    &object.name,
                    object.object_type,
                    region_names.first().map_or("*", String::as_str),
                ),
                file: &object.file_name,
                mode: object.mode,
                shape: object.shape,
                jmes: &object.jmes,
            },
        )
    }
}

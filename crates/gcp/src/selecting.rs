//! `resourcePrefix` entries at mount time: list (shared like reads), select, check the admin
//! policy for every selected secret before any of them is read, and plan their files.

use std::collections::BTreeMap;

use csi_secrets_provider_core::kit::{self, Selections};
use csi_secrets_provider_core::{MountRequest, Result};

use crate::GcpBackend;
use crate::identity::IdentityKey;
use crate::params::{MountSpec, SecretSpec};
use crate::secret_manager::{self, ClientCredentials};

/// Everything that decides a listing's answer: whose token, which endpoint and parent, which
/// prefix and labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ListingKey {
    identity: IdentityKey,
    endpoint: String,
    prefix: String,
    tags: BTreeMap<String, String>,
}

impl GcpBackend {
    pub(crate) async fn select(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        identity: &IdentityKey,
        credentials: &ClientCredentials,
        user_agent: Option<&str>,
    ) -> Result<Selections<SecretSpec>> {
        if spec.selections.is_empty() {
            return Ok(Selections::default());
        }
        let listings = spec.selections.iter().map(|entry| {
            let endpoint = self.options.endpoints.secret_manager_for(entry.location.as_ref());
            let key = ListingKey {
                identity: identity.clone(),
                endpoint: endpoint.clone(),
                prefix: entry.selection.prefix.clone(),
                tags: entry.selection.tags.clone(),
            };
            let reads = kit::ObjectReads::new(&self.listings, request, "Secret Manager");
            let label = entry.selection.label();
            async move {
                let fetch = || async {
                    let client = self.clients.get(identity, &endpoint, credentials).await?;
                    secret_manager::list(&client, entry, user_agent, &self.stats.cloud_calls).await
                };
                reads.read(key, &label, fetch).await.map(|served| served.value)
            }
        });
        let listed = futures::future::try_join_all(listings).await?;

        kit::expand(
            &spec.selections,
            &listed,
            &spec.plan,
            request,
            |entry| &entry.selection,
            |entry, secret| entry.secret(secret),
            // The admin policy names a secret without its version, as `validate` does.
            |secret: &SecretSpec| kit::SelectedFiles {
                name: &secret.resource_name,
                resolved: secret.resource.secret_name(),
                file: &secret.file_name,
                mode: secret.mode,
                shape: secret.shape,
                jmes: &secret.jmes,
            },
        )
    }
}

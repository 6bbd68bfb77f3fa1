//! `resourcePrefix` entries at mount time: list (shared like reads), select, check the admin
//! policy for every selected secret before any of them is read, and plan their files.

use std::collections::BTreeMap;

use csi_secrets_provider_core::kit::{self, plan_selected};
use csi_secrets_provider_core::{MountRequest, Result, SkippedObject};

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

/// What the prefix entries of a mount selected.
#[derive(Debug, Default)]
pub(crate) struct Selections {
    /// One secret per selected one, read like the named ones.
    pub secrets: Vec<SecretSpec>,
    /// Optional entries that selected nothing: the prefix, and why.
    pub empty: Vec<(String, SkippedObject)>,
}

impl GcpBackend {
    pub(crate) async fn select(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        identity: &IdentityKey,
        credentials: &ClientCredentials,
        user_agent: Option<&str>,
    ) -> Result<Selections> {
        if spec.selections.is_empty() {
            return Ok(Selections::default());
        }
        let listings = spec.selections.iter().map(|entry| {
            let endpoint = self.options.endpoints.secret_manager_for(entry.location.as_deref());
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
            let secrets: Vec<SecretSpec> = selected.iter().map(|s| entry.secret(s)).collect();
            // The admin policy names a secret without its version, as `validate` does.
            let names: Vec<String> = secrets.iter().map(|s| s.resource.secret_name()).collect();
            request.admit(&names)?;
            for secret in secrets {
                let object = secret.resource_name.as_str();
                plan_selected(
                    &mut plan,
                    &entry.selection,
                    object,
                    &secret.file_name,
                    secret.mode,
                    secret.shape,
                )?;
                for jmes in &secret.jmes {
                    plan_selected(
                        &mut plan,
                        &entry.selection,
                        object,
                        &jmes.file_name,
                        jmes.mode,
                        jmes.shape(),
                    )?;
                }
                selections.secrets.push(secret);
            }
        }
        Ok(selections)
    }
}

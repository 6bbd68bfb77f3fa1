//! `objectPrefix` entries at mount time: list the vault's secrets (shared like reads), select,
//! check the admin policy for every selected secret before any of them is read, and plan their
//! files.

use csi_secrets_provider_core::kit::{self, plan_selected};
use csi_secrets_provider_core::{Error, MountRequest, Result, SkippedObject};

use crate::identity::IdentityKey;
use crate::params::{MountSpec, ObjectSpec};
use crate::reads::{FolderKey, SharedVaultReads};
use crate::{MountVault, keyvault};

/// What the prefix entries of a mount selected.
#[derive(Debug, Default)]
pub(crate) struct Selections {
    /// One object per selected secret, read like the named ones.
    pub objects: Vec<ObjectSpec>,
    /// Optional entries that selected nothing: the prefix, and why.
    pub empty: Vec<(String, SkippedObject)>,
}

pub(crate) async fn select(
    spec: &MountSpec,
    request: &MountRequest,
    identity: &IdentityKey,
    vaults: &[MountVault],
    reads: &SharedVaultReads,
    context: &azure_core::http::Context<'static>,
) -> Result<Selections> {
    if spec.selections.is_empty() {
        return Ok(Selections::default());
    }
    let listings = spec.selections.iter().map(|entry| {
        let vault_name = entry.keyvault_name().unwrap_or(&spec.keyvault_name);
        let vault = vaults.iter().find(|vault| vault.name == vault_name);
        let folders = kit::ObjectReads::new(&reads.folders, request, "Key Vault (or Azure AD)");
        let label = entry.selection.label();
        async move {
            let vault = vault.ok_or_else(|| Error::internal("no client for the entry's vault"))?;
            let key = FolderKey {
                identity: identity.clone(),
                vault_url: vault.url.clone(),
                prefix: entry.selection.prefix.clone(),
            };
            folders
                .read(key, &label, || keyvault::list_secrets(&vault.clients, &entry.selection, context))
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
        let objects: Vec<ObjectSpec> = selected.iter().map(|secret| entry.object(secret)).collect();
        // The admin policy names Key Vault objects `vault/objectName`.
        let resolved: Vec<String> = objects.iter().map(|object| spec.resolved_name(object)).collect();
        request.admit(&resolved)?;
        for object in objects {
            plan_selected(
                &mut plan,
                &entry.selection,
                &object.name,
                object.file_name(),
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

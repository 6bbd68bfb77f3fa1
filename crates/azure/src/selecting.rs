//! `objectPrefix` entries at mount time: list the vault's secrets (shared like reads), select,
//! check the admin policy for every selected secret before any of them is read, and plan their
//! files.

use csi_secrets_provider_core::kit::{self, Selections};
use csi_secrets_provider_core::{Error, MountRequest, Result};

use crate::identity::IdentityKey;
use crate::params::{MountSpec, ObjectSpec};
use crate::reads::{FolderKey, SharedVaultReads};
use crate::{MountVault, keyvault};

pub(crate) async fn select(
    spec: &MountSpec,
    request: &MountRequest,
    identity: &IdentityKey,
    vaults: &[MountVault],
    reads: &SharedVaultReads,
    context: &azure_core::http::Context<'static>,
) -> Result<Selections<ObjectSpec>> {
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

    kit::expand(
        &spec.selections,
        &listed,
        &spec.plan,
        request,
        |entry| &entry.selection,
        |entry, secret| entry.object(secret),
        // The admin policy names Key Vault objects `vault/objectName`.
        |object: &ObjectSpec| kit::SelectedFiles {
            name: &object.name,
            resolved: spec.resolved_name(object),
            file: object.file_name(),
            mode: object.mode,
            shape: object.shape,
            jmes: &object.jmes,
        },
    )
}

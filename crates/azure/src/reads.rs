//! Key Vault reads shared between mounts of one identity (see
//! `csi_secrets_provider_core::sharing`): a remount takes a recent read of the same (identity,
//! vault, object, version), and concurrent mounts join one read in flight. What is shared is
//! Key Vault's answer; turning it into files runs per mount.

use std::sync::Arc;

use csi_secrets_provider_core::{
    Error, ReadPolicy, Served, SharedReads, SharingOptions, SharingStats, before_deadline,
};

use crate::identity::{IdentityKey, VaultClients};
use crate::params::{ObjectSpec, ObjectType};
use crate::vault::{self, RawObject};

/// Everything that decides a read's answer: whose token, which vault, which object and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct VaultObjectKey {
    identity: IdentityKey,
    vault_url: String,
    object_type: ObjectType,
    name: String,
    /// `None` for the latest version (and for a version listing).
    version: Option<String>,
}

/// The backend's shared reads: object versions, and version listings (`objectVersionHistory`).
#[derive(Debug)]
pub(crate) struct SharedVaultReads {
    objects: SharedReads<VaultObjectKey, RawObject>,
    listings: SharedReads<VaultObjectKey, Vec<String>>,
}

impl SharedVaultReads {
    pub(crate) fn new(options: SharingOptions, stats: &Arc<SharingStats>) -> Self {
        Self {
            objects: SharedReads::new(options, Arc::clone(stats)),
            listings: SharedReads::new(options, Arc::clone(stats)),
        }
    }
}

/// The reads of one mount, against one vault as one identity.
#[derive(Debug)]
pub(crate) struct VaultReads<'a> {
    pub clients: &'a VaultClients,
    pub identity: &'a IdentityKey,
    pub vault_url: &'a str,
    /// Remount reuse and `staleIfError`.
    pub policy: ReadPolicy,
    pub shared: &'a SharedVaultReads,
    /// The mount's deadline: a read still running then is an outage `staleIfError` may cover.
    pub deadline: Option<std::time::Instant>,
    /// The SDK's per-call context: it names the mounting pod (`crate::attribution`).
    pub context: &'a azure_core::http::Context<'static>,
}

impl VaultReads<'_> {
    fn key(&self, object: &ObjectSpec, version: Option<&str>) -> VaultObjectKey {
        VaultObjectKey {
            identity: self.identity.clone(),
            vault_url: self.vault_url.to_owned(),
            object_type: object.object_type,
            name: object.name.clone(),
            version: version.map(str::to_owned),
        }
    }

    /// One version of `object` (the latest when `None`, empty or `latest`); during an outage
    /// perhaps the last good one (`staleIfError`).
    pub(crate) async fn object(
        &self,
        object: &ObjectSpec,
        version: Option<&str>,
    ) -> Result<Served<RawObject>, Error> {
        let version = version.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("latest"));
        let key = self.key(object, version);
        let read = self
            .shared
            .objects
            .read(key.clone(), self.policy, || vault::fetch_raw(self.clients, object, version, self.context));
        let result = before_deadline(self.deadline, "Key Vault (or Azure AD)", &[&object.name], read).await;
        self.shared.objects.or_stale(&key, result, self.policy)
    }

    /// The versions to write for `objectVersionHistory`.
    pub(crate) async fn history(&self, object: &ObjectSpec) -> Result<Served<Vec<String>>, Error> {
        let key = self.key(object, None);
        let read = self
            .shared
            .listings
            .read(key.clone(), self.policy, || vault::enabled_versions(self.clients, object, self.context));
        let result = before_deadline(self.deadline, "Key Vault (or Azure AD)", &[&object.name], read).await;
        let listed = self.shared.listings.or_stale(&key, result, self.policy)?;
        Ok(Served {
            value: vault::select_history(listed.value, object)?,
            stale: listed.stale,
            shared: listed.shared,
        })
    }
}

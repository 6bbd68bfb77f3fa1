//! Key Vault reads shared between mounts of one identity (see
//! `csi_secrets_provider_core::sharing`): a remount takes a recent read of the same (identity,
//! vault, object, version), and concurrent mounts join one read in flight. What is shared is
//! Key Vault's answer; turning it into files runs per mount.

use std::sync::Arc;

use csi_secrets_provider_core::{Error, MountKind, SharedReads, SharingOptions, SharingStats};

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
    pub kind: MountKind,
    pub shared: &'a SharedVaultReads,
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

    /// One version of `object` (the latest when `None`, empty or `latest`).
    pub(crate) async fn object(
        &self,
        object: &ObjectSpec,
        version: Option<&str>,
    ) -> Result<RawObject, Error> {
        let version = version.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("latest"));
        self.shared
            .objects
            .read(self.key(object, version), self.kind, || vault::fetch_raw(self.clients, object, version))
            .await
    }

    /// The versions to write for `objectVersionHistory`.
    pub(crate) async fn history(&self, object: &ObjectSpec) -> Result<Vec<String>, Error> {
        let listed = self
            .shared
            .listings
            .read(self.key(object, None), self.kind, || vault::enabled_versions(self.clients, object))
            .await?;
        vault::select_history(listed, object)
    }
}

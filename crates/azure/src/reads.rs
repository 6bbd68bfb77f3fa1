//! Key Vault reads shared between mounts of one identity (see
//! `csi_secrets_provider_core::sharing`): a remount takes a recent read of the same (identity,
//! vault, object, version), and concurrent mounts join one read in flight. What is shared is
//! Key Vault's answer; turning it into files runs per mount.

use std::sync::Arc;

use csi_secrets_provider_core::kit;
use csi_secrets_provider_core::{Error, Served, SharedReads, SharingOptions, SharingStats};

use crate::identity::{IdentityKey, VaultClients};
use crate::keyvault::{self, RawObject};
use crate::params::{ObjectSpec, ObjectType};

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

/// What decides a secret list's answer for an `objectPrefix` entry: whose token, which vault,
/// which prefix (the list is filtered by it as it is read).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FolderKey {
    pub identity: IdentityKey,
    pub vault_url: String,
    pub prefix: String,
}

/// The backend's shared reads: object versions, version listings (`objectVersionHistory`),
/// and secret lists (`objectPrefix`).
#[derive(Debug)]
pub(crate) struct SharedVaultReads {
    objects: SharedReads<VaultObjectKey, RawObject>,
    listings: SharedReads<VaultObjectKey, Vec<String>>,
    pub(crate) folders: SharedReads<FolderKey, kit::Listing>,
}

impl SharedVaultReads {
    pub(crate) fn new(options: SharingOptions, stats: &Arc<SharingStats>) -> Self {
        Self {
            objects: SharedReads::new(options, Arc::clone(stats)),
            listings: SharedReads::new(options, Arc::clone(stats)),
            folders: SharedReads::new(options, Arc::clone(stats)),
        }
    }
}

/// The reads of one mount, against one vault as one identity.
#[derive(Debug)]
pub(crate) struct VaultReads<'a> {
    pub clients: &'a VaultClients,
    pub identity: &'a IdentityKey,
    pub vault_url: &'a str,
    /// Object versions and version listings, each read the kit's way (sharing, remount rule,
    /// deadline, `staleIfError`).
    pub objects: kit::ObjectReads<'a, VaultObjectKey, RawObject>,
    pub listings: kit::ObjectReads<'a, VaultObjectKey, Vec<String>>,
    /// The SDK's per-call context: it names the mounting pod (`crate::attribution`).
    pub context: &'a azure_core::http::Context<'static>,
}

/// Who is asked, for errors at the deadline.
const SERVICE: &str = "Key Vault (or Azure AD)";

impl SharedVaultReads {
    /// The reads `request` makes from this backend's caches.
    pub(crate) fn for_mount<'a>(
        &'a self,
        request: &csi_secrets_provider_core::MountRequest,
    ) -> (kit::ObjectReads<'a, VaultObjectKey, RawObject>, kit::ObjectReads<'a, VaultObjectKey, Vec<String>>)
    {
        (
            kit::ObjectReads::new(&self.objects, request, SERVICE),
            kit::ObjectReads::new(&self.listings, request, SERVICE),
        )
    }
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
        self.objects
            .read(key, &object.name, || keyvault::fetch_raw(self.clients, object, version, self.context))
            .await
    }

    /// The versions to write for `objectVersionHistory`.
    pub(crate) async fn history(&self, object: &ObjectSpec) -> Result<Served<Vec<String>>, Error> {
        let key = self.key(object, None);
        let listed = self
            .listings
            .read(key, &object.name, || keyvault::enabled_versions(self.clients, object, self.context))
            .await?;
        Ok(Served {
            value: keyvault::select_history(listed.value, object)?,
            stale: listed.stale,
            shared: listed.shared,
        })
    }
}

//! The backend kit: what every backend's mount repeats, in one place, so that a backend is its
//! own four steps and nothing else:
//!
//! 1. **parameters**: the backend parses its SecretProviderClass keys (with [`crate::keys`]
//!    for typed keys, aliases and warnings, [`crate::jmes`] for `jmesPath`); the parameters
//!    every backend accepts (`staleIfError`) are parsed once by core ([`crate::common`]).
//! 2. **identity**: the backend turns the pod's token into credentials, named by an
//!    [`IdentityKey`] built from one [`Authorization`] (everything that authorizes a read, the
//!    same fields for every backend); [`ExpiringCache`] keeps
//!    tokens and credentials until shortly before they expire (one exchange per identity per
//!    lifetime, concurrent mounts waiting for the one in flight), [`IdleCache`] keeps the
//!    clients built for an identity while it is in use.
//! 3. **reads**: the backend says how one object is fetched; [`ObjectReads`] makes it a mount's
//!    read: shared with the other mounts of the identity under the remount rule, single-flight,
//!    held within the byte cap, bounded by the driver's deadline, served stale during an outage
//!    when the SecretProviderClass allows it, skipped when optional and absent.
//! 4. **render**: the backend turns a value into files; [`MountAssembly`] collects them with
//!    their versions, the audit record, and what was skipped or stale, into the
//!    [`MountResponse`](crate::MountResponse) the server checks and sends.
//!
//! 5. **selection**: an `objectPrefix` / `resourcePrefix` entry is listed (a [`Listing`],
//!    shared like a read) and [`Selection::select`] turns the listing into objects of the mount.
//!
//! Batching (AWS `GetParameters`, `BatchGetSecretValue`): the backend says which objects go
//! together and makes the call; [`ObjectReads::read_batched`] applies the same rules as to a
//! single read (recent reads, the call in flight joined, the deadline, values kept, stale on an
//! outage) and answers by key ([`BatchAnswers`]), never by position.

mod assembly;
mod batches;
mod caches;
mod client;
mod identity;
mod prefix_entry;
mod reads;
mod registry;
mod registry_entry;
mod selection;

pub use assembly::{MountAssembly, ObjectNames, Provenance, Rendered, SKIPPED_VERSION};
pub use batches::{BatchAnswer, BatchAnswers, BatchItem, BatchPlan, Batched, WhenCallFails};
pub use caches::{ExpiringCache, IdleCache};
pub use client::{ClientOptions, ExtraCa};
pub use identity::{Authorization, CredentialDigest, IdentityKey, Link, Method, ServiceAccount};
pub use prefix_entry::{PrefixEntry, PrefixKeys};
pub use reads::{ObjectOutcome, ObjectReads, skip_if_absent};
pub use registry::{
    MAX_KEPT_LOGINS, MAX_REGISTRIES, RegistryEntry, RegistryLogin, RegistrySpec, check_registry_count,
    check_registry_host, docker_config, plan_registry_file, registry_logins,
};
pub use registry_entry::{RegistryFields, RegistryKeys};
pub use selection::{
    DEFAULT_MAX_OBJECTS, Listed, Listing, MAX_OBJECTS_LIMIT, Selected, SelectedFiles, Selection, Selections,
    expand, plan_selected, selected_path,
};

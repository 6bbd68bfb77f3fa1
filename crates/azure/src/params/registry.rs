//! An `objectType: acr` entry: the Docker login of an Azure Container Registry,
//! `objectName: <registry>.azurecr.io` (or the cloud's registry suffix), from the pod's Azure AD
//! token exchanged at the registry's `/oauth2/exchange` for a refresh token.

use csi_secrets_provider_core::kit::{RegistryFields, RegistryKeys};
use csi_secrets_provider_core::{Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use super::object::ObjectKey;

pub use csi_secrets_provider_core::kit::RegistrySpec;

/// How an Azure registry entry is written.
const KEYS: RegistryKeys<ObjectKey> = RegistryKeys {
    host: ObjectKey::ObjectName,
    file: ObjectKey::ObjectAlias,
    optional: ObjectKey::Optional,
    not_for_registries: &[
        ObjectKey::ObjectVersion,
        ObjectKey::ObjectVersionHistory,
        ObjectKey::ObjectFormat,
        ObjectKey::ObjectEncoding,
        ObjectKey::KeyvaultName,
        ObjectKey::JmesPath,
        ObjectKey::ObjectPrefix,
    ],
    not_for_registries_says: "does not apply to an acr object (it is the registry's login, not a Key Vault object)",
    host_missing: "an acr object needs objectName: the registry's login server (<registry>.azurecr.io)",
};

/// Parses entry `index` of `objects`, whose `objectType` is `acr`.
pub(super) fn parse_registry(
    index: usize,
    entry: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<RegistrySpec, Vec<Error>> {
    let fields: Fields<'_, ObjectKey> = Fields::read(entry, KeyMatching::Exact);
    let mut problems = Vec::new();
    let Some(read) = KEYS.read(&fields, &format!("objects.array[{index}]"), &mut problems) else {
        return Err(problems);
    };
    warnings.extend(fields.unknown_keys(&read.host, ""));
    let mode = match fields.trimmed(ObjectKey::FilePermission) {
        Ok(None) => default_mode,
        Ok(Some(permission)) => FileMode::parse_go_octal(&permission).unwrap_or_else(|e| {
            problems.push(e.with_object(&read.host).with_field("filePermission"));
            default_mode
        }),
        Err(e) => {
            problems.push(e.or_object(&read.host));
            default_mode
        }
    };
    let RegistryFields { host, file_name, optional, shape } = read;
    if problems.is_empty() {
        Ok(RegistrySpec { host, file_name, mode, optional, shape })
    } else {
        Err(problems)
    }
}

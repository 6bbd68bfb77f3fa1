//! An `objectType: acr` entry: the Docker login of an Azure Container Registry,
//! `objectName: <registry>.azurecr.io` (or the cloud's registry suffix), from the pod's Azure AD
//! token exchanged at the registry's `/oauth2/exchange` for a refresh token.

use csi_secrets_provider_core::kit::check_registry_host;
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{ConfigKey, Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use super::object::ObjectKey;

/// One ACR entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    /// The registry's login server, as written (it keys the Docker config).
    pub host: String,
    /// `objectAlias`, else the host.
    pub file_name: String,
    pub mode: FileMode,
    pub optional: bool,
    pub shape: FileShape,
}

/// Keys an `acr` entry cannot have: they name a Key Vault object's version, vault or parts.
const OBJECT_KEYS: [ObjectKey; 7] = [
    ObjectKey::ObjectVersion,
    ObjectKey::ObjectVersionHistory,
    ObjectKey::ObjectFormat,
    ObjectKey::ObjectEncoding,
    ObjectKey::KeyvaultName,
    ObjectKey::JmesPath,
    ObjectKey::ObjectPrefix,
];

/// Parses entry `index` of `objects`, whose `objectType` is `acr`.
pub(super) fn parse_registry(
    index: usize,
    entry: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<RegistrySpec, Vec<Error>> {
    let fields: Fields<'_, ObjectKey> = Fields::read(entry, KeyMatching::Exact);
    let at = format!("objects.array[{index}]");
    let host = match fields.trimmed(ObjectKey::ObjectName) {
        Ok(Some(host)) if !host.is_empty() => host,
        Ok(_) => {
            return Err(vec![
                Error::invalid_config(
                    "an acr object needs objectName: the registry's login server (<registry>.azurecr.io)",
                )
                .with_object(at)
                .with_field("objectName"),
            ]);
        }
        Err(e) => return Err(vec![e.or_object(at)]),
    };
    warnings.extend(fields.unknown_keys(&host, ""));
    let mut problems = Vec::new();
    if let Err(why) = check_registry_host(&host) {
        problems.push(Error::invalid_config(why).with_object(&host).with_field("objectName"));
    }
    for key in OBJECT_KEYS {
        if fields.get(key).is_some() {
            problems.push(
                Error::invalid_config(format!(
                    "{} does not apply to an acr object (it is the registry's login, not a Key Vault object)",
                    key.as_str()
                ))
                .with_object(&host)
                .with_field(key.as_str()),
            );
        }
    }
    let file_name = match fields.trimmed(ObjectKey::ObjectAlias) {
        Ok(Some(alias)) if !alias.is_empty() => alias,
        Ok(_) => host.clone(),
        Err(e) => {
            problems.push(e.or_object(&host));
            host.clone()
        }
    };
    let mode = match fields.trimmed(ObjectKey::FilePermission) {
        Ok(None) => default_mode,
        Ok(Some(permission)) => FileMode::parse_go_octal(&permission).unwrap_or_else(|e| {
            problems.push(e.with_object(&host).with_field("filePermission"));
            default_mode
        }),
        Err(e) => {
            problems.push(e.or_object(&host));
            default_mode
        }
    };
    let optional = fields.flag(ObjectKey::Optional).unwrap_or_else(|e| {
        problems.push(e.with_object(&host));
        false
    });
    let (shape, shape_problems) = FileShape::read(&fields);
    problems.extend(shape_problems.into_iter().map(|e| e.with_object(&host)));
    if problems.is_empty() {
        Ok(RegistrySpec { host, file_name, mode, optional, shape })
    } else {
        Err(problems)
    }
}

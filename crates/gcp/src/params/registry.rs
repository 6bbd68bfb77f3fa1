//! A `registry:` entry of `secrets`: a Docker config for a registry (Artifact Registry
//! `LOCATION-docker.pkg.dev`, `gcr.io`, …) holding the access token of the identity that reads
//! secrets (user `oauth2accesstoken`), instead of a Secret Manager secret.

use csi_secrets_provider_core::kit::{RegistryFields, RegistryKeys};
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use super::{SecretKey, mode_of};

/// One `registry:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    /// The registry host, as written (it keys the Docker config).
    pub host: String,
    /// `path`, else the host.
    pub file_name: String,
    pub mode: FileMode,
    pub optional: bool,
    pub shape: FileShape,
}

/// How a GCP registry entry is written.
const KEYS: RegistryKeys<SecretKey> = RegistryKeys {
    host: SecretKey::Registry,
    file: SecretKey::Path,
    optional: SecretKey::Optional,
    not_for_registries: &[
        SecretKey::ResourceName,
        SecretKey::ResourcePrefix,
        SecretKey::FileName,
        SecretKey::ExtractJsonKey,
        SecretKey::ExtractYamlKey,
        SecretKey::JmesPath,
    ],
    not_for_registries_says: "names or shapes a secret; a registry entry is a registry's Docker config",
    host_missing: "registry must name a registry host (europe-west1-docker.pkg.dev, gcr.io)",
};

/// Parses entry `index` of `secrets`, which has `registry`.
pub(crate) fn parse_registry(
    index: usize,
    item: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<RegistrySpec, Vec<Error>> {
    let fields: Fields<'_, SecretKey> = Fields::read(item, KeyMatching::Exact);
    let mut problems = Vec::new();
    let Some(read) = KEYS.read(&fields, &format!("secrets[{index}]"), &mut problems) else {
        return Err(problems);
    };
    warnings.extend(fields.unknown_keys(&read.host, ""));
    let mode = match mode_of(fields.get(SecretKey::Mode)) {
        Ok(mode) => mode.unwrap_or(default_mode),
        Err(e) => {
            problems.push(e.with_object(&read.host).with_field("mode"));
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

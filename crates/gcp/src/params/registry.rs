//! A `registry:` entry of `secrets`: a Docker config for a registry (Artifact Registry
//! `LOCATION-docker.pkg.dev`, `gcr.io`, …) holding the access token of the identity that reads
//! secrets (user `oauth2accesstoken`), instead of a Secret Manager secret.

use csi_secrets_provider_core::kit::check_registry_host;
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{ConfigKey, Error, Fields, FileMode, KeyMatching, Warning};
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

/// Keys a `registry` entry cannot have: they name a secret, or shape its value.
const SECRET_KEYS: [SecretKey; 6] = [
    SecretKey::ResourceName,
    SecretKey::ResourcePrefix,
    SecretKey::FileName,
    SecretKey::ExtractJsonKey,
    SecretKey::ExtractYamlKey,
    SecretKey::JmesPath,
];

/// Parses entry `index` of `secrets`, which has `registry`.
pub(crate) fn parse_registry(
    index: usize,
    item: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<RegistrySpec, Vec<Error>> {
    let fields: Fields<'_, SecretKey> = Fields::read(item, KeyMatching::Exact);
    let at = format!("secrets[{index}]");
    let host = match fields.trimmed(SecretKey::Registry) {
        Ok(Some(host)) => host,
        Ok(None) => {
            return Err(vec![
                Error::invalid_config(
                    "registry must name a registry host (europe-west1-docker.pkg.dev, gcr.io)",
                )
                .with_object(at)
                .with_field("registry"),
            ]);
        }
        Err(e) => return Err(vec![e.or_object(at)]),
    };
    let mut problems = Vec::new();
    if let Err(why) = check_registry_host(&host) {
        problems.push(Error::invalid_config(why).with_object(&at).with_field("registry"));
    }
    warnings.extend(fields.unknown_keys(&host, ""));
    for key in SECRET_KEYS {
        if fields.get(key).is_some() {
            problems.push(
                Error::invalid_config(format!(
                    "{} names or shapes a secret; a registry entry is a registry's Docker config",
                    key.as_str()
                ))
                .with_object(&host)
                .with_field(key.as_str()),
            );
        }
    }
    let file_name = match fields.trimmed(SecretKey::Path) {
        Ok(Some(path)) if !path.is_empty() => path,
        Ok(_) => host.clone(),
        Err(e) => {
            problems.push(e.or_object(&host));
            host.clone()
        }
    };
    let mode = match mode_of(fields.get(SecretKey::Mode)) {
        Ok(mode) => mode.unwrap_or(default_mode),
        Err(e) => {
            problems.push(e.with_object(&host).with_field("mode"));
            default_mode
        }
    };
    let optional = fields.flag(SecretKey::Optional).unwrap_or_else(|e| {
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

//! A `registry:` entry of `secrets`: a Docker config for a registry (Artifact Registry
//! `LOCATION-docker.pkg.dev`, `gcr.io`, …) holding the access token of the identity that reads
//! secrets (user `oauth2accesstoken`), instead of a Secret Manager secret.

use csi_secrets_provider_core::kit::{RegistryFields, RegistryKeys};
use csi_secrets_provider_core::{Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use super::{SecretKey, mode_of};

pub use csi_secrets_provider_core::kit::RegistrySpec;

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
    // The file carries the pod's Google token as the password for this host: Google's
    // registries only.
    if !is_google_registry(&read.host) {
        problems.push(
            Error::invalid_config(format!(
                "{} is not a Google registry (gcr.io, <region>.gcr.io, <location>-docker.pkg.dev): the identity's access token would be written for it",
                csi_secrets_provider_core::grammar::shown(&read.host)
            ))
            .with_object(&read.host)
            .with_field("registry"),
        );
    }
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

/// `gcr.io`, `<region>.gcr.io`, `<location>-docker.pkg.dev`.
fn is_google_registry(host: &str) -> bool {
    host == "gcr.io"
        || host.strip_suffix(".gcr.io").is_some_and(|region| !region.is_empty() && !region.contains('.'))
        || host
            .strip_suffix("-docker.pkg.dev")
            .is_some_and(|location| !location.is_empty() && !location.contains('.'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn google_registries_only() {
        for host in ["gcr.io", "eu.gcr.io", "europe-west1-docker.pkg.dev", "us-docker.pkg.dev"] {
            assert!(super::is_google_registry(host), "{host}");
        }
        for host in
            ["evil.io", "gcr.io.evil.io", "x.y.gcr.io", "-docker.pkg.dev", "a.b-docker.pkg.dev", "pkg.dev"]
        {
            assert!(!super::is_google_registry(host), "{host}");
        }
    }
}

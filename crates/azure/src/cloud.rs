//! Azure clouds: the Azure AD authority and the Key Vault DNS suffix of each, and custom
//! (Azure Stack) clouds read from an environment file as the Azure provider does.

use std::io::Read;
use std::path::{Component, Path};

use csi_secrets_provider_core::Error;
use serde::Deserialize;

use crate::params::Cloud;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Azure AD authority host, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
    /// Vault URLs are `https://<vault>.<suffix>/`.
    pub keyvault_dns_suffix: String,
    /// Container registries are `<registry>.<suffix>` (`azurecr.io`); `None` where the
    /// environment file does not say (no `objectType: acr` there).
    pub registry_dns_suffix: Option<String>,
    /// The Resource Manager endpoint, whose token a registry exchanges for a login.
    pub resource_manager: Option<String>,
}

impl CloudEndpoints {
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.{}/", self.keyvault_dns_suffix)
    }

    /// The Key Vault resource tokens are asked for (`https://vault.azure.net`): what Key Vault's
    /// challenge names, without a port.
    pub fn vault_resource(&self) -> String {
        let host = self.keyvault_dns_suffix.split(':').next().unwrap_or_default();
        format!("https://{host}")
    }
}

/// The fields of a go-autorest environment file that matter here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvironmentFile {
    active_directory_endpoint: String,
    #[serde(rename = "keyVaultDNSSuffix")]
    key_vault_dns_suffix: String,
    #[serde(rename = "containerRegistryDNSSuffix", default)]
    container_registry_dns_suffix: Option<String>,
    #[serde(default)]
    resource_manager_endpoint: Option<String>,
}

/// Largest cloud environment file read (a go-autorest file is about 2 KiB).
pub const MAX_ENVIRONMENT_FILE: u64 = 64 * 1024;

/// Which environment file a mount may read: the provider's (`AZURE_ENVIRONMENT_FILEPATH`, the
/// operator's), and an SPC's `cloudEnvFileName` only in that file's directory. An SPC author
/// names a path on the provider's own file system: anywhere else it could read `/dev/zero`
/// into memory, block on a FIFO, probe which files exist, or point the node's credentials at
/// endpoints of its choosing.
#[derive(Debug, Clone, Copy)]
pub struct EnvironmentFiles<'a> {
    pub spc: Option<&'a Path>,
    pub provider: Option<&'a Path>,
}

impl EnvironmentFiles<'_> {
    fn chosen(&self) -> Result<Option<&Path>, Error> {
        let Some(spc) = self.spc else { return Ok(self.provider) };
        let refused = |why: String| {
            Err(Error::invalid_config(format!(
                "cloudEnvFileName {}: {why}",
                csi_secrets_provider_core::grammar::shown(&spc.display().to_string())
            ))
            .with_field("cloudEnvFileName"))
        };
        let Some(provider) = self.provider else {
            return refused(
                "an SPC may name an environment file only in the directory of the provider's \
                 AZURE_ENVIRONMENT_FILEPATH, which is not set (set it in the chart's extraEnv)"
                    .to_owned(),
            );
        };
        let plain = spc.is_absolute()
            && spc.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain || spc.parent() != provider.parent() {
            return refused(format!(
                "an SPC may name an environment file only in {}, the directory of the provider's AZURE_ENVIRONMENT_FILEPATH",
                provider.parent().unwrap_or(provider).display()
            ));
        }
        Ok(Some(spc))
    }
}

/// The endpoints of `cloud`; for `AzureStackCloud` the environment file is read (the SPC's
/// `cloudEnvFileName` where [`EnvironmentFiles`] allows it, else the provider's), per mount
/// rather than through a process-wide variable as upstream does.
pub fn endpoints(cloud: Cloud, files: EnvironmentFiles<'_>) -> Result<CloudEndpoints, Error> {
    let fixed = |authority: &str, suffix: &str, registry: &str, manager: &str| {
        Ok(CloudEndpoints {
            authority_host: authority.to_owned(),
            keyvault_dns_suffix: suffix.to_owned(),
            registry_dns_suffix: Some(registry.to_owned()),
            resource_manager: Some(manager.to_owned()),
        })
    };
    match cloud {
        Cloud::Public => fixed(
            "https://login.microsoftonline.com/",
            "vault.azure.net",
            "azurecr.io",
            "https://management.azure.com/",
        ),
        Cloud::UsGovernment => fixed(
            "https://login.microsoftonline.us/",
            "vault.usgovcloudapi.net",
            "azurecr.us",
            "https://management.usgovcloudapi.net/",
        ),
        Cloud::China => fixed(
            "https://login.chinacloudapi.cn/",
            "vault.azure.cn",
            "azurecr.cn",
            "https://management.chinacloudapi.cn/",
        ),
        Cloud::German => fixed(
            "https://login.microsoftonline.de/",
            "vault.microsoftazure.de",
            "azurecr.de",
            "https://management.microsoftazure.de/",
        ),
        Cloud::Stack => {
            let path = files.chosen()?.ok_or_else(|| {
                Error::invalid_config(
                    "cloudName AzureStackCloud needs an environment file: set cloudEnvFileName or the provider's AZURE_ENVIRONMENT_FILEPATH",
                )
                .with_field("cloudName")
            })?;
            stack_endpoints(path)
        }
    }
}

/// Reads an Azure Stack environment file: a regular file of at most [`MAX_ENVIRONMENT_FILE`]
/// bytes whose authority is an https URL with nothing but a host (and port) and whose vault
/// suffix is a DNS name: what reaches the credential flows' hosts is checked like an SPC value.
fn stack_endpoints(path: &Path) -> Result<CloudEndpoints, Error> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Error::invalid_config(format!("{what} the cloud environment file {}: {e}", path.display()))
            .with_field("cloudEnvFileName")
    };
    let metadata = std::fs::metadata(path).map_err(|e| failed("cannot read", &e))?;
    if !metadata.is_file() {
        return Err(failed("cannot read", &"not a regular file"));
    }
    if metadata.len() > MAX_ENVIRONMENT_FILE {
        return Err(failed("cannot read", &format!("larger than {MAX_ENVIRONMENT_FILE} bytes")));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_ENVIRONMENT_FILE + 1).read_to_string(&mut text))
        .map_err(|e| failed("cannot read", &e))?;
    let parsed: EnvironmentFile = serde_json::from_str(&text).map_err(|e| failed("cannot parse", &e))?;
    let mut authority_host = parsed.active_directory_endpoint;
    if !authority_host.ends_with('/') {
        authority_host.push('/');
    }
    let host = authority_host.strip_prefix("https://").and_then(|rest| rest.strip_suffix('/'));
    if !host.is_some_and(is_host_and_port) {
        return Err(failed(
            "cannot use",
            &"activeDirectoryEndpoint must be https://<host>[:port] with nothing else",
        ));
    }
    let keyvault_dns_suffix = parsed.key_vault_dns_suffix.trim_start_matches('.').to_owned();
    if !is_host_and_port(&keyvault_dns_suffix) {
        return Err(failed("cannot use", &"keyVaultDNSSuffix must be a DNS name (and port)"));
    }
    let registry_dns_suffix =
        parsed.container_registry_dns_suffix.map(|suffix| suffix.trim_start_matches('.').to_owned());
    if registry_dns_suffix.as_deref().is_some_and(|suffix| !is_host_and_port(suffix)) {
        return Err(failed("cannot use", &"containerRegistryDNSSuffix must be a DNS name (and port)"));
    }
    let resource_manager = parsed.resource_manager_endpoint;
    if resource_manager.as_deref().is_some_and(|url| {
        !url.strip_prefix("https://").and_then(|rest| rest.strip_suffix('/')).is_some_and(is_host_and_port)
    }) {
        return Err(failed("cannot use", &"resourceManagerEndpoint must be https://<host>[:port]/"));
    }
    Ok(CloudEndpoints { authority_host, keyvault_dns_suffix, registry_dns_suffix, resource_manager })
}

/// `login.stack.local`, `vault.test:8443`: dot-separated DNS labels, an optional port.
fn is_host_and_port(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let label = |l: &str| csi_secrets_provider_core::grammar::DNS_LABEL.accepts(&l.to_ascii_lowercase());
    !host.is_empty()
        && host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_stack_clouds() -> Result<(), Box<dyn std::error::Error>> {
        let public = endpoints(Cloud::Public, EnvironmentFiles { spc: None, provider: None })?;
        assert_eq!(public.vault_url("kv1"), "https://kv1.vault.azure.net/");
        let dir = std::env::temp_dir().join(format!("azure-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("env.json");
        std::fs::write(
            &file,
            r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.local","keyVaultDNSSuffix":".vault.stack.local","keyVaultEndpoint":"https://vault.stack.local/"}"#,
        )?;
        let provider = EnvironmentFiles { spc: None, provider: Some(&file) };
        let stack = endpoints(Cloud::Stack, provider)?;
        assert_eq!(stack.authority_host, "https://login.stack.local/");
        assert_eq!(stack.vault_url("kv1"), "https://kv1.vault.stack.local/");
        assert!(endpoints(Cloud::Stack, EnvironmentFiles { spc: None, provider: None }).is_err());
        // The SPC may name a file beside the provider's, nowhere else.
        let beside = dir.join("other.json");
        std::fs::copy(&file, &beside)?;
        endpoints(Cloud::Stack, EnvironmentFiles { spc: Some(&beside), provider: Some(&file) })?;
        for elsewhere in ["/dev/zero", "/etc/passwd", "relative.json"] {
            let spc = EnvironmentFiles { spc: Some(Path::new(elsewhere)), provider: Some(&file) };
            let refused = endpoints(Cloud::Stack, spc).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains("only in"), "{elsewhere}: {refused}");
        }
        let dotted = dir.join("..").join(dir.file_name().unwrap_or_default()).join("other.json");
        assert!(
            endpoints(Cloud::Stack, EnvironmentFiles { spc: Some(&dotted), provider: Some(&file) }).is_err()
        );
        let unset = EnvironmentFiles { spc: Some(&beside), provider: None };
        assert!(endpoints(Cloud::Stack, unset).is_err());
        // What the file says reaches hosts: checked like an SPC value.
        for (authority, suffix) in [
            ("https://evil@login.stack.local", "vault.stack.local"),
            ("http://login.stack.local", "vault.stack.local"),
            ("https://login.stack.local/path?x", "vault.stack.local"),
            ("https://login.stack.local", "vault.stack.local@evil.example"),
            ("https://login.stack.local", "vault.stack.local/x"),
        ] {
            let text =
                serde_json::json!({ "activeDirectoryEndpoint": authority, "keyVaultDNSSuffix": suffix });
            std::fs::write(&beside, text.to_string())?;
            let spc = EnvironmentFiles { spc: Some(&beside), provider: Some(&file) };
            assert!(endpoints(Cloud::Stack, spc).is_err(), "{authority} {suffix}");
        }
        std::fs::write(&beside, vec![b' '; 70 * 1024])?;
        let big = endpoints(Cloud::Stack, EnvironmentFiles { spc: Some(&beside), provider: Some(&file) });
        assert!(big.err().is_some_and(|e| e.to_string().contains("larger than")));
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}

//! Azure clouds: the Azure AD authority and the Key Vault DNS suffix of each, and custom
//! (Azure Stack) clouds read from an environment file as the Azure provider does.

use std::path::Path;

use csi_secrets_provider_core::Error;
use serde::Deserialize;

use crate::params::Cloud;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Azure AD authority host, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: String,
    /// Vault URLs are `https://<vault>.<suffix>/`.
    pub keyvault_dns_suffix: String,
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
}

/// The endpoints of `cloud`; `environment_file` is read for `AzureStackCloud` (the SPC's
/// `cloudEnvFileName`, else the provider's `AZURE_ENVIRONMENT_FILEPATH`), per mount rather than
/// through a process-wide variable as upstream does.
pub fn endpoints(cloud: Cloud, environment_file: Option<&Path>) -> Result<CloudEndpoints, Error> {
    let fixed = |authority: &str, suffix: &str| {
        Ok(CloudEndpoints { authority_host: authority.to_owned(), keyvault_dns_suffix: suffix.to_owned() })
    };
    match cloud {
        Cloud::Public => fixed("https://login.microsoftonline.com/", "vault.azure.net"),
        Cloud::UsGovernment => fixed("https://login.microsoftonline.us/", "vault.usgovcloudapi.net"),
        Cloud::China => fixed("https://login.chinacloudapi.cn/", "vault.azure.cn"),
        Cloud::German => fixed("https://login.microsoftonline.de/", "vault.microsoftazure.de"),
        Cloud::Stack => {
            let path = environment_file.ok_or_else(|| {
                Error::invalid_config(
                    "cloudName AzureStackCloud needs an environment file: set cloudEnvFileName or the provider's AZURE_ENVIRONMENT_FILEPATH",
                )
                .with_field("cloudName")
            })?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid_config(format!(
                    "cannot read the cloud environment file {}: {e}",
                    path.display()
                ))
                .with_field("cloudEnvFileName")
            })?;
            let parsed: EnvironmentFile = serde_json::from_str(&text).map_err(|e| {
                Error::invalid_config(format!(
                    "cannot parse the cloud environment file {}: {e}",
                    path.display()
                ))
                .with_field("cloudEnvFileName")
            })?;
            let mut authority_host = parsed.active_directory_endpoint;
            if !authority_host.ends_with('/') {
                authority_host.push('/');
            }
            Ok(CloudEndpoints {
                authority_host,
                keyvault_dns_suffix: parsed.key_vault_dns_suffix.trim_start_matches('.').to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_stack_clouds() -> Result<(), Box<dyn std::error::Error>> {
        let public = endpoints(Cloud::Public, None)?;
        assert_eq!(public.vault_url("kv1"), "https://kv1.vault.azure.net/");
        let dir = std::env::temp_dir().join(format!("azure-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("env.json");
        std::fs::write(
            &file,
            r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.local","keyVaultDNSSuffix":".vault.stack.local","keyVaultEndpoint":"https://vault.stack.local/"}"#,
        )?;
        let stack = endpoints(Cloud::Stack, Some(&file))?;
        assert_eq!(stack.authority_host, "https://login.stack.local/");
        assert_eq!(stack.vault_url("kv1"), "https://kv1.vault.stack.local/");
        assert!(endpoints(Cloud::Stack, None).is_err());
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}

//! SecretProviderClass parameters of the Azure Key Vault provider, parsed and checked before any
//! Azure call. Rules and error words follow Azure/secrets-store-csi-driver-provider-azure v1.x
//! (see docs/azure.md); where upstream stops at the first error we report every one.

mod entries;
mod object;
mod registry;
mod selection;

use csi_secrets_provider_core::grammar::{NameRule, alphanumeric, alphanumeric_or_hyphen};
use csi_secrets_provider_core::{Error, FileMode, FilePlan, Parameters, parse_go_bool};

use entries::parse_objects;
pub use object::{ObjectSpec, upstream_prefix};
pub use registry::RegistrySpec;
pub use selection::SelectionSpec;

pub const KEYVAULT_NAME: &str = "keyvaultName";
pub const TENANT_ID: &str = "tenantID";
pub const TENANT_ID_DEPRECATED: &str = "tenantId";
pub const CLOUD_NAME: &str = "cloudName";
pub const CLOUD_ENV_FILE_NAME: &str = "cloudEnvFileName";
pub const CLIENT_ID: &str = "clientID";
pub const USE_POD_IDENTITY: &str = "usePodIdentity";
pub const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
pub const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
pub const USE_AZURE_TOKEN_PROXY: &str = "useAzureTokenProxy";
pub const OBJECTS: &str = "objects";

/// Azure clouds by their go-autorest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Public,
    UsGovernment,
    China,
    German,
    /// Custom cloud from the JSON file at `AZURE_ENVIRONMENT_FILEPATH` / `cloudEnvFileName`.
    Stack,
}

impl Cloud {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "azurepubliccloud" => Some(Self::Public),
            "azureusgovernmentcloud" => Some(Self::UsGovernment),
            "azurechinacloud" => Some(Self::China),
            "azuregermancloud" => Some(Self::German),
            "azurestackcloud" => Some(Self::Stack),
            _ => None,
        }
    }
}

/// How the mount authenticates to Azure AD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMode {
    /// The pod's service account token exchanged for the app/identity `client_id`.
    Workload { client_id: String },
    /// The node's managed identity via IMDS; optionally a user-assigned one.
    VmManaged { user_assigned_id: Option<String> },
    /// `clientid` / `clientsecret` from the node-publish secret.
    ServicePrincipal,
    /// AKS identity binding: the pod's `api://AKSIdentityBinding` token exchanged for `client_id`
    /// through the cluster's token proxy (`useAzureTokenProxy: "true"`).
    TokenProxy { client_id: String },
    /// AAD pod identity: tokens from the node's NMI for whatever identity is bound to the pod
    /// (`usePodIdentity: "true"`; `userAssignedIdentityID` is not read, as upstream).
    Nmi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Secret,
    Key,
    Cert,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Cert => "cert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Pem,
    Pfx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEncoding {
    Utf8,
    Hex,
    Base64,
}

csi_secrets_provider_core::config_keys! {
    /// SecretProviderClass parameters of the Azure provider.
    pub enum ParameterKey {
        KeyvaultName => KEYVAULT_NAME,
        TenantId => TENANT_ID,
        TenantIdDeprecated => TENANT_ID_DEPRECATED,
        CloudName => CLOUD_NAME,
        CloudEnvFileName => CLOUD_ENV_FILE_NAME,
        ClientId => CLIENT_ID,
        UsePodIdentity => USE_POD_IDENTITY,
        UseVmManagedIdentity => USE_VM_MANAGED_IDENTITY,
        UserAssignedIdentityId => USER_ASSIGNED_IDENTITY_ID,
        UseAzureTokenProxy => USE_AZURE_TOKEN_PROXY,
        Objects => OBJECTS,
    }
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub keyvault_name: String,
    pub tenant_id: String,
    /// `None` when `cloudName` is empty: the provider's default cloud applies.
    pub cloud: Option<Cloud>,
    pub cloud_env_file: Option<String>,
    pub identity: IdentityMode,
    pub objects: Vec<ObjectSpec>,
    /// `objectPrefix` entries: listed at mount time, each selected secret then read as an
    /// object of its own.
    pub selections: Vec<SelectionSpec>,
    /// `objectType: acr` entries: a Docker login each.
    pub registries: Vec<RegistrySpec>,
    pub plan: FilePlan,
}

impl MountSpec {
    /// `object` as the admin policy and the audit trail name it: `vault/objectName`.
    pub fn resolved_name(&self, object: &ObjectSpec) -> String {
        format!("{}/{}", object.keyvault_name.as_deref().unwrap_or(&self.keyvault_name), object.name)
    }
}

/// Parses the parameters: every problem found, or the spec.
pub fn parse(parameters: &Parameters, default_mode: FileMode) -> Result<MountSpec, Vec<Error>> {
    let mut problems = Vec::new();
    let keyvault_name = parameters.get_trimmed(KEYVAULT_NAME).unwrap_or_default().to_owned();
    if keyvault_name.is_empty() {
        problems.push(Error::invalid_config("keyvaultName is not provided").with_field(KEYVAULT_NAME));
    } else if let Some(problem) = vault_name_problem(&keyvault_name) {
        problems.push(problem);
    }
    // tenantID is the documented name; tenantId is still accepted (and loses when both are set).
    let tenant_id = parameters
        .get_trimmed(TENANT_ID)
        .or_else(|| parameters.get_trimmed(TENANT_ID_DEPRECATED))
        .unwrap_or_default()
        .to_owned();
    if tenant_id.is_empty() {
        problems.push(Error::invalid_config("tenantId is not provided").with_field(TENANT_ID));
    } else if !is_tenant(&tenant_id) {
        // It becomes part of the authority URL's path (`/<tenant>/oauth2/v2.0/token`).
        problems.push(
            Error::invalid_config(format!(
                "tenantId {} is not a tenant: a GUID or a domain name (letters, digits, '-', single dots)",
                csi_secrets_provider_core::grammar::shown(&tenant_id)
            ))
            .with_field(TENANT_ID),
        );
    }
    let cloud = parameters.get_trimmed(CLOUD_NAME).and_then(|name| {
        let cloud = Cloud::parse(name);
        if cloud.is_none() {
            problems.push(
                Error::invalid_config(format!(
                    "unknown cloudName {name:?}: expected AzurePublicCloud, AzureUSGovernmentCloud, \
                     AzureChinaCloud, AzureGermanCloud or AzureStackCloud"
                ))
                .with_field(CLOUD_NAME),
            );
        }
        cloud
    });
    let identity = parse_identity(parameters, &mut problems);
    let entries::ParsedObjects { objects, selections, registries, mut plan } =
        parse_objects(parameters.get(OBJECTS), default_mode, &mut problems);
    if let Err(e) = csi_secrets_provider_core::kit::check_registry_count(registries.len()) {
        problems.push(e.with_field(OBJECTS));
    }
    for warning in csi_secrets_provider_core::unknown_parameters::<ParameterKey>(parameters) {
        plan.warn(warning);
    }
    if problems.is_empty() {
        Ok(MountSpec {
            keyvault_name,
            tenant_id,
            cloud,
            cloud_env_file: parameters.get_trimmed(CLOUD_ENV_FILE_NAME).map(str::to_owned),
            identity,
            objects,
            selections,
            registries,
            plan,
        })
    } else {
        Err(problems)
    }
}

/// A Key Vault object's name: it becomes a URL path segment (`/secrets/<name>/<version>`), where
/// `..`, `/` or `\\` would reach another object than the one the admin policy was asked about.
pub const OBJECT_NAME: NameRule = NameRule {
    what: "a Key Vault object name",
    words: "letters, digits and '-'",
    min: 1,
    max: 127,
    first: alphanumeric_or_hyphen,
    middle: alphanumeric_or_hyphen,
    last: alphanumeric_or_hyphen,
};

/// A Key Vault object version (32 hexadecimal digits in Azure; letters and digits here).
pub const OBJECT_VERSION: NameRule = NameRule {
    what: "a Key Vault object version",
    words: "letters and digits",
    min: 1,
    max: 64,
    first: alphanumeric,
    middle: alphanumeric,
    last: alphanumeric,
};

/// A tenant as Azure AD names one: a GUID, or a domain (`contoso.onmicrosoft.com`).
fn is_tenant(tenant: &str) -> bool {
    tenant.len() <= 253
        && tenant.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A vault name Key Vault cannot have (it becomes a host name), as a problem of `keyvaultName`.
fn vault_name_problem(name: &str) -> Option<Error> {
    let valid =
        (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (!valid).then(|| {
        Error::invalid_config(format!(
            "invalid keyvaultName {name:?}: a vault name has 3 to 24 letters, digits and dashes"
        ))
        .with_field(KEYVAULT_NAME)
    })
}

fn parse_identity(parameters: &Parameters, problems: &mut Vec<Error>) -> IdentityMode {
    let mut flag = |key: &str| match parameters.get_trimmed(key) {
        None => false,
        Some(value) => parse_go_bool(value).unwrap_or_else(|| {
            problems.push(
                Error::invalid_config(format!(
                    "failed to parse {key} value {value:?} (expected true or false)"
                ))
                .with_field(key),
            );
            false
        }),
    };
    let pod_identity = flag(USE_POD_IDENTITY);
    let vm_identity = flag(USE_VM_MANAGED_IDENTITY);
    let token_proxy = flag(USE_AZURE_TOKEN_PROXY);
    let enabled: Vec<&str> = [
        (USE_POD_IDENTITY, pod_identity),
        (USE_VM_MANAGED_IDENTITY, vm_identity),
        (USE_AZURE_TOKEN_PROXY, token_proxy),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(key, _)| *key)
    .collect();
    if enabled.len() > 1 {
        problems.push(
            Error::invalid_config(
                "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy",
            )
            .with_field(enabled.join(", ")),
        );
    }
    if token_proxy {
        return match parameters.get_trimmed(CLIENT_ID) {
            Some(client_id) => IdentityMode::TokenProxy { client_id: client_id.to_owned() },
            None => {
                problems.push(
                    Error::invalid_config(
                        "clientID is required for identity binding (useAzureTokenProxy needs the client ID of the \
                         identity to use)",
                    )
                    .with_field(CLIENT_ID),
                );
                IdentityMode::ServicePrincipal
            }
        };
    }
    if pod_identity {
        IdentityMode::Nmi
    } else if vm_identity {
        IdentityMode::VmManaged {
            user_assigned_id: parameters.get_trimmed(USER_ASSIGNED_IDENTITY_ID).map(str::to_owned),
        }
    } else if let Some(client_id) = parameters.get_trimmed(CLIENT_ID) {
        IdentityMode::Workload { client_id: client_id.to_owned() }
    } else {
        IdentityMode::ServicePrincipal
    }
}

//! SecretProviderClass parameters of the Azure Key Vault provider, parsed and checked before any
//! Azure call. Rules and error words follow Azure/secrets-store-csi-driver-provider-azure v1.x
//! (see docs/azure.md); where upstream stops at the first error we report every one.

use csi_secrets_provider_core::{
    Error, Fields, FileMode, FilePlan, KeyMatching, Parameters, Warning, parse_go_bool,
};
use serde_norway::Value;

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
pub enum Identity {
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

csi_secrets_provider_core::config_keys! {
    /// Keys of an `objects.array` entry. Upstream decodes them with `gopkg.in/yaml.v3`, which matches
    /// the exact spelling only; another spelling is ignored there and reported here.
    pub enum ObjectKey {
        ObjectName => "objectName",
        ObjectType => "objectType",
        ObjectAlias => "objectAlias",
        ObjectVersion => "objectVersion",
        ObjectVersionHistory => "objectVersionHistory",
        ObjectFormat => "objectFormat",
        ObjectEncoding => "objectEncoding",
        FilePermission => "filePermission",
    }
}

/// Upstream wraps every error about an object this way (validation and fetching alike); users'
/// alerts and runbooks search for it.
pub(crate) fn upstream_prefix(object_type: &str, name: &str, version: &str) -> String {
    format!("failed to get objectType:{object_type}, objectName:{name}, objectVersion:{version}")
}

/// One entry of `objects.array`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub object_type: ObjectType,
    pub alias: Option<String>,
    pub version: Option<String>,
    /// Number of versions to write as `<file>/<i>`; 0 or 1 means a single file.
    pub version_history: u32,
    pub format: ObjectFormat,
    pub encoding: ObjectEncoding,
    pub mode: FileMode,
}

impl ObjectSpec {
    /// The file (or directory, with version history) name.
    pub fn file_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// The ObjectVersion id upstream reports: type and name, not alias.
    pub fn version_id(&self) -> String {
        format!("{}/{}", self.object_type.as_str(), self.name)
    }
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub keyvault_name: String,
    pub tenant_id: String,
    /// `None` when `cloudName` is empty: the provider's default cloud applies.
    pub cloud: Option<Cloud>,
    pub cloud_env_file: Option<String>,
    pub identity: Identity,
    pub objects: Vec<ObjectSpec>,
    pub plan: FilePlan,
}

/// Parses the parameters: every problem found, or the spec.
pub fn parse(parameters: &Parameters, default_mode: FileMode) -> Result<MountSpec, Vec<Error>> {
    let mut problems = Vec::new();
    let keyvault_name = parameters.get_trimmed(KEYVAULT_NAME).unwrap_or_default().to_owned();
    if keyvault_name.is_empty() {
        problems.push(Error::invalid_config("keyvaultName is not provided").with_field(KEYVAULT_NAME));
    } else if !(3..=24).contains(&keyvault_name.len())
        || !keyvault_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        problems.push(
            Error::invalid_config(format!(
                "invalid keyvaultName {keyvault_name:?}: a vault name has 3 to 24 letters, digits and dashes"
            ))
            .with_field(KEYVAULT_NAME),
        );
    }
    // tenantID is the documented name; tenantId is still accepted (and loses when both are set).
    let tenant_id = parameters
        .get_trimmed(TENANT_ID)
        .or_else(|| parameters.get_trimmed(TENANT_ID_DEPRECATED))
        .unwrap_or_default()
        .to_owned();
    if tenant_id.is_empty() {
        problems.push(Error::invalid_config("tenantId is not provided").with_field(TENANT_ID));
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
    let (objects, mut plan) = parse_objects(parameters.get(OBJECTS), default_mode, &mut problems);
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
            plan,
        })
    } else {
        Err(problems)
    }
}

fn parse_identity(parameters: &Parameters, problems: &mut Vec<Error>) -> Identity {
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
    if [pod_identity, vm_identity, token_proxy].iter().filter(|on| **on).count() > 1 {
        problems.push(Error::invalid_config(
            "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy",
        ));
    }
    if token_proxy {
        return match parameters.get_trimmed(CLIENT_ID) {
            Some(client_id) => Identity::TokenProxy { client_id: client_id.to_owned() },
            None => {
                problems.push(
                    Error::invalid_config(
                        "workload identity client ID and service account token are required for identity binding \
                         (useAzureTokenProxy needs clientID)",
                    )
                    .with_field(CLIENT_ID),
                );
                Identity::ServicePrincipal
            }
        };
    }
    if pod_identity {
        Identity::Nmi
    } else if vm_identity {
        Identity::VmManaged {
            user_assigned_id: parameters.get_trimmed(USER_ASSIGNED_IDENTITY_ID).map(str::to_owned),
        }
    } else if let Some(client_id) = parameters.get_trimmed(CLIENT_ID) {
        Identity::Workload { client_id: client_id.to_owned() }
    } else {
        Identity::ServicePrincipal
    }
}

fn parse_objects(
    value: Option<&str>,
    default_mode: FileMode,
    problems: &mut Vec<Error>,
) -> (Vec<ObjectSpec>, FilePlan) {
    let mut objects = Vec::new();
    let mut plan = FilePlan::new();
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        problems.push(Error::invalid_config("objects is not set").with_field(OBJECTS));
        return (objects, plan);
    };
    let items = match serde_norway::from_str::<Value>(text) {
        Err(e) => {
            problems
                .push(Error::invalid_config(format!("failed to unmarshal objects: {e}")).with_field(OBJECTS));
            return (objects, plan);
        }
        Ok(value) => match value.get("array") {
            Some(Value::Sequence(items)) => items.clone(),
            Some(Value::Null) | None if value.is_mapping() => Vec::new(),
            _ => {
                problems.push(
                    Error::invalid_config(
                        "objects must be a mapping with an `array:` list of object strings",
                    )
                    .with_field(OBJECTS),
                );
                return (objects, plan);
            }
        },
    };
    for (index, item) in items.iter().enumerate() {
        // Each element is itself a YAML document in a string (`- |` blocks); a plain mapping is
        // accepted too.
        let parsed = match item {
            Value::String(s) => serde_norway::from_str::<Value>(s).map_err(|e| e.to_string()),
            Value::Mapping(_) => Ok(item.clone()),
            _ => Err("expected a YAML string describing the object".to_owned()),
        };
        let entry = match parsed {
            Ok(entry) if entry.is_mapping() => entry,
            Ok(_) => {
                problems.push(
                    Error::invalid_config("expected objectName, objectType, ...")
                        .with_object(format!("objects.array[{index}]")),
                );
                continue;
            }
            Err(e) => {
                problems.push(
                    Error::invalid_config(format!("failed to unmarshal object: {e}"))
                        .with_object(format!("objects.array[{index}]")),
                );
                continue;
            }
        };
        let mut warnings = Vec::new();
        let parsed = parse_object(index, &entry, default_mode, &mut warnings);
        for warning in warnings {
            plan.warn(warning);
        }
        match parsed {
            Ok(object) => {
                let added = if object.version_history > 1 {
                    (0..object.version_history).try_for_each(|i| {
                        plan.add(&object.name, format!("{}/{i}", object.file_name()), object.mode)
                    })
                } else {
                    plan.add(&object.name, object.file_name().to_owned(), object.mode)
                };
                match added {
                    Ok(()) => objects.push(object),
                    Err(e) => problems.push(e.with_field(if object.alias.is_some() {
                        "objectAlias"
                    } else {
                        "objectName"
                    })),
                }
            }
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    (objects, plan)
}

fn parse_object(
    index: usize,
    entry: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<ObjectSpec, Vec<Error>> {
    let fields: Fields<'_, ObjectKey> = Fields::read(entry, KeyMatching::Exact);
    let ([name, object_type, alias, version, history, format, encoding, permission], problems) = fields.many(
        [
            ObjectKey::ObjectName,
            ObjectKey::ObjectType,
            ObjectKey::ObjectAlias,
            ObjectKey::ObjectVersion,
            ObjectKey::ObjectVersionHistory,
            ObjectKey::ObjectFormat,
            ObjectKey::ObjectEncoding,
            ObjectKey::FilePermission,
        ],
        Fields::trimmed,
    );
    let prefix = upstream_prefix(
        object_type.as_deref().unwrap_or_default(),
        name.as_deref().unwrap_or_default(),
        version.as_deref().unwrap_or_default(),
    );
    let id = name.clone().unwrap_or_else(|| format!("objects.array[{index}]"));
    warnings.extend(fields.unknown_keys(&id, ""));
    let mut problems: Vec<Error> = problems.into_iter().map(|e| e.or_object(&id)).collect();
    let mut fail = |field: &str, cause: String| {
        problems.push(Error::invalid_config(format!("{prefix}: {cause}")).with_object(&id).with_field(field));
    };
    if name.is_none() {
        fail("objectName", "object name is not set".to_owned());
    }
    let parsed_type = match object_type.as_deref() {
        Some("secret") => Some(ObjectType::Secret),
        Some("key") => Some(ObjectType::Key),
        Some("cert") => Some(ObjectType::Cert),
        _ => {
            fail("objectType", "Invalid vaultObjectTypes. Should be secret, key, or cert".to_owned());
            None
        }
    };
    let format = match format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("pem") => ObjectFormat::Pem,
        Some("pfx") => {
            // Upstream refuses only the exact `pfx` for keys and certificates (a case-sensitive
            // comparison); `PFX` passes there and changes nothing for them.
            if format.as_deref() == Some("pfx") && parsed_type.is_some_and(|t| t != ObjectType::Secret) {
                fail("objectFormat", "objectFormat pfx is only supported for objectType secret".to_owned());
            }
            ObjectFormat::Pfx
        }
        Some(other) => {
            fail("objectFormat", format!("invalid objectFormat: {other}, should be PEM or PFX"));
            ObjectFormat::Pem
        }
    };
    let encoding = match encoding.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf-8") => ObjectEncoding::Utf8,
        Some(other @ ("hex" | "base64")) => {
            if parsed_type.is_some_and(|t| t != ObjectType::Secret) {
                fail("objectEncoding", "objectEncoding only supported for objectType secret".to_owned());
            }
            if other == "hex" { ObjectEncoding::Hex } else { ObjectEncoding::Base64 }
        }
        Some(other) => {
            fail(
                "objectEncoding",
                format!("invalid objectEncoding: {other}, should be hex, base64 or utf-8"),
            );
            ObjectEncoding::Utf8
        }
    };
    let version_history = match history.as_deref().map(str::parse::<u32>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            fail(
                "objectVersionHistory",
                format!("objectVersionHistory must be a whole number, got {:?}", history.unwrap_or_default()),
            );
            0
        }
    };
    let mode = match permission.as_deref().map(FileMode::parse_go_octal) {
        None => default_mode,
        Some(Ok(mode)) => mode,
        Some(Err(e)) => {
            fail("filePermission", e.message().to_owned());
            default_mode
        }
    };
    if let Some(file) = alias.as_deref().or(name.as_deref())
        && file.contains("..")
    {
        fail(
            if alias.is_some() { "objectAlias" } else { "objectName" },
            format!("file name {file:?} must not contain \"..\""),
        );
    }
    match (name, parsed_type) {
        (Some(name), Some(object_type)) if problems.is_empty() => {
            Ok(ObjectSpec { name, object_type, alias, version, version_history, format, encoding, mode })
        }
        _ => Err(problems),
    }
}

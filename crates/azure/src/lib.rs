//! The Azure Key Vault backend: secrets, keys and certificates, drop-in for
//! Azure/secrets-store-csi-driver-provider-azure SecretProviderClasses (`provider: azure`).
//!
//! Azure AD and Key Vault are reached through the official Azure SDK for Rust (`azure_identity`,
//! `azure_security_keyvault_*`) over one shared reqwest client.
#![forbid(unsafe_code)]

mod attribution;
mod cloud;
mod convert;
mod identity;
mod keyvault;
mod params;
mod pod_identity;
mod reads;
mod registry;
mod render;
mod selecting;
mod token_proxy;
mod transport;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, HttpClient, RetryOptions, Transport};
use csi_secrets_provider_core::kit::{
    self, Authorization, CredentialDigest, Method, MountAssembly, ObjectNames, ServiceAccount, skip_if_absent,
};
use csi_secrets_provider_core::{
    BackendStats, Error, FileMode, MountRequest, MountResponse, Parameters, ParsedSpc, Prepared, Result,
    SecretBackend, SharingOptions, SkippedObject, Validation, before_deadline,
};
use futures::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;

use crate::identity::{CredentialSource, IdentityCache, IdentityKey, Nmi, VaultClients};
pub use crate::params::Cloud;
use crate::params::{IdentityMode, MountSpec};
use crate::reads::{SharedVaultReads, VaultReads};
use crate::render::WriteOptions;
use crate::transport::CountingClient;

pub use crate::pod_identity::DEFAULT_NMI_ENDPOINT;
pub use crate::token_proxy::{DEFAULT_TOKEN_PROXY_CA_FILE, DEFAULT_TOKEN_PROXY_URL, TokenProxyOptions};

/// One vault a mount reads: its name, URL and clients.
struct MountVault {
    name: String,
    url: String,
    clients: VaultClients,
}

/// Audience of the service account token exchanged for an Azure AD token.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Settings of the Azure backend (flags and environment of the provider process).
#[derive(Debug, Clone)]
pub struct AzureOptions {
    /// Cloud for SPCs without `cloudName` (upstream's `--cloud-name`).
    pub default_cloud: Cloud,
    /// Custom cloud description for `AzureStackCloud` (`AZURE_ENVIRONMENT_FILEPATH`).
    pub environment_file: Option<PathBuf>,
    pub construct_pem_chain: bool,
    pub write_cert_and_key_in_separate_files: bool,
    /// The HTTP client's options: the extra CA (`serve --extra-ca-file` and
    /// `--azure-extra-ca-file`, merged), the connect and request timeouts.
    pub client: csi_secrets_provider_core::kit::ClientOptions,
    /// Host names pinned to addresses (private endpoints without private DNS).
    pub resolve: Vec<(String, IpAddr)>,
    /// Objects fetched at once within one mount.
    pub concurrency: usize,
    /// Where the node's NMI answers for AAD pod identity (`usePodIdentity: "true"`).
    pub nmi_endpoint: String,
    /// The cluster's token proxy for AKS identity binding (`useAzureTokenProxy: "true"`).
    pub token_proxy: TokenProxyOptions,
    /// How remounts of one identity share Key Vault reads.
    pub sharing: SharingOptions,
}

impl Default for AzureOptions {
    fn default() -> Self {
        Self {
            default_cloud: Cloud::Public,
            environment_file: None,
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
            client: csi_secrets_provider_core::kit::ClientOptions::default(),
            resolve: Vec::new(),
            concurrency: 8,
            nmi_endpoint: pod_identity::DEFAULT_NMI_ENDPOINT.to_owned(),
            token_proxy: TokenProxyOptions::default(),
            sharing: SharingOptions::default(),
        }
    }
}

/// Serves `provider: azure`.
#[derive(Debug)]
pub struct AzureBackend {
    options: AzureOptions,
    /// The shared, counting HTTP client, built at start.
    http: Arc<dyn HttpClient>,
    identities: IdentityCache,
    token_proxy: token_proxy::TokenProxy,
    /// Requests made (counted by the transport) and what sharing saved, for `/metrics`.
    stats: BackendStats,
    reads: SharedVaultReads,
    /// The same HTTP client for calls outside the SDK (a registry's token exchange).
    registry_http: reqwest::Client,
    /// ACR logins by identity and registry, renewed at half their lifetime.
    registry_logins: kit::ExpiringCache<(IdentityKey, String), kit::RegistryLogin>,
}

impl AzureBackend {
    /// The backend, its HTTP client built once: one that cannot be built (an extra CA the TLS
    /// stack refuses) refuses the start, as for every backend.
    pub fn new(options: AzureOptions) -> Result<Self> {
        let stats = BackendStats::default();
        let http =
            Arc::new(CountingClient::new(Arc::new(http_client(&options)?), Arc::clone(&stats.cloud_calls)))
                as Arc<dyn HttpClient>;
        // The registry's token exchange carries the pod's Azure AD token: it follows no redirect.
        let registry_http = options.client.http_client("azure", |mut builder| {
            builder = builder.redirect(reqwest::redirect::Policy::none());
            for (host, ip) in &options.resolve {
                builder = builder.resolve(host, SocketAddr::new(*ip, 0));
            }
            builder
        })?;
        let reads = SharedVaultReads::new(options.sharing, &stats.sharing);
        let token_proxy = token_proxy::TokenProxy::new(
            options.token_proxy.clone(),
            options.resolve.clone(),
            Arc::clone(&stats.cloud_calls),
        );
        Ok(Self {
            options,
            http,
            identities: IdentityCache::default(),
            token_proxy,
            stats,
            reads,
            registry_http,
            registry_logins: kit::registry_logins(),
        })
    }

    fn client_options(&self, authority_host: &str) -> Result<ClientOptions> {
        let transport = Transport::new(Arc::clone(&self.http));
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = authority_host.to_owned();
        // Four retries, the SDK doubling 100 ms from the first (0.2 + 0.4 + 0.8 + 1.6 s, plus up
        // to 0.25 s of jitter each), end a persistent 5xx in about four seconds, inside a driver's
        // deadline, with Key Vault's own error; Retry-After is honoured.
        let retry = ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(100),
            max_retries: 4,
            max_delay: azure_core::time::Duration::seconds(5),
            max_total_elapsed: azure_core::time::Duration::seconds(30),
        };
        Ok(ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::exponential(retry),
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            per_call_policies: vec![attribution::PodUserAgent::policy()],
            ..Default::default()
        })
    }

    /// The SPC's vault and every vault an object names, each with its own clients (and so its
    /// own challenge) for the one identity of the mount.
    fn mount_vaults(
        &self,
        spec: &MountSpec,
        endpoints: &cloud::CloudEndpoints,
        identity: &IdentityKey,
        credential: &CredentialSource<'_>,
        client_options: &ClientOptions,
    ) -> Result<Vec<MountVault>> {
        let names = std::iter::once(spec.keyvault_name.as_str())
            .chain(spec.objects.iter().filter_map(|object| object.keyvault_name.as_deref()))
            .chain(spec.selections.iter().filter_map(|entry| entry.keyvault_name()));
        let mut vaults: Vec<MountVault> = Vec::new();
        for name in names {
            if vaults.iter().any(|vault| vault.name == name) {
                continue;
            }
            let url = endpoints.vault_url(name);
            let clients =
                self.identities.clients(identity.clone(), credential.clone(), &url, client_options)?;
            vaults.push(MountVault { name: name.to_owned(), url, clients });
        }
        Ok(vaults)
    }

    /// The mount's identity (the key its clients and reads are shared by) and how to build its
    /// credential the first time it is seen.
    fn credential<'a>(
        &self,
        spec: &'a MountSpec,
        request: &'a MountRequest,
        authority: &str,
        nmi: &'a Nmi,
        proxy: Option<Arc<dyn HttpClient>>,
    ) -> Result<(IdentityKey, CredentialSource<'a>)> {
        let tenant = spec.tenant_id.as_str();
        // Workload identity and identity binding: the app, in the tenant, for the pod's service
        // account.
        let federated = |method, client_id: &String, namespace, service_account| {
            identity::key(
                method,
                authority,
                Authorization {
                    principal: client_id.clone(),
                    tenant: Some(tenant.to_owned()),
                    service_account: Some(ServiceAccount::new(namespace, service_account)),
                    ..Authorization::default()
                },
            )
        };
        let service_account = || -> Result<(String, String)> {
            Ok((
                request.pod.require_namespace()?.to_owned(),
                request.pod.require_service_account()?.to_owned(),
            ))
        };
        match &spec.identity {
            IdentityMode::Workload { client_id } => {
                let token =
                    pod_token(request, WORKLOAD_IDENTITY_AUDIENCE, "workload identity (clientID is set)")?;
                let (namespace, service_account) = service_account()?;
                let key = federated(Method::WorkloadIdentity, client_id, namespace, service_account);
                Ok((key, CredentialSource::Workload { tenant, client_id, token }))
            }
            IdentityMode::ServicePrincipal => service_principal(request, authority, tenant),
            IdentityMode::TokenProxy { client_id } => {
                if !request.tokens.is_provided() {
                    return Err(Error::invalid_config(format!(
                        "service account tokens are required for identity binding: the CSIDriver's \
                         tokenRequests must include audience {}",
                        token_proxy::IDENTITY_BINDING_AUDIENCE
                    ))
                    .with_field(csi_secrets_provider_core::attr::SERVICE_ACCOUNT_TOKENS));
                }
                let token = pod_token(
                    request,
                    token_proxy::IDENTITY_BINDING_AUDIENCE,
                    "AKS identity binding (useAzureTokenProxy is set)",
                )?;
                let proxy =
                    proxy.ok_or_else(|| Error::internal("no token proxy client for identity binding"))?;
                let (namespace, service_account) = service_account()?;
                let key = federated(Method::TokenProxy, client_id, namespace, service_account);
                Ok((key, CredentialSource::TokenProxy { tenant, client_id, token, proxy }))
            }
            IdentityMode::Nmi => {
                let (namespace, pod) = (request.pod.require_namespace()?, request.pod.require_name()?);
                // NMI chooses per pod: the pod is the identity until NMI says which it chose.
                let key = identity::key(
                    Method::AadPodIdentity,
                    authority,
                    Authorization { pod: Some(format!("{namespace}/{pod}")), ..Authorization::default() },
                );
                Ok((key, CredentialSource::PodIdentity { namespace, pod, nmi }))
            }
            IdentityMode::VmManaged { user_assigned_id } => Ok((
                identity::key(
                    Method::VmManagedIdentity,
                    authority,
                    // The system-assigned identity is the one without an id (a blank id is absent).
                    Authorization {
                        principal: user_assigned_id.clone().unwrap_or_default(),
                        ..Authorization::default()
                    },
                ),
                CredentialSource::VmManaged { user_assigned_id: user_assigned_id.as_deref() },
            )),
        }
    }
}

/// The pod's service account token for `audience`, which the driver sends when its
/// CSIDriver's `tokenRequests` name it; `purpose` says which setting needs it.
fn pod_token<'a>(request: &'a MountRequest, audience: &str, purpose: &str) -> Result<&'a str> {
    request.tokens.get(audience).map(|t| t.expose()).filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::invalid_config(format!(
            "token for audience {audience} not found: the CSIDriver's tokenRequests must include audience \
             {audience} for {purpose}"
        ))
    })
}

/// `clientid` / `clientsecret` from the node-publish secret (any ASCII case, as upstream).
fn service_principal<'a>(
    request: &'a MountRequest,
    authority: &str,
    tenant: &'a str,
) -> Result<(IdentityKey, CredentialSource<'a>)> {
    if request.secrets.is_empty() {
        return Err(Error::invalid_config(
            "failed to get credentials, nodePublishSecretRef secret is not set (set clientID for workload \
             identity, or useVMManagedIdentity, or a nodePublishSecretRef with clientid and clientsecret)",
        ));
    }
    let get = |name: &str| {
        request
            .secrets
            .get_ignore_ascii_case(name)
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid_config(format!("could not find {name} in secrets")))
    };
    let (client_id, secret) = (get("clientid")?, get("clientsecret")?);
    let key = identity::key(
        Method::ServicePrincipal,
        authority,
        Authorization {
            principal: client_id.to_owned(),
            tenant: Some(tenant.to_owned()),
            credential: Some(CredentialDigest::of(secret.as_bytes())),
            ..Authorization::default()
        },
    );
    Ok((key, CredentialSource::ServicePrincipal { tenant, client_id, secret }))
}

fn http_client(options: &AzureOptions) -> Result<reqwest::Client> {
    options.client.http_client("azure", |mut builder| {
        for (host, ip) in &options.resolve {
            // The port of the URL is used; 0 here means "whatever the URL says".
            builder = builder.resolve(host, SocketAddr::new(*ip, 0));
        }
        builder
    })
}

#[async_trait]
impl SecretBackend for AzureBackend {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn validate(&self, parameters: &Parameters) -> Validation {
        self.prepare(parameters, FileMode::DEFAULT).validation
    }

    fn prepare(&self, parameters: &Parameters, default_mode: FileMode) -> Prepared {
        match params::parse(parameters, default_mode) {
            Ok(spec) => Prepared {
                validation: validation_of(&spec, self.options.write_cert_and_key_in_separate_files),
                parsed: Some(ParsedSpc::new(spec)),
            },
            Err(problems) => Prepared { validation: Validation::failed(problems), parsed: None },
        }
    }

    async fn mount(&self, request: &MountRequest) -> Result<MountResponse> {
        // The Azure provider checks the pod first, in these words.
        request.pod.require_name().map_err(|e| e.prefixed("pod name is not provided"))?;
        request.pod.require_namespace().map_err(|e| e.prefixed("pod namespace is not provided"))?;
        let spec = request
            .parsed_or(|| params::parse(&request.parameters, request.default_mode))
            .map_err(Error::from_problems)?;
        let cloud = spec.cloud.unwrap_or(self.options.default_cloud);
        let environment_files = cloud::EnvironmentFiles {
            spc: spec.cloud_env_file.as_deref().map(std::path::Path::new),
            provider: self.options.environment_file.as_deref(),
        };
        let endpoints = cloud::endpoints(cloud, environment_files)?;
        let client_options = self.client_options(&endpoints.authority_host)?;
        let nmi = Nmi { http: Arc::clone(&self.http), endpoint: self.options.nmi_endpoint.clone() };
        let proxy = match spec.identity {
            IdentityMode::TokenProxy { .. } => Some(self.token_proxy.http_client().await?),
            _ => None,
        };
        let (identity, credential) =
            self.credential(&spec, request, &endpoints.authority_host, &nmi, proxy)?;
        let vaults = self.mount_vaults(&spec, &endpoints, &identity, &credential, &client_options)?;
        // A pod-identity read is authorized by the identity NMI assigned: pods NMI gives the same
        // identity share reads.
        let identity = match vaults.first().and_then(|vault| vault.clients.pod_identity.as_ref()) {
            Some(nmi) => identity::key(
                Method::AadPodIdentityClient,
                &endpoints.authority_host,
                Authorization {
                    principal: before_deadline(request.deadline, "NMI (AAD pod identity)", &[], async {
                        nmi.client_id(&endpoints.vault_resource()).await.map_err(|e| {
                            Error::permission_denied(format!(
                                "AAD pod identity: failed to get a token from NMI: {e}"
                            ))
                        })
                    })
                    .await?,
                    tenant: Some(spec.tenant_id.clone()),
                    ..Authorization::default()
                },
            ),
            None => identity,
        };
        let context = attribution::call_context(attribution::CallerPod::of(request).as_ref());
        let write = WriteOptions {
            construct_pem_chain: self.options.construct_pem_chain,
            write_cert_and_key_in_separate_files: self.options.write_cert_and_key_in_separate_files,
        };
        let selections = selecting::select(&spec, request, &identity, &vaults, &self.reads, &context).await?;
        let all: Vec<&params::ObjectSpec> = spec.objects.iter().chain(&selections.objects).collect();
        let fetches: Vec<_> = all
            .iter()
            .map(|&object| {
                let vault_name = object.keyvault_name.as_deref().unwrap_or(&spec.keyvault_name);
                let vault = vaults.iter().find(|vault| vault.name == vault_name);
                let (identity, context) = (&identity, &context);
                async move {
                    let vault = vault.ok_or_else(|| Error::internal("no client for the object's vault"))?;
                    let (objects, listings) = self.reads.for_mount(request);
                    let reads = VaultReads {
                        clients: &vault.clients,
                        identity,
                        vault_url: &vault.url,
                        objects,
                        listings,
                        context,
                    };
                    let read = render::fetch(&reads, object, write);
                    let result =
                        before_deadline(request.deadline, "Key Vault (or Azure AD)", &[&object.name], read)
                            .await;
                    skip_if_absent(&object.name, object.optional, result)
                }
            })
            .collect();
        let fetched: Vec<std::result::Result<render::ObjectFiles, SkippedObject>> =
            futures::stream::iter(fetches).buffered(self.options.concurrency.max(1)).try_collect().await?;
        let mut mount = MountAssembly::new(spec.plan.warnings().to_vec());
        for skipped in selections.empty {
            let prefix = skipped.object.clone();
            let resolved = format!("{}/{prefix}", spec.keyvault_name);
            mount.skipped(ObjectNames { object: &prefix, resolved: &resolved }, skipped);
        }
        for (spec_object, object) in all.iter().zip(fetched) {
            let resolved = spec.resolved_name(spec_object);
            let names = ObjectNames { object: &spec_object.name, resolved: &resolved };
            match object {
                Ok(object) => {
                    mount.served(names, &object.version, &object.provenance.served(), object.rendered)
                }
                Err(skipped) => mount.skipped(names, skipped),
            }
        }
        // The SPC's vault is always there: its identity's credential asks for registry tokens.
        let first_vault =
            vaults.first().ok_or_else(|| Error::internal("no Key Vault clients for the mount"))?;
        let mut registries = Vec::with_capacity(spec.registries.len());
        for entry in &spec.registries {
            let host = entry.host.as_str();
            let fetch = || {
                let credential = first_vault.clients.credential.as_ref();
                let calls = &self.stats.cloud_calls;
                registry::login(&self.registry_http, credential, &endpoints, &spec.tenant_id, host, calls)
            };
            let login = self.registry_logins.get_or_fetch((identity.clone(), host.to_owned()), fetch);
            let login =
                before_deadline(request.deadline, "the container registry (or Azure AD)", &[host], login)
                    .await;
            registries.push((entry.entry(), skip_if_absent(host, entry.optional, login)?));
        }
        mount.add_registries(registries);
        Ok(mount.finish())
    }

    fn stats(&self) -> Option<&BackendStats> {
        Some(&self.stats)
    }
}

#[cfg(test)]
mod tests;

/// What `validate` and the policy check learn from a parsed SecretProviderClass.
fn validation_of(spec: &params::MountSpec, separate_cert_and_key: bool) -> Validation {
    // A secret that turns out to be a certificate also gets `.crt` and `.key`.
    let possible_files = if separate_cert_and_key {
        spec.objects
            .iter()
            .filter(|o| o.object_type == params::ObjectType::Secret && o.format == params::ObjectFormat::Pem)
            .flat_map(|o| [format!("{}.crt", o.file_name()), format!("{}.key", o.file_name())])
            .collect()
    } else {
        Vec::new()
    };
    // What a mount reads, for the admin policy and the audit trail: `vault/objectName`.
    let planned = spec
        .objects
        .iter()
        .fold(Validation::planned(&spec.plan), |v, o| v.object(&o.name, spec.resolved_name(o)));
    // A registry is named by its login server (the policy's patterns match it as written).
    let planned = spec.registries.iter().fold(planned, |v, r| v.object(&r.host, &r.host));
    let validation = spec.selections.iter().fold(planned, |v, entry| {
        let vault = entry.keyvault_name().unwrap_or(&spec.keyvault_name);
        v.selection(&entry.selection, entry.directory(), format!("{vault}/{}", entry.selection.prefix))
    });
    Validation { possible_files, ..validation }
}

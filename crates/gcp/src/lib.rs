//! The `gcp` backend: Google Secret Manager, as the GCP provider (v1.15) mounts it, on the
//! backend kit: parameters (`params`) → identity (`identity`, `kube_lookups`) → reads
//! (`secret_manager` through `kit::ObjectReads`) → render (`render`).
#![forbid(unsafe_code)]

mod identity;
mod kube_lookups;
mod options;
mod params;
mod render;
mod secret_manager;
mod selecting;

use std::sync::Arc;

use async_trait::async_trait;
use csi_secrets_provider_core::kit::{ExpiringCache, MountAssembly, ObjectNames};
use csi_secrets_provider_core::kube_api::KubeApi;
use csi_secrets_provider_core::{
    BackendStats, Error, FileMode, MountRequest, MountResponse, Parameters, ParsedSpc, Prepared, Result,
    SecretBackend, SharedReads, Validation, before_deadline, kit,
};
use futures::StreamExt;
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::identity::{AccessToken, IdentityKey, TokenEndpoints, WorkloadIdentity};
use crate::kube_lookups::Annotations;
pub use crate::options::{Endpoints, GcpOptions};
use crate::params::{Auth, MountSpec, SecretSpec};
use crate::secret_manager::{Accessed, ClientCredentials, Clients};

/// Everything that decides a read's answer: whose token, which endpoint, which version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReadKey {
    identity: IdentityKey,
    endpoint: String,
    name: String,
}

/// Serves `provider: gcp`.
#[derive(Debug)]
pub struct GcpBackend {
    options: GcpOptions,
    tokens: TokenEndpoints,
    /// Federated and impersonated tokens, per identity, until shortly before they expire.
    access_tokens: ExpiringCache<IdentityKey, AccessToken>,
    kube: KubeApi,
    /// Service accounts' annotations, shared by remounts under the remount rule.
    annotations: SharedReads<(String, String), Annotations>,
    workload: OnceCell<WorkloadIdentity>,
    provider_credentials: OnceCell<google_cloud_auth::credentials::Credentials>,
    clients: Clients,
    reads: SharedReads<ReadKey, Accessed>,
    /// `resourcePrefix` listings, shared like reads.
    listings: SharedReads<selecting::ListingKey, kit::Listing>,
    /// `registry:` logins by identity and registry host, renewed at half their lifetime.
    registry_logins: ExpiringCache<(IdentityKey, String), kit::RegistryLogin>,
    stats: BackendStats,
}

impl GcpBackend {
    /// The backend, its HTTP client built once: a client that cannot be built (an extra CA
    /// bundle that does not parse) refuses the start instead of falling back to a client
    /// without its timeouts or the operator's CA.
    pub fn new(options: GcpOptions) -> Result<Self> {
        let stats = BackendStats::default();
        let http = options.client.http_client("gcp", |builder| builder)?;
        Ok(Self {
            tokens: TokenEndpoints { http, endpoints: options.endpoints.clone() },
            access_tokens: ExpiringCache::new(identity::REFRESH_MARGIN, AccessToken::expiry),
            kube: KubeApi::default(),
            annotations: SharedReads::new(options.sharing, Arc::clone(&stats.sharing)),
            workload: OnceCell::new(),
            provider_credentials: OnceCell::new(),
            clients: Clients::default(),
            reads: SharedReads::new(options.sharing, Arc::clone(&stats.sharing)),
            listings: SharedReads::new(options.sharing, Arc::clone(&stats.sharing)),
            registry_logins: kit::registry_logins(),
            stats,
            options,
        })
    }

    /// This cluster's pool and identity provider: from the options (`PROJECT`,
    /// `CLUSTER_NAME`, `CLUSTER_LOCATION`), else the metadata server; off GKE, from the
    /// provider's own `external_account` credentials; found once.
    async fn workload_identity(&self) -> Result<WorkloadIdentity> {
        self.workload
            .get_or_try_init(|| async {
                match self.gke_workload_identity().await {
                    Ok(found) => Ok(found),
                    Err(gke) => match &self.options.application_credentials {
                        Some(path) => {
                            let json = std::fs::read_to_string(path).map_err(|e| {
                                Error::invalid_config(format!(
                                    "cannot read the provider's credentials {}: {e}",
                                    path.display()
                                ))
                            })?;
                            WorkloadIdentity::from_external_account(&json)
                        }
                        None => Err(gke),
                    },
                }
            })
            .await
            .cloned()
    }

    /// GKE's pool and identity provider.
    async fn gke_workload_identity(&self) -> Result<WorkloadIdentity> {
        let calls = &self.stats.cloud_calls;
        let from_metadata = |path: &'static str| async move {
            self.tokens.metadata(path, calls).await.map_err(|e| e.prefixed(format!("unable to find {path}")))
        };
        // What the options or the metadata server say becomes part of the pool and of the
        // identity provider's URL: each is checked against Google's grammar first.
        let checked = |value: String, source: &str, check: &dyn Fn(&str) -> Result<()>| {
            check(&value).map(|()| value).map_err(|e| e.prefixed(format!("the cluster's {source}")))
        };
        let project = match &self.options.project {
            Some(project) => project.clone(),
            None => from_metadata("project/project-id").await?,
        };
        let project = checked(project, "project", &params::names::check_project)?;
        let pool = self.options.pool.clone().unwrap_or_else(|| format!("{project}.svc.id.goog"));
        let provider = match &self.options.identity_provider {
            Some(provider) => provider.clone(),
            None => {
                let location = match &self.options.cluster_location {
                    Some(location) => location.clone(),
                    None => from_metadata("instance/attributes/cluster-location").await?,
                };
                let name = match &self.options.cluster_name {
                    Some(name) => name.clone(),
                    None => from_metadata("instance/attributes/cluster-name").await?,
                };
                let location = checked(location, "location", &|l| params::names::LOCATION.check(l))?;
                let name = checked(name, "name", &|n| params::names::CLUSTER.check(n))?;
                format!(
                    "{}/projects/{project}/locations/{location}/clusters/{name}",
                    self.options.endpoints.gke
                )
            }
        };
        Ok(WorkloadIdentity { pool, provider, verbatim_audience: None })
    }

    /// The pod's identity and its access token (workload identity, then the annotated Google
    /// service account when there is one).
    async fn pod_identity(&self, request: &MountRequest) -> Result<(IdentityKey, AccessToken)> {
        let (namespace, service_account) =
            (request.pod.require_namespace()?, request.pod.require_service_account()?);
        let workload = self.workload_identity().await?;
        let audience = workload.audience();
        let calls = &self.stats.cloud_calls;
        let annotations = self
            .annotations
            .read((namespace.to_owned(), service_account.to_owned()), request.lookup_policy(), || {
                kube_lookups::impersonation(&self.kube, namespace, service_account, calls)
            })
            .await?
            .value;
        let federated_key = IdentityKey::new(
            "gcp",
            kit::Method::FederatedToken,
            kit::Authorization {
                audience: Some(audience.clone()),
                service_account: Some(kit::ServiceAccount::new(namespace, service_account)),
                ..kit::Authorization::default()
            },
        );
        let federated = self
            .access_tokens
            .get_or_fetch(federated_key.clone(), || async {
                let ksa = self.ksa_token(request, &workload).await?;
                self.tokens.exchange(ksa.expose_secret(), &audience, calls).await
            })
            .await?;
        let Some(target) = annotations.0 else {
            return Ok((federated_key, federated));
        };
        // generateAccessToken's chain: through each delegate in turn, to the target.
        let key = federated_key.then(
            target.delegates.iter().chain([&target.target]).map(|account| kit::Link::to(account.as_str())),
        );
        let token = self
            .access_tokens
            .get_or_fetch(key.clone(), || {
                self.tokens.generate(&federated, &target.target, &target.delegates, calls)
            })
            .await?;
        Ok((key, token))
    }

    /// The pod's Kubernetes token for the pool: from the driver's `serviceAccount.tokens`
    /// (keyed by the pool, or by the exchange audience), else a TokenRequest.
    async fn ksa_token(
        &self,
        request: &MountRequest,
        workload: &WorkloadIdentity,
    ) -> Result<secrecy::SecretString> {
        for audience in [workload.pool.clone(), workload.audience()] {
            if let Some(token) = request.tokens.get(&audience).filter(|t| !t.expose().is_empty()) {
                return Ok(secrecy::SecretString::from(token.expose().to_owned()));
            }
        }
        if request.tokens.is_provided() {
            return Err(Error::invalid_config(format!(
                "unable to fetch SA token from driver: no token has audience value of {} (the CSIDriver's tokenRequests must include it)",
                workload.pool
            )));
        }
        let (namespace, service_account) =
            (request.pod.require_namespace()?, request.pod.require_service_account()?);
        let pod = (request.pod.require_name()?, request.pod.uid.as_deref().unwrap_or_default());
        let token = kube_lookups::pod_token(
            &self.kube,
            namespace,
            service_account,
            pod,
            &workload.pool,
            &self.stats.cloud_calls,
        )
        .await?;
        Ok(secrecy::SecretString::from(token))
    }

    /// The identity a mount reads as, and how its client gets credentials.
    async fn identity(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
    ) -> Result<(IdentityKey, ClientCredentials)> {
        if !request.secrets.is_empty() {
            if !self.options.allow_node_publish_secret {
                return Err(Error::invalid_config(
                    "a nodePublishSecretRef is set but this provider does not accept one (serve --gcp-allow-node-publish-secret)",
                ));
            }
            if spec.auth == Auth::ProviderAdc || request.parameters.get_trimmed("auth").is_some() {
                let auth = request.parameters.get_trimmed("auth").unwrap_or("provider-adc");
                return Err(Error::invalid_config(format!(
                    "attempting to set both nodePublishSecretRef and {auth} auth"
                )));
            }
            return node_publish_key(request);
        }
        match spec.auth {
            Auth::ProviderAdc => {
                let credentials = self
                    .provider_credentials
                    .get_or_try_init(|| async {
                        google_cloud_auth::credentials::Builder::default().build().map_err(|e| {
                            Error::permission_denied(format!(
                                "unable to obtain the provider's own credentials (provider-adc): {e}"
                            ))
                        })
                    })
                    .await?;
                let key =
                    IdentityKey::new("gcp", kit::Method::ProviderCredentials, kit::Authorization::default());
                Ok((key, ClientCredentials::Sdk(credentials.clone())))
            }
            Auth::PodAdc => {
                let (key, token) = self.pod_identity(request).await.map_err(|e| {
                    e.prefixed("unable to obtain auth for mount: unable to obtain workload identity auth")
                })?;
                Ok((key, ClientCredentials::Token(token)))
            }
        }
    }

    /// Reads one secret as `identity`, the kit's way.
    async fn read(
        &self,
        reads: kit::ObjectReads<'_, ReadKey, Accessed>,
        identity: &IdentityKey,
        credentials: &ClientCredentials,
        secret: &SecretSpec,
        user_agent: Option<&str>,
    ) -> Result<kit::ObjectOutcome<Accessed>> {
        let endpoint = self.options.endpoints.secret_manager_for(secret.resource.location.as_ref());
        let name = secret.resource.api_name();
        let key = ReadKey { identity: identity.clone(), endpoint: endpoint.clone(), name: name.clone() };
        let fetch = || async {
            let client = self.clients.get(identity, &endpoint, credentials).await?;
            let accessed = secret_manager::access(&client, &name, user_agent, &self.stats.cloud_calls).await;
            match accessed {
                // A selected secret whose latest version is not enabled has no current value.
                Err(e) if secret.selected && secret_manager::is_not_enabled(&e) => {
                    Err(Error::not_found(e.message().to_owned()))
                }
                other => other,
            }
        };
        reads
            .read_optional(key, &secret.resource_name, secret.optional, fetch)
            .await
            .map_err(|e| e.or_object(&secret.resource_name))
    }
}

impl GcpBackend {
    /// The Docker login for `host` of the identity reading secrets: user `oauth2accesstoken`,
    /// its access token as the password (no call: the token is the mount's own), kept per
    /// identity and host until half its lifetime is gone.
    async fn registry_login(
        &self,
        identity: &IdentityKey,
        credentials: &ClientCredentials,
        host: &str,
    ) -> Result<kit::RegistryLogin> {
        let ClientCredentials::Token(token) = credentials else {
            return Err(Error::invalid_config(
                "a registry entry needs the pod's identity (auth: pod-adc, the default): the provider's own credentials and node-publish keys give no token expiry to renew the login by",
            )
            .with_object(host)
            .with_field("registry"));
        };
        self.registry_logins
            .get_or_fetch((identity.clone(), host.to_owned()), || async {
                let expires_at = token.expires_at.ok_or_else(|| {
                    Error::unavailable("the access token has no expiry to renew the registry login by")
                        .with_object(host)
                })?;
                kit::RegistryLogin::new(
                    host,
                    "oauth2accesstoken",
                    token.token.clone(),
                    std::time::SystemTime::now(),
                    expires_at,
                )
            })
            .await
    }
}

/// A service account key from the node-publish secret (`key.json`).
fn node_publish_key(request: &MountRequest) -> Result<(IdentityKey, ClientCredentials)> {
    let Some(key) = request.secrets.get_ignore_ascii_case("key.json") else {
        return Err(Error::invalid_config("the nodePublishSecretRef secret has no key.json"));
    };
    let json: serde_json::Value = serde_json::from_str(key.expose_secret())
        .map_err(|_| Error::invalid_config("key.json in the nodePublishSecretRef secret is not JSON"))?;
    let identity = IdentityKey::new(
        "gcp",
        kit::Method::NodePublishKey,
        kit::Authorization {
            principal: json["client_email"].as_str().unwrap_or_default().to_owned(),
            credential: Some(kit::CredentialDigest::of(key.expose_secret().as_bytes())),
            ..kit::Authorization::default()
        },
    );
    let credentials = google_cloud_auth::credentials::service_account::Builder::new(json)
        .build()
        .map_err(|e| Error::invalid_config(format!("key.json in the nodePublishSecretRef secret: {e}")))?;
    Ok((identity, ClientCredentials::Sdk(credentials)))
}

/// The User-Agent naming the mounting pod (`csi-<namespace>.<pod>`), as for AWS and Azure.
fn pod_user_agent(options: &GcpOptions, request: &MountRequest) -> Option<String> {
    Some(options.client.user_agent_for(Some(&request.pod.caller_name()?)))
}

#[async_trait]
impl SecretBackend for GcpBackend {
    fn name(&self) -> &'static str {
        "gcp"
    }

    fn validate(&self, parameters: &Parameters) -> Validation {
        self.prepare(parameters, FileMode::DEFAULT).validation
    }

    fn prepare(&self, parameters: &Parameters, default_mode: FileMode) -> Prepared {
        match params::parse(parameters, default_mode) {
            Ok(spec) => Prepared { validation: validation_of(&spec), parsed: Some(ParsedSpc::new(spec)) },
            Err(problems) => Prepared { validation: Validation::failed(problems), parsed: None },
        }
    }

    async fn mount(&self, request: &MountRequest) -> Result<MountResponse> {
        let spec = request
            .parsed_or(|| params::parse(&request.parameters, request.default_mode))
            .map_err(Error::from_problems)?;
        let (identity, credentials) = before_deadline(
            request.deadline,
            "the token exchange (or the Kubernetes API, the metadata server)",
            &[],
            self.identity(&spec, request),
        )
        .await?;
        let reads = kit::ObjectReads::new(&self.reads, request, "Secret Manager");
        let user_agent = pod_user_agent(&self.options, request);
        let selections = self.select(&spec, request, &identity, &credentials, user_agent.as_deref()).await?;
        let all: Vec<&SecretSpec> = spec.secrets.iter().chain(&selections.objects).collect();
        // Futures collected first: a closure inside the stream trips the `Send` check of the
        // async-trait future (higher-ranked lifetimes).
        let mut reading = Vec::with_capacity(all.len());
        for &secret in &all {
            reading.push(self.read(reads, &identity, &credentials, secret, user_agent.as_deref()));
        }
        let outcomes: Vec<Result<kit::ObjectOutcome<Accessed>>> =
            futures::stream::iter(reading).buffered(self.options.concurrency.max(1)).collect().await;
        // Every failing secret is named, not only the first.
        let failures: Vec<Error> = outcomes.iter().filter_map(|o| o.as_ref().err().cloned()).collect();
        if let Some(error) = Error::combine(failures) {
            return Err(error);
        }
        let mut mount = MountAssembly::new(spec.plan.warnings().to_vec());
        for skipped in selections.empty {
            let prefix = skipped.object.clone();
            mount.skipped(ObjectNames { object: &prefix, resolved: &prefix }, skipped);
        }
        for (secret, outcome) in all.iter().zip(outcomes) {
            let resolved = secret.resource.secret_name();
            let names = ObjectNames { object: &secret.resource_name, resolved: &resolved };
            mount.add(names, outcome?, |accessed| {
                render::render(secret, accessed).map(|rendered| (accessed.name.clone(), rendered))
            })?;
        }
        let mut registries = Vec::with_capacity(spec.registries.len());
        for registry in &spec.registries {
            let login = self.registry_login(&identity, &credentials, &registry.host).await;
            registries
                .push((registry.entry(), kit::skip_if_absent(&registry.host, registry.optional, login)?));
        }
        mount.add_registries(registries);
        Ok(mount.finish())
    }

    fn stats(&self) -> Option<&BackendStats> {
        Some(&self.stats)
    }
}

/// What `validate` and the policy check learn from a parsed SecretProviderClass: the admin
/// policy and the audit trail name a secret without its version.
fn validation_of(spec: &params::MountSpec) -> Validation {
    let planned = spec
        .secrets
        .iter()
        .fold(Validation::planned(&spec.plan), |v, s| v.object(&s.resource_name, s.resource.secret_name()));
    // A registry is named by its host (the policy's patterns match it as written).
    let planned = spec.registries.iter().fold(planned, |v, r| v.object(&r.host, &r.host));
    spec.selections
        .iter()
        .fold(planned, |v, e| v.selection(&e.selection, e.directory.as_deref(), &e.selection.prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy check's parse is the one the mount reads (`MountRequest::parsed`).
    #[test]
    fn prepare_keeps_the_parse_in_the_mount_s_type() -> Result<()> {
        let backend = GcpBackend::new(GcpOptions::default())?;
        let secrets = "- resourceName: projects/p/secrets/s/versions/1\n  path: s\n";
        let parameters: Parameters = [("secrets".to_owned(), secrets.to_owned())].into_iter().collect();
        let prepared = backend.prepare(&parameters, FileMode::DEFAULT);
        assert!(prepared.validation.problems.is_empty(), "{:?}", prepared.validation.problems);
        assert_eq!(prepared.validation.reads, ["projects/p/secrets/s"]);
        assert!(prepared.parsed.as_ref().and_then(|p| p.get::<params::MountSpec>()).is_some());
        Ok(())
    }
}

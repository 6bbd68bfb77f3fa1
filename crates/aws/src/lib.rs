//! The AWS backend: Secrets Manager and SSM Parameter Store, drop-in for
//! aws/secrets-store-csi-driver-provider-aws SecretProviderClasses (`provider: aws`).
//!
//! Endpoints and retries come from the AWS SDK's own configuration, so `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` work as everywhere else.
#![forbid(unsafe_code)]

mod batch;
mod credentials;
mod fetch;
mod http;
mod kube_api;
mod listing;
mod params;
mod reads;
mod registry;
mod sdk_error;
mod selecting;

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use csi_secrets_provider_core::kit::{self, MountAssembly, ObjectNames, Rendered};
use csi_secrets_provider_core::{
    BackendStats, Error, FileMode, MountRequest, MountResponse, MountedFile, ObjectVersion, Parameters,
    ParsedSpc, Prepared, Result, SecretBackend, SharedReads, SharingOptions, Validation, before_deadline,
};
use tokio::sync::OnceCell;

pub use crate::credentials::PodIdentityScope;
use crate::credentials::{CredentialCache, IdentityKey, PodIdentityAgent, credential_cache};
use crate::fetch::{Fetched, RegionClients};
use crate::kube_api::KubeApi;
use crate::params::{AddressType, IdentityMode, MountSpec, ObjectSpec, ObjectType};
use crate::reads::{MountReads, MountRegions, SharedObjects};

/// API names in the `cloud_requests` metric.
const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:AssumeRoleWithWebIdentity";
const POD_IDENTITY_AGENT: &str = "eks-pod-identity-agent:GetCredentials";
const ASSUME_ROLE: &str = "sts:AssumeRole";

/// Audience of the token exchanged for IRSA credentials.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// Audience of the token sent to the EKS Pod Identity agent.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
pub const POD_IDENTITY_IPV4: &str = "http://169.254.170.23/v1/credentials";
pub const POD_IDENTITY_IPV6: &str = "http://[fd00:ec2::23]/v1/credentials";

/// Settings of the AWS backend (flags and environment of the provider process).
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// Region used when an SPC has no `region` (the provider's `AWS_REGION`); otherwise the
    /// node's `topology.kubernetes.io/region` label.
    pub default_region: Option<String>,
    /// Pod Identity agent endpoints for `preferredAddressType` ipv4 and ipv6.
    pub pod_identity_ipv4: String,
    pub pod_identity_ipv6: String,
    pub pod_identity_timeout: Duration,
    /// Whether Pod Identity credentials are the pod's own (default) or shared per service
    /// account.
    pub pod_identity_scope: PodIdentityScope,
    /// Objects (or SSM batches) fetched at once within one mount.
    pub concurrency: usize,
    /// How remounts of one identity share reads (objects, role annotation, node region).
    pub sharing: SharingOptions,
    /// The HTTP client's options: the extra CA (`serve --extra-ca-file`). The SDK keeps its own
    /// timeouts and retries, as the AWS provider's.
    pub client: kit::ClientOptions,
    /// FIPS endpoints for STS, Secrets Manager and SSM (`serve --aws-use-fips-endpoint`).
    pub use_fips_endpoint: bool,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            default_region: None,
            pod_identity_ipv4: POD_IDENTITY_IPV4.to_owned(),
            pod_identity_ipv6: POD_IDENTITY_IPV6.to_owned(),
            pod_identity_timeout: Duration::from_secs(3),
            pod_identity_scope: PodIdentityScope::default(),
            concurrency: 8,
            sharing: SharingOptions::default(),
            client: kit::ClientOptions::default(),
            use_fips_endpoint: false,
        }
    }
}

/// Serves `provider: aws`.
#[derive(Debug)]
pub struct AwsBackend {
    options: AwsOptions,
    /// Shared SDK settings (HTTP client and its connection pool, endpoints, retries), loaded
    /// once; per-mount clients differ only in region and credentials.
    sdk: OnceCell<SdkConfig>,
    /// The HTTP client every AWS call uses, built at start.
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    kube: KubeApi,
    credentials: CredentialCache,
    agent: PodIdentityAgent,
    /// Calls made and what sharing saved, for `/metrics`.
    stats: BackendStats,
    objects: SharedObjects,
    /// `objectPrefix` listings, shared like reads.
    listings: SharedReads<listing::ListingKey, kit::Listing>,
    /// `eks.amazonaws.com/role-arn` by service account, shared on remounts.
    role_arns: SharedReads<ServiceAccountRef, String>,
    /// The node's region label by pod, shared on remounts.
    node_regions: SharedReads<PodRef, String>,
    /// ECR logins by identity and registry host, renewed at half their lifetime.
    registry_logins: kit::ExpiringCache<(IdentityKey, String), kit::RegistryLogin>,
}

/// A service account, namespaced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServiceAccountRef {
    namespace: String,
    name: String,
}

/// A pod, namespaced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PodRef {
    namespace: String,
    name: String,
}

impl AwsBackend {
    /// The backend, its HTTP client built once: one that cannot be built (an extra CA the TLS
    /// stack refuses) refuses the start.
    pub fn new(options: AwsOptions) -> Result<Self> {
        let agent = PodIdentityAgent::new(options.pod_identity_timeout);
        let stats = BackendStats::default();
        let sharing = options.sharing;
        let http = http::client(options.client.extra_ca.as_ref().map(kit::ExtraCa::pem))?;
        Ok(Self {
            options,
            sdk: OnceCell::new(),
            http,
            kube: KubeApi::default(),
            credentials: credential_cache(),
            agent,
            objects: SharedObjects::new(sharing, &stats.sharing),
            listings: SharedReads::new(sharing, std::sync::Arc::clone(&stats.sharing)),
            role_arns: SharedReads::new(sharing, std::sync::Arc::clone(&stats.sharing)),
            node_regions: SharedReads::new(sharing, std::sync::Arc::clone(&stats.sharing)),
            registry_logins: kit::registry_logins(),
            stats,
        })
    }

    async fn sdk(&self) -> Result<&SdkConfig> {
        self.sdk
            .get_or_try_init(|| async {
                // No credential chain: every call uses the pod's own credentials. An explicit
                // region keeps the loader from asking IMDS; each client sets its own region.
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::from_static("us-east-1"))
                    .no_credentials()
                    .http_client(self.http.clone());
                if self.options.use_fips_endpoint {
                    loader = loader.use_fips(true);
                }
                Ok(loader.load().await)
            })
            .await
    }

    async fn primary_region(&self, spec: &MountSpec, request: &MountRequest) -> Result<String> {
        if let Some(region) = spec.region.clone().or_else(|| self.options.default_region.clone()) {
            return Ok(region);
        }
        let pod = PodRef {
            namespace: request.pod.require_namespace()?.to_owned(),
            name: request.pod.require_name()?.to_owned(),
        };
        self.node_regions
            .read(pod.clone(), request.lookup_policy(), || {
                self.kube.node_region(&pod.namespace, &pod.name, &self.stats.cloud_calls)
            })
            .await
            .map(|served| served.value)
    }

    async fn role_arn(
        &self,
        request: &MountRequest,
        namespace: &str,
        service_account: &str,
    ) -> Result<String> {
        let account = ServiceAccountRef { namespace: namespace.to_owned(), name: service_account.to_owned() };
        self.role_arns
            .read(account, request.lookup_policy(), || {
                self.kube.role_arn(namespace, service_account, &self.stats.cloud_calls)
            })
            .await
            .map(|served| served.value)
    }

    /// The identity the mount reads as and its credentials: the pod's own, or with
    /// `assumeRoleArn` the role assumed with them (cached per pod identity, role and external
    /// id until near expiry, asked of STS in each of `regions` in turn like the pod's own).
    async fn credentials(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        regions: &[&str],
    ) -> Result<(IdentityKey, Credentials)> {
        let (base_key, base) = self.pod_credentials(spec, request, regions).await?;
        let Some(role) = &spec.assume_role else { return Ok((base_key, base)) };
        let key = base_key
            .then([kit::Link { principal: role.role_arn.clone(), qualifier: role.external_id.clone() }]);
        let session = credentials::session_name(
            request.pod.namespace.as_deref().unwrap_or_default(),
            request.pod.name.as_deref().or(request.pod.service_account.as_deref()).unwrap_or_default(),
        );
        let assumed = self
            .credentials
            .get_or_fetch(key.clone(), || async {
                let mut failures = Vec::new();
                for region in regions {
                    let sts = aws_sdk_sts::Client::from_conf(
                        aws_sdk_sts::config::Builder::from(self.sdk().await?)
                            .region(Region::new((*region).to_owned()))
                            .credentials_provider(SharedCredentialsProvider::new(base.clone()))
                            .build(),
                    );
                    let result = credentials::assume_role(&sts, role, &session).await;
                    self.stats.cloud_calls.record(ASSUME_ROLE, &result);
                    match result {
                        Err(e) if e.is_retryable() => {
                            tracing::warn!(region, error = %e, "STS AssumeRole failed; trying the next region if any");
                            failures.push(e);
                        }
                        other => return other,
                    }
                }
                Err(Error::combine(failures).unwrap_or_else(|| Error::internal("no region to ask STS in")))
            })
            .await?;
        Ok((key, assumed))
    }

    /// The pod's identity and its credentials (cached per identity until near expiry). IRSA
    /// asks STS in each of `regions` in turn (primary, then failover) until one answers, so
    /// failover does not depend on the primary region's STS being up.
    async fn pod_credentials(
        &self,
        spec: &MountSpec,
        request: &MountRequest,
        regions: &[&str],
    ) -> Result<(IdentityKey, Credentials)> {
        if !request.tokens.is_provided() {
            return Err(Error::invalid_config(
                "CSI token error: serviceAccount.tokens not provided - ensure tokenRequests is configured in CSIDriver spec \
                 (audiences sts.amazonaws.com and pods.eks.amazonaws.com)",
            ));
        }
        let namespace = request.pod.require_namespace()?.to_owned();
        let service_account = request.pod.require_service_account()?.to_owned();
        match spec.identity {
            IdentityMode::Irsa => {
                let token = token_for(request, IRSA_AUDIENCE, "IRSA")?;
                let role_arn = self.role_arn(request, &namespace, &service_account).await?;
                let session = credentials::session_name(&namespace, &service_account);
                let key = credentials::irsa_key(&role_arn, namespace, service_account);
                let credentials = self
                    .credentials
                    .get_or_fetch(key.clone(), || self.assume_role(regions, &role_arn, &token, &session))
                    .await?;
                Ok((key, credentials))
            }
            IdentityMode::PodIdentity(address) => {
                let token = token_for(request, POD_IDENTITY_AUDIENCE, "Pod Identity")?;
                let endpoints = match address {
                    AddressType::Ipv4 => vec![self.options.pod_identity_ipv4.clone()],
                    AddressType::Ipv6 => vec![self.options.pod_identity_ipv6.clone()],
                    AddressType::Auto => {
                        vec![self.options.pod_identity_ipv4.clone(), self.options.pod_identity_ipv6.clone()]
                    }
                };
                let subject = credentials::token_subject(&token)
                    .unwrap_or_else(|| format!("system:serviceaccount:{namespace}:{service_account}"));
                let pod = match self.options.pod_identity_scope {
                    PodIdentityScope::Pod => Some(pod_scope(request, &token)),
                    PodIdentityScope::ServiceAccount => None,
                };
                let key = IdentityKey::new(
                    "aws",
                    kit::Method::EksPodIdentity,
                    kit::Authorization {
                        principal: subject,
                        service_account: Some(kit::ServiceAccount::new(namespace, service_account)),
                        pod,
                        ..kit::Authorization::default()
                    },
                );
                let credentials = self
                    .credentials
                    .get_or_fetch(key.clone(), || async {
                        let result = self.agent.credentials(&endpoints, &token).await;
                        self.stats.cloud_calls.record(POD_IDENTITY_AGENT, &result);
                        result
                    })
                    .await?;
                Ok((key, credentials))
            }
        }
    }

    /// `AssumeRoleWithWebIdentity` at the regional STS of each region in turn; a refusal is
    /// final, an outage or throttling moves on to the next region.
    async fn assume_role(
        &self,
        regions: &[&str],
        role_arn: &str,
        token: &str,
        session: &str,
    ) -> Result<Credentials> {
        let mut failures = Vec::new();
        for region in regions {
            let sts = aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(self.sdk().await?)
                    .region(Region::new((*region).to_owned()))
                    .build(),
            );
            let result = credentials::assume_role_with_web_identity(&sts, role_arn, token, session).await;
            self.stats.cloud_calls.record(ASSUME_ROLE_WITH_WEB_IDENTITY, &result);
            match result {
                Err(e) if e.is_retryable() => {
                    tracing::warn!(region, error = %e, "STS failed; trying the next region if any");
                    failures.push(e);
                }
                other => return other,
            }
        }
        Err(Error::combine(failures).unwrap_or_else(|| Error::internal("no region to ask STS in")))
    }

    /// Clients for the SecretProviderClass's regions and for every region an object names.
    async fn mount_regions(
        &self,
        spec: &MountSpec,
        primary: &str,
        credentials: &Credentials,
        app_name: &Option<AppName>,
    ) -> Result<MountRegions> {
        let sdk = self.sdk().await?;
        let mut spc = vec![region_clients(sdk, primary, false, credentials, app_name)];
        if let Some(failover) = &spec.failover_region {
            spc.push(region_clients(sdk, failover, true, credentials, app_name));
        }
        let mut own: Vec<RegionClients> = Vec::new();
        for region in spec.objects.iter().filter_map(|o| o.region.as_deref()) {
            if !own.iter().any(|clients| clients.region == region) {
                own.push(region_clients(sdk, region, false, credentials, app_name));
            }
        }
        Ok(MountRegions { spc, own })
    }
}

/// The clients of one region for one mount: its credentials, and the pod in the User-Agent
/// (`app/csi-<namespace>.<pod>`), so CloudTrail says which pod read what.
fn region_clients(
    sdk: &SdkConfig,
    region: &str,
    failover: bool,
    credentials: &Credentials,
    app_name: &Option<AppName>,
) -> RegionClients {
    let provider = SharedCredentialsProvider::new(credentials.clone());
    let region_name = Region::new(region.to_owned());
    let mut secrets_manager = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .region(region_name.clone())
        .credentials_provider(provider.clone());
    secrets_manager.set_app_name(app_name.clone());
    let mut ssm = aws_sdk_ssm::config::Builder::from(sdk).region(region_name).credentials_provider(provider);
    ssm.set_app_name(app_name.clone());
    RegionClients {
        region: region.to_owned(),
        failover,
        secrets_manager: aws_sdk_secretsmanager::Client::from_conf(secrets_manager.build()),
        ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
    }
}

/// The object's file and, with `jmesPath`, one file per extracted key, each with the version.
fn render(object: &ObjectSpec, fetched: &Fetched) -> Result<Rendered> {
    let extracted = csi_secrets_provider_core::jmes::extract(&object.name, &fetched.value, &object.jmes)?;
    let mut rendered = Rendered::file(
        MountedFile::new(object.file_name.clone(), object.mode, fetched.value.clone())
            .shaped(&object.name, object.shape),
        ObjectVersion::new(object.file_name.clone(), fetched.version.clone()),
    );
    for (entry, value) in object.jmes.iter().zip(extracted) {
        rendered.push(
            MountedFile::new(entry.file_name.clone(), entry.mode, value).shaped(&object.name, entry.shape()),
            ObjectVersion::new(entry.file_name.clone(), fetched.version.clone()),
        );
    }
    Ok(rendered)
}

fn token_for(request: &MountRequest, audience: &str, mode: &str) -> Result<String> {
    match request.tokens.get(audience).map(|t| t.expose().to_owned()) {
        Some(token) if !token.is_empty() => Ok(token),
        Some(_) => Err(Error::invalid_config(format!(
            "{mode} token extraction failed: token for audience {audience:?} is empty"
        ))),
        None => Err(Error::invalid_config(format!(
            "{mode} token extraction failed: token for audience {audience:?} not found - ensure tokenRequests includes this audience in CSIDriver"
        ))),
    }
}

#[async_trait]
impl SecretBackend for AwsBackend {
    fn name(&self) -> &'static str {
        "aws"
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
        let primary = before_deadline(
            request.deadline,
            "the Kubernetes API (the node's region label)",
            &[],
            self.primary_region(&spec, request),
        )
        .await?;
        if spec.region.is_none() {
            let problems = spec.check_regions(&primary);
            if !problems.is_empty() {
                return Err(Error::from_problems(problems));
            }
        }
        let sts_regions: Vec<&str> =
            std::iter::once(primary.as_str()).chain(spec.failover_region.as_deref()).collect();
        let exchange = self.credentials(&spec, request, &sts_regions);
        let service = match spec.identity {
            IdentityMode::Irsa => "STS (AssumeRoleWithWebIdentity) or the Kubernetes API",
            IdentityMode::PodIdentity(_) => "the EKS Pod Identity agent",
        };
        let (identity, credentials) = before_deadline(request.deadline, service, &[], exchange).await?;
        let regions = self.mount_regions(&spec, &primary, &credentials, &pod_app_name(request)).await?;

        let selections = self.select(&spec, request, &identity, &regions).await?;
        let all: Vec<&ObjectSpec> = spec.objects.iter().chain(&selections.objects).collect();
        let of_type = |t: ObjectType| all.iter().copied().filter(|o| o.object_type == t).collect::<Vec<_>>();
        let secrets = of_type(ObjectType::SecretsManager);
        let parameters = of_type(ObjectType::SsmParameter);
        let reads = MountReads {
            regions: &regions,
            identity: &identity,
            objects: kit::ObjectReads::new(&self.objects.objects, request, "Secrets Manager"),
            shared: &self.objects,
            calls: &self.stats.cloud_calls,
            concurrency: self.options.concurrency,
        };
        let (secret_values, parameter_values) =
            tokio::try_join!(reads.secrets(&secrets), reads.parameters(&parameters))?;

        let mut mount = MountAssembly::new(spec.plan.warnings().to_vec());
        for skipped in selections.empty {
            let prefix = skipped.object.clone();
            mount.skipped(ObjectNames { object: &prefix, resolved: &prefix }, skipped);
        }
        for (object, outcome) in
            secrets.iter().chain(&parameters).zip(secret_values.into_iter().chain(parameter_values))
        {
            let resolved = match &outcome {
                Ok(served) if !served.value.arn.is_empty() => served.value.arn.clone(),
                _ => object.name.clone(),
            };
            let names = ObjectNames { object: &object.name, resolved: &resolved };
            mount.add(names, outcome, |fetched| {
                Ok::<_, Error>((fetched.version.clone(), render(object, fetched)?))
            })?;
        }
        let app_name = pod_app_name(request);
        let mut registries = Vec::with_capacity(spec.registries.len());
        for registry in &spec.registries {
            let key = (identity.clone(), registry.spec.host.clone());
            let fetch = || async {
                let sdk = self.sdk().await?;
                registry::login(sdk, registry, &credentials, &app_name, &self.stats.cloud_calls).await
            };
            let login = before_deadline(
                request.deadline,
                "ECR",
                &[registry.spec.host.as_str()],
                self.registry_logins.get_or_fetch(key, fetch),
            )
            .await;
            registries.push((
                registry.spec.entry(),
                kit::skip_if_absent(&registry.spec.host, registry.spec.optional, login)?,
            ));
        }
        mount.add_registries(registries);
        Ok(mount.finish())
    }

    fn stats(&self) -> Option<&BackendStats> {
        Some(&self.stats)
    }
}

/// The User-Agent's app name naming the mounting pod, `csi-<namespace>.<pod>` (Kubernetes names
/// are valid app-name characters; at most 50 characters, as the SDK recommends); `None` without
/// pod attributes (the SDK's own User-Agent then).
fn pod_app_name(request: &MountRequest) -> Option<AppName> {
    AppName::new(request.pod.caller_name()?.chars().take(50).collect::<String>()).ok()
}

/// What makes Pod Identity credentials one pod's: its UID as the driver sends it; failing that
/// (a caller that is not the driver), its namespace/name; failing that, a digest of the pod's own
/// projected token, which kubelet issues per pod.
fn pod_scope(request: &MountRequest, token: &str) -> String {
    use sha2::Digest;
    if let Some(uid) = request.pod.uid.as_deref().filter(|uid| !uid.trim().is_empty()) {
        return format!("uid:{uid}");
    }
    if let (Some(namespace), Some(name)) = (request.pod.namespace.as_deref(), request.pod.name.as_deref()) {
        return format!("pod:{namespace}/{name}");
    }
    format!("token:{}", hex::encode(sha2::Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests;

/// What `validate` and the policy check learn from a parsed SecretProviderClass.
fn validation_of(spec: &params::MountSpec) -> Validation {
    let planned =
        spec.objects.iter().fold(Validation::planned(&spec.plan), |v, o| v.object(&o.name, &o.name));
    let planned = spec.registries.iter().fold(planned, |v, r| v.object(&r.spec.host, &r.spec.host));
    let mut validation = spec
        .selections
        .iter()
        .fold(planned, |v, e| v.selection(&e.selection, e.directory.as_deref(), &e.selection.prefix))
        // What a mount reads (failover objects too) and which role it assumes, for the policy.
        .with_reads(
            spec.policy_reads()
                .into_iter()
                .chain(spec.registries.iter().map(|r| r.spec.host.clone()))
                .collect(),
        );
    validation.roles = spec.assume_role.iter().map(|role| role.role_arn.clone()).collect();
    validation
}

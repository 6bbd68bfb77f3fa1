//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

// The backends compiled into this binary, as one literal so `--version` can say them: one
// definition per combination of the backend features.
#[cfg(all(feature = "aws", feature = "azure", feature = "gcp"))]
macro_rules! compiled_in_backends {
    () => {
        "aws,azure,gcp"
    };
}
#[cfg(all(feature = "aws", feature = "azure", not(feature = "gcp")))]
macro_rules! compiled_in_backends {
    () => {
        "aws,azure"
    };
}
#[cfg(all(feature = "aws", not(feature = "azure"), feature = "gcp"))]
macro_rules! compiled_in_backends {
    () => {
        "aws,gcp"
    };
}
#[cfg(all(feature = "aws", not(feature = "azure"), not(feature = "gcp")))]
macro_rules! compiled_in_backends {
    () => {
        "aws"
    };
}
#[cfg(all(not(feature = "aws"), feature = "azure", feature = "gcp"))]
macro_rules! compiled_in_backends {
    () => {
        "azure,gcp"
    };
}
#[cfg(all(not(feature = "aws"), feature = "azure", not(feature = "gcp")))]
macro_rules! compiled_in_backends {
    () => {
        "azure"
    };
}
#[cfg(all(not(feature = "aws"), not(feature = "azure"), feature = "gcp"))]
macro_rules! compiled_in_backends {
    () => {
        "gcp"
    };
}
#[cfg(all(not(feature = "aws"), not(feature = "azure"), not(feature = "gcp")))]
macro_rules! compiled_in_backends {
    () => {
        ""
    };
}

/// The backends compiled into this binary, comma-separated (empty when none).
pub const COMPILED_IN_BACKENDS: &str = compiled_in_backends!();

/// What `--version` prints after the program name: the version and the compiled-in backends,
/// so an image's flavour can be told from the binary.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (backends: ", compiled_in_backends!(), ")");

#[derive(Debug, Parser)]
#[command(
    name = "csi-secrets-provider",
    version = VERSION,
    about = "Secrets Store CSI Driver provider for AWS Secrets Manager / SSM, Azure Key Vault and Google Secret Manager"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CSI_PROVIDER_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub backends: BackendArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings of the compiled-in backends.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// CA certificates (a PEM file, one or more) trusted beside the system's by every cloud
    /// client: a TLS-inspecting proxy's, a private endpoint's.
    #[arg(long, global = true, value_name = "FILE", env = "CSI_PROVIDER_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,
    /// AWS: STS, Secrets Manager and SSM through their FIPS endpoints (the SDK's resolution,
    /// `<service>-fips.<region>.amazonaws.com`).
    #[cfg(feature = "aws")]
    #[arg(long, global = true, env = "AWS_USE_FIPS_ENDPOINT")]
    pub aws_use_fips_endpoint: bool,
    /// AWS: region for SPCs without a `region` parameter (else the node's
    /// topology.kubernetes.io/region label).
    #[cfg(feature = "aws")]
    #[arg(long, global = true, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// AWS: timeout of calls to the EKS Pod Identity agent.
    #[cfg(feature = "aws")]
    #[arg(long, global = true, default_value = "3s", value_parser = parse_duration)]
    pub pod_identity_http_timeout: Duration,
    /// AWS: Pod Identity agent endpoint for IPv4 (override for tests or unusual setups).
    #[cfg(feature = "aws")]
    #[arg(long, global = true, default_value = csi_secrets_provider_aws::POD_IDENTITY_IPV4)]
    pub pod_identity_endpoint_ipv4: String,
    /// AWS: Pod Identity agent endpoint for IPv6.
    #[cfg(feature = "aws")]
    #[arg(long, global = true, default_value = csi_secrets_provider_aws::POD_IDENTITY_IPV6)]
    pub pod_identity_endpoint_ipv6: String,
    /// AWS: who shares EKS Pod Identity credentials and the reads made with them: `pod` (each
    /// pod its own, so its reads carry its own session tags) or `service-account` (for IAM
    /// policies that use no pod-level tags: one agent call per service account).
    #[cfg(feature = "aws")]
    #[arg(long, global = true, default_value = "pod", value_parser = parse_pod_identity_scope, env = "CSI_PROVIDER_POD_IDENTITY_SCOPE")]
    pub pod_identity_scope: csi_secrets_provider_aws::PodIdentityScope,
    /// AWS: objects (or SSM batches of ten) fetched at once within one mount.
    #[cfg(feature = "aws")]
    #[arg(long, global = true, default_value_t = 8)]
    pub aws_concurrency: usize,

    /// Azure: cloud for SPCs without `cloudName` (AzurePublicCloud, AzureUSGovernmentCloud,
    /// AzureChinaCloud, AzureGermanCloud, AzureStackCloud).
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value = "AzurePublicCloud", value_parser = parse_cloud)]
    pub azure_cloud_name: csi_secrets_provider_azure::Cloud,
    /// Azure: the AzureStackCloud environment file (JSON with activeDirectoryEndpoint and
    /// keyVaultDNSSuffix).
    #[cfg(feature = "azure")]
    #[arg(long, global = true, env = "AZURE_ENVIRONMENT_FILEPATH")]
    pub azure_environment_file: Option<PathBuf>,
    /// Azure: order a PFX certificate's chain leaf → root (`--construct-pem-chain=false` keeps
    /// the stored order).
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub construct_pem_chain: bool,
    /// Azure: also write `<file>.crt` and `<file>.key` for certificates written as PEM.
    #[cfg(feature = "azure")]
    #[arg(long, global = true)]
    pub write_cert_and_key_in_separate_files: bool,
    /// Azure: extra trusted CA certificates (PEM bundle) for Azure AD and Key Vault.
    #[cfg(feature = "azure")]
    #[arg(long, global = true, env = "SSL_CERT_FILE")]
    pub azure_extra_ca_file: Option<PathBuf>,
    /// Azure: pin a host name to an address (HOST=IP; repeatable), e.g. a Key Vault private
    /// endpoint without a private DNS zone.
    #[cfg(feature = "azure")]
    #[arg(long = "azure-resolve", global = true, value_name = "HOST=IP", value_parser = parse_resolve)]
    pub azure_resolve: Vec<(String, std::net::IpAddr)>,
    /// Azure: objects fetched at once within one mount.
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value_t = 8)]
    pub azure_concurrency: usize,
    /// Azure: the node's NMI for AAD pod identity (`usePodIdentity: "true"`); reachable from
    /// the provider only with hostNetwork.
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value = csi_secrets_provider_azure::DEFAULT_NMI_ENDPOINT)]
    pub aad_pod_identity_nmi_endpoint: String,
    /// Azure: the token proxy for AKS identity binding (`useAzureTokenProxy: "true"`).
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value = csi_secrets_provider_azure::DEFAULT_TOKEN_PROXY_URL)]
    pub token_proxy_url: String,
    /// Azure: the TLS server name of the identity binding proxy; derived from the API server's
    /// certificate when unset (as the Azure provider does).
    #[cfg(feature = "azure")]
    #[arg(long, global = true)]
    pub sni_name: Option<String>,
    /// Azure: the CA that signs the token proxy's certificate (the cluster CA).
    #[cfg(feature = "azure")]
    #[arg(long, global = true, default_value = csi_secrets_provider_azure::DEFAULT_TOKEN_PROXY_CA_FILE)]
    pub token_proxy_ca_file: PathBuf,
    /// GCP: accept a `nodePublishSecretRef` with a service account key (`key.json`), as the GCP
    /// provider does with ALLOW_NODE_PUBLISH_SECRET=true; off: such a mount is refused.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "ALLOW_NODE_PUBLISH_SECRET")]
    pub gcp_allow_node_publish_secret: bool,
    /// GCP: the project of the workload identity pool; default the metadata server's.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "PROJECT")]
    pub gcp_project: Option<String>,
    /// GCP: the cluster's name (workload identity provider); default the metadata server's.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "CLUSTER_NAME")]
    pub gcp_cluster_name: Option<String>,
    /// GCP: the cluster's location; default the metadata server's.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "CLUSTER_LOCATION")]
    pub gcp_cluster_location: Option<String>,
    /// GCP: the workload identity pool; default `<project>.svc.id.goog` (set it in other
    /// universes, or for fleet workload identity).
    #[cfg(feature = "gcp")]
    #[arg(long, global = true)]
    pub gcp_workload_identity_pool: Option<String>,
    /// GCP: the workload identity provider; default the cluster's URL on the GKE API.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true)]
    pub gcp_identity_provider: Option<String>,
    /// GCP: the provider's own credentials file; off GKE its `external_account` audience names
    /// the workload identity pool and provider (fleet, Workload Identity Federation).
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub gcp_application_credentials: Option<PathBuf>,
    /// GCP: the universe domain Google's endpoints are in.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "GOOGLE_CLOUD_UNIVERSE_DOMAIN", default_value = csi_secrets_provider_gcp::GcpOptions::DEFAULT_UNIVERSE)]
    pub gcp_universe_domain: String,
    /// GCP: the token exchange endpoint; default GKE's identitybindingtoken
    /// (`https://sts.googleapis.com/v1/token` off GKE).
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "GAIA_TOKEN_EXCHANGE_ENDPOINT")]
    pub gcp_token_exchange_endpoint: Option<String>,
    /// GCP: the GKE API the workload identity provider URL is built on.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "GKE_WORKLOAD_IDENTITY_ENDPOINT")]
    pub gcp_gke_endpoint: Option<String>,
    /// GCP: Secret Manager's endpoint for global secrets (a Private Service Connect endpoint,
    /// say); default `https://secretmanager.<universe>`.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true)]
    pub gcp_secret_manager_endpoint: Option<String>,
    /// GCP: Secret Manager's endpoint for regional secrets, `{location}` replaced; default
    /// `https://secretmanager.{location}.rep.<universe>`.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true)]
    pub gcp_regional_endpoint: Option<String>,
    /// GCP: IAM Credentials' endpoint; default `https://iamcredentials.<universe>`.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true)]
    pub gcp_iam_credentials_endpoint: Option<String>,
    /// GCP: the metadata server (host[:port]); default `metadata.google.internal`.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, env = "GCE_METADATA_HOST")]
    pub gcp_metadata_host: Option<String>,
    /// GCP: secrets read at once within one mount.
    #[cfg(feature = "gcp")]
    #[arg(long, global = true, default_value_t = csi_secrets_provider_gcp::GcpOptions::DEFAULT_CONCURRENCY)]
    pub gcp_concurrency: usize,
}

#[cfg(feature = "aws")]
fn parse_pod_identity_scope(value: &str) -> Result<csi_secrets_provider_aws::PodIdentityScope, String> {
    csi_secrets_provider_aws::PodIdentityScope::parse(value).ok_or_else(|| {
        format!(
            "unknown Pod Identity scope {value:?}; expected one of {}",
            csi_secrets_provider_aws::PodIdentityScope::NAMES.join(", ")
        )
    })
}

#[cfg(feature = "azure")]
fn parse_cloud(value: &str) -> Result<csi_secrets_provider_azure::Cloud, String> {
    csi_secrets_provider_azure::Cloud::parse(value).ok_or_else(|| format!("unknown Azure cloud {value:?}"))
}

#[cfg(feature = "azure")]
fn parse_resolve(value: &str) -> Result<(String, std::net::IpAddr), String> {
    let (host, ip) = value.split_once('=').ok_or("expected HOST=IP")?;
    let ip = ip.parse().map_err(|e| format!("{ip:?} is not an IP address: {e}"))?;
    Ok((host.to_owned(), ip))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the driver's gRPC protocol on one Unix socket per backend.
    Serve(ServeArgs),
    /// Check SecretProviderClass manifests without calling any cloud.
    Validate(ValidateArgs),
    /// Run one Mount in-process, as the driver would, and write the files.
    Mount(MountArgs),
    /// Give the provider directory to the user the provider runs as (an init container, as
    /// root with CAP_CHOWN only): for a directory another provider's chart left to its own
    /// user (the GCP provider's 1000:1000).
    PrepareVolume(PrepareVolumeArgs),
}

#[derive(Debug, clap::Args)]
pub struct PrepareVolumeArgs {
    /// The provider directory (as `serve --provider-volume`).
    #[arg(long, default_value = csi_secrets_provider_server::DEFAULT_PROVIDER_VOLUME, env = "CSI_PROVIDER_VOLUME")]
    pub provider_volume: PathBuf,
    /// The user and group `serve` runs as, `UID:GID` (numbers).
    #[arg(long, value_parser = crate::prepare_volume::parse_owner)]
    pub owner: crate::prepare_volume::Owner,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory for the sockets (`<dir>/<backend>.sock`); the driver also looks in
    /// /etc/kubernetes/secrets-store-csi-providers.
    #[arg(long, default_value = csi_secrets_provider_server::DEFAULT_PROVIDER_VOLUME, env = "CSI_PROVIDER_VOLUME")]
    pub provider_volume: PathBuf,
    /// Backend to serve; repeat for several. Default: every backend compiled in.
    #[arg(long = "backend", value_name = "NAME")]
    pub backends: Vec<String>,
    /// Address for HTTP /healthz, /readyz and /metrics (for example 0.0.0.0:8989); off unless set.
    #[arg(long, env = "CSI_PROVIDER_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,
    /// How long in-flight mounts may finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub grace_period: Duration,
    /// The admin policy (YAML): which namespaces and service accounts may read which objects,
    /// checked before any cloud call; re-read when the file changes (docs/security.md).
    #[arg(long, env = "CSI_PROVIDER_POLICY")]
    pub policy: Option<PathBuf>,
    /// The audit trail: one JSON line per object per mount (pod, object, version, outcome;
    /// never a value), appended to this file, or `-` for stdout; off unless set
    /// (docs/security.md).
    #[arg(long, value_name = "PATH", env = "CSI_PROVIDER_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Threads running mounts. The provider waits on the cloud, not the CPU, so a few serve a
    /// node of any size; one thread per core (the runtime's default) made memory grow with the
    /// node's cores (docs/benchmarks.md, "Memory and the node's cores").
    #[arg(long, default_value_t = DEFAULT_WORKER_THREADS, value_parser = clap::value_parser!(u16).range(1..=256), env = "CSI_PROVIDER_WORKER_THREADS")]
    pub worker_threads: u16,
    #[command(flatten)]
    pub limits: MountLimits,
    #[command(flatten)]
    pub sharing: SharingArgs,
}

/// `serve --worker-threads` by default (measured: docs/benchmarks.md).
pub const DEFAULT_WORKER_THREADS: u16 = 2;

/// How remounts (kubelet republishes) of one identity share cloud reads.
#[derive(Debug, Clone, clap::Args)]
pub struct SharingArgs {
    /// How old a read of the same identity and object may be for a remount to reuse it instead
    /// of asking the cloud; also how stale a rotated value may be after the read. 0 turns sharing
    /// off (every mount reads every object, as the official providers do).
    #[arg(long, default_value = "60s", value_parser = parse_duration, env = "CSI_PROVIDER_SHARED_READ_WINDOW")]
    pub shared_read_window: Duration,
    /// The most bytes of secret values held for sharing, per backend; the oldest go first.
    #[arg(long, default_value_t = csi_secrets_provider_core::SharingOptions::DEFAULT_MAX_BYTES, env = "CSI_PROVIDER_SHARED_READ_MAX_BYTES")]
    pub shared_read_max_bytes: usize,
}

impl SharingArgs {
    pub fn options(&self) -> csi_secrets_provider_core::SharingOptions {
        csi_secrets_provider_core::SharingOptions {
            window: self.shared_read_window,
            max_bytes: self.shared_read_max_bytes,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct MountLimits {
    /// Longest a mount may take (the driver's own deadline applies when shorter).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub mount_timeout: Duration,
    /// Largest response in bytes; match the driver's --max-call-recv-msg-size.
    #[arg(long, default_value_t = csi_secrets_provider_core::DRIVER_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// SecretProviderClass manifests (multi-document YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also report what this admin policy file (as `serve --policy`) would deny.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// With --policy: the namespace of the pods mounting them (default: each SPC's namespace,
    /// else `default`).
    #[arg(long, requires = "policy")]
    pub namespace: Option<String>,
    /// With --policy: their service account.
    #[arg(long, default_value = "default", requires = "policy")]
    pub service_account: String,
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Manifest holding the SecretProviderClass.
    #[arg(long)]
    pub spc: PathBuf,
    /// Which SecretProviderClass of the manifest, when it has several.
    #[arg(long)]
    pub name: Option<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long)]
    pub target: PathBuf,
    /// Pod namespace (default: the SPC's namespace, else "default").
    #[arg(long)]
    pub namespace: Option<String>,
    /// Pod service account.
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// Pod name.
    #[arg(long, default_value = "csi-secrets-provider-mount")]
    pub pod_name: String,
    /// A service account token for an audience, read from a file (AUDIENCE=FILE); repeatable.
    /// For IRSA: sts.amazonaws.com; Azure workload identity: api://AzureADTokenExchange.
    #[arg(long = "token", value_name = "AUDIENCE=FILE", value_parser = parse_key_file)]
    pub tokens: Vec<(String, PathBuf)>,
    /// A node-publish secret entry read from a file (KEY=FILE, e.g. clientsecret=./secret);
    /// repeatable.
    #[arg(long = "secret", value_name = "KEY=FILE", value_parser = parse_key_file)]
    pub secrets: Vec<(String, PathBuf)>,
    /// Default file mode, decimal as the driver sends it (420 = 0644).
    #[arg(long, default_value = "420")]
    pub permission: String,
    #[command(flatten)]
    pub limits: MountLimits,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (for example 30s, 2m)"))
}

fn parse_key_file(value: &str) -> Result<(String, PathBuf), String> {
    // Split at the last '=': audiences such as api://AzureADTokenExchange contain none, but
    // keep file names free to contain one only after it.
    match value.split_once('=') {
        Some((key, file)) if !key.is_empty() && !file.is_empty() => Ok((key.to_owned(), PathBuf::from(file))),
        _ => Err("expected KEY=FILE".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn key_file_pairs() {
        assert_eq!(
            parse_key_file("api://AzureADTokenExchange=/tmp/t"),
            Ok(("api://AzureADTokenExchange".to_owned(), PathBuf::from("/tmp/t")))
        );
        assert!(parse_key_file("=x").is_err());
        assert!(parse_key_file("novalue").is_err());
    }
}

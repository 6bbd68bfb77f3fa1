//! Provider-wide settings of the gcp backend, from `serve`'s flags and the GCP provider's
//! environment variables.

use csi_secrets_provider_core::SharingOptions;

use crate::params::Location;

/// Where Google's services are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Secret Manager for global secrets: `https://secretmanager.<universe>`.
    pub secret_manager: String,
    /// Secret Manager for regional secrets, `{location}` replaced:
    /// `https://secretmanager.{location}.rep.<universe>`.
    pub regional: String,
    /// The token exchange (`GAIA_TOKEN_EXCHANGE_ENDPOINT`): GKE's `identitybindingtoken` by
    /// default, or an STS endpoint.
    pub token_exchange: String,
    /// IAM Credentials: `https://iamcredentials.<universe>`.
    pub iam_credentials: String,
    /// The metadata server (`GCE_METADATA_HOST`), `http://<host>`; `None` off GCE/GKE.
    pub metadata: Option<String>,
    /// The GKE API the identity provider URL is built on (`GKE_WORKLOAD_IDENTITY_ENDPOINT`).
    pub gke: String,
}

impl Endpoints {
    /// Google's endpoints in `universe` (`googleapis.com`).
    pub fn for_universe(universe: &str) -> Self {
        Self {
            secret_manager: format!("https://secretmanager.{universe}"),
            regional: format!("https://secretmanager.{{location}}.rep.{universe}"),
            token_exchange: format!("https://securetoken.{universe}/v1/identitybindingtoken"),
            iam_credentials: format!("https://iamcredentials.{universe}"),
            metadata: Some("http://metadata.google.internal".to_owned()),
            gke: format!("https://container.{universe}/v1"),
        }
    }

    /// The Secret Manager endpoint of `location` (global when `None`): a [`Location`] is a
    /// checked name, the only thing pasted into the host.
    pub fn secret_manager_for(&self, location: Option<&Location>) -> String {
        match location {
            None => self.secret_manager.clone(),
            Some(location) => self.regional.replace("{location}", location.as_str()),
        }
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Self::for_universe(GcpOptions::DEFAULT_UNIVERSE)
    }
}

/// Settings of the gcp backend.
#[derive(Debug, Clone)]
pub struct GcpOptions {
    pub sharing: SharingOptions,
    /// Secrets read at once per mount.
    pub concurrency: usize,
    /// Whether a `nodePublishSecretRef` with `key.json` may be used (the GCP provider's
    /// `ALLOW_NODE_PUBLISH_SECRET`); off by default.
    pub allow_node_publish_secret: bool,
    /// The project of the workload identity pool (`PROJECT`); else the metadata server's.
    pub project: Option<String>,
    /// The cluster's name and location (`CLUSTER_NAME`, `CLUSTER_LOCATION`); else the metadata
    /// server's attributes.
    pub cluster_name: Option<String>,
    pub cluster_location: Option<String>,
    /// The workload identity pool; default `<project>.svc.id.goog` (other universes name it
    /// otherwise, GCP provider #655).
    pub pool: Option<String>,
    /// The identity provider; default the cluster's URL on the GKE API.
    pub identity_provider: Option<String>,
    /// The provider's own credentials file (`GOOGLE_APPLICATION_CREDENTIALS`): off GKE (fleet
    /// workload identity, Workload Identity Federation for Kubernetes) its `external_account`
    /// audience says the pool and provider when the metadata server cannot.
    pub application_credentials: Option<std::path::PathBuf>,
    pub endpoints: Endpoints,
    /// The HTTP client's options (the token exchange and IAM Credentials calls): the extra CA
    /// (`serve --extra-ca-file`), the connect and request timeouts. Google's SDK client takes
    /// its roots from `SSL_CERT_FILE` / `SSL_CERT_DIR` only: the chart points `SSL_CERT_DIR` at
    /// the same file.
    pub client: csi_secrets_provider_core::kit::ClientOptions,
}

impl GcpOptions {
    pub const DEFAULT_UNIVERSE: &str = "googleapis.com";
    pub const DEFAULT_CONCURRENCY: usize = 8;
}

impl Default for GcpOptions {
    fn default() -> Self {
        Self {
            sharing: SharingOptions::default(),
            concurrency: Self::DEFAULT_CONCURRENCY,
            allow_node_publish_secret: false,
            project: None,
            cluster_name: None,
            cluster_location: None,
            pool: None,
            identity_provider: None,
            application_credentials: None,
            endpoints: Endpoints::default(),
            client: csi_secrets_provider_core::kit::ClientOptions {
                connect_timeout: std::time::Duration::from_secs(2),
                ..csi_secrets_provider_core::kit::ClientOptions::default()
            },
        }
    }
}

//! Which backends this build has, and the errors for the ones it lacks.

use std::sync::Arc;

use csi_secrets_provider_core::kit::{ClientOptions, ExtraCa};
use csi_secrets_provider_core::{Error, SecretBackend, SharingOptions};

use crate::cli::BackendArgs;

/// An extra CA file flag: read and checked at start (every block a certificate), so a missing,
/// empty or wrong file refuses the start rather than failing every mount.
fn extra_ca(path: Option<&std::path::Path>) -> Result<Option<ExtraCa>, Error> {
    path.filter(|p| !p.as_os_str().is_empty()).map(ExtraCa::from_file).transpose()
}

/// Every backend this project has, compiled in or not.
pub const KNOWN_BACKENDS: [&str; 3] = ["aws", "azure", "gcp"];

/// The backends compiled into this binary (plus any an embedder adds).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    backends: Vec<Arc<dyn SecretBackend>>,
}

impl Registry {
    /// The backends chosen by Cargo features, configured from the command line; `sharing` says
    /// how remounts share reads (off outside `serve`).
    pub fn compiled_in(
        #[allow(unused_variables)] args: &BackendArgs,
        #[allow(unused_variables)] sharing: SharingOptions,
    ) -> Result<Self, Error> {
        // One client options for every backend, built once; a backend whose client cannot be
        // built from them refuses the start.
        #[allow(unused_variables)]
        let client =
            ClientOptions { extra_ca: extra_ca(args.extra_ca_file.as_deref())?, ..ClientOptions::default() };
        let backends: Vec<Arc<dyn SecretBackend>> = vec![
            #[cfg(feature = "aws")]
            Arc::new(csi_secrets_provider_aws::AwsBackend::new(csi_secrets_provider_aws::AwsOptions {
                default_region: args.aws_region.clone().filter(|r| !r.trim().is_empty()),
                pod_identity_ipv4: args.pod_identity_endpoint_ipv4.clone(),
                pod_identity_ipv6: args.pod_identity_endpoint_ipv6.clone(),
                pod_identity_timeout: args.pod_identity_http_timeout,
                pod_identity_scope: args.pod_identity_scope,
                concurrency: args.aws_concurrency,
                sharing,
                client: client.clone(),
                use_fips_endpoint: args.aws_use_fips_endpoint,
            })?),
            #[cfg(feature = "azure")]
            Arc::new(csi_secrets_provider_azure::AzureBackend::new(
                csi_secrets_provider_azure::AzureOptions {
                    default_cloud: args.azure_cloud_name,
                    environment_file: args.azure_environment_file.clone(),
                    construct_pem_chain: args.construct_pem_chain,
                    write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
                    client: azure_client(&client, args.azure_extra_ca_file.as_deref())?,
                    resolve: args.azure_resolve.clone(),
                    concurrency: args.azure_concurrency,
                    nmi_endpoint: args.aad_pod_identity_nmi_endpoint.clone(),
                    token_proxy: csi_secrets_provider_azure::TokenProxyOptions {
                        url: args.token_proxy_url.clone(),
                        sni_name: args.sni_name.clone().filter(|s| !s.trim().is_empty()),
                        ca_file: args.token_proxy_ca_file.clone(),
                    },
                    sharing,
                },
            )?),
            #[cfg(feature = "gcp")]
            Arc::new(csi_secrets_provider_gcp::GcpBackend::new({
                let options = gcp_options(args, sharing);
                csi_secrets_provider_gcp::GcpOptions {
                    client: ClientOptions { extra_ca: client.extra_ca.clone(), ..options.client },
                    ..options
                }
            })?),
        ];
        Ok(Self { backends })
    }

    pub fn from_backends(backends: Vec<Arc<dyn SecretBackend>>) -> Self {
        Self { backends }
    }

    /// Adds a backend, replacing one of the same name.
    pub fn register(&mut self, backend: Arc<dyn SecretBackend>) {
        self.backends.retain(|b| b.name() != backend.name());
        self.backends.push(backend);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// The backend serving SPCs with `spec.provider: <name>`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn SecretBackend>, Error> {
        self.backends.iter().find(|b| b.name() == name).cloned().ok_or_else(|| self.missing(name))
    }

    /// The backends to serve: the named ones, or every one when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<Arc<dyn SecretBackend>>, Error> {
        if names.is_empty() {
            if self.backends.is_empty() {
                return Err(Error::invalid_config(
                    "no backend is compiled in; rebuild with --features aws, azure or gcp (any of them)",
                ));
            }
            return Ok(self.backends.clone());
        }
        let mut selected: Vec<Arc<dyn SecretBackend>> = Vec::new();
        for name in names {
            let backend = self.get(name)?;
            if !selected.iter().any(|b| b.name() == backend.name()) {
                selected.push(backend);
            }
        }
        Ok(selected)
    }

    fn missing(&self, name: &str) -> Error {
        if KNOWN_BACKENDS.contains(&name) {
            Error::invalid_config(format!(
                "backend '{name}' is not compiled in; rebuild with --features {name}"
            ))
        } else {
            let available = self.names().join(", ");
            Error::invalid_config(format!(
                "unknown backend '{name}'; this build serves: {}",
                if available.is_empty() { "nothing" } else { &available }
            ))
        }
    }
}

/// The gcp backend's options from the command line and the GCP provider's environment.
#[cfg(feature = "gcp")]
fn gcp_options(args: &BackendArgs, sharing: SharingOptions) -> csi_secrets_provider_gcp::GcpOptions {
    let mut endpoints = csi_secrets_provider_gcp::Endpoints::for_universe(&args.gcp_universe_domain);
    let set = |target: &mut String, value: &Option<String>| {
        if let Some(value) = value.as_ref().filter(|v| !v.trim().is_empty()) {
            *target = value.trim().trim_end_matches('/').to_owned();
        }
    };
    set(&mut endpoints.secret_manager, &args.gcp_secret_manager_endpoint);
    set(&mut endpoints.regional, &args.gcp_regional_endpoint);
    set(&mut endpoints.token_exchange, &args.gcp_token_exchange_endpoint);
    set(&mut endpoints.iam_credentials, &args.gcp_iam_credentials_endpoint);
    set(&mut endpoints.gke, &args.gcp_gke_endpoint);
    if let Some(host) = args.gcp_metadata_host.as_ref().filter(|h| !h.trim().is_empty()) {
        let host = host.trim();
        endpoints.metadata =
            Some(if host.contains("://") { host.to_owned() } else { format!("http://{host}") });
    }
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    csi_secrets_provider_gcp::GcpOptions {
        sharing,
        concurrency: args.gcp_concurrency,
        allow_node_publish_secret: args.gcp_allow_node_publish_secret,
        project: non_empty(&args.gcp_project),
        cluster_name: non_empty(&args.gcp_cluster_name),
        cluster_location: non_empty(&args.gcp_cluster_location),
        pool: non_empty(&args.gcp_workload_identity_pool),
        identity_provider: non_empty(&args.gcp_identity_provider),
        application_credentials: args
            .gcp_application_credentials
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
        endpoints,
        ..csi_secrets_provider_gcp::GcpOptions::default()
    }
}

/// Azure's client options: the provider's extra CA and `--azure-extra-ca-file` (the Azure
/// provider's own flag), both trusted.
#[cfg(feature = "azure")]
fn azure_client(
    client: &ClientOptions,
    azure_file: Option<&std::path::Path>,
) -> Result<ClientOptions, Error> {
    let azure = extra_ca(azure_file)?;
    let extra_ca = match (&client.extra_ca, azure) {
        (Some(provider), Some(azure)) => {
            let both = [provider.pem(), b"\n", azure.pem()].concat();
            Some(ExtraCa::from_pem("(--extra-ca-file and --azure-extra-ca-file)", both)?)
        }
        (provider, azure) => azure.or_else(|| provider.clone()),
    };
    Ok(ClientOptions { extra_ca, ..client.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use csi_secrets_provider_core::{MountRequest, MountResponse, Parameters, Validation};

    #[derive(Debug)]
    struct Named(&'static str);

    #[async_trait]
    impl SecretBackend for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn validate(&self, _: &Parameters) -> Validation {
            Validation::default()
        }
        async fn mount(&self, _: &MountRequest) -> csi_secrets_provider_core::Result<MountResponse> {
            Err(Error::internal("not used"))
        }
    }

    fn message(result: Result<impl std::fmt::Debug, Error>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_known_backend_that_is_not_compiled_in_names_the_feature() {
        let registry = Registry::from_backends(vec![Arc::new(Named("aws"))]);
        assert_eq!(
            message(registry.get("azure")),
            "backend 'azure' is not compiled in; rebuild with --features azure"
        );
        assert_eq!(message(registry.select(&["azure".to_owned()])), message(registry.get("azure")));
        assert_eq!(
            message(registry.get("gcp")),
            "backend 'gcp' is not compiled in; rebuild with --features gcp"
        );
        assert!(message(registry.get("oci")).contains("unknown backend 'oci'; this build serves: aws"));
    }

    #[test]
    fn an_empty_build_says_so() {
        let error = message(Registry::default().select(&[]));
        assert!(error.contains("no backend is compiled in; rebuild with --features aws"), "{error}");
        // A named backend still gets its own message.
        let error = message(Registry::default().select(&["aws".to_owned()]));
        assert_eq!(error, "backend 'aws' is not compiled in; rebuild with --features aws");
    }

    #[test]
    fn select_defaults_to_everything_and_dedups() -> Result<(), Error> {
        let registry = Registry::from_backends(vec![Arc::new(Named("aws")), Arc::new(Named("azure"))]);
        assert_eq!(registry.select(&[])?.len(), 2);
        let one = registry.select(&["azure".to_owned(), "azure".to_owned()])?;
        assert_eq!(one.iter().map(|b| b.name()).collect::<Vec<_>>(), ["azure"]);
        Ok(())
    }

    #[test]
    fn compiled_in_follows_features() -> Result<(), Error> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["csi-secrets-provider", "validate", "x.yaml"]);
        let Ok(cli) = cli else { panic!("the CLI parses") };
        let names = Registry::compiled_in(&cli.backends, SharingOptions::default())?.names();
        assert_eq!(names.contains(&"aws"), cfg!(feature = "aws"));
        assert_eq!(names.contains(&"azure"), cfg!(feature = "azure"));
        Ok(())
    }
}

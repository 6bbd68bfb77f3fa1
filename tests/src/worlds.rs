//! One test's world per cloud: the provider binary as a process, wired to its test peers (moto
//! through a recording proxy and an HTTPS Kubernetes API for AWS; the Key Vault + Azure AD test
//! server for Azure), and mount helpers that send what the driver sends. Used by the end-to-end
//! tests and the remount benchmark alike.

use std::time::Duration;

use csi_secrets_provider_server::proto::MountResponse;
use tempfile::TempDir;

use crate::aws::{AwsProxy, moto_endpoint};
use crate::azure::{FakeAzure, service_account_token};
use crate::client::{DriverClient, new_target_path, pod_attributes};
use crate::harness::{ProviderProcess, wait_for_socket};
use crate::jwt;
use crate::kube_api::FakeKubeApi;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The namespace of the AWS world's pods and service accounts.
pub const AWS_NAMESPACE: &str = "shop";
/// The IRSA role of service account `shop/web`.
pub const AWS_ROLE: &str = "arn:aws:iam::123456789012:role/web";
/// The IRSA role of service account `shop/batch`.
pub const AWS_BATCH_ROLE: &str = "arn:aws:iam::123456789012:role/batch";

/// The proxy variables: removed from every world's provider unless a test sets them, so a
/// machine's own proxy settings do not reach the peers.
pub const PROXY_VARIABLES: [&str; 6] =
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

/// The provider serving `aws` against moto (shared by all tests, so names carry a prefix) through
/// this world's own recording proxy, and this world's own Kubernetes API.
#[derive(Debug)]
pub struct AwsWorld {
    pub proxy: AwsProxy,
    pub kube: FakeKubeApi,
    pub provider: ProviderProcess,
    pub prefix: String,
    /// The gRPC deadline the driver sends with each Mount (none by default).
    driver_timeout: DriverTimeout,
    /// Holds the kubeconfig for the provider's lifetime.
    _config: TempDir,
}

impl AwsWorld {
    /// Sets the gRPC deadline the driver sends with each Mount from now on.
    pub fn set_driver_timeout(&self, timeout: Option<Duration>) {
        self.driver_timeout.set(timeout);
    }

    /// Service accounts `shop/web` ([`AWS_ROLE`]), `shop/batch` ([`AWS_BATCH_ROLE`]) and
    /// `shop/no-role`; pod `shop/web-0` on a node in us-east-1.
    pub async fn start(binary: &str, test: &str, extra_args: &[&str]) -> Result<Self, BoxError> {
        Self::start_with_env(binary, test, extra_args, &[]).await
    }

    /// [`Self::start`] with more environment for the provider (`HTTPS_PROXY`, …).
    pub async fn start_with_env(
        binary: &str,
        test: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, BoxError> {
        let proxy = AwsProxy::start(&moto_endpoint()).await?;
        let kube = FakeKubeApi::start().await?;
        kube.add_service_account("shop", "web", Some(AWS_ROLE));
        kube.add_service_account("shop", "batch", Some(AWS_BATCH_ROLE));
        kube.add_service_account("shop", "no-role", None);
        kube.add_pod("shop", "web-0", "node-a");
        kube.add_node("node-a", Some("us-east-1"));
        let config = tempfile::tempdir()?;
        let kubeconfig = kube.write_kubeconfig(config.path())?.display().to_string();
        let endpoint = proxy.url();
        let mut args = vec!["--backend", "aws"];
        args.extend_from_slice(extra_args);
        // `("AWS_ENDPOINT_URL", "")` in `env`: none, the SDK's own endpoint resolution.
        let endpoint_override = env.iter().find(|(name, _)| *name == "AWS_ENDPOINT_URL").map(|(_, v)| *v);
        let mut set = vec![("KUBECONFIG", kubeconfig.as_str()), ("AWS_EC2_METADATA_DISABLED", "true")];
        match endpoint_override {
            None => set.push(("AWS_ENDPOINT_URL", endpoint.as_str())),
            Some("") => {}
            Some(other) => set.push(("AWS_ENDPOINT_URL", other)),
        }
        set.extend(env.iter().copied().filter(|(name, _)| *name != "AWS_ENDPOINT_URL"));
        let mut remove = vec![
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_USE_FIPS_ENDPOINT",
            "AWS_ENDPOINT_URL",
        ];
        remove.extend(PROXY_VARIABLES);
        let provider = ProviderProcess::serve_with_env(binary, &args, &set, &remove)?;
        wait_for_socket(&provider.socket("aws"), Duration::from_secs(30)).await?;
        Ok(Self {
            proxy,
            kube,
            provider,
            prefix: format!("{test}-{}", std::process::id()),
            driver_timeout: DriverTimeout::default(),
            _config: config,
        })
    }

    /// A name unique to this world in the shared moto.
    pub fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// A first mount (a new pod's target path) as pod `shop/web-0` with service account `sa`.
    pub async fn mount_as(
        &self,
        sa: &str,
        parameters: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_at(&new_target_path(), sa, parameters).await
    }

    /// A mount of `target_path` (the same path again is a remount) as pod `shop/web-0` with
    /// service account `sa`, with tokens for both audiences.
    pub async fn mount_at(
        &self,
        target_path: &str,
        sa: &str,
        parameters: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        let sts_token = jwt::service_account_token(AWS_NAMESPACE, sa, "sts.amazonaws.com", jwt::VALID_UNTIL);
        self.mount_with_sts_token(target_path, sa, &sts_token, parameters).await
    }

    /// A mount whose `sts.amazonaws.com` token is `sts_token` (an expired or malformed one).
    /// The `pods.eks.amazonaws.com` token is `pod-identity-jwt-for-<sa>`, followed by
    /// `.<pod uid>` when `parameters` set the pod's UID (kubelet issues each pod its own).
    pub async fn mount_with_sts_token(
        &self,
        target_path: &str,
        sa: &str,
        sts_token: &str,
        parameters: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        let pod_uid =
            parameters.iter().find(|(key, _)| *key == "csi.storage.k8s.io/pod.uid").map(|(_, uid)| *uid);
        let pod_identity_token = match pod_uid {
            Some(uid) => format!("pod-identity-jwt-for-{sa}.{uid}"),
            None => format!("pod-identity-jwt-for-{sa}"),
        };
        let tokens = serde_json::json!({
            "sts.amazonaws.com": { "token": sts_token, "expirationTimestamp": "2099-01-01T00:00:00Z" },
            "pods.eks.amazonaws.com": { "token": pod_identity_token, "expirationTimestamp": "2099-01-01T00:00:00Z" },
        })
        .to_string();
        let mut all: Vec<(&str, &str)> = parameters.to_vec();
        all.push(("csi.storage.k8s.io/serviceAccount.name", sa));
        all.push(("csi.storage.k8s.io/serviceAccount.tokens", &tokens));
        DriverClient::new(&self.provider.socket("aws"))
            .with_timeout(self.driver_timeout.get())
            .mount_raw_at(target_path, pod_attributes(&all).to_string(), "null".to_owned(), "420".to_owned())
            .await
    }

    /// A remount of `target_path` as `shop/web`, sending the object versions the driver holds
    /// (`current`), as a driver does for every republish.
    pub async fn remount_with_versions(
        &self,
        target_path: &str,
        parameters: &[(&str, &str)],
        current: Vec<csi_secrets_provider_server::proto::ObjectVersion>,
    ) -> Result<MountResponse, tonic::Status> {
        let sts_token =
            jwt::service_account_token(AWS_NAMESPACE, "web", "sts.amazonaws.com", jwt::VALID_UNTIL);
        let tokens = serde_json::json!({
            "sts.amazonaws.com": { "token": sts_token, "expirationTimestamp": "2099-01-01T00:00:00Z" },
        })
        .to_string();
        let mut all: Vec<(&str, &str)> = parameters.to_vec();
        all.push(("csi.storage.k8s.io/serviceAccount.name", "web"));
        all.push(("csi.storage.k8s.io/serviceAccount.tokens", &tokens));
        let request = csi_secrets_provider_server::proto::MountRequest {
            attributes: pod_attributes(&all).to_string(),
            secrets: "null".to_owned(),
            target_path: target_path.to_owned(),
            permission: "420".to_owned(),
            current_object_version: current,
        };
        DriverClient::new(&self.provider.socket("aws"))
            .with_timeout(self.driver_timeout.get())
            .send(request)
            .await
    }

    /// A first mount as service account `shop/web`.
    pub async fn mount(&self, parameters: &[(&str, &str)]) -> Result<MountResponse, tonic::Status> {
        self.mount_as("web", parameters).await
    }

    /// Creates the Secrets Manager secret `name` (in us-east-1) or stores a new value of it;
    /// returns the new version id.
    pub async fn put_secret(&self, name: &str, value: &str) -> Result<String, BoxError> {
        put_moto_secret(name, value).await
    }

    /// Service account GETs the provider made on the Kubernetes API.
    pub fn service_account_reads(&self) -> usize {
        self.kube.requests().iter().filter(|path| path.contains("/serviceaccounts/")).count()
    }
}

pub const AZURE_TENANT: &str = "72f988bf-0000-0000-0000-000000000001";
pub const AZURE_CLIENT: &str = "11111111-2222-3333-4444-555555555555";
pub const AZURE_VAULT: &str = "kv-prod-app";
/// The namespace of every Azure test pod.
pub const AZURE_NAMESPACE: &str = "default";

/// The provider serving `azure` against this world's Key Vault + Azure AD test server: vault
/// [`AZURE_VAULT`] in [`AZURE_TENANT`], app [`AZURE_CLIENT`] federated with
/// `default/workload-sa`.
#[derive(Debug)]
pub struct AzureWorld {
    pub azure: FakeAzure,
    pub provider: ProviderProcess,
    /// The gRPC deadline the driver sends with each Mount (none by default).
    driver_timeout: DriverTimeout,
}

impl AzureWorld {
    /// Sets the gRPC deadline the driver sends with each Mount from now on.
    pub fn set_driver_timeout(&self, timeout: Option<Duration>) {
        self.driver_timeout.set(timeout);
    }

    pub async fn start(binary: &str, extra: &[&str]) -> Result<Self, BoxError> {
        Self::start_with_env(binary, extra, &[]).await
    }

    /// [`Self::start`] with more environment for the provider (`HTTPS_PROXY`, `SSL_CERT_FILE`
    /// to replace the test CA's, …).
    pub async fn start_with_env(
        binary: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, BoxError> {
        let azure = FakeAzure::start().await?;
        azure.add_vault(AZURE_VAULT, AZURE_TENANT);
        azure.federate(AZURE_TENANT, AZURE_CLIENT, AZURE_NAMESPACE, "workload-sa");
        let mut args: Vec<String> =
            vec!["--backend".into(), "azure".into(), "--azure-cloud-name".into(), "AzureStackCloud".into()];
        args.extend(azure.resolve_args(&[AZURE_VAULT, "kv-other"]));
        args.extend(["--aad-pod-identity-nmi-endpoint".to_owned(), azure.nmi_url()]);
        args.extend(azure.token_proxy_args());
        let ca = azure.ca_file().display().to_string();
        // `{ca}` in an argument stands for the test server's CA file.
        args.extend(extra.iter().map(|s| s.replace("{ca}", &ca)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let environment = azure.environment_file().display().to_string();
        let mut set =
            vec![("SSL_CERT_FILE", ca.as_str()), ("AZURE_ENVIRONMENT_FILEPATH", environment.as_str())];
        set.extend_from_slice(env);
        let mut remove = vec![
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "IDENTITY_ENDPOINT",
            "MSI_ENDPOINT",
        ];
        remove.extend(PROXY_VARIABLES);
        let provider = ProviderProcess::serve_with_env(binary, &args, &set, &remove)?;
        wait_for_socket(&provider.socket("azure"), Duration::from_secs(30)).await?;
        Ok(Self { azure, provider, driver_timeout: DriverTimeout::default() })
    }

    /// A first mount (a new pod's target path); see [`Self::mount_at`].
    pub async fn mount_as(
        &self,
        service_account: &str,
        objects: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_at(&new_target_path(), service_account, objects, extra).await
    }

    /// A mount of `target_path` as a pod in `default` with `service_account`, the driver's
    /// workload identity token attached, with the seed SPC's identity parameters plus `extra`.
    pub async fn mount_at(
        &self,
        target_path: &str,
        service_account: &str,
        objects: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        let tokens = serde_json::json!({
            "api://AzureADTokenExchange": {
                "token": service_account_token(AZURE_NAMESPACE, service_account),
                "expirationTimestamp": "2099-01-01T00:00:00Z"
            }
        })
        .to_string();
        let objects = azure_objects(objects);
        let mut parameters = vec![
            ("usePodIdentity", "false"),
            ("clientID", AZURE_CLIENT),
            ("keyvaultName", AZURE_VAULT),
            ("cloudName", ""),
            ("objects", objects.as_str()),
            ("tenantId", AZURE_TENANT),
            ("csi.storage.k8s.io/pod.namespace", AZURE_NAMESPACE),
            ("csi.storage.k8s.io/serviceAccount.name", service_account),
            ("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()),
        ];
        parameters.extend_from_slice(extra);
        DriverClient::new(&self.provider.socket("azure"))
            .with_timeout(self.driver_timeout.get())
            .mount_raw_at(
                target_path,
                pod_attributes(&parameters).to_string(),
                "null".to_owned(),
                "420".to_owned(),
            )
            .await
    }

    /// A first mount as `workload-sa`.
    pub async fn mount(&self, objects: &[&str]) -> Result<MountResponse, tonic::Status> {
        self.mount_as("workload-sa", objects, &[]).await
    }
}

/// The Azure provider's `objects` parameter (`array:` of YAML strings) for these objects.
pub fn azure_objects(objects: &[&str]) -> String {
    let mut text = String::from("array:\n");
    for object in objects {
        text.push_str("  - |\n");
        for line in object.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

/// Creates or updates a Secrets Manager secret in the shared moto; its new version id.
pub async fn put_moto_secret(name: &str, value: &str) -> Result<String, BoxError> {
    let body = serde_json::json!({ "SecretId": name, "SecretString": value });
    let answer = moto_call("secretsmanager", "PutSecretValue", &body).await?;
    let answer = match answer["__type"].as_str() {
        Some(t) if t.contains("ResourceNotFound") => {
            moto_call(
                "secretsmanager",
                "CreateSecret",
                &serde_json::json!({ "Name": name, "SecretString": value }),
            )
            .await?
        }
        _ => answer,
    };
    answer["VersionId"].as_str().map(str::to_owned).ok_or_else(|| format!("moto answered {answer}").into())
}

/// One JSON-protocol call straight to moto (in us-east-1), for seeding: `service` is
/// `secretsmanager` or `ssm`.
pub async fn moto_call(
    service: &str,
    action: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, BoxError> {
    use http_body_util::{BodyExt, Full};
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let target = match service {
        "secretsmanager" => format!("secretsmanager.{action}"),
        "ssm" => format!("AmazonSSM.{action}"),
        other => format!("{other}.{action}"),
    };
    let request = http::Request::post(moto_endpoint())
        .header("x-amz-target", target)
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header(
            http::header::AUTHORIZATION,
            format!("AWS4-HMAC-SHA256 Credential=seed/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(Full::new(bytes::Bytes::from(body.to_string())))?;
    let response = client.request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}

/// The namespace of the GCP world's pods.
pub const GCP_NAMESPACE: &str = "shop";
/// The Google service account `shop/impersonating` acts as.
pub const GCP_GSA: &str = "reader@shop-prod.iam.gserviceaccount.com";

/// The provider serving `gcp` against this world's Google test peer and Kubernetes API:
/// service accounts `shop/web` (principal access, no annotation), `shop/impersonating`
/// (annotated with [`GCP_GSA`]) and `shop/batch`; cluster facts from the metadata server.
#[derive(Debug)]
pub struct GcpWorld {
    pub google: crate::gcp::FakeGoogle,
    pub kube: FakeKubeApi,
    pub provider: ProviderProcess,
    /// The gRPC deadline the driver sends with each Mount (none by default).
    driver_timeout: DriverTimeout,
    _config: TempDir,
}

impl GcpWorld {
    /// Sets the gRPC deadline the driver sends with each Mount from now on.
    pub fn set_driver_timeout(&self, timeout: Option<Duration>) {
        self.driver_timeout.set(timeout);
    }

    pub async fn start(binary: &str, extra: &[&str]) -> Result<Self, BoxError> {
        Self::start_with_env(binary, extra, &[]).await
    }

    /// [`Self::start`] with more environment for the provider (`HTTPS_PROXY`, `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR`, …).
    pub async fn start_with_env(
        binary: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, BoxError> {
        let google = crate::gcp::FakeGoogle::start().await?;
        let kube = FakeKubeApi::start().await?;
        kube.add_service_account(GCP_NAMESPACE, "web", None);
        kube.add_service_account(GCP_NAMESPACE, "batch", None);
        kube.add_annotated_service_account(
            GCP_NAMESPACE,
            "impersonating",
            serde_json::json!({ "iam.gke.io/gcp-service-account": GCP_GSA }),
        );
        google.allow_impersonation(GCP_GSA, GCP_NAMESPACE, "impersonating");
        let config = tempfile::tempdir()?;
        let kubeconfig = kube.write_kubeconfig(config.path())?.display().to_string();
        let mut args: Vec<String> = vec!["--backend".into(), "gcp".into()];
        args.extend(google.provider_args(extra));
        // `{google}` in an argument stands for this world's peer's URL.
        // `{ca}` in an argument or variable stands for the peer's CA file, `{ca_dir}` for a
        // directory holding only it (what the chart mounts for `SSL_CERT_DIR`).
        let ca_file = google.ca_file().display().to_string();
        let ca_dir = google.dir().join("extra-ca");
        std::fs::create_dir_all(&ca_dir)?;
        std::fs::copy(google.ca_file(), ca_dir.join("ca.pem"))?;
        let ca_dir = ca_dir.display().to_string();
        let placeholders = |s: &str| {
            s.replace("{google}", &google.url()).replace("{ca}", &ca_file).replace("{ca_dir}", &ca_dir)
        };
        args.extend(extra.iter().map(|s| placeholders(s)));
        let env: Vec<(&str, String)> = env.iter().map(|(name, value)| (*name, placeholders(value))).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ca, metadata) = (google.ca_file().display().to_string(), google.metadata_host());
        let mut set = vec![
            ("SSL_CERT_FILE", ca.as_str()),
            ("GCE_METADATA_HOST", metadata.as_str()),
            ("KUBECONFIG", kubeconfig.as_str()),
        ];
        set.extend(env.iter().map(|(name, value)| (*name, value.as_str())));
        let mut remove = vec![
            "PROJECT",
            "CLUSTER_NAME",
            "CLUSTER_LOCATION",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GAIA_TOKEN_EXCHANGE_ENDPOINT",
            "GKE_WORKLOAD_IDENTITY_ENDPOINT",
            "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
            "ALLOW_NODE_PUBLISH_SECRET",
            "SSL_CERT_DIR",
        ];
        remove.extend(PROXY_VARIABLES);
        let provider = ProviderProcess::serve_with_env(binary, &args, &set, &remove)?;
        wait_for_socket(&provider.socket("gcp"), Duration::from_secs(30)).await?;
        Ok(Self { google, kube, provider, driver_timeout: DriverTimeout::default(), _config: config })
    }

    /// A mount of `target_path` as pod `shop/web-0` with service account `sa`, the driver's
    /// token for the workload identity pool attached, `secrets` as the SPC's list. (`start`'s
    /// `extra` arguments may say `{google}` for the peer's URL.)
    pub async fn mount_at(
        &self,
        target_path: &str,
        sa: &str,
        secrets: &str,
        extra: &[(&str, &str)],
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_with(target_path, sa, secrets, extra, true, "null").await
    }

    /// A mount with every knob: whether the driver sends the pool's token (`with_token`), and
    /// the node-publish secret's JSON (`"null"` for none).
    pub async fn mount_with(
        &self,
        target_path: &str,
        sa: &str,
        secrets: &str,
        extra: &[(&str, &str)],
        with_token: bool,
        node_publish: &str,
    ) -> Result<MountResponse, tonic::Status> {
        let token = jwt::service_account_token(GCP_NAMESPACE, sa, crate::gcp::POOL, jwt::VALID_UNTIL);
        let tokens = serde_json::json!({
            crate::gcp::POOL: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" },
        })
        .to_string();
        let mut all: Vec<(&str, &str)> = vec![("secrets", secrets)];
        all.extend_from_slice(extra);
        all.push(("csi.storage.k8s.io/serviceAccount.name", sa));
        if with_token {
            all.push(("csi.storage.k8s.io/serviceAccount.tokens", &tokens));
        }
        DriverClient::new(&self.provider.socket("gcp"))
            .with_timeout(self.driver_timeout.get())
            .mount_raw_at(
                target_path,
                pod_attributes(&all).to_string(),
                node_publish.to_owned(),
                "420".to_owned(),
            )
            .await
    }

    /// A first mount (a new pod's target path) as `sa`.
    pub async fn mount_as(&self, sa: &str, secrets: &str) -> Result<MountResponse, tonic::Status> {
        self.mount_at(&new_target_path(), sa, secrets, &[]).await
    }

    /// A first mount as `shop/web`.
    pub async fn mount(&self, secrets: &str) -> Result<MountResponse, tonic::Status> {
        self.mount_as("web", secrets).await
    }
}

/// The deadline a world's driver sends, changed by a test while the world is shared.
#[derive(Debug, Default)]
struct DriverTimeout(std::sync::Mutex<Option<Duration>>);

impl DriverTimeout {
    fn get(&self) -> Option<Duration> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, timeout: Option<Duration>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = timeout;
    }
}

//! The chart's rendered pod, run as kubelet runs it (`csi_secrets_provider_tests::pod`): each
//! image flavour with the chart's defaults, every `helm install`/`helm upgrade` line of the
//! quickstarts and migration guides with that page's values on the node that page starts
//! from, and the Sync Controller sidecar as documented — each then mounting through every
//! socket it serves, against the test peers. The peers are reached through the chart's own
//! values (`extraArgs`, `extraEnv`, `extraCaCertificates`), as an operator would point the
//! provider at private endpoints.
#![cfg(all(feature = "gcp", feature = "aws", feature = "azure"))]

use std::path::Path;
use std::time::Duration;

use csi_secrets_provider_tests::aws::moto_endpoint;
use csi_secrets_provider_tests::azure::{FakeAzure, service_account_token as azure_token};
use csi_secrets_provider_tests::client::{DriverClient, new_target_path, pod_attributes};
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::gcp::{FakeGoogle, POOL, PROJECT};
use csi_secrets_provider_tests::jwt;
use csi_secrets_provider_tests::kube_api::FakeKubeApi;
use csi_secrets_provider_tests::pod::{self, Cluster, Node, PodManifest};
use csi_secrets_provider_tests::worlds::{
    AWS_ROLE, AZURE_CLIENT, AZURE_NAMESPACE, AZURE_TENANT, AZURE_VAULT, azure_objects, put_moto_secret,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");
const NAMESPACE: &str = "shop";
/// The driver chart's provider directory, and the GCP provider's.
const DRIVER_PROVIDER_DIR: &str = "/var/run/secrets-store-csi-providers";
const GCP_PROVIDER_DIR: &str = "/etc/kubernetes/secrets-store-csi-providers";

/// The test peers of the backends a pod serves, the cluster's API server, and the chart values
/// that point the provider at them (as an operator points it at private endpoints): each
/// backend has one secret, `db`, readable by the identity its mount uses.
struct Peers {
    kube: FakeKubeApi,
    /// Held for the pod's lifetime: the peers stop when dropped.
    _google: FakeGoogle,
    _azure: FakeAzure,
    aws_secret: String,
    values: tempfile::NamedTempFile,
}

impl Peers {
    async fn start(node: &Node) -> Result<Self, BoxError> {
        let kube = FakeKubeApi::start().await?;
        kube.add_service_account(NAMESPACE, "web", Some(AWS_ROLE));
        kube.add_pod(NAMESPACE, "web-0", "node-a");
        kube.add_node("node-a", Some("us-east-1"));

        let google = FakeGoogle::start().await?;
        google.add_version(None, "db", b"from-secret-manager");
        google.grant(None, "db", &format!("ksa:{NAMESPACE}/web"));

        let azure = FakeAzure::start().await?;
        azure.add_vault(AZURE_VAULT, AZURE_TENANT);
        azure.federate(AZURE_TENANT, AZURE_CLIENT, AZURE_NAMESPACE, "workload-sa");
        azure.set_secret(AZURE_VAULT, "db", "from-key-vault");
        // The Azure Stack environment file, on the node for a hostPath volume.
        let environment = node.make_dir("/etc/azure-stack", (0, 0), 0o755)?.join("environment.json");
        std::fs::copy(azure.environment_file(), &environment)?;

        let aws_secret = format!("pods-{}-{}", std::process::id(), unique());
        put_moto_secret(&aws_secret, "from-secrets-manager").await?;

        let mut flags: Vec<String> = google.provider_args(&[]).chunks(2).map(|pair| pair.join("=")).collect();
        flags.extend(azure.resolve_args(&[AZURE_VAULT]).chunks(2).map(|pair| pair.join("=")));
        let cas = format!(
            "{}{}",
            std::fs::read_to_string(google.ca_file())?,
            std::fs::read_to_string(azure.ca_file())?
        );
        let values = serde_json::json!({
            "extraCaCertificates": cas,
            "extraArgs": flags,
            "extraEnv": [
                {"name": "GCE_METADATA_HOST", "value": google.metadata_host()},
                {"name": "AWS_ENDPOINT_URL", "value": moto_endpoint()},
                {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
                {"name": "AZURE_ENVIRONMENT_FILEPATH", "value": "/etc/azure-stack/environment.json"},
            ],
            "extraVolumes": [{"name": "azure-stack", "hostPath": {"path": "/etc/azure-stack", "type": "Directory"}}],
            "extraVolumeMounts": [{"name": "azure-stack", "mountPath": "/etc/azure-stack", "readOnly": true}],
            "azure": {"cloudName": "AzureStackCloud"},
        });
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, serde_json::to_string(&values)?.as_bytes())?;
        Ok(Self { kube, _google: google, _azure: azure, aws_secret, values: file })
    }

    fn values_file(&self) -> String {
        self.values.path().display().to_string()
    }

    /// Renders the chart with `chart_args` and these peers' values, and starts its pod.
    fn start_pod(&self, node: &Node, chart_args: &[&str]) -> Result<pod::RunningPod, BoxError> {
        let values = self.values_file();
        let mut args: Vec<&str> = chart_args.to_vec();
        args.extend(["-f", values.as_str()]);
        let manifest = PodManifest::from_rendered(&pod::render_chart(&args)?)?;
        pod::start(Path::new(BINARY), &manifest, node, Cluster { kube: &self.kube, namespace: "kube-system" })
    }

    /// A first mount through `backend`'s socket in `dir` on the node, as the driver sends it,
    /// reading that backend's `db`.
    async fn mount(&self, backend: &str, socket: &Path) -> TestResult {
        let (tokens, parameters, expected): (serde_json::Value, Vec<(&str, String)>, &[u8]) = match backend {
            "aws" => (
                token_for("sts.amazonaws.com", NAMESPACE, "web"),
                vec![
                    (
                        "objects",
                        format!(
                            "- {{objectName: '{}', objectType: secretsmanager, objectAlias: db}}\n",
                            self.aws_secret
                        ),
                    ),
                    ("region", "us-east-1".to_owned()),
                ],
                b"from-secrets-manager",
            ),
            "gcp" => (
                token_for(POOL, NAMESPACE, "web"),
                vec![(
                    "secrets",
                    format!("- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db\n"),
                )],
                b"from-secret-manager",
            ),
            "azure" => (
                serde_json::json!({ "api://AzureADTokenExchange": {
                    "token": azure_token(AZURE_NAMESPACE, "workload-sa"),
                    "expirationTimestamp": "2099-01-01T00:00:00Z" } }),
                vec![
                    ("usePodIdentity", "false".to_owned()),
                    ("clientID", AZURE_CLIENT.to_owned()),
                    ("keyvaultName", AZURE_VAULT.to_owned()),
                    ("tenantId", AZURE_TENANT.to_owned()),
                    ("objects", azure_objects(&["objectName: db\nobjectType: secret"])),
                    ("csi.storage.k8s.io/pod.namespace", AZURE_NAMESPACE.to_owned()),
                    ("csi.storage.k8s.io/serviceAccount.name", "workload-sa".to_owned()),
                ],
                b"from-key-vault",
            ),
            other => return Err(format!("no peer for backend {other}").into()),
        };
        let tokens = tokens.to_string();
        let mut all: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.push(("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()));
        let response = DriverClient::new(socket)
            .mount_raw_at(
                &new_target_path(),
                pod_attributes(&all).to_string(),
                "null".to_owned(),
                "420".to_owned(),
            )
            .await?;
        assert_eq!(file(&response, "db")?, expected, "{backend}");
        Ok(())
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn token_for(audience: &str, namespace: &str, sa: &str) -> serde_json::Value {
    let token = jwt::service_account_token(namespace, sa, audience, jwt::VALID_UNTIL);
    serde_json::json!({ audience: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" } })
}

/// The backends a flavour serves.
fn backends(flavour: &str) -> Vec<&'static str> {
    match flavour {
        "aws" => vec!["aws"],
        "azure" => vec!["azure"],
        "gcp" => vec!["gcp"],
        _ => vec!["aws", "azure", "gcp"],
    }
}

/// Starts the pod of `chart_args` on `node` and mounts through every socket its flavour
/// serves in `provider_dir`; an error names `setup` (the flavour, the page and its line).
async fn serves_every_socket(
    peers: &Peers,
    node: &Node,
    chart_args: &[&str],
    flavour: &str,
    provider_dir: &str,
    setup: &str,
) -> TestResult {
    let mut running = peers.start_pod(node, chart_args).map_err(|e| format!("{setup}: {e}"))?;
    for backend in backends(flavour) {
        let socket = node.path(provider_dir).join(format!("{backend}.sock"));
        running
            .wait_for_socket(&socket, Duration::from_secs(30))
            .await
            .map_err(|e| format!("{setup}: {e}"))?;
        peers
            .mount(backend, &socket)
            .await
            .map_err(|e| format!("{setup}: the {backend} socket: {e}\n{}", running.logs()))?;
    }
    Ok(())
}

/// Each image flavour with the chart's defaults (only `image.flavour` set): the gcp one
/// needs its token (it reads the pod's ServiceAccount on every mount), the azure one none.
#[tokio::test(flavor = "multi_thread")]
async fn every_flavour_with_the_chart_defaults_mounts() -> TestResult {
    for flavour in ["aws", "azure", "gcp", "all"] {
        let node = Node::new()?;
        let peers = Peers::start(&node).await?;
        let args = ["--set", &format!("image.flavour={flavour}")];
        serves_every_socket(
            &peers,
            &node,
            &args,
            flavour,
            DRIVER_PROVIDER_DIR,
            &format!("flavour {flavour}, chart defaults"),
        )
        .await?;
    }
    Ok(())
}

/// Every install line of the quickstarts and migration guides, with that page's values, on
/// the node that page starts from: a fresh one for the quickstarts; for a migration, the
/// directory the official provider left (the GCP provider's owned by 1000:1000, the AWS and
/// Azure providers' by root), its stale socket in it.
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_install_mounts() -> TestResult {
    let pages = [
        DocumentedInstall { page: "quickstart-eks.md", flavour: "aws", before: None },
        DocumentedInstall { page: "quickstart-aks.md", flavour: "azure", before: None },
        DocumentedInstall { page: "quickstart-gke.md", flavour: "gcp", before: None },
        // The AWS provider's chart and manifest, and the EKS add-on: /etc/kubernetes/….
        DocumentedInstall {
            page: "migration-from-aws.md",
            flavour: "aws",
            before: Some(LeftDirectory { dir: GCP_PROVIDER_DIR, owner: (0, 0) }),
        },
        // The Azure provider's chart: linux.providersDir, /var/run/… by default.
        DocumentedInstall {
            page: "migration-from-azure.md",
            flavour: "azure",
            before: Some(LeftDirectory { dir: DRIVER_PROVIDER_DIR, owner: (0, 0) }),
        },
        DocumentedInstall {
            page: "migration-from-gcp.md",
            flavour: "gcp",
            before: Some(LeftDirectory { dir: GCP_PROVIDER_DIR, owner: (1000, 1000) }),
        },
    ];
    for DocumentedInstall { page, flavour, before } in pages {
        let computed: Vec<(&str, &str)> = before.iter().map(|left| ("PROVIDER_DIR", left.dir)).collect();
        for line in install_lines(page, &computed)? {
            let node = Node::new()?;
            if let Some(left) = &before {
                node.make_dir(left.dir, left.owner, 0o755)?;
                node.make_stale_socket(&format!("{}/{flavour}.sock", left.dir), left.owner)?;
            }
            let peers = Peers::start(&node).await?;
            let provider_dir = provider_volume(&line).unwrap_or(DRIVER_PROVIDER_DIR).to_owned();
            let args: Vec<&str> = line.iter().map(String::as_str).collect();
            serves_every_socket(&peers, &node, &args, flavour, &provider_dir, &format!("{page} {line:?}"))
                .await?;
        }
    }
    Ok(())
}

/// A page's install lines and the node it starts from.
struct DocumentedInstall {
    page: &'static str,
    flavour: &'static str,
    /// The directory the official provider left, with its stale socket.
    before: Option<LeftDirectory>,
}

struct LeftDirectory {
    dir: &'static str,
    owner: (u32, u32),
}

/// The `providerVolume` a line sets.
fn provider_volume(args: &[String]) -> Option<&str> {
    args.iter().find_map(|arg| arg.strip_prefix("providerVolume="))
}

/// The migration from the GCP provider without the page's `providerVolumeChown`: the provider
/// cannot replace the GCP provider's socket in its 1000:1000 directory, and says what to set.
#[tokio::test(flavor = "multi_thread")]
async fn on_the_gcp_providers_directory_without_chown_the_error_says_what_to_set() -> TestResult {
    let node = Node::new()?;
    node.make_dir(GCP_PROVIDER_DIR, (1000, 1000), 0o755)?;
    node.make_stale_socket(&format!("{GCP_PROVIDER_DIR}/gcp.sock"), (1000, 1000))?;
    let peers = Peers::start(&node).await?;
    let args = ["--set", "image.flavour=gcp", "--set", &format!("providerVolume={GCP_PROVIDER_DIR}")];
    let mut refused = peers.start_pod(&node, &args)?;
    let status = refused.wait_for_exit(Duration::from_secs(30)).await?;
    assert!(!status.success());
    let logs = refused.logs();
    assert!(logs.contains("Permission denied") && logs.contains("providerVolumeChown=true"), "{logs}");
    Ok(())
}

/// The values of each `helm install`/`helm upgrade` of this chart on a page, as arguments for
/// `helm template` (the page's variables by what the page sets them to, or a stand-in).
fn install_lines(page: &str, computed: &[(&str, &str)]) -> Result<Vec<Vec<String>>, BoxError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(page);
    let text = std::fs::read_to_string(&path)?;
    let mut lines = Vec::new();
    let mut in_shell = false;
    let mut command = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            in_shell = !in_shell && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell");
            command.clear();
            continue;
        }
        if !in_shell {
            continue;
        }
        command.push_str(trimmed.trim_end_matches('\\'));
        command.push(' ');
        if trimmed.ends_with('\\') {
            continue;
        }
        let words = shell_words(&command);
        command.clear();
        let is_ours = words.len() > 3
            && words[0] == "helm"
            && (words[1] == "install" || words[1] == "upgrade")
            && words[3].trim_end_matches('/').ends_with("charts/csi-secrets-provider");
        if !is_ours {
            continue;
        }
        let mut args = Vec::new();
        let mut rest = words[4..].iter();
        while let Some(word) = rest.next() {
            match word.as_str() {
                "--set" | "--set-string" | "-f" | "--values" => {
                    let value = rest.next().ok_or_else(|| format!("{page}: {word} without a value"))?;
                    args.push(word.clone());
                    // Where the image comes from does not change the pod: the pod runner's
                    // image is this build.
                    if value.starts_with("image.repository=") {
                        args.push("image.repository=registry.example.com/csi-secrets-provider".to_owned());
                    } else {
                        args.push(substitute(&text, value, page, computed)?);
                    }
                }
                "-n" | "--namespace" | "--version" => {
                    rest.next();
                }
                _ => {}
            }
        }
        lines.push(args);
    }
    if lines.is_empty() {
        return Err(format!("{page} has no helm install of this chart").into());
    }
    Ok(lines)
}

/// `$VAR`/`"$VAR"` in a value: what the page exports it as; for a variable the page computes
/// on the cluster (`PROVIDER_DIR=$(kubectl …)`), what `computed` says the cluster answers; a
/// stand-in for the image repository.
fn substitute(
    page_text: &str,
    value: &str,
    page: &str,
    computed: &[(&str, &str)],
) -> Result<String, BoxError> {
    let mut out = value.to_owned();
    while let Some(start) = out.find('$') {
        let name: String =
            out[start + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let assigned = page_text
            .lines()
            .filter_map(|line| {
                line.trim()
                    .trim_start_matches("export ")
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix(&format!("{name}=")))
            })
            .next()
            .map(|v| v.trim_matches('"').to_owned());
        let from_cluster = computed.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned());
        let replacement = match (name.as_str(), assigned) {
            (_, Some(value)) if value.starts_with("$(") => from_cluster
                .ok_or_else(|| format!("{page}: ${name} comes from the cluster; say what it answers"))?,
            (_, Some(value)) => value,
            ("REPO", None) => "registry.example.com/csi-secrets-provider".to_owned(),
            (other, None) => {
                return Err(format!("{page}: ${other} is used in a helm line but never set").into());
            }
        };
        out.replace_range(start..start + 1 + name.len(), &replacement);
    }
    Ok(out)
}

/// Words of a shell command line: whitespace-separated, quotes removed.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        words.push(word);
    }
    words
}

/// The Sync Controller sidecar as docs/sync-controller.md writes it, in the pod the controller's
/// chart makes (no pod security context, its service account, `/provider` a root-owned
/// `DirectoryOrCreate` hostPath), the sync as the controller sends it: the socket is made and
/// a SecretSync's secret read (AWS IRSA through the SecretSync's service account annotation).
#[tokio::test(flavor = "multi_thread")]
async fn the_sync_controller_sidecar_as_documented_syncs() -> TestResult {
    let kube = FakeKubeApi::start().await?;
    kube.add_service_account(NAMESPACE, "web", Some("arn:aws:iam::123456789012:role/web"));
    let secret = format!("pods-sync-{}", std::process::id());
    put_moto_secret(&secret, "synced").await?;

    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/sync-controller.md"))?;
    let values = yaml_blocks(&page)
        .into_iter()
        .find(|block| block.contains("providerContainer:"))
        .ok_or("docs/sync-controller.md has no providerContainer values")?;
    let values: serde_json::Value = serde_norway::from_str(&values)?;
    let mut containers =
        values["providerContainer"].as_array().cloned().ok_or("providerContainer is a list")?;
    for container in &mut containers {
        // The operator's own endpoint: this test's moto.
        let env = container["env"].as_array_mut().ok_or("the sidecar's env")?;
        env.push(serde_json::json!({"name": "AWS_ENDPOINT_URL", "value": moto_endpoint()}));
        env.push(serde_json::json!({"name": "AWS_EC2_METADATA_DISABLED", "value": "true"}));
    }
    // The controller's chart (templates/secrets-store-sync-controller.yaml): its own manager
    // container beside the provider, no pod security context.
    containers.push(serde_json::json!({
        "name": "manager", "image": "registry.k8s.io/secrets-store-sync/controller:v0.0.4",
        "volumeMounts": [{"mountPath": "/provider", "name": "providervol"}],
    }));
    let manifest = PodManifest {
        spec: serde_json::json!({
            "serviceAccountName": "secrets-store-sync-controller-manager",
            "containers": containers,
            "volumes": [{"name": "providervol", "hostPath": {"path": "/var/run/secrets-store-sync-providers", "type": "DirectoryOrCreate"}}],
        }),
        config_maps: std::collections::BTreeMap::new(),
    };
    let node = Node::new()?;
    let mut running = pod::start(
        Path::new(BINARY),
        &manifest,
        &node,
        Cluster { kube: &kube, namespace: "secrets-store-sync-controller-system" },
    )?;
    let socket = node.path("/var/run/secrets-store-sync-providers").join("aws.sock");
    running.wait_for_socket(&socket, Duration::from_secs(30)).await?;

    // What the controller sends (see tests/sync_controller.rs).
    let token = jwt::service_account_token(NAMESPACE, "web", "sts.amazonaws.com", jwt::VALID_UNTIL);
    let tokens =
        serde_json::json!({ "sts.amazonaws.com": { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" } })
            .to_string();
    let objects = format!("- {{objectName: '{secret}', objectType: secretsmanager, objectAlias: value}}\n");
    let attributes = serde_json::json!({
        "objects": objects, "region": "us-east-1",
        "csi.storage.k8s.io/pod.name": "secrets-store-sync-controller-7c9d8f6b5-x2x7q",
        "csi.storage.k8s.io/pod.uid": "0b7a4d7e-5a43-4c57-9e3f-6f1e8e1b2c3d",
        "csi.storage.k8s.io/pod.namespace": NAMESPACE,
        "csi.storage.k8s.io/serviceAccount.name": "web",
        "csi.storage.k8s.io/serviceAccount.tokens": tokens,
    });
    let response = DriverClient::new(&socket)
        .mount_raw_at("/mnt/secrets-store", attributes.to_string(), "{}".to_owned(), "420".to_owned())
        .await
        .map_err(|e| format!("sync-controller.md sidecar: {e}\n{}", running.logs()))?;
    assert_eq!(file(&response, "value")?, b"synced");
    Ok(())
}

/// The ```yaml blocks of a page.
fn yaml_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

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

use csi_secrets_provider_tests::client::{DriverClient, new_target_path, pod_attributes};
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::gcp::{FakeGoogle, POOL, PROJECT};
use csi_secrets_provider_tests::jwt;
use csi_secrets_provider_tests::kube_api::FakeKubeApi;
use csi_secrets_provider_tests::pod::{self, Cluster, Node, PodManifest};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");
const NAMESPACE: &str = "shop";
/// The driver chart's provider directory, and the GCP provider's.
const DRIVER_PROVIDER_DIR: &str = "/var/run/secrets-store-csi-providers";
const GCP_PROVIDER_DIR: &str = "/etc/kubernetes/secrets-store-csi-providers";

/// The Google peer and the cluster's API server, with `shop/web` allowed to read `db`.
struct GcpPeers {
    google: FakeGoogle,
    kube: FakeKubeApi,
    values: tempfile::NamedTempFile,
}

impl GcpPeers {
    async fn start() -> Result<Self, BoxError> {
        let google = FakeGoogle::start().await?;
        let kube = FakeKubeApi::start().await?;
        kube.add_service_account(NAMESPACE, "web", None);
        google.add_version(None, "db", b"from-secret-manager");
        google.grant(None, "db", &format!("ksa:{NAMESPACE}/web"));
        // The chart's values that point the provider at the peer, as at a private endpoint.
        let ca = std::fs::read_to_string(google.ca_file())?;
        let flags: Vec<String> = google.provider_args(&[]).chunks(2).map(|pair| pair.join("=")).collect();
        let values = serde_json::json!({
            "extraCaCertificates": ca,
            "extraArgs": flags,
            "extraEnv": [{"name": "GCE_METADATA_HOST", "value": google.metadata_host()}],
        });
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, serde_json::to_string(&values)?.as_bytes())?;
        Ok(Self { google, kube, values: file })
    }

    fn values_file(&self) -> String {
        self.values.path().display().to_string()
    }

    /// A mount through `socket` as pod `shop/web-0`, with the driver's pool token.
    async fn mount(&self, socket: &Path) -> TestResult {
        let token = jwt::service_account_token(NAMESPACE, "web", POOL, jwt::VALID_UNTIL);
        let tokens =
            serde_json::json!({ POOL: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" } })
                .to_string();
        let secrets = format!("- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db\n");
        let attributes = pod_attributes(&[
            ("secrets", secrets.as_str()),
            ("csi.storage.k8s.io/serviceAccount.name", "web"),
            ("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()),
        ]);
        let response = DriverClient::new(socket)
            .mount_raw_at(&new_target_path(), attributes.to_string(), "null".to_owned(), "420".to_owned())
            .await?;
        assert_eq!(file(&response, "db")?, b"from-secret-manager");
        let _ = &self.google;
        Ok(())
    }
}

async fn start_gcp_pod(
    peers: &GcpPeers,
    node: &Node,
    chart_args: &[&str],
) -> Result<pod::RunningPod, BoxError> {
    let values = peers.values_file();
    let mut args: Vec<&str> = chart_args.to_vec();
    args.extend(["-f", values.as_str()]);
    let manifest = PodManifest::from_rendered(&pod::render_chart(&args)?)?;
    pod::start(Path::new(BINARY), &manifest, node, Cluster { kube: &peers.kube, namespace: "kube-system" })
}

/// GKE with the gcp flavour and the chart's defaults: the pod reads its ServiceAccount's
/// annotation on every mount, so it needs its token (the chart gave the gcp flavour none).
#[tokio::test(flavor = "multi_thread")]
async fn the_gcp_flavour_with_the_chart_defaults_mounts() -> TestResult {
    let peers = GcpPeers::start().await?;
    let node = Node::new()?;
    let mut running = start_gcp_pod(&peers, &node, &["--set", "image.flavour=gcp"]).await?;
    let socket = node.path(DRIVER_PROVIDER_DIR).join("gcp.sock");
    running.wait_for_socket(&socket, Duration::from_secs(30)).await?;
    peers
        .mount(&socket)
        .await
        .map_err(|e| format!("gcp flavour, chart defaults: {e}\n{}", running.logs()))?;
    Ok(())
}

/// The migration from the GCP provider (docs/migration-from-gcp.md) on the directory that
/// provider's manifest and chart leave: owned by 1000:1000, its stale `gcp.sock` in it. The
/// page's values give the directory to the provider's user first; without them the provider
/// cannot replace the socket and says what to set.
#[tokio::test(flavor = "multi_thread")]
async fn the_gcp_migration_takes_over_the_gcp_providers_directory() -> TestResult {
    let peers = GcpPeers::start().await?;
    let node = Node::new()?;
    node.make_dir(GCP_PROVIDER_DIR, (1000, 1000), 0o755)?;
    node.make_stale_socket(&format!("{GCP_PROVIDER_DIR}/gcp.sock"), (1000, 1000))?;
    let without = ["--set", "image.flavour=gcp", "--set", &format!("providerVolume={GCP_PROVIDER_DIR}")];
    let mut refused = start_gcp_pod(&peers, &node, &without).await?;
    let status = refused.wait_for_exit(Duration::from_secs(30)).await?;
    assert!(!status.success());
    let logs = refused.logs();
    assert!(logs.contains("Permission denied") && logs.contains("providerVolumeChown=true"), "{logs}");
    drop(refused);

    for line in install_lines("migration-from-gcp.md")? {
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        let mut running = start_gcp_pod(&peers, &node, &args).await?;
        let socket = node.path(GCP_PROVIDER_DIR).join("gcp.sock");
        running.wait_for_socket(&socket, Duration::from_secs(30)).await?;
        peers
            .mount(&socket)
            .await
            .map_err(|e| format!("migration-from-gcp.md {line:?}: {e}\n{}", running.logs()))?;
    }
    Ok(())
}

/// The values of each `helm install`/`helm upgrade` of this chart on a page, as arguments for
/// `helm template` (the page's variables by what the page sets them to, or a stand-in).
fn install_lines(page: &str) -> Result<Vec<Vec<String>>, BoxError> {
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
                    args.push(substitute(&text, value, page)?);
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

/// `$VAR`/`"$VAR"` in a value: what the page exports it as, or a stand-in for the image
/// repository.
fn substitute(page_text: &str, value: &str, page: &str) -> Result<String, BoxError> {
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
        let replacement = match (name.as_str(), assigned) {
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
    csi_secrets_provider_tests::worlds::put_moto_secret(&secret, "synced").await?;

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
        env.push(serde_json::json!({"name": "AWS_ENDPOINT_URL", "value": csi_secrets_provider_tests::aws::moto_endpoint()}));
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

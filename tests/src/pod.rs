//! The pod runner: a container of a rendered manifest (the chart's DaemonSet from `helm
//! template`, or a pod spec a page documents) run the way kubelet and the container runtime
//! run it, so a test finds what a cluster finds, not what a developer's shell allows:
//!
//! - the image as built (`Dockerfile`): `/csi-secrets-provider` as the entrypoint, the CA
//!   bundle, its environment, its user 65532:65532 unless the security context says otherwise;
//! - the root filesystem read-only when `readOnlyRootFilesystem` says so (nothing else of the
//!   machine is writable or even present but `/usr` for the test binary's libraries, and the
//!   `/etc/hosts` and `/etc/resolv.conf` kubelet mounts);
//! - `runAsUser`/`runAsGroup` (container over pod over image), the runtime's default
//!   capabilities less `drop` plus `add`, `no_new_privs` unless privilege escalation is allowed;
//! - volumes: a `hostPath` is a directory of the test's [`Node`] with the owner and mode its
//!   creator gave it (kubelet makes a missing `DirectoryOrCreate` one root-owned 0755), a
//!   `configMap` its files (the rendered ConfigMaps, and `kube-root-ca.crt`), an `emptyDir` an
//!   empty directory;
//! - `KUBERNETES_SERVICE_HOST`/`PORT` always (kubelet sets them in every container), the
//!   service account token, CA and namespace at `/var/run/secrets/kubernetes.io/serviceaccount`
//!   only where `automountServiceAccountToken` is not `false`;
//! - init containers first, each to completion, then the containers of this project's image.
//!
//! Mount namespaces (bubblewrap) keep all of it off the machine; the host's network is shared,
//! so the test peers on loopback answer (as a `hostNetwork` pod, or a pod reaching services),
//! and each container's `--health-addr` port is moved to a free one (pods' ports are their own).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::kube_api::FakeKubeApi;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the image gives a container (see the Dockerfile).
const IMAGE_ENTRYPOINT: &str = "/csi-secrets-provider";
const IMAGE_USER: (u32, u32) = (65532, 65532);
const IMAGE_ENV: [(&str, &str); 2] =
    [("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"), ("MIMALLOC_PURGE_DELAY", "0")];
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The capabilities a container runtime (containerd, CRI-O) gives a container by default.
const RUNTIME_DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The node's filesystem, as far as hostPath volumes see it: `/x/y` is `<root>/x/y`.
#[derive(Debug)]
pub struct Node {
    root: TempDir,
}

impl Node {
    pub fn new() -> io::Result<Self> {
        Ok(Self { root: tempfile::tempdir()? })
    }

    /// Where the node's `path` is on this machine.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.path().join(path.trim_start_matches('/'))
    }

    /// A directory as another chart or tool left it: `owner` and `mode`.
    pub fn make_dir(&self, path: &str, owner: (u32, u32), mode: u32) -> io::Result<PathBuf> {
        let dir = self.path(path);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(dir)
    }

    /// The socket a stopped provider left behind, with its owner.
    pub fn make_stale_socket(&self, path: &str, owner: (u32, u32)) -> io::Result<PathBuf> {
        let socket = self.path(path);
        drop(std::os::unix::net::UnixListener::bind(&socket)?);
        std::os::unix::fs::chown(&socket, Some(owner.0), Some(owner.1))?;
        Ok(socket)
    }

    /// A hostPath volume's directory: kubelet creates a missing `DirectoryOrCreate` as root,
    /// mode 0755; a missing `Directory` fails the pod.
    fn host_path(&self, path: &str, kind: Option<&str>) -> Result<PathBuf, BoxError> {
        let dir = self.path(path);
        if !dir.exists() {
            match kind {
                Some("DirectoryOrCreate") | None | Some("") => {
                    std::fs::create_dir_all(&dir)?;
                    std::os::unix::fs::chown(&dir, Some(0), Some(0))?;
                    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                }
                Some(other) => {
                    return Err(format!("hostPath {path} ({other}) does not exist on the node").into());
                }
            }
        }
        Ok(dir)
    }
}

/// The cluster a pod lives in: its API server (in-cluster address and token files) and the
/// pod's identity.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    pub kube: &'a FakeKubeApi,
    /// The namespace the pod runs in (the service account token's file says it).
    pub namespace: &'a str,
}

/// One manifest's pod: its spec and the ConfigMaps rendered beside it.
#[derive(Debug, Clone)]
pub struct PodManifest {
    pub spec: Value,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

impl PodManifest {
    /// The pod template of the (only) DaemonSet, Deployment or Pod in a multi-document YAML
    /// (what `helm template` prints), with the ConfigMaps beside it.
    pub fn from_rendered(yaml: &str) -> Result<Self, BoxError> {
        let mut spec = None;
        let mut config_maps = BTreeMap::new();
        for document in serde_norway::Deserializer::from_str(yaml) {
            let value: Value = match serde::Deserialize::deserialize(document) {
                Ok(Value::Null) => continue,
                Ok(value) => value,
                Err(e) => return Err(format!("the rendered manifests are not YAML: {e}").into()),
            };
            match value["kind"].as_str() {
                Some("DaemonSet" | "Deployment") => spec = Some(value["spec"]["template"]["spec"].clone()),
                Some("Pod") => spec = Some(value["spec"].clone()),
                Some("ConfigMap") => {
                    let name = value["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    let data = value["data"]
                        .as_object()
                        .map(|data| {
                            data.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    config_maps.insert(name, data);
                }
                _ => {}
            }
        }
        let spec = spec.ok_or("no DaemonSet, Deployment or Pod in the rendered manifests")?;
        Ok(Self { spec, config_maps })
    }

    fn containers(&self, key: &str) -> Vec<Value> {
        self.spec[key].as_array().cloned().unwrap_or_default()
    }

    /// Whether the pod gets a service account token (`automountServiceAccountToken`).
    pub fn automounts_token(&self) -> bool {
        self.spec["automountServiceAccountToken"].as_bool() != Some(false)
    }
}

/// A started pod: its containers of this project's image, running; their logs.
#[derive(Debug)]
pub struct RunningPod {
    containers: Vec<Child>,
    logs: Vec<PathBuf>,
    _scratch: TempDir,
}

impl RunningPod {
    /// Every container's log so far (stderr and stdout), named.
    pub fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|log| format!("--- {}\n{}", log.display(), std::fs::read_to_string(log).unwrap_or_default()))
            .collect()
    }

    /// A container that ended, and how (the pod runner's `CrashLoopBackOff`).
    pub fn exited(&mut self) -> io::Result<Option<ExitStatus>> {
        for child in &mut self.containers {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// Waits until `socket` answers connections, or fails with the containers' logs (a
    /// container that exits fails at once).
    pub async fn wait_for_socket(&mut self, socket: &Path, timeout: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if tokio::net::UnixStream::connect(socket).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.exited()? {
                return Err(format!(
                    "a container exited ({status}) before {} answered:\n{}",
                    socket.display(),
                    self.logs()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err(format!("{} never answered:\n{}", socket.display(), self.logs()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a container to exit (one the test expects to fail), at most `timeout`.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, BoxError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("no container exited:\n{}", self.logs()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        for child in &mut self.containers {
            // The whole sandbox: bubblewrap and what runs in it are one process group.
            let _ = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{}", child.id())).status();
            let _ = child.wait();
        }
    }
}

/// Runs `manifest`'s pod on `node` in `cluster`: init containers to completion, then every
/// container whose image is this project's (`binary` stands for the image's entrypoint).
pub fn start(
    binary: &Path,
    manifest: &PodManifest,
    node: &Node,
    cluster: Cluster<'_>,
) -> Result<RunningPod, BoxError> {
    require_tools()?;
    let scratch = tempfile::tempdir()?;
    let mut logs = Vec::new();
    for (index, container) in manifest.containers("initContainers").iter().enumerate() {
        let log = scratch.path().join(format!("init-{index}.log"));
        let status =
            logged(sandbox(binary, manifest, container, node, cluster, scratch.path())?, &log)?.status()?;
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            return Err(format!("init container {} failed ({status}): {output}", container["name"]).into());
        }
        logs.push(log);
    }
    let mut containers = Vec::new();
    for (index, container) in manifest.containers("containers").iter().enumerate() {
        if !container["image"].as_str().is_some_and(|image| image.contains("csi-secrets-provider")) {
            continue;
        }
        let log = scratch.path().join(format!("container-{index}.log"));
        let child =
            logged(sandbox(binary, manifest, container, node, cluster, scratch.path())?, &log)?.spawn()?;
        containers.push(child);
        logs.push(log);
    }
    if containers.is_empty() {
        return Err("the pod has no container of this project's image".into());
    }
    Ok(RunningPod { containers, logs, _scratch: scratch })
}

/// `command` with no input and its stdout and stderr in `log`, through one file handle: two
/// handles on one file would each write from offset 0 over the other's lines.
fn logged(mut command: Command, log: &Path) -> io::Result<Command> {
    let file = std::fs::File::create(log)?;
    command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
    Ok(command)
}

fn require_tools() -> Result<(), BoxError> {
    for tool in ["bwrap", "setpriv"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output()?;
        if !found.status.success() {
            return Err(format!(
                "the pod runner needs {tool} (Debian: bubblewrap, util-linux); scripts/test.sh installs them"
            )
            .into());
        }
    }
    let id = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        return Err("the pod runner runs containers as kubelet does, as root (sudo scripts/test.sh)".into());
    }
    Ok(())
}

/// The bubblewrap + setpriv command for one container.
fn sandbox(
    binary: &Path,
    manifest: &PodManifest,
    container: &Value,
    node: &Node,
    cluster: Cluster<'_>,
    scratch: &Path,
) -> Result<Command, BoxError> {
    let name = container["name"].as_str().unwrap_or("container");
    let pod_security = &manifest.spec["securityContext"];
    let security = &container["securityContext"];
    let setting = |key: &str| {
        let own = &security[key];
        if own.is_null() { pod_security[key].clone() } else { own.clone() }
    };
    let uid = setting("runAsUser").as_u64().map_or(Ok(IMAGE_USER.0), u32::try_from)?;
    let gid = setting("runAsGroup").as_u64().map_or(Ok(IMAGE_USER.1), u32::try_from)?;
    if setting("runAsNonRoot").as_bool() == Some(true) && uid == 0 {
        return Err(
            format!("container {name}: runAsNonRoot with UID 0: the kubelet refuses to start it").into()
        );
    }
    let read_only_root = security["readOnlyRootFilesystem"].as_bool() == Some(true);
    let no_new_privs = security["allowPrivilegeEscalation"].as_bool() == Some(false);
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let dropped = strings(&security["capabilities"]["drop"]);
    let added = strings(&security["capabilities"]["add"]);
    let mut caps: Vec<String> = if dropped.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        RUNTIME_DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).filter(|c| !dropped.contains(c)).collect()
    };
    caps.extend(added.into_iter().filter(|c| c != "ALL"));
    // Kubernetes gives a non-root container's added capabilities only as bounding (not
    // effective) ones: what matters here is root's.
    let bounding = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{}", c.to_lowercase())))
        .collect::<Vec<_>>()
        .join(",");

    let mut bwrap = Command::new("bwrap");
    // Directories bubblewrap makes for mount points are 0700: a container's are an image's
    // directories, 0755, traversable by any user.
    let mut made: Vec<PathBuf> = Vec::new();
    let mut parents = |bwrap: &mut Command, target: &str| {
        let mut ancestors: Vec<&Path> = Path::new(target).ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors.into_iter().filter(|d| *d != Path::new("/")) {
            if !made.iter().any(|m| m == dir) {
                bwrap.args(["--perms", "0755", "--dir"]).arg(dir);
                made.push(dir.to_path_buf());
            }
        }
    };
    // A new process group: the runner kills the sandbox with its group.
    std::os::unix::process::CommandExt::process_group(&mut bwrap, 0);
    bwrap.args(["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
    bwrap.args(["--perms", "0755", "--tmpfs", "/", "--ro-bind", "/usr", "/usr"]);
    for link in ["lib", "lib64", "bin", "sbin"] {
        if Path::new("/").join(link).is_symlink() {
            bwrap.args(["--symlink", &format!("usr/{link}"), &format!("/{link}")]);
        }
    }
    bwrap.args(["--dev", "/dev", "--proc", "/proc"]);
    for kubelet_file in ["/etc/hosts", "/etc/resolv.conf"] {
        if Path::new(kubelet_file).exists() {
            parents(&mut bwrap, kubelet_file);
            bwrap.args(["--ro-bind", kubelet_file, kubelet_file]);
        }
    }
    // The image: its entrypoint and its CA bundle.
    bwrap.arg("--ro-bind").arg(binary).arg(IMAGE_ENTRYPOINT);
    if Path::new(SYSTEM_CA_BUNDLE).exists() {
        parents(&mut bwrap, SYSTEM_CA_BUNDLE);
        bwrap.args(["--ro-bind", SYSTEM_CA_BUNDLE, SYSTEM_CA_BUNDLE]);
    }
    for mount in container["volumeMounts"].as_array().cloned().unwrap_or_default() {
        let volume_name = mount["name"].as_str().unwrap_or_default();
        let target = mount["mountPath"].as_str().ok_or("a volumeMount without mountPath")?;
        let volume = manifest.spec["volumes"]
            .as_array()
            .and_then(|volumes| volumes.iter().find(|v| v["name"].as_str() == Some(volume_name)))
            .ok_or_else(|| {
                format!("container {name} mounts volume {volume_name}, which the pod does not have")
            })?;
        let read_only = mount["readOnly"].as_bool() == Some(true);
        let source =
            volume_source(volume, manifest, node, cluster, &scratch.join(format!("{name}-{volume_name}")))?;
        let source_is_config =
            !volume["configMap"].is_null() || !volume["secret"].is_null() || !volume["projected"].is_null();
        bwrap
            .arg(if read_only || source_is_config { "--ro-bind" } else { "--bind" })
            .arg(&source)
            .arg(target);
    }
    if manifest.automounts_token() {
        let dir = scratch.join(format!("{name}-serviceaccount"));
        std::fs::create_dir_all(&dir)?;
        cluster.kube.write_service_account_files(&dir, cluster.namespace)?;
        parents(&mut bwrap, SERVICE_ACCOUNT_DIR);
        bwrap.arg("--ro-bind").arg(&dir).arg(SERVICE_ACCOUNT_DIR);
    }
    if read_only_root {
        bwrap.args(["--remount-ro", "/"]);
    }
    bwrap.args(["--chdir", "/", "--clearenv"]);
    let (kube_host, kube_port) = cluster
        .kube
        .host_port()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .ok_or("the API server's address")?;
    let mut env: Vec<(String, String)> =
        IMAGE_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    env.push(("KUBERNETES_SERVICE_HOST".to_owned(), kube_host));
    env.push(("KUBERNETES_SERVICE_PORT".to_owned(), kube_port));
    env.push(("PATH".to_owned(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()));
    for variable in container["env"].as_array().cloned().unwrap_or_default() {
        let key = variable["name"].as_str().ok_or("an env entry without a name")?.to_owned();
        let value = match &variable["value"] {
            Value::String(value) => value.clone(),
            Value::Null if variable["valueFrom"].is_null() => String::new(),
            Value::Null => {
                return Err(format!(
                    "container {name}: env {key} has valueFrom, which the pod runner does not resolve"
                )
                .into());
            }
            other => other.to_string(),
        };
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    for (key, value) in &env {
        bwrap.args(["--setenv", key, value]);
    }
    bwrap.args(["--", "setpriv"]);
    bwrap.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}"));
    match setting("fsGroup").as_u64() {
        Some(fs_group) => bwrap.arg(format!("--groups={fs_group}")),
        None => bwrap.arg("--clear-groups"),
    };
    bwrap.arg("--inh-caps=-all").arg(format!("--bounding-set={bounding}"));
    if no_new_privs {
        bwrap.arg("--no-new-privs");
    }
    let command = strings(&container["command"]);
    let args = strings(&container["args"]).into_iter().map(own_port).collect::<Result<Vec<_>, _>>()?;
    bwrap.arg("--");
    if command.is_empty() {
        bwrap.arg(IMAGE_ENTRYPOINT);
    } else {
        bwrap.args(&command);
    }
    if args.is_empty() && command.is_empty() {
        bwrap.arg("serve");
    } else {
        bwrap.args(&args);
    }
    Ok(bwrap)
}

/// A pod has a network namespace of its own, so its ports are its own; here every container
/// shares the machine's (the test peers are on its loopback), so the health port a container
/// listens on is moved to a free one.
fn own_port(arg: String) -> io::Result<String> {
    match arg.strip_prefix("--health-addr=").and_then(|addr| addr.rsplit_once(':')) {
        Some((host, _port)) => {
            let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            Ok(format!("--health-addr={host}:{free}"))
        }
        None => Ok(arg),
    }
}

/// The directory a volume is on this machine: a hostPath on the node, or the files of a
/// ConfigMap written to `scratch`.
fn volume_source(
    volume: &Value,
    manifest: &PodManifest,
    node: &Node,
    cluster: Cluster<'_>,
    scratch: &Path,
) -> Result<PathBuf, BoxError> {
    if let Some(path) = volume["hostPath"]["path"].as_str() {
        return node.host_path(path, volume["hostPath"]["type"].as_str());
    }
    if !volume["emptyDir"].is_null() {
        std::fs::create_dir_all(scratch)?;
        return Ok(scratch.to_path_buf());
    }
    if let Some(config_map) = volume["configMap"]["name"].as_str() {
        std::fs::create_dir_all(scratch)?;
        let data = match config_map {
            // Every namespace's: the cluster's CA.
            "kube-root-ca.crt" => BTreeMap::from([("ca.crt".to_owned(), cluster.kube.ca_pem().to_owned())]),
            name => manifest
                .config_maps
                .get(name)
                .cloned()
                .ok_or_else(|| format!("ConfigMap {name} is neither rendered nor kube-root-ca.crt"))?,
        };
        for (key, value) in data {
            std::fs::write(scratch.join(key), value)?;
        }
        return Ok(scratch.to_path_buf());
    }
    Err(format!("volume {} is of a kind the pod runner does not make", volume["name"]).into())
}

/// `helm template` of this repository's chart with `args` (values files, `--set`), by the
/// helm `scripts/test-chart.sh` installs.
pub fn render_chart(args: &[&str]) -> Result<String, BoxError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let helm = root.join(".tools/helm");
    if !helm.exists() {
        return Err(format!("{} is missing: scripts/test-chart.sh installs it", helm.display()).into());
    }
    let output = Command::new(&helm)
        .current_dir(&root)
        .args([
            "template",
            "csi-secrets-provider",
            "charts/csi-secrets-provider",
            "--namespace",
            "kube-system",
        ])
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!("helm template {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

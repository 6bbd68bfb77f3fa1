//! A driver-shaped client: the generated `v1alpha1` client over the Unix socket, sending
//! attributes and secrets as JSON strings as the driver does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use csi_secrets_provider_server::proto::csi_driver_provider_client::CsiDriverProviderClient;
use csi_secrets_provider_server::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};
use csi_secrets_provider_server::uds;
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct DriverClient {
    inner: CsiDriverProviderClient<Channel>,
    /// The gRPC deadline sent with each Mount (`grpc-timeout`), as the driver's context has.
    timeout: Option<std::time::Duration>,
}

impl DriverClient {
    pub fn new(socket: &Path) -> Self {
        Self { inner: CsiDriverProviderClient::new(uds::channel(socket.to_path_buf())), timeout: None }
    }

    /// Sends `timeout` as the gRPC deadline of every Mount.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    pub async fn version(&mut self) -> Result<VersionResponse, tonic::Status> {
        self.inner
            .version(VersionRequest { version: "v1alpha1".to_owned() })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Mounts with the volume context the driver adds for a pod `ns/pod` with service account `sa`.
    pub async fn mount(&mut self, parameters: &[(&str, &str)]) -> Result<MountResponse, tonic::Status> {
        self.mount_raw(pod_attributes(parameters).to_string(), "null".to_owned(), "420".to_owned()).await
    }

    /// A first mount: a target path never used before, as for a new pod.
    pub async fn mount_raw(
        &mut self,
        attributes: String,
        secrets: String,
        permission: String,
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_raw_at(&new_target_path(), attributes, secrets, permission).await
    }

    /// A mount of `target_path`: the same path again is what a kubelet republish (rotation)
    /// sends.
    pub async fn mount_raw_at(
        &mut self,
        target_path: &str,
        attributes: String,
        secrets: String,
        permission: String,
    ) -> Result<MountResponse, tonic::Status> {
        let request = MountRequest {
            attributes,
            secrets,
            target_path: target_path.to_owned(),
            permission,
            current_object_version: Vec::new(),
        };
        self.send(request).await
    }

    /// Sends `request` as it is (a remount with the versions the driver holds, say).
    pub async fn send(&mut self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        let mut request = tonic::Request::new(request);
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        self.inner.mount(request).await.map(tonic::Response::into_inner)
    }
}

/// A pod volume's target path as kubelet names it, unique in this process.
pub fn new_target_path() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let pod = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "/var/lib/kubelet/pods/{:08x}-0000-4000-8000-{:012x}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
        std::process::id(),
        pod
    )
}

/// SPC parameters merged with the attributes kubelet and the driver add.
pub fn pod_attributes(parameters: &[(&str, &str)]) -> serde_json::Value {
    let mut attributes: BTreeMap<&str, &str> = BTreeMap::from([
        ("secretProviderClass", "test-spc"),
        ("csi.storage.k8s.io/pod.name", "web-0"),
        ("csi.storage.k8s.io/pod.namespace", "shop"),
        ("csi.storage.k8s.io/pod.uid", "7d6b1e0c-0000-4000-8000-000000000001"),
        ("csi.storage.k8s.io/serviceAccount.name", "web"),
        ("csi.storage.k8s.io/ephemeral", "true"),
    ]);
    attributes.extend(parameters.iter().copied());
    serde_json::json!(attributes)
}

/// The contents of the file at `path` in a mount response, or a message listing what came.
pub fn file_contents<'a>(
    response: &'a csi_secrets_provider_server::proto::MountResponse,
    path: &str,
) -> Result<&'a [u8], String> {
    response
        .files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.contents.as_slice())
        .ok_or_else(|| format!("no file {path} in {:?}", response.files))
}

/// The paths of a response's files, sorted.
pub fn file_paths(response: &csi_secrets_provider_server::proto::MountResponse) -> Vec<&str> {
    let mut paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths
}

/// [`file_contents`] as UTF-8 text.
pub fn file_text(
    response: &csi_secrets_provider_server::proto::MountResponse,
    path: &str,
) -> Result<String, String> {
    let bytes = file_contents(response, path)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("file {path} is not UTF-8: {e}"))
}

/// A plain HTTP/1.1 GET (for `/metrics` and the health endpoints); the whole answer, headers
/// included.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

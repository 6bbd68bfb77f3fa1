//! A small HTTPS Kubernetes API server: GET of ServiceAccounts, Pods and Nodes, bearer-token
//! auth, Kubernetes `Status` bodies on errors, and a kubeconfig that points at it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;

use crate::http_server::{self, Request, Response, Server, json};
use crate::tls::TestCa;

const TOKEN: &str = "test-kube-token";

#[derive(Debug)]
pub struct FakeKubeApi {
    server: Server,
    ca_pem: String,
    objects: Arc<Mutex<HashMap<String, serde_json::Value>>>,
    requests: Arc<Mutex<Vec<String>>>,
    delay: Arc<Mutex<Duration>>,
    /// Answer every request 403, as without the ClusterRole.
    forbidden: Arc<Mutex<bool>>,
}

impl FakeKubeApi {
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let ca = TestCa::new(&[])?;
        let objects: Arc<Mutex<HashMap<String, serde_json::Value>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let delay: Arc<Mutex<Duration>> = Arc::default();
        let forbidden: Arc<Mutex<bool>> = Arc::default();
        let (served, seen, slow) = (Arc::clone(&objects), Arc::clone(&requests), Arc::clone(&delay));
        let refusing = Arc::clone(&forbidden);
        let server = http_server::serve(Some(ca.server_config.clone()), move |request| {
            let answer = if *refusing.lock().unwrap_or_else(PoisonError::into_inner) {
                json(
                    403,
                    &serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                        "message": format!("serviceaccounts is forbidden: User \"system:serviceaccount:kube-system:csi-secrets-provider\" cannot get resource at {}", request.uri.path()),
                    }),
                )
            } else {
                answer(&served, &seen, &request)
            };
            let delay = *slow.lock().unwrap_or_else(PoisonError::into_inner);
            async move {
                tokio::time::sleep(delay).await;
                answer
            }
        })
        .await?;
        Ok(Self { server, ca_pem: ca.ca_pem, objects, requests, delay, forbidden })
    }

    fn put(&self, path: String, object: serde_json::Value) {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).insert(path, object);
    }

    /// `127.0.0.1:<port>`: where the API server listens.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.server.addr.port())
    }

    /// A ServiceAccount, with the IRSA role annotation when `role_arn` is given.
    pub fn add_service_account(&self, namespace: &str, name: &str, role_arn: Option<&str>) {
        let annotations = role_arn.map(|arn| serde_json::json!({ "eks.amazonaws.com/role-arn": arn }));
        self.put(
            format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": name, "namespace": namespace, "annotations": annotations }
            }),
        );
    }

    /// A ServiceAccount with these annotations (GKE's `iam.gke.io/gcp-service-account`, say).
    pub fn add_annotated_service_account(&self, namespace: &str, name: &str, annotations: serde_json::Value) {
        self.put(
            format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": name, "namespace": namespace, "annotations": annotations }
            }),
        );
    }

    /// A Pod scheduled on `node`.
    pub fn add_pod(&self, namespace: &str, name: &str, node: &str) {
        self.put(
            format!("/api/v1/namespaces/{namespace}/pods/{name}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "namespace": namespace },
                "spec": { "nodeName": node, "containers": [{ "name": "app", "image": "app" }] }
            }),
        );
    }

    /// A Node with the region label when `region` is given.
    pub fn add_node(&self, name: &str, region: Option<&str>) {
        let labels = region.map(|r| serde_json::json!({ "topology.kubernetes.io/region": r }));
        self.put(
            format!("/api/v1/nodes/{name}"),
            serde_json::json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": name, "labels": labels } }),
        );
    }

    /// Answers every request 403 Forbidden (the provider's RBAC is missing).
    pub fn forbid_all(&self) {
        *self.forbidden.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Answers every request only after `delay`, so concurrent lookups overlap.
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The PEM of the CA that signed this server's certificate (`kube-root-ca.crt`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What kubelet projects into a pod at `/var/run/secrets/kubernetes.io/serviceaccount`:
    /// the token this server accepts, its CA and the pod's namespace.
    pub fn write_service_account_files(&self, dir: &Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(dir.join("token"), TOKEN)?;
        std::fs::write(dir.join("ca.crt"), &self.ca_pem)?;
        std::fs::write(dir.join("namespace"), namespace)
    }

    /// Writes a kubeconfig for this server (CA data, bearer token) and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\nusers:\n- name: test\n  user:\n    token: {TOKEN}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
            port = self.server.addr.port()
        );
        std::fs::write(&path, config)?;
        Ok(path)
    }
}

fn answer(
    objects: &Mutex<HashMap<String, serde_json::Value>>,
    requests: &Mutex<Vec<String>>,
    request: &Request,
) -> Response {
    let path = request.uri.path().to_owned();
    requests.lock().unwrap_or_else(PoisonError::into_inner).push(path.clone());
    let authorized = request.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    // TokenRequest: a token of the service account for the audiences asked, bound to the pod.
    if request.method == http::Method::POST && path.ends_with("/token") {
        let account = path.trim_end_matches("/token").to_owned();
        if !objects.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&account) {
            return status(404, "NotFound", "serviceaccounts not found");
        }
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let audience = body["spec"]["audiences"][0].as_str().unwrap_or_default().to_owned();
        let mut parts = account.rsplit('/');
        let (name, namespace) = (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
        let token = crate::jwt::service_account_token(namespace, name, &audience, crate::jwt::VALID_UNTIL);
        return json(
            201,
            &serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": body["spec"].clone(),
                "status": { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" }
            }),
        );
    }
    if request.method != http::Method::GET {
        return status(405, "MethodNotAllowed", "only GET is served");
    }
    match objects.lock().unwrap_or_else(PoisonError::into_inner).get(&path) {
        Some(object) => json(200, object),
        None => {
            let mut parts = path.rsplit('/');
            let name = parts.next().unwrap_or_default();
            let kind = parts.next().unwrap_or_default();
            status(404, "NotFound", &format!("{kind} \"{name}\" not found"))
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    json(
        code,
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

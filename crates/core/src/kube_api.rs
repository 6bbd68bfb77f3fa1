//! The Kubernetes API client of the backends that look things up there (a service account's
//! annotations, a token for a pod): made once, on first use, from `KUBECONFIG` or the
//! in-cluster service account, and its errors by meaning. Behind the `kube` feature.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use tokio::sync::OnceCell;

use crate::error::Error;
use crate::stats::CloudCalls;

/// The API name of a ServiceAccount GET in the `cloud_requests` metric.
const GET_SERVICE_ACCOUNT: &str = "kubernetes:GetServiceAccount";

/// A Kubernetes client made on first use (`kube::Config::infer`).
#[derive(Default)]
pub struct KubeApi {
    client: OnceCell<Connected>,
}

struct Connected {
    client: kube::Client,
    /// The API server's URL: a failed call names the proxy it went through.
    server: String,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").field("connected", &self.client.initialized()).finish()
    }
}

impl KubeApi {
    /// The client, made on the first call.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client
            .get_or_try_init(|| async {
                let mut config = kube::Config::infer().await.map_err(|e| {
                    Error::unavailable(format!(
                        "cannot configure the Kubernetes API client (KUBECONFIG or in-cluster): {e}"
                    ))
                })?;
                // The API server is reached as every other client here reaches its host: through
                // the proxy the standard variables give for its URL, direct when `NO_PROXY`
                // names it (as it should name the in-cluster address). kube's own reading of
                // `HTTPS_PROXY` ignores `NO_PROXY` for the API server.
                let server = config.cluster_url.to_string();
                config.proxy_url = crate::egress::proxy_with_credentials(&server);
                let client = kube::Client::try_from(config).map_err(|e| {
                    Error::unavailable(format!("cannot create the Kubernetes API client: {e}"))
                })?;
                Ok::<_, Error>(Connected { client, server })
            })
            .await
            .map(|connected| connected.client.clone())
    }

    /// A Kubernetes API error by meaning, after `context`; `rbac` says what the provider's
    /// ClusterRole needs when the API refuses; a failed connection names the proxy it went
    /// through.
    pub fn error(&self, error: kube::Error, context: &str, rbac: &str) -> Error {
        match &error {
            kube::Error::Api(status) if status.code == 404 => {
                Error::not_found(format!("{context}: not found"))
            }
            kube::Error::Api(status) if status.code == 403 || status.code == 401 => Error::permission_denied(
                format!("{context}: {} (the provider's ClusterRole needs {rbac})", status.message),
            ),
            _ => Error::unavailable(format!(
                "{context}: {error}{}",
                self.client
                    .get()
                    .map(|connected| crate::egress::through(&connected.server))
                    .unwrap_or_default()
            )),
        }
    }

    /// The annotations of service account `namespace/name` (the IAM role of IRSA, GKE's Google
    /// service account), one GET counted in `calls`; a failure says `context` first.
    pub async fn service_account_annotations(
        &self,
        namespace: &str,
        name: &str,
        context: &str,
        calls: &CloudCalls,
    ) -> Result<BTreeMap<String, String>, Error> {
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client().await?, namespace);
        let account = accounts.get(name).await.map_err(|e| self.error(e, context, "get on serviceaccounts"));
        calls.record(GET_SERVICE_ACCOUNT, &account);
        Ok(account?.metadata.annotations.unwrap_or_default())
    }
}

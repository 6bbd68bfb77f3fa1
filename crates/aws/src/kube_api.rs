//! The Kubernetes lookups the AWS provider needs: the service account's role annotation and,
//! when no region is configured, the region label of the pod's node.

use csi_secrets_provider_core::{CloudCalls, Error, ErrorKind};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// API names in the `cloud_requests` metric.
const GET_POD: &str = "kubernetes:GetPod";
const GET_NODE: &str = "kubernetes:GetNode";

/// The lookups, on the shared client (`core::kube_api`).
#[derive(Debug, Default)]
pub struct KubeApi {
    api: csi_secrets_provider_core::kube_api::KubeApi,
}

impl KubeApi {
    async fn client(&self) -> Result<kube::Client, Error> {
        self.api.client().await
    }

    /// The IAM role of a service account, from `eks.amazonaws.com/role-arn`.
    pub async fn role_arn(
        &self,
        namespace: &str,
        service_account: &str,
        calls: &CloudCalls,
    ) -> Result<String, Error> {
        let context = format!("failed to get service account {namespace}/{service_account}");
        let annotations =
            self.api.service_account_annotations(namespace, service_account, &context, calls).await?;
        annotations
            .get(ROLE_ARN_ANNOTATION)
            .map(|arn| arn.trim().to_owned())
            .filter(|arn| !arn.is_empty())
            .ok_or_else(|| {
                Error::permission_denied(format!(
                    "An IAM role must be associated with service account {service_account} (namespace: {namespace}); \
                     annotate it with {ROLE_ARN_ANNOTATION}"
                ))
            })
    }

    /// The region label of the node the pod runs on.
    pub async fn node_region(
        &self,
        namespace: &str,
        pod_name: &str,
        calls: &CloudCalls,
    ) -> Result<String, Error> {
        let client = self.client().await?;
        let fail =
            |cause: String| Error::unavailable(format!("failed to retrieve region from node. error {cause}"));
        let pod = Api::<Pod>::namespaced(client.clone(), namespace).get(pod_name).await;
        calls.record_kind(GET_POD, pod.as_ref().err().map(|_| ErrorKind::Unavailable));
        let pod = pod.map_err(|e| match e {
            // Not a pod of that namespace: a Secrets Store Sync Controller request names the
            // controller's own pod, so there is no node to ask.
            kube::Error::Api(status) if status.code == 404 => Error::invalid_config(format!(
                "no region: pod {namespace}/{pod_name} is not found, so its node's region label cannot be read (a Secrets Store Sync Controller request names its own pod); set the region parameter or AWS_REGION (serve --aws-region)"
            ))
            .with_field("region"),
            other => fail(format!("getting pod {namespace}/{pod_name}: {other}")),
        })?;
        let node_name = pod
            .spec
            .and_then(|spec| spec.node_name)
            .ok_or_else(|| fail(format!("pod {namespace}/{pod_name} is not scheduled on a node")))?;
        let node = Api::<Node>::all(client).get(&node_name).await;
        calls.record_kind(GET_NODE, node.as_ref().err().map(|_| ErrorKind::Unavailable));
        let node = node.map_err(|e| fail(format!("getting node {node_name}: {e}")))?;
        node.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(REGION_LABEL))
            .filter(|region| !region.is_empty())
            .map(|region| {
                // A label anyone who may label nodes writes: it becomes part of a host name.
                crate::params::names::REGION.check(region).map(|()| region.clone()).map_err(|e| {
                    e.prefixed(format!("the region label {REGION_LABEL} of node {node_name}"))
                        .with_field("region")
                })
            })
            .transpose()?
            .ok_or_else(|| {
                Error::invalid_config(
                    "failed to retrieve region from node. error Region not found (set the region parameter, \
                     AWS_REGION, or the node label topology.kubernetes.io/region)",
                )
                .with_field("region")
            })
    }
}

//! What the GCP provider reads from the Kubernetes API: the Google service account a Kubernetes
//! service account is annotated with, and, when the driver sends no token, a token for the pod.

use csi_secrets_provider_core::kube_api::KubeApi;
use csi_secrets_provider_core::{CloudCalls, Error};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

pub const GSA_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
pub const DELEGATES_ANNOTATION: &str = "iam.gke.io/gcp-service-account-delegates";

const CREATE_TOKEN: &str = "kubernetes:CreateToken";

/// The Google service account (and delegation chain) a Kubernetes service account acts as;
/// `None` for principal access (the federated token itself reads).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Impersonation {
    pub target: String,
    pub delegates: Vec<String>,
}

/// `Option<Impersonation>` as the shared reads keep it (sized in bytes for the cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotations(pub Option<Impersonation>);

impl csi_secrets_provider_core::HeldBytes for Annotations {
    fn held_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |i| i.target.len() + i.delegates.iter().map(String::len).sum::<usize>())
    }
}

/// The annotations of `namespace/service_account`.
pub async fn impersonation(
    api: &KubeApi,
    namespace: &str,
    service_account: &str,
    calls: &CloudCalls,
) -> Result<Annotations, Error> {
    let context = format!("unable to fetch SA info for {namespace}/{service_account}");
    let annotations = api.service_account_annotations(namespace, service_account, &context, calls).await?;
    let Some(target) = annotations.get(GSA_ANNOTATION).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    else {
        return Ok(Annotations(None));
    };
    let delegates = match annotations.get(DELEGATES_ANNOTATION).map(|d| d.trim()).filter(|d| !d.is_empty()) {
        None => Vec::new(),
        Some(list) => serde_json::from_str::<Vec<String>>(list).map_err(|e| {
            Error::invalid_config(format!(
                "unable to parse delegates annotation on SA {namespace}/{service_account}: {e} (expected a JSON list of service account emails)"
            ))
        })?,
    };
    // Anyone who may edit ServiceAccounts in the namespace writes these; they become IAM
    // Credentials URL paths and resource names.
    for account in std::iter::once(&target).chain(&delegates) {
        crate::params::names::check_service_account(account).map_err(|e| {
            e.prefixed(format!("the annotations of SA {namespace}/{service_account}"))
                .with_field(GSA_ANNOTATION)
        })?;
    }
    Ok(Annotations(Some(Impersonation { target, delegates })))
}

/// A token for the pod's service account with `audience`, bound to the pod (the GCP provider's
/// fallback when the driver's `tokenRequests` do not include the pool).
pub async fn pod_token(
    api: &KubeApi,
    namespace: &str,
    service_account: &str,
    pod: (&str, &str),
    audience: &str,
    calls: &CloudCalls,
) -> Result<String, Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(api.client().await?, namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(900),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(pod.0.to_owned()),
                uid: Some(pod.1.to_owned()),
            }),
        },
        ..TokenRequest::default()
    };
    let created = accounts
        .create_token_request(service_account, &kube::api::PostParams::default(), &request)
        .await
        .map_err(|e| {
            api.error(
                e,
                &format!("unable to fetch pod token for {namespace}/{service_account}"),
                "create on serviceaccounts/token",
            )
        });
    calls.record(CREATE_TOKEN, &created);
    created?
        .status
        .map(|status| status.token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Error::unavailable("unable to fetch pod token: the Kubernetes API returned none"))
}

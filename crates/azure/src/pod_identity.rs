//! AAD pod identity (`usePodIdentity: "true"`): the node's NMI server hands out tokens for the
//! identity bound to the pod, as the Azure provider asks for them: `GET
//! <nmi>/host/token/?resource=<Key Vault resource>` with headers `podns` and `podname`, answered
//! `{"token": {"access_token", "expires_on", ...}, "clientid"}`. AAD pod identity is retired
//! upstream but still runs in many clusters; this lets their SecretProviderClasses move unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{HttpClient, Method, Request, Url};
use azure_core::time::OffsetDateTime;
use serde::Deserialize;

/// NMI's default address on the node (upstream's fixed port).
pub const DEFAULT_NMI_ENDPOINT: &str = "http://localhost:2579";

/// Tokens this close to expiry are asked for again.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Tokens of one pod from NMI, cached per resource until shortly before they expire.
#[derive(Debug)]
pub(crate) struct PodIdentityCredential {
    http: Arc<dyn HttpClient>,
    endpoint: String,
    namespace: String,
    pod: String,
    cached: Mutex<HashMap<String, AccessToken>>,
    /// The client id of the identity NMI assigned, once known.
    client_id: Mutex<Option<String>>,
}

#[derive(Deserialize)]
struct NmiResponse {
    token: NmiToken,
    #[serde(rename = "clientid", default)]
    client_id: String,
}

#[derive(Deserialize)]
struct NmiToken {
    #[serde(default)]
    access_token: String,
    /// Unix seconds, as a string or a number.
    #[serde(default)]
    expires_on: serde_json::Value,
}

impl PodIdentityCredential {
    pub(crate) fn new(http: Arc<dyn HttpClient>, endpoint: &str, namespace: &str, pod: &str) -> Self {
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            cached: Mutex::new(HashMap::new()),
            client_id: Mutex::new(None),
        }
    }

    /// The client id of the identity NMI assigned to the pod (asking NMI for a `resource` token
    /// the first time; the token is then cached for the Key Vault requests).
    pub(crate) async fn client_id(&self, resource: &str) -> azure_core::Result<String> {
        if let Some(known) = self.client_id.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(known);
        }
        self.get_token(&[&format!("{resource}/.default")], None).await?;
        self.client_id.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(|| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "NMI named no client id",
            )
        })
    }

    async fn ask(&self, resource: &str) -> azure_core::Result<AccessToken> {
        let failed = |message: String| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, message)
        };
        let mut url = Url::parse(&format!("{}/host/token/", self.endpoint))
            .map_err(|e| failed(format!("bad NMI endpoint {}: {e}", self.endpoint)))?;
        url.query_pairs_mut().append_pair("resource", resource);
        let mut request = Request::new(url, Method::Get);
        request.insert_header("podns", self.namespace.clone());
        request.insert_header("podname", self.pod.clone());
        let response = self.http.execute_request(&request).await.map_err(|e| {
            failed(format!(
                "AAD pod identity: cannot reach NMI at {} ({e}); is aad-pod-identity running on this node, and does the provider use hostNetwork?",
                self.endpoint
            ))
        })?;
        let status = u16::from(response.status());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(format!("AAD pod identity: reading NMI's answer failed: {e}")))?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(512).collect();
            return Err(failed(format!(
                "nmi response failed with status code: {status}, response body: {text} (pod {}/{})",
                self.namespace, self.pod
            )));
        }
        // Do not echo the body: it holds the token.
        let parsed: NmiResponse = serde_json::from_slice(&body)
            .map_err(|e| failed(format!("AAD pod identity: NMI's answer is not the expected JSON: {e}")))?;
        if parsed.token.access_token.is_empty() || parsed.client_id.is_empty() {
            return Err(failed(
                "nmi did not return expected values in response: token and clientid".to_owned(),
            ));
        }
        let seconds = match &parsed.token.expires_on {
            serde_json::Value::String(text) => text.parse::<f64>().ok(),
            other => other.as_f64(),
        };
        // Without a readable expiry, use it for this request only (expired at once).
        let expires_on = seconds
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s as i64).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        *self.client_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(parsed.client_id);
        Ok(AccessToken::new(Secret::new(parsed.token.access_token), expires_on))
    }
}

#[async_trait]
impl TokenCredential for PodIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        // Key Vault asks for `<resource>/.default`; NMI wants the resource.
        let resource = scopes.first().map_or("", |s| s.trim_end_matches("/.default")).to_owned();
        let fresh_until = OffsetDateTime::now_utc() + REFRESH_MARGIN;
        if let Some(token) = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&resource)
            .filter(|t| t.expires_on > fresh_until)
        {
            return Ok(token.clone());
        }
        let token = self.ask(&resource).await?;
        self.cached.lock().unwrap_or_else(PoisonError::into_inner).insert(resource, token.clone());
        Ok(token)
    }
}

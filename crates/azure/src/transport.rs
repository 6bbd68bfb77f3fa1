//! The HTTP client every Azure SDK client of the backend shares, counting each request by API
//! and outcome for the `cloud_requests` metric: what reaches the wire, SDK retries and Azure AD
//! token requests included.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::WWW_AUTHENTICATE;
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use csi_secrets_provider_core::{CallOutcome, CloudCalls, ErrorKind};

/// Counts the requests of an inner client.
#[derive(Debug)]
pub(crate) struct CountingClient {
    inner: Arc<dyn HttpClient>,
    calls: Arc<CloudCalls>,
}

impl CountingClient {
    pub(crate) fn new(inner: Arc<dyn HttpClient>, calls: Arc<CloudCalls>) -> Self {
        Self { inner, calls }
    }
}

#[async_trait]
impl HttpClient for CountingClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let api = api_of(request.url().path());
        let response = self.inner.execute_request(request).await;
        let outcome = match &response {
            Ok(response) => outcome_of(
                u16::from(response.status()),
                response.headers().get_optional_str(&WWW_AUTHENTICATE).is_some(),
            ),
            Err(_) => CallOutcome::Failed(ErrorKind::Unavailable),
        };
        self.calls.record_outcome(api, outcome);
        response
    }
}

/// The API a request path belongs to (a bounded set of names, never the object's name).
fn api_of(path: &str) -> &'static str {
    if path.ends_with("/oauth2/v2.0/token") {
        return "aad:Token";
    }
    if path.starts_with("/host/token") {
        return "aad-pod-identity:Token";
    }
    if path.contains("/identity/oauth2/token") || path.contains("/msi/token") {
        return "managed-identity:Token";
    }
    let mut segments = path.trim_matches('/').split('/');
    let collection = segments.next().unwrap_or_default();
    let listing = path.trim_end_matches('/').ends_with("/versions");
    match (collection, listing) {
        ("secrets", false) => "keyvault:GetSecret",
        ("secrets", true) => "keyvault:ListSecretVersions",
        ("keys", false) => "keyvault:GetKey",
        ("keys", true) => "keyvault:ListKeyVersions",
        ("certificates", false) => "keyvault:GetCertificate",
        ("certificates", true) => "keyvault:ListCertificateVersions",
        _ => "other",
    }
}

/// `ok`, `challenge` (Key Vault's 401 asking for a token, part of every first request to a
/// vault) or the error kind the status means.
fn outcome_of(status: u16, challenged: bool) -> CallOutcome {
    match status {
        200..=299 => CallOutcome::Ok,
        401 if challenged => CallOutcome::Challenge,
        401 | 403 => CallOutcome::Failed(ErrorKind::PermissionDenied),
        404 => CallOutcome::Failed(ErrorKind::NotFound),
        429 => CallOutcome::Failed(ErrorKind::Throttled),
        500..=599 => CallOutcome::Failed(ErrorKind::Unavailable),
        _ => CallOutcome::Failed(ErrorKind::InvalidConfig),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_by_path() {
        assert_eq!(api_of("/72f988bf/oauth2/v2.0/token"), "aad:Token");
        assert_eq!(api_of("/metadata/identity/oauth2/token"), "managed-identity:Token");
        assert_eq!(api_of("/host/token/"), "aad-pod-identity:Token");
        assert_eq!(api_of("/secrets/db-password"), "keyvault:GetSecret");
        assert_eq!(api_of("/secrets/db-password/0123abcd"), "keyvault:GetSecret");
        assert_eq!(api_of("/secrets/db-password/versions"), "keyvault:ListSecretVersions");
        assert_eq!(api_of("/keys/signing"), "keyvault:GetKey");
        assert_eq!(api_of("/certificates/tls/versions"), "keyvault:ListCertificateVersions");
        assert_eq!(api_of("/deletedsecrets/x"), "other");
    }

    #[test]
    fn outcomes_by_status() {
        assert_eq!(outcome_of(200, false).as_str(), "ok");
        assert_eq!(outcome_of(401, true).as_str(), "challenge");
        assert_eq!(outcome_of(401, false).as_str(), "permission_denied");
        assert_eq!(outcome_of(403, false).as_str(), "permission_denied");
        assert_eq!(outcome_of(404, false).as_str(), "not_found");
        assert_eq!(outcome_of(429, false).as_str(), "throttled");
        assert_eq!(outcome_of(503, false).as_str(), "unavailable");
        assert_eq!(outcome_of(400, false).as_str(), "invalid_config");
    }
}

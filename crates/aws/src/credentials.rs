//! AWS credentials for a pod: IRSA (STS web identity) or EKS Pod Identity, cached per identity
//! until shortly before they expire. Concurrent mounts of one identity wait for a single
//! exchange instead of each doing their own.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use csi_secrets_provider_core::kit::{self, ExpiringCache};
use csi_secrets_provider_core::{Error, ErrorKind};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::sdk_error::classify;

/// Credentials closer than this to expiry are exchanged again.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Whose credentials these are: the kit's one key type (IRSA: the role and the service account;
/// EKS Pod Identity: the token's subject, the service account and, scoped per pod, the pod;
/// `assumeRoleArn`: the pod's own key with the role and external id chained).
pub use csi_secrets_provider_core::kit::IdentityKey;

/// The key of IRSA's credentials for `role_arn` and the pod's service account.
pub fn irsa_key(role_arn: &str, namespace: String, service_account: String) -> IdentityKey {
    IdentityKey::new(
        "aws",
        kit::Method::Irsa,
        kit::Authorization {
            principal: role_arn.to_owned(),
            service_account: Some(kit::ServiceAccount::new(namespace, service_account)),
            ..kit::Authorization::default()
        },
    )
}

/// Who shares EKS Pod Identity credentials (and the reads made with them).
///
/// The agent's credentials carry the mounting pod's session tags (`kubernetes-pod-name`,
/// `kubernetes-pod-uid`, ...), which IAM policies may use (ABAC). Shared by every pod of a
/// service account, pod B would read with pod A's tags: so they are the pod's own by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PodIdentityScope {
    /// Credentials and reads per pod (its UID): each pod's reads carry its own session tags.
    #[default]
    Pod,
    /// Credentials and reads per service account: for IAM policies that use no pod-level tags.
    ServiceAccount,
}

impl PodIdentityScope {
    /// The names `serve --pod-identity-scope` takes.
    pub const NAMES: [&str; 2] = ["pod", "service-account"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pod" => Some(Self::Pod),
            "service-account" => Some(Self::ServiceAccount),
            _ => None,
        }
    }
}

/// Credentials by identity, kept until [`REFRESH_MARGIN`] before they expire; concurrent mounts
/// of one identity wait for a single exchange (the kit's [`ExpiringCache`]).
pub type CredentialCache = ExpiringCache<IdentityKey, Credentials>;

pub fn credential_cache() -> CredentialCache {
    ExpiringCache::new(REFRESH_MARGIN, Credentials::expiry)
}

/// A role session name CloudTrail can attribute: `csi-<namespace>-<service account>`, limited
/// to STS's 64 characters of `[\w+=,.@-]`.
pub fn session_name(namespace: &str, service_account: &str) -> String {
    let raw = format!("csi-{namespace}-{service_account}");
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' })
        .take(64)
        .collect()
}

/// IRSA: `AssumeRoleWithWebIdentity` with the pod's `sts.amazonaws.com` token.
pub async fn assume_role_with_web_identity(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    token: &str,
    session_name: &str,
) -> Result<Credentials, Error> {
    let output = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(token)
        .send()
        .await
        .map_err(|e| {
            refused(&e, format!("IRSA: AssumeRoleWithWebIdentity for role {role_arn} failed"), "")
        })?;
    issued(output.credentials, role_arn, "csi-secrets-provider-irsa")
}

/// `sts:AssumeRole` into `role_arn` with the pod's credentials (the STS client's); a refusal
/// is `PermissionDenied` naming the role.
pub async fn assume_role(
    sts: &aws_sdk_sts::Client,
    role: &crate::params::AssumeRole,
    session_name: &str,
) -> Result<Credentials, Error> {
    let role_arn = role.role_arn.as_str();
    let output = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .set_external_id(role.external_id.clone())
        .set_duration_seconds(role.duration_seconds)
        .send()
        .await
        .map_err(|e| {
            refused(
                &e,
                format!("assumeRoleArn: AssumeRole into {role_arn} failed"),
                " (the role's trust policy must let the pod's role assume it, with the external id if it asks for one)",
            )
        })?;
    issued(output.credentials, role_arn, "csi-secrets-provider-assume-role")
}

/// An STS failure: what STS calls a bad request or a missing role refuses this identity.
fn refused<E>(
    error: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    what: String,
    hint: &str,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = classify(error);
    let kind = match failure.kind {
        ErrorKind::InvalidConfig | ErrorKind::NotFound => ErrorKind::PermissionDenied,
        other => other,
    };
    Error::new(kind, format!("{what}: {failure}{hint}"))
}

/// The credentials STS issued for `role_arn`, named `provider` in the SDK.
fn issued(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    role_arn: &str,
    provider: &'static str,
) -> Result<Credentials, Error> {
    let issued = credentials
        .ok_or_else(|| Error::internal(format!("STS returned no credentials for role {role_arn}")))?;
    let expiry = SystemTime::try_from(issued.expiration).ok();
    Ok(Credentials::new(
        issued.access_key_id,
        issued.secret_access_key,
        Some(issued.session_token),
        expiry,
        provider,
    ))
}

/// The EKS Pod Identity agent, reached over plain HTTP on a link-local address.
#[derive(Debug, Clone)]
pub struct PodIdentityAgent {
    client: HttpClient<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: Option<String>,
}

impl PodIdentityAgent {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        Self { client: HttpClient::builder(TokioExecutor::new()).build(connector), timeout }
    }

    /// Asks each endpoint in order until one answers (auto = IPv4, then IPv6).
    pub async fn credentials(&self, endpoints: &[String], token: &str) -> Result<Credentials, Error> {
        let mut failures = Vec::new();
        for endpoint in endpoints {
            match self.ask(endpoint, token).await {
                Ok(credentials) => return Ok(credentials),
                // An answer from the agent (4xx) is final; only a transport failure moves on.
                Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::unavailable(format!(
            "failed to get AWS config from pod identity agent: {}",
            failures.join("; ")
        )))
    }

    async fn ask(&self, endpoint: &str, token: &str) -> Result<Credentials, Error> {
        let unavailable = |what: String| Error::unavailable(format!("{endpoint}: {what}"));
        let request = http::Request::get(endpoint)
            .header(http::header::AUTHORIZATION, token)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Error::invalid_config(format!("bad Pod Identity agent URL {endpoint}: {e}")))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| unavailable("response body timed out".to_owned()))?
            .map_err(|e| unavailable(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&body).chars().take(512).collect();
            let message = format!("EKS Pod Identity agent {endpoint} answered {status}: {text}");
            return Err(if status.is_client_error() {
                Error::permission_denied(message)
            } else {
                Error::unavailable(message)
            });
        }
        let parsed: AgentCredentials = serde_json::from_slice(&body).map_err(|e| {
            // Do not echo the body: it holds credentials.
            Error::internal(format!("EKS Pod Identity agent {endpoint} sent unreadable credentials: {e}"))
        })?;
        let expiry = parsed.expiration.as_deref().and_then(|e| humantime::parse_rfc3339_weak(e).ok());
        Ok(Credentials::new(
            parsed.access_key_id,
            parsed.secret_access_key,
            Some(parsed.token),
            expiry,
            "csi-secrets-provider-pod-identity",
        ))
    }
}

/// The `sub` claim of a JWT (not verified: it only keys the cache, the agent verifies).
pub fn token_subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn credentials(expires_in: Duration) -> Credentials {
        Credentials::new("AKID", "secret", Some("token".into()), Some(SystemTime::now() + expires_in), "test")
    }

    fn key(role: &str, sa: &str) -> IdentityKey {
        irsa_key(role, "ns".into(), sa.into())
    }

    #[tokio::test]
    async fn one_exchange_per_identity_while_fresh() -> Result<(), Error> {
        let cache = credential_cache();
        let exchanges = AtomicUsize::new(0);
        let exchange = || async {
            exchanges.fetch_add(1, Ordering::SeqCst);
            Ok(credentials(Duration::from_secs(3600)))
        };
        for _ in 0..5 {
            cache.get_or_fetch(key("r", "a"), exchange).await?;
        }
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
        cache.get_or_fetch(key("r", "b"), exchange).await?;
        cache.get_or_fetch(key("other-role", "a"), exchange).await?;
        assert_eq!(exchanges.load(Ordering::SeqCst), 3, "identities never share credentials");
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_mounts_share_one_exchange() -> Result<(), Error> {
        let cache = Arc::new(credential_cache());
        let exchanges = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|_| {
            let cache = Arc::clone(&cache);
            let exchanges = Arc::clone(&exchanges);
            async move {
                cache
                    .get_or_fetch(key("r", "a"), || async move {
                        exchanges.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(credentials(Duration::from_secs(3600)))
                    })
                    .await
            }
        });
        for result in futures::future::join_all(calls).await {
            result?;
        }
        assert_eq!(exchanges.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[tokio::test]
    async fn near_expiry_and_failures_exchange_again() -> Result<(), Error> {
        let cache = credential_cache();
        let exchanges = AtomicUsize::new(0);
        let soon = || async {
            exchanges.fetch_add(1, Ordering::SeqCst);
            Ok(credentials(REFRESH_MARGIN / 2))
        };
        cache.get_or_fetch(key("r", "a"), soon).await?;
        cache.get_or_fetch(key("r", "a"), soon).await?;
        assert_eq!(exchanges.load(Ordering::SeqCst), 2, "credentials inside the margin are not reused");
        let failed =
            cache.get_or_fetch(key("r", "c"), || async { Err(Error::permission_denied("no")) }).await;
        assert!(failed.is_err());
        let ok =
            cache.get_or_fetch(key("r", "c"), || async { Ok(credentials(Duration::from_secs(3600))) }).await;
        assert!(ok.is_ok(), "a failure is not cached");
        Ok(())
    }

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(session_name("shop", "web"), "csi-shop-web");
        let long = session_name(&"n".repeat(60), "sa:weird/chars");
        assert_eq!(long.len(), 64);
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)));
    }

    #[test]
    fn jwt_subject() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"system:serviceaccount:shop:web","aud":["pods.eks.amazonaws.com"]}"#);
        assert_eq!(
            token_subject(&format!("h.{payload}.s")).as_deref(),
            Some("system:serviceaccount:shop:web")
        );
        assert_eq!(token_subject("not-a-jwt"), None);
    }
}

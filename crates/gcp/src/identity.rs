//! Whose token reads a secret, as the GCP provider finds it: the pod's Kubernetes service
//! account exchanged for a federated token (workload identity), then, when the service account
//! is annotated with a Google service account, that account's token; or the provider's own
//! credentials (`auth: provider-adc`); or a key from the node-publish secret.
//!
//! The exchanges are made with the project's HTTP client, not the SDK: the GKE
//! `identitybindingtoken` endpoint takes a JSON body the SDK's external-account flow (form
//! encoded, `sts.googleapis.com`) does not send, and both exchanges are cached here per identity
//! (the kit's `ExpiringCache`), which the SDK's per-client caches cannot share across pods.

use std::time::{Duration, SystemTime};

use csi_secrets_provider_core::{CloudCalls, Error, ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::options::Endpoints;

/// Tokens closer than this to expiry are fetched again.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The scope every token asks for.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Whose token this is: the kit's one key type (a federated token: the pool's audience and the
/// service account; impersonation: that, with the delegates and the Google service account
/// chained; `provider-adc`: the provider itself; a node-publish key: its account and a digest
/// of the whole key file, so that a key file naming someone else's key id is not their key).
pub use csi_secrets_provider_core::kit::IdentityKey;

/// Longest a token from an answer is kept: Google's access tokens live at most 12 hours. A
/// larger lifetime in an answer (or one that overflows the clock) is cut to it.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// When a token said to expire in `seconds` expires, with checked arithmetic: an answer cannot
/// panic the provider or keep a token past [`MAX_TOKEN_LIFETIME`].
fn expiry_in(seconds: u64) -> Option<SystemTime> {
    SystemTime::now().checked_add(Duration::from_secs(seconds).min(MAX_TOKEN_LIFETIME))
}

/// An OAuth access token and when it expires.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// The workload identity pool and identity provider of this cluster, as the GCP provider
/// derives them: the pool `<project>.svc.id.goog`, the provider the cluster's URL; or, for
/// Workload Identity Federation, the audience of the provider's own `external_account`
/// credentials as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// The audience the pod's Kubernetes token is requested for.
    pub pool: String,
    pub provider: String,
    /// An exchange audience given verbatim (`//iam.googleapis.com/projects/N/locations/global/
    /// workloadIdentityPools/P/providers/X`), instead of `identitynamespace:<pool>:<provider>`.
    pub verbatim_audience: Option<String>,
}

impl WorkloadIdentity {
    /// The audience of the token exchange: `identitynamespace:<pool>:<provider>`, or the
    /// federation audience as configured.
    pub fn audience(&self) -> String {
        match &self.verbatim_audience {
            Some(audience) => audience.clone(),
            None => format!("identitynamespace:{}:{}", self.pool, self.provider),
        }
    }

    /// From an `external_account` credentials file's `audience`, as the GCP provider reads it
    /// when the GKE metadata is not there: `identitynamespace:POOL:PROVIDER` split, anything
    /// else used verbatim (with the pool as the Kubernetes token's audience).
    pub fn from_external_account(json: &str) -> Result<Self, Error> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            Error::invalid_config(format!("the provider's credentials file is not JSON: {e}"))
        })?;
        if value["type"].as_str() != Some("external_account") {
            return Err(Error::invalid_config(
                "the provider's credentials file is not an external_account file",
            ));
        }
        let audience = value["audience"].as_str().filter(|a| !a.is_empty()).ok_or_else(|| {
            Error::invalid_config("the provider's external_account credentials have no audience")
        })?;
        if let Some(rest) = audience.strip_prefix("identitynamespace:")
            && let Some((pool, provider)) = rest.split_once(':')
        {
            return Ok(Self {
                pool: pool.to_owned(),
                provider: provider.to_owned(),
                verbatim_audience: None,
            });
        }
        // `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/X`:
        // the Kubernetes token is asked for the pool's own audience.
        let pool = audience
            .split("/workloadIdentityPools/")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or(audience);
        Ok(Self {
            pool: pool.to_owned(),
            provider: audience.to_owned(),
            verbatim_audience: Some(audience.to_owned()),
        })
    }
}

/// Calls Google's token endpoints with one HTTP client.
#[derive(Debug, Clone)]
pub struct TokenEndpoints {
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateAnswer {
    access_token: String,
    #[serde(default)]
    expire_time: Option<String>,
}

/// API names in the `cloud_requests` metric.
const EXCHANGE: &str = "sts:ExchangeToken";
const GENERATE: &str = "iamcredentials:GenerateAccessToken";
const METADATA: &str = "metadata:Get";

impl TokenEndpoints {
    /// Exchanges the pod's Kubernetes service account token for a federated access token
    /// (`identitybindingtoken`, or the STS endpoint given by `GAIA_TOKEN_EXCHANGE_ENDPOINT`).
    pub async fn exchange(
        &self,
        ksa_token: &str,
        audience: &str,
        calls: &CloudCalls,
    ) -> Result<AccessToken, Error> {
        let body = serde_json::json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token": ksa_token,
            "audience": audience,
            "scope": CLOUD_PLATFORM,
        });
        let response = self.http.post(&self.endpoints.token_exchange).json(&body).send().await;
        let answer: Result<ExchangeAnswer, Error> =
            read_json(response, "unable to fetch identitybindingtoken").await;
        calls.record(EXCHANGE, &answer);
        let answer = answer?;
        Ok(AccessToken {
            token: SecretString::from(answer.access_token),
            expires_at: answer.expires_in.and_then(expiry_in),
        })
    }

    /// A Google service account's access token, asked with a federated token (IAM Credentials
    /// `generateAccessToken`), through `delegates` when given.
    pub async fn generate(
        &self,
        federated: &AccessToken,
        target: &str,
        delegates: &[String],
        calls: &CloudCalls,
    ) -> Result<AccessToken, Error> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{target}:generateAccessToken",
            self.endpoints.iam_credentials
        );
        let delegates: Vec<String> = delegates
            .iter()
            .map(|d| {
                format!("projects/-/serviceAccounts/{}", d.trim_start_matches("projects/-/serviceAccounts/"))
            })
            .collect();
        let body =
            serde_json::json!({ "scope": [CLOUD_PLATFORM], "delegates": delegates, "lifetime": "3600s" });
        let response =
            self.http.post(url).bearer_auth(federated.token.expose_secret()).json(&body).send().await;
        let answer: Result<GenerateAnswer, Error> =
            read_json(response, &format!("unable to fetch gcp service account token for {target}")).await;
        calls.record(GENERATE, &answer);
        let answer = answer?;
        let expires_at = answer
            .expire_time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).or_else(|_| humantime::parse_rfc3339_weak(t)).ok())
            .and_then(|at| expiry_in(at.duration_since(SystemTime::now()).unwrap_or_default().as_secs()));
        Ok(AccessToken { token: SecretString::from(answer.access_token), expires_at })
    }

    /// One value of the metadata server (`computeMetadata/v1/<path>`).
    pub async fn metadata(&self, path: &str, calls: &CloudCalls) -> Result<String, Error> {
        let Some(host) = &self.endpoints.metadata else {
            return Err(Error::unavailable(
                "no metadata server (set GCE_METADATA_HOST, or the provider's --gcp-* flags)",
            ));
        };
        let url = format!("{host}/computeMetadata/v1/{path}");
        let response = self.http.get(url).header("Metadata-Flavor", "Google").send().await;
        let result = match response {
            Ok(response) if response.status().is_success() => response
                .text()
                .await
                .map(|t| t.trim().to_owned())
                .map_err(|e| Error::unavailable(format!("metadata server: {e}"))),
            Ok(response) => {
                Err(Error::unavailable(format!("metadata server answered {} for {path}", response.status())))
            }
            Err(e) => Err(Error::unavailable(format!("metadata server unreachable: {e}"))),
        };
        calls.record(METADATA, &result);
        result
    }
}

/// The body of a successful answer, or the error by meaning, with `context` first.
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Result<reqwest::Response>,
    context: &str,
) -> Result<T, Error> {
    let response = response.map_err(|e| Error::unavailable(format!("{context}: {e}")))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| Error::unavailable(format!("{context}: {e}")))?;
    if !status.is_success() {
        // Google's error body says why; never a token.
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or_else(|| v["error_description"].as_str())
                    .or_else(|| v["error"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let message = format!("{context}, status: {status}: {detail}");
        return Err(match status.as_u16() {
            400 | 401 | 403 => Error::permission_denied(message),
            404 => Error::not_found(message),
            429 => Error::throttled(message, None),
            _ => Error::unavailable(message),
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("{context}: unexpected answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_account_audiences_as_the_gcp_provider_reads_them() -> Result<(), Error> {
        let gke = WorkloadIdentity::from_external_account(
            r#"{"type":"external_account","audience":"identitynamespace:fleet.svc.id.goog:https://gkehub.googleapis.com/projects/p/locations/global/memberships/m"}"#,
        )?;
        assert_eq!(gke.pool, "fleet.svc.id.goog");
        assert_eq!(
            gke.audience(),
            "identitynamespace:fleet.svc.id.goog:https://gkehub.googleapis.com/projects/p/locations/global/memberships/m"
        );
        let wif = WorkloadIdentity::from_external_account(
            r#"{"type":"external_account","audience":"//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/k8s/providers/c1"}"#,
        )?;
        assert_eq!(
            wif.audience(),
            "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/k8s/providers/c1"
        );
        assert_eq!(wif.pool, "k8s");
        assert!(WorkloadIdentity::from_external_account(r#"{"type":"service_account"}"#).is_err());
        Ok(())
    }

    #[test]
    fn expiries_from_answers_are_checked_and_capped() {
        let now = SystemTime::now();
        let capped = expiry_in(u64::MAX).and_then(|at| at.duration_since(now).ok());
        assert!(capped.is_some_and(|d| d <= MAX_TOKEN_LIFETIME + Duration::from_secs(5)), "{capped:?}");
        let hour = expiry_in(3600).and_then(|at| at.duration_since(now).ok());
        assert!(hour.is_some_and(|d| d >= Duration::from_secs(3599) && d <= Duration::from_secs(3605)));
    }
}

//! `objectType: acr`: an Azure Container Registry's Docker login. The pod's Azure AD token for
//! the cloud's Resource Manager (what `az acr login` and the registry's token service take) is
//! exchanged at `https://<registry>/oauth2/exchange` for the registry's refresh token, which
//! docker presents as the password of user `00000000-0000-0000-0000-000000000000`.

use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use base64::Engine as _;
use csi_secrets_provider_core::kit::RegistryLogin;
use csi_secrets_provider_core::{CloudCalls, Error, Result};
use secrecy::SecretString;

use crate::cloud::CloudEndpoints;

/// The user name of an ACR refresh token login.
pub(crate) const ACR_USER: &str = "00000000-0000-0000-0000-000000000000";

/// API name in the `cloud_requests` metric.
pub(crate) const EXCHANGE: &str = "acr:oauth2/exchange";

/// The largest exchange answer read (a refresh token is about 2 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// The login of `host` for the holder of `credential` in `tenant`.
pub(crate) async fn login(
    http: &reqwest::Client,
    credential: &dyn TokenCredential,
    endpoints: &CloudEndpoints,
    tenant: &str,
    host: &str,
    calls: &CloudCalls,
) -> Result<RegistryLogin> {
    let invalid = |why: String| Error::invalid_config(why).with_object(host).with_field("objectName");
    let suffix = endpoints.registry_dns_suffix.as_deref().ok_or_else(|| {
        invalid("this cloud has no container registry suffix (containerRegistryDNSSuffix in its environment file)".to_owned())
    })?;
    let manager = endpoints.resource_manager.as_deref().ok_or_else(|| {
        invalid(
            "this cloud has no Resource Manager endpoint (resourceManagerEndpoint in its environment file)"
                .to_owned(),
        )
    })?;
    let name = host.strip_suffix(suffix).and_then(|rest| rest.strip_suffix('.')).filter(|n| !n.contains('.'));
    if name.is_none_or(str::is_empty) {
        return Err(invalid(format!("{host} is not a registry of this cloud (<registry>.{suffix})")));
    }
    let scope = format!("{manager}.default");
    let token = credential.get_token(&[scope.as_str()], None).await.map_err(|e| {
        Error::permission_denied(format!("cannot get an Azure AD token for the registry {host}: {e}"))
            .with_object(host)
    })?;
    let mut form = reqwest::Url::parse("form:").map_err(|e| Error::internal(e.to_string()))?;
    form.query_pairs_mut()
        .append_pair("grant_type", "access_token")
        .append_pair("service", host)
        .append_pair("tenant", tenant)
        .append_pair("access_token", token.token.secret());
    let body = form.query().unwrap_or_default().to_owned();
    let sent = http
        .post(format!("https://{host}/oauth2/exchange"))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    let result = answer(sent, host).await;
    calls.record(EXCHANGE, &result);
    let refresh_token = result?;
    let expires_at = expiry(&refresh_token).ok_or_else(|| {
        Error::unavailable(format!("the refresh token of {host} carries no expiry")).with_object(host)
    })?;
    RegistryLogin::new(host, ACR_USER, SecretString::from(refresh_token), SystemTime::now(), expires_at)
}

/// The `refresh_token` of an exchange's answer, or the error its status means.
async fn answer(sent: reqwest::Result<reqwest::Response>, host: &str) -> Result<String> {
    let response = sent.map_err(|e| {
        Error::unavailable(format!("the registry {host} did not answer the token exchange: {e}"))
            .with_object(host)
    })?;
    let status = response.status();
    let mut response = response;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        Error::unavailable(format!("the registry {host} cut its answer: {e}")).with_object(host)
    })? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(Error::unavailable(format!(
                "the registry {host} answered more than {MAX_ANSWER} bytes"
            ))
            .with_object(host));
        }
        bytes.extend_from_slice(&chunk);
    }
    let failed = |kind: fn(String) -> Error| {
        kind(format!("the registry {host} refused the token exchange (HTTP {})", status.as_u16()))
            .with_object(host)
    };
    match status.as_u16() {
        200 => {}
        401 | 403 => return Err(failed(Error::permission_denied)),
        404 => return Err(failed(Error::not_found)),
        429 => return Err(failed(|m| Error::throttled(m, None))),
        400..=499 => return Err(failed(Error::invalid_config)),
        _ => return Err(failed(Error::unavailable)),
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        Error::unavailable(format!("the registry {host} answered the exchange with no JSON"))
            .with_object(host)
    })?;
    value["refresh_token"].as_str().filter(|token| !token.is_empty()).map(str::to_owned).ok_or_else(|| {
        Error::unavailable(format!("the registry {host} answered no refresh token")).with_object(host)
    })
}

/// The `exp` claim of a JWT (not verified: the registry checks its own token), when it has one.
fn expiry(jwt: &str) -> Option<SystemTime> {
    let payload = jwt.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?,
    )
    .ok()?;
    let exp = claims["exp"].as_u64()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

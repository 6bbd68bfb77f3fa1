//! `objectType: ecr`: an ECR registry's Docker login, from `ecr:GetAuthorizationToken` in the
//! registry's region (its FIPS endpoint for `ecr-fips`) with the mount's credentials, for the
//! registry's account (`registryIds`: another account's registry works when its policy allows
//! the identity).

use std::time::SystemTime;

use aws_config::{AppName, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine as _;
use csi_secrets_provider_core::kit::RegistryLogin;
use csi_secrets_provider_core::{CloudCalls, Error, Result};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::params::RegistrySpec;
use crate::sdk_error::counted;

/// API name in the `cloud_requests` metric.
pub(crate) const GET_AUTHORIZATION_TOKEN: &str = "ecr:GetAuthorizationToken";

/// The login of `registry` for the holder of `credentials`.
pub(crate) async fn login(
    sdk: &SdkConfig,
    registry: &RegistrySpec,
    credentials: &Credentials,
    app_name: &Option<AppName>,
    calls: &CloudCalls,
) -> Result<RegistryLogin> {
    let mut config = aws_sdk_ecr::config::Builder::from(sdk)
        .region(Region::new(registry.region.clone()))
        .credentials_provider(SharedCredentialsProvider::new(credentials.clone()));
    if registry.fips {
        config = config.use_fips(true);
    }
    config.set_app_name(app_name.clone());
    let client = aws_sdk_ecr::Client::from_conf(config.build());
    let host = registry.spec.host.as_str();
    // `registryIds` no longer narrows the token (it opens every registry the identity may
    // pull from), but names the registry asked about in CloudTrail, as the official tools do.
    #[allow(deprecated)]
    let result = client.get_authorization_token().registry_ids(&registry.account).send().await;
    let output = counted(result, GET_AUTHORIZATION_TOKEN, calls).map_err(|failure| {
        Error::new(
            failure.kind,
            format!("{}: GetAuthorizationToken for {host} failed: {failure}", registry.region),
        )
        .with_object(host)
    })?;
    let unanswered =
        |what: &str| Error::unavailable(format!("ECR answered no {what} for {host}")).with_object(host);
    let data = output.authorization_data().first().ok_or_else(|| unanswered("authorization data"))?;
    let token = data.authorization_token().ok_or_else(|| unanswered("authorization token"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| unanswered("readable authorization token"))?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| unanswered("user:password token"))?;
    let expires_at = data
        .expires_at()
        .and_then(|at| SystemTime::try_from(*at).ok())
        .ok_or_else(|| unanswered("expiry"))?;
    RegistryLogin::new(host, username, SecretString::from(password.to_owned()), SystemTime::now(), expires_at)
}

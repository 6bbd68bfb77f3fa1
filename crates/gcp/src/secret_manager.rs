//! Secret Manager through Google's official SDK: one client per identity and location (the
//! SDK sets credentials per client), kept while the identity is in use; `AccessSecretVersion`
//! with the payload's CRC32C checked and errors by meaning.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use csi_secrets_provider_core::kit::IdleCache;
use csi_secrets_provider_core::{CloudCalls, Error, HeldBytes, SecretBytes};
use google_cloud_auth::credentials::{CacheableResource, Credentials, CredentialsProvider, EntityTag};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::paginator::Paginator as _;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_secretmanager_v1::client::SecretManagerService;
use secrecy::ExposeSecret;

use crate::identity::{AccessToken, IdentityKey};

/// Clients unused this long are dropped.
pub const IDLE_EVICTION: Duration = Duration::from_secs(60 * 60);

/// What Secret Manager answered for one secret version: what remounts share.
#[derive(Debug, Clone)]
pub struct Accessed {
    pub data: SecretBytes,
    /// The version's full name as Secret Manager resolved it (`projects/<number>/…/versions/3`).
    pub name: String,
}

impl HeldBytes for Accessed {
    fn held_bytes(&self) -> usize {
        self.data.len() + self.name.len()
    }
}

/// A bearer token the mount sets before each call: pod identities are exchanged by
/// `crate::identity` and cached there, so the client's credentials only hand the newest over.
#[derive(Debug, Clone, Default)]
pub struct TokenSlot(Arc<RwLock<Option<AccessToken>>>);

impl TokenSlot {
    pub fn set(&self, token: AccessToken) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
    }
}

impl CredentialsProvider for TokenSlot {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError> {
        let token = self.0.read().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(token) = token else {
            return Err(google_cloud_auth::errors::CredentialsError::from_msg(
                false,
                "no access token for this identity yet",
            ));
        };
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.token.expose_secret()))
            .map_err(|_| {
                google_cloud_auth::errors::CredentialsError::from_msg(
                    false,
                    "the access token is not a valid header",
                )
            })?;
        value.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New { entity_tag: EntityTag::new(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// A client and, for pod identities, the slot its token comes from.
#[derive(Debug)]
pub struct Client {
    pub sdk: SecretManagerService,
    pub slot: Option<TokenSlot>,
}

/// How an identity's client gets its credentials.
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    /// The mount's token for the identity (pod identities), handed to the client's slot.
    Token(AccessToken),
    /// Credentials the SDK refreshes itself (the provider's own, a service account key).
    Sdk(Credentials),
}

/// Clients by (identity, endpoint).
#[derive(Debug)]
pub struct Clients {
    cache: IdleCache<(IdentityKey, String), Client>,
}

impl Default for Clients {
    fn default() -> Self {
        Self { cache: IdleCache::new(IDLE_EVICTION) }
    }
}

impl Clients {
    /// The client of `identity` for `endpoint`, built on first use; a pod identity's client
    /// gets the mount's token, the newest for that identity, for every call it makes.
    pub async fn get(
        &self,
        identity: &IdentityKey,
        endpoint: &str,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, Error> {
        let client = self.get_or_build(identity, endpoint, credentials).await?;
        if let (Some(slot), ClientCredentials::Token(token)) = (&client.slot, credentials) {
            slot.set(token.clone());
        }
        Ok(client)
    }

    async fn get_or_build(
        &self,
        identity: &IdentityKey,
        endpoint: &str,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, Error> {
        let key = (identity.clone(), endpoint.to_owned());
        // Building is async in the SDK: look first, build outside the cache, then keep it (two
        // mounts racing build twice; one client is kept).
        if let Some(existing) = self.cache.get(&key) {
            return Ok(existing);
        }
        let (credentials, slot) = match credentials {
            ClientCredentials::Token(_) => {
                let slot = TokenSlot::default();
                (Credentials::from(slot.clone()), Some(slot))
            }
            ClientCredentials::Sdk(credentials) => (credentials.clone(), None),
        };
        // A few quick retries of UNAVAILABLE (0.2 then 0.4 s apart, plus jitter): a 5xx that
        // lasts ends in about a second with Google's own error, well inside a driver's
        // deadline; the SDK's default (1 s to 60 s apart, ten attempts) would outlast it.
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(200))
            .with_maximum_delay(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::internal(format!("retry backoff: {e}")))?;
        let sdk = SecretManagerService::builder()
            .with_endpoint(endpoint)
            .with_credentials(credentials)
            .with_retry_policy(Aip194Strict.with_attempt_limit(3))
            .with_backoff_policy(backoff)
            .build()
            .await
            .map_err(|e| {
                Error::invalid_config(format!("cannot create the Secret Manager client for {endpoint}: {e}"))
            })?;
        Ok(self.cache.get_or_insert(key, Client { sdk, slot }))
    }
}

/// API names in the `cloud_requests` metric.
const ACCESS: &str = "secretmanager:AccessSecretVersion";
const LIST: &str = "secretmanager:ListSecrets";

/// Attempts of a read Secret Manager throttles (`RESOURCE_EXHAUSTED`: 0.5, 1 and 2 s apart)
/// before the mount fails with it; the GCP provider's Go client retries it too, the Rust SDK
/// does not.
const MAX_ATTEMPTS_WHEN_THROTTLED: u32 = 4;

/// Reads `name` (`…/versions/<v>`), retrying `RESOURCE_EXHAUSTED` with backoff (the mount's
/// deadline ends the retries); the payload's CRC32C, when Secret Manager sends one, must match.
pub async fn access(
    client: &Client,
    name: &str,
    user_agent: Option<&str>,
    calls: &CloudCalls,
) -> Result<Accessed, Error> {
    let mut backoff = Duration::from_millis(500);
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let mut call = client.sdk.access_secret_version().set_name(name);
        if let Some(agent) = user_agent {
            call = call.with_user_agent(agent);
        }
        let result = call.send().await.map_err(|e| sdk_error(&e, &format!("access {name}"))).and_then(|response| {
            let payload = response.payload.unwrap_or_default();
            if let Some(expected) = payload.data_crc32c {
                let actual = i64::from(crc32c::crc32c(&payload.data));
                if actual != expected {
                    return Err(Error::unavailable(format!(
                        "the payload of {name} failed its CRC32C check (corrupted in transit); nothing was written"
                    )));
                }
            }
            Ok(Accessed { data: SecretBytes::new(payload.data.to_vec()), name: response.name })
        });
        calls.record(ACCESS, &result);
        match result {
            Err(error)
                if error.kind() == csi_secrets_provider_core::ErrorKind::Throttled
                    && attempts < MAX_ATTEMPTS_WHEN_THROTTLED =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// Whether `error` says the version is disabled or destroyed (`FAILED_PRECONDITION`, "is in
/// DISABLED state").
pub fn is_not_enabled(error: &Error) -> bool {
    error.kind() == csi_secrets_provider_core::ErrorKind::InvalidConfig
        && (error.message().contains("DISABLED state") || error.message().contains("DESTROYED state"))
}

/// An SDK error by meaning: what failed (`access <version>`, `list the secrets for …`) in
/// Google's words.
fn sdk_error(error: &google_cloud_gax::error::Error, doing: &str) -> Error {
    let words = error.status().map_or_else(|| error.to_string(), |s| s.message.clone());
    let message = csi_secrets_provider_core::egress::name_proxy(format!("failed to {doing}: {words}"));
    match error.status().map(|s| s.code) {
        Some(Code::NotFound) => Error::not_found(message),
        Some(Code::PermissionDenied | Code::Unauthenticated) => Error::permission_denied(message),
        Some(Code::ResourceExhausted) => Error::throttled(message, None),
        Some(Code::FailedPrecondition | Code::InvalidArgument) => Error::invalid_config(message),
        Some(Code::Unavailable | Code::Internal | Code::DeadlineExceeded | Code::Aborted | Code::Unknown) => {
            Error::unavailable(message)
        }
        _ if error.is_authentication() => Error::permission_denied(message),
        _ => match error.http_status_code() {
            Some(404) => Error::not_found(message),
            Some(401 | 403) => Error::permission_denied(message),
            Some(429) => Error::throttled(message, None),
            Some(400) => Error::invalid_config(message),
            _ => Error::unavailable(message),
        },
    }
}

/// Secrets one listing may hold: past it the folder is refused whatever `maxObjects` says.
const MAX_LISTED: usize = 10_000;

/// The secrets a `resourcePrefix` entry may select: every page of `ListSecrets` under its
/// parent, filtered by its labels (`labels.<key>="<value>"`), kept when their name starts
/// with the prefix (Secret Manager's filter has no prefix match on names). Names are given back
/// in the entry's own form (`projects/<project as written>/…/secrets/<id>`). A refused list
/// names the entry and the permission it needs.
pub async fn list(
    client: &Client,
    selection: &crate::params::SelectionSpec,
    user_agent: Option<&str>,
    calls: &CloudCalls,
) -> Result<csi_secrets_provider_core::kit::Listing, Error> {
    use csi_secrets_provider_core::kit::{Listed, Listing};
    let label = selection.selection.label();
    let filter: Vec<String> = selection
        .selection
        .tags
        .iter()
        .map(|(k, v)| format!("labels.{k}=\"{}\"", v.replace('"', "\\\"")))
        .collect();
    let mut call = client
        .sdk
        .list_secrets()
        .set_parent(&selection.parent)
        .set_page_size(100)
        .set_filter(filter.join(" AND "));
    if let Some(agent) = user_agent {
        call = call.with_user_agent(agent);
    }
    let mut pages = call.by_page();
    let mut listed = Vec::new();
    while let Some(result) = pages.next().await {
        let result = result.map_err(|e| {
            let error = sdk_error(&e, &format!("list the secrets for {label}"));
            let error = if error.kind() == csi_secrets_provider_core::ErrorKind::PermissionDenied {
                Error::permission_denied(format!(
                    "{}; selecting by prefix needs the secretmanager.secrets.list permission on {}",
                    error.message(),
                    selection.parent
                ))
            } else {
                error
            };
            error.with_object(&selection.selection.prefix)
        });
        calls.record(LIST, &result);
        for secret in result?.secrets {
            let id = secret.name.rsplit('/').next().unwrap_or_default();
            // A listed id becomes a URL path and a file name: one outside Google's grammar is
            // no secret this entry can read, whatever answered the listing.
            if !crate::params::names::SECRET_ID.accepts(id) {
                continue;
            }
            let name = selection.listed_name(id);
            if !name.starts_with(&selection.selection.prefix) {
                continue;
            }
            if listed.len() >= MAX_LISTED {
                return Err(Error::invalid_config(format!(
                    "{label}: more than {MAX_LISTED} secrets under it; narrow the prefix"
                ))
                .with_object(&selection.selection.prefix));
            }
            listed.push(Listed::new(name).with_tags(secret.labels));
        }
    }
    Ok(Listing::new(listed))
}

//! Key Vault's answers, as the SDK gives them: one object version, a version listing, and
//! Key Vault's and Azure AD's errors by meaning. What is read here is what remounts share
//! (`crate::reads`); turning it into files is `crate::render`'s.

use azure_core::http::{ClientMethodOptions, Context, pager::PagerOptions};
use csi_secrets_provider_core::{Error, ErrorKind, HeldBytes};
use futures::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};

use azure_security_keyvault_keys::models::{CurveName, KeyType};

use crate::identity::VaultClients;
use crate::params::{ObjectSpec, ObjectType};

/// The last segment of a Key Vault object id (`https://v.vault.azure.net/secrets/name/<version>`).
pub fn version_of(id: Option<&str>) -> String {
    id.and_then(|id| id.trim_end_matches('/').rsplit('/').next()).unwrap_or_default().to_owned()
}

/// What Key Vault answered for one object version, before it is turned into files. This is
/// what remounts share; rendering runs per mount, since it depends on the object's options.
#[derive(Debug, Clone)]
pub(crate) enum RawObject {
    Secret(RawSecret),
    Key(PublicJwk),
    Certificate { der: Vec<u8>, version: String },
}

#[derive(Debug, Clone)]
pub(crate) struct RawSecret {
    pub(crate) value: SecretString,
    pub(crate) content_type: Option<String>,
    /// Set when the secret backs a certificate.
    pub(crate) kid: Option<String>,
    pub(crate) version: String,
}

/// A key's public part.
#[derive(Debug, Clone)]
pub(crate) struct PublicJwk {
    pub(crate) kty: KeyType,
    pub(crate) crv: Option<CurveName>,
    pub(crate) n: Vec<u8>,
    pub(crate) e: Vec<u8>,
    pub(crate) x: Vec<u8>,
    pub(crate) y: Vec<u8>,
    pub(crate) version: String,
}

impl RawObject {
    pub(crate) fn version(&self) -> &str {
        match self {
            Self::Secret(secret) => &secret.version,
            Self::Key(jwk) => &jwk.version,
            Self::Certificate { version, .. } => version,
        }
    }
}

impl HeldBytes for RawObject {
    fn held_bytes(&self) -> usize {
        match self {
            Self::Secret(secret) => secret.value.expose_secret().len() + secret.version.len(),
            Self::Key(jwk) => jwk.n.len() + jwk.e.len() + jwk.x.len() + jwk.y.len() + jwk.version.len(),
            Self::Certificate { der, version } => der.len() + version.len(),
        }
    }
}

/// One GET of `object` at `version` (latest when `None`, empty or `latest`).
pub(crate) async fn fetch_raw(
    clients: &VaultClients,
    object: &ObjectSpec,
    version: Option<&str>,
    context: &Context<'static>,
) -> Result<RawObject, Error> {
    let version = version.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("latest")).map(str::to_owned);
    let method_options = ClientMethodOptions { context: context.clone() };
    let failed = |e| sdk_error(e, object, version.as_deref());
    match object.object_type {
        ObjectType::Secret => {
            let options = azure_security_keyvault_secrets::models::SecretClientGetSecretOptions {
                secret_version: version.clone(),
                method_options,
                ..Default::default()
            };
            let secret = clients
                .secrets
                .get_secret(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(failed)?;
            Ok(RawObject::Secret(RawSecret {
                value: SecretString::from(secret.value.unwrap_or_default()),
                content_type: secret.content_type,
                version: version_of(secret.id.as_deref()),
                kid: secret.kid,
            }))
        }
        ObjectType::Key => {
            let options = azure_security_keyvault_keys::models::KeyClientGetKeyOptions {
                key_version: version.clone(),
                method_options,
            };
            let key = clients
                .keys
                .get_key(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(failed)?;
            let jwk = key.key.ok_or_else(|| {
                Error::internal("Key Vault returned a key without key material").with_object(&object.name)
            })?;
            Ok(RawObject::Key(PublicJwk {
                kty: jwk.kty.unwrap_or(KeyType::UnknownValue(String::new())),
                crv: jwk.crv,
                n: jwk.n.unwrap_or_default(),
                e: jwk.e.unwrap_or_default(),
                x: jwk.x.unwrap_or_default(),
                y: jwk.y.unwrap_or_default(),
                version: version_of(jwk.kid.as_deref()),
            }))
        }
        ObjectType::Cert => {
            let options =
                azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions {
                    certificate_version: version.clone(),
                    method_options,
                };
            let certificate = clients
                .certificates
                .get_certificate(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(failed)?;
            let der = certificate.cer.ok_or_else(|| {
                Error::internal("Key Vault returned a certificate without its DER").with_object(&object.name)
            })?;
            Ok(RawObject::Certificate { der, version: version_of(certificate.id.as_deref()) })
        }
    }
}

/// Every enabled version of the object, newest first (one listing, shared by remounts).
pub(crate) async fn enabled_versions(
    clients: &VaultClients,
    object: &ObjectSpec,
    context: &Context<'static>,
) -> Result<Vec<String>, Error> {
    let pager_options = || PagerOptions { context: context.clone(), ..Default::default() };
    let mut versions: Vec<(i128, String)> = Vec::new();
    let mut add =
        |id: Option<String>, enabled: Option<bool>, created: Option<azure_core::time::OffsetDateTime>| {
            if enabled != Some(false) {
                versions.push((created.map_or(0, |c| c.unix_timestamp_nanos()), version_of(id.as_deref())));
            }
        };
    let map = |e| sdk_error(e, object, None);
    match object.object_type {
        ObjectType::Secret => {
            let mut pager =
                clients.secrets.list_secret_properties_versions(
                &object.name,
                Some(azure_security_keyvault_secrets::models::SecretClientListSecretPropertiesVersionsOptions {
                    method_options: pager_options(),
                    ..Default::default()
                }),
            ).map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.id, attributes.enabled, attributes.created);
            }
        }
        ObjectType::Key => {
            let mut pager = clients
                .keys
                .list_key_properties_versions(
                    &object.name,
                    Some(azure_security_keyvault_keys::models::KeyClientListKeyPropertiesVersionsOptions {
                        method_options: pager_options(),
                        ..Default::default()
                    }),
                )
                .map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.kid, attributes.enabled, attributes.created);
            }
        }
        ObjectType::Cert => {
            let mut pager =
                clients.certificates.list_certificate_properties_versions(
                &object.name,
                Some(
                    azure_security_keyvault_certificates::models::CertificateClientListCertificatePropertiesVersionsOptions {
                        method_options: pager_options(),
                        ..Default::default()
                    },
                ),
            ).map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.id, attributes.enabled, attributes.created);
            }
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    Ok(versions.into_iter().map(|(_, v)| v).collect())
}

/// The versions to write: from `objectVersion` when given (else the newest), at most
/// `objectVersionHistory` of them.
pub(crate) fn select_history(mut ordered: Vec<String>, object: &ObjectSpec) -> Result<Vec<String>, Error> {
    if let Some(start) =
        object.version.as_deref().filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("latest"))
    {
        let position = ordered.iter().position(|v| v == start).ok_or_else(|| {
            Error::not_found(format!("objectVersion {start} is not an enabled version of {}", object.name))
                .with_object(&object.name)
                .with_field("objectVersion")
        })?;
        ordered.drain(..position);
    }
    // Upstream writes one more than asked (off by one); the documented count is N.
    ordered.truncate(usize::try_from(object.version_history).unwrap_or(usize::MAX));
    Ok(ordered)
}

/// An SDK error, classified, with the object and Key Vault's or Azure AD's own words.
pub fn sdk_error(error: azure_core::Error, object: &ObjectSpec, version: Option<&str>) -> Error {
    let what = match version {
        Some(v) => format!("{} {} (version {v})", object.object_type.as_str(), object.name),
        None => format!("{} {}", object.object_type.as_str(), object.name),
    };
    classify(error, &what).with_object(&object.name)
}

/// An SDK error getting `what`, by meaning, with Key Vault's or Azure AD's own words.
fn classify(error: azure_core::Error, what: &str) -> Error {
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code, raw_response } => {
            let body = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice::<serde_json::Value>(r.body().as_ref()).ok())
                .unwrap_or_default();
            let code = error_code.clone().unwrap_or_else(|| u16::from(*status).to_string());
            let kind = match u16::from(*status) {
                404 => ErrorKind::NotFound,
                // A disabled version cannot be read by anyone: as good as absent.
                403 if is_disabled(&body) => ErrorKind::NotFound,
                401 | 403 => ErrorKind::PermissionDenied,
                429 => ErrorKind::Throttled,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidConfig,
            };
            let detail = body["error"]["message"].as_str().unwrap_or_default();
            Error::new(kind, format!("failed to get {what} from Key Vault: {code}: {detail}"))
        }
        azure_core::error::ErrorKind::Credential => {
            let message = csi_secrets_provider_core::egress::name_proxy(with_hint(format!(
                "failed to get an Azure AD token for {what}: {}",
                error_chain(&error)
            )));
            // Azure AD being down is an outage, not a refusal: the mount is retried, the
            // identity's configuration is fine.
            if azure_ad_unavailable(&message) {
                Error::unavailable(message)
            } else {
                Error::permission_denied(message)
            }
        }
        azure_core::error::ErrorKind::DataConversion => Error::unavailable(format!(
            "failed to get {what}: Key Vault's answer was not valid JSON (a proxy or gateway in the way, or an \
             answer cut off): {}",
            error_chain(&error)
        )),
        azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io => {
            Error::unavailable(csi_secrets_provider_core::egress::name_proxy(format!(
                "failed to reach Key Vault for {what}: {}",
                error_chain(&error)
            )))
        }
        _ => Error::internal(format!("failed to get {what}: {}", error_chain(&error))),
    }
}

/// The vault's secrets an `objectPrefix` entry may select: every page of the secret list,
/// enabled secrets only, with their tags (no values: the list has none). A refused list names
/// the entry and the permission it needs.
pub(crate) async fn list_secrets(
    clients: &VaultClients,
    selection: &csi_secrets_provider_core::kit::Selection,
    context: &Context<'static>,
) -> Result<csi_secrets_provider_core::kit::Listing, Error> {
    use csi_secrets_provider_core::kit::{Listed, Listing};
    let label = selection.label();
    let what = format!("the secret list for {label}");
    let failed = |e| {
        let error = classify(e, &what);
        let error = if error.kind() == ErrorKind::PermissionDenied {
            let message = format!(
                "{}; selecting by prefix needs the secrets list permission (Key Vault Secrets User role, or an access policy with List)",
                error.message()
            );
            Error::permission_denied(message)
        } else {
            error
        };
        error.with_object(&selection.prefix)
    };
    let options = azure_security_keyvault_secrets::models::SecretClientListSecretPropertiesOptions {
        method_options: PagerOptions { context: context.clone(), ..Default::default() },
        maxresults: Some(25),
    };
    let mut pager = clients.secrets.list_secret_properties(Some(options)).map_err(failed)?;
    let mut listed = Vec::new();
    while let Some(item) = pager.try_next().await.map_err(failed)? {
        if item.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
            continue;
        }
        // Key Vault has no server-side filter: the prefix is matched here, so only what the
        // entry may select is kept.
        let Some(name) = item.id.as_deref().and_then(|id| id.trim_end_matches('/').rsplit('/').next()) else {
            continue;
        };
        // A listed name becomes a URL path segment and a file name: one outside Key Vault's
        // grammar is no secret this entry can read, whatever answered the listing.
        if !name.starts_with(&selection.prefix) || !crate::params::OBJECT_NAME.accepts(name) {
            continue;
        }
        if listed.len() >= MAX_LISTED {
            return Err(Error::invalid_config(format!(
                "{label}: the vault has more than {MAX_LISTED} secrets under it; narrow the prefix"
            ))
            .with_object(&selection.prefix));
        }
        listed.push(Listed::new(name).with_tags(item.tags.unwrap_or_default()));
    }
    Ok(Listing::new(listed))
}

/// Secrets one listing may hold: past it the folder is refused whatever `maxObjects` says.
const MAX_LISTED: usize = 10_000;

/// Azure AD's answers for an outage (its `temporarily_unavailable` error, HTTP 5xx) rather than
/// a refusal of the identity.
fn azure_ad_unavailable(message: &str) -> bool {
    [
        "temporarily_unavailable",
        "temporarily unavailable",
        "503 Service Unavailable",
        "500 Internal Server Error",
    ]
    .iter()
    .any(|sign| message.contains(sign))
}

/// Key Vault's answer for a disabled object or version: 403 with inner code `SecretDisabled`
/// (`KeyDisabled`, `CertificateDisabled`), and "Operation get is not allowed on a disabled …".
fn is_disabled(body: &serde_json::Value) -> bool {
    let error = &body["error"];
    error["innererror"]["code"].as_str().is_some_and(|code| code.ends_with("Disabled"))
        || error["message"].as_str().is_some_and(|message| message.contains("not allowed on a disabled"))
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Azure AD's message stays verbatim; known codes get a hint on what to fix.
pub fn with_hint(message: String) -> String {
    let hint = if message.contains("AADSTS70021") {
        Some(
            "the identity has no federated credential matching this service account: create one with issuer = the \
             cluster's OIDC issuer URL, subject = system:serviceaccount:<namespace>:<service account>, audience = \
             api://AzureADTokenExchange",
        )
    } else if message.contains("AADSTS700016") {
        Some("clientID is not an application or managed identity of this tenant")
    } else if message.contains("AADSTS7000215") {
        Some("the client secret in the node-publish secret is wrong or expired")
    } else if message.contains("AADSTS90002") {
        Some("tenantId does not name an existing tenant")
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{message} (hint: {hint})"),
        None => message,
    }
}

//! Fetching one SPC object from Key Vault and turning it into files, as the Azure provider does.

use base64::Engine;
use csi_secrets_provider_core::{Error, ErrorKind, MountedFile, ObjectVersion};
use futures::TryStreamExt;

use crate::convert;
use crate::identity::VaultClients;
use crate::params::{ObjectEncoding, ObjectFormat, ObjectSpec, ObjectType};

/// Provider-wide settings that change what is written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub construct_pem_chain: bool,
    pub write_cert_and_key_in_separate_files: bool,
}

/// The files and versions of one object.
#[derive(Debug, Default)]
pub struct ObjectFiles {
    pub files: Vec<MountedFile>,
    pub versions: Vec<ObjectVersion>,
}

/// Fetches `object` (with its version history when asked) and renders its files.
pub async fn fetch(
    clients: &VaultClients,
    object: &ObjectSpec,
    write: WriteOptions,
) -> Result<ObjectFiles, Error> {
    let mut out = ObjectFiles::default();
    if object.version_history > 1 {
        let versions = history(clients, object).await?;
        for (index, version) in versions.iter().enumerate() {
            let (contents, version_id) = content(clients, object, Some(version), write).await?;
            let base = format!("{}/{index}", object.file_name());
            push(&mut out, object, &base, format!("{}/{index}", object.version_id()), contents, &version_id);
        }
    } else {
        let (contents, version_id) = content(clients, object, object.version.as_deref(), write).await?;
        push(&mut out, object, object.file_name(), object.version_id(), contents, &version_id);
    }
    Ok(out)
}

/// The main file's bytes and, for certificates split into `.crt`/`.key`, the extra ones.
struct Contents {
    main: Vec<u8>,
    split: Option<(Vec<u8>, Vec<u8>)>,
}

fn push(
    out: &mut ObjectFiles,
    object: &ObjectSpec,
    file: &str,
    id: String,
    contents: Contents,
    version: &str,
) {
    out.files.push(MountedFile::new(file, object.mode, contents.main));
    out.versions.push(ObjectVersion::new(id.clone(), version));
    if let Some((certificates, keys)) = contents.split {
        out.files.push(MountedFile::new(format!("{file}.crt"), object.mode, certificates));
        out.versions.push(ObjectVersion::new(id.clone(), version));
        out.files.push(MountedFile::new(format!("{file}.key"), object.mode, keys));
        out.versions.push(ObjectVersion::new(id, version));
    }
}

/// The last segment of a Key Vault object id (`https://v.vault.azure.net/secrets/name/<version>`).
pub fn version_of(id: Option<&str>) -> String {
    id.and_then(|id| id.trim_end_matches('/').rsplit('/').next()).unwrap_or_default().to_owned()
}

async fn content(
    clients: &VaultClients,
    object: &ObjectSpec,
    version: Option<&str>,
    write: WriteOptions,
) -> Result<(Contents, String), Error> {
    let version = version.filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("latest")).map(str::to_owned);
    let plain = |main: Vec<u8>| Contents { main, split: None };
    match object.object_type {
        ObjectType::Secret => {
            let options = azure_security_keyvault_secrets::models::SecretClientGetSecretOptions {
                secret_version: version.clone(),
                ..Default::default()
            };
            let secret = clients
                .secrets
                .get_secret(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(|e| sdk_error(e, object, version.as_deref()))?;
            let value = secret.value.unwrap_or_default();
            let version_id = version_of(secret.id.as_deref());
            if secret.kid.is_none() {
                return Ok((
                    plain(convert::decode(&value, object.encoding).map_err(|e| e.or_object(&object.name))?),
                    version_id,
                ));
            }
            let content_type = secret.content_type.unwrap_or_default();
            let contents = certificate_secret(&value, &content_type, object, write)
                .map_err(|e| e.or_object(&object.name))?;
            Ok((contents, version_id))
        }
        ObjectType::Key => {
            let options = azure_security_keyvault_keys::models::KeyClientGetKeyOptions {
                key_version: version.clone(),
                ..Default::default()
            };
            let key = clients
                .keys
                .get_key(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(|e| sdk_error(e, object, version.as_deref()))?;
            let jwk = key.key.ok_or_else(|| {
                Error::internal("Key Vault returned a key without key material").with_object(&object.name)
            })?;
            let kty = jwk.kty.as_ref().map(ToString::to_string).unwrap_or_default();
            let crv = jwk.crv.as_ref().map(ToString::to_string);
            let empty = Vec::new();
            let pem = convert::public_key_pem(
                &kty,
                crv.as_deref(),
                jwk.n.as_ref().unwrap_or(&empty),
                jwk.e.as_ref().unwrap_or(&empty),
                jwk.x.as_ref().unwrap_or(&empty),
                jwk.y.as_ref().unwrap_or(&empty),
            )
            .map_err(|e| e.with_object(&object.name))?;
            Ok((plain(pem.into_bytes()), version_of(jwk.kid.as_deref())))
        }
        ObjectType::Cert => {
            let options =
                azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions {
                    certificate_version: version.clone(),
                    ..Default::default()
                };
            let certificate = clients
                .certificates
                .get_certificate(&object.name, Some(options))
                .await
                .and_then(|r| r.into_model())
                .map_err(|e| sdk_error(e, object, version.as_deref()))?;
            let der = certificate.cer.ok_or_else(|| {
                Error::internal("Key Vault returned a certificate without its DER").with_object(&object.name)
            })?;
            Ok((
                plain(convert::pem_block("CERTIFICATE", &der).into_bytes()),
                version_of(certificate.id.as_deref()),
            ))
        }
    }
}

/// A certificate's secret: PEM as stored; PFX as stored with `objectFormat: pfx`; otherwise the
/// PFX opened and written as key + ordered chain.
fn certificate_secret(
    value: &str,
    content_type: &str,
    object: &ObjectSpec,
    write: WriteOptions,
) -> Result<Contents, Error> {
    let pem_text = match content_type {
        "application/x-pem-file" => value.as_bytes().to_vec(),
        "application/x-pkcs12" if object.format == ObjectFormat::Pfx => {
            // The stored base64 text, or the PFX bytes with objectEncoding base64.
            return Ok(Contents { main: convert::decode(value, object.encoding)?, split: None });
        }
        "application/x-pkcs12" => {
            let pfx = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|e| Error::invalid_config(format!("the certificate's PFX is not base64: {e}")))?;
            convert::pfx_to_pem(&pfx, write.construct_pem_chain)?
        }
        other => {
            return Err(Error::invalid_config(format!(
                "unknown content type {other:?} of a certificate-backed secret (expected application/x-pem-file or application/x-pkcs12)"
            )));
        }
    };
    let split = if write.write_cert_and_key_in_separate_files && object.encoding == ObjectEncoding::Utf8 {
        Some(convert::split_certificates_and_keys(&pem_text)?)
    } else {
        None
    };
    Ok(Contents { main: pem_text, split })
}

/// The object's enabled versions, newest first, starting at `objectVersion` when given, at most
/// `objectVersionHistory` of them.
async fn history(clients: &VaultClients, object: &ObjectSpec) -> Result<Vec<String>, Error> {
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
                clients.secrets.list_secret_properties_versions(&object.name, None).map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.id, attributes.enabled, attributes.created);
            }
        }
        ObjectType::Key => {
            let mut pager = clients.keys.list_key_properties_versions(&object.name, None).map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.kid, attributes.enabled, attributes.created);
            }
        }
        ObjectType::Cert => {
            let mut pager =
                clients.certificates.list_certificate_properties_versions(&object.name, None).map_err(map)?;
            while let Some(item) = pager.try_next().await.map_err(map)? {
                let attributes = item.attributes.unwrap_or_default();
                add(item.id, attributes.enabled, attributes.created);
            }
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    let mut ordered: Vec<String> = versions.into_iter().map(|(_, v)| v).collect();
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
    let mapped = match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code, raw_response } => {
            let detail = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice::<serde_json::Value>(r.body().as_ref()).ok())
                .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let code = error_code.clone().unwrap_or_else(|| u16::from(*status).to_string());
            let kind = match u16::from(*status) {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::PermissionDenied,
                429 => ErrorKind::Throttled,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidConfig,
            };
            Error::new(kind, format!("failed to get {what} from Key Vault: {code}: {detail}"))
        }
        azure_core::error::ErrorKind::Credential => Error::permission_denied(with_hint(format!(
            "failed to get an Azure AD token for {what}: {}",
            error_chain(&error)
        ))),
        azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io => {
            Error::unavailable(format!("failed to reach Key Vault for {what}: {}", error_chain(&error)))
        }
        _ => Error::internal(format!("failed to get {what}: {}", error_chain(&error))),
    };
    mapped.with_object(&object.name)
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

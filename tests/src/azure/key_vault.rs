//! The Key Vault side: the 401 challenge, secrets, keys and certificates with versions, disabled
//! versions, Key Vault's error bodies, injected 429s and per-object access.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{AUTHORITY_HOST, State, VAULT_SUFFIX, VaultRequest, Version};
use crate::http_server::{Request, Response, json};
use bytes::Bytes;
use http_body_util::Full;

pub(super) fn kv_error(status: u16, code: &str, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": { "code": code, "message": message } }))
}

/// Key Vault's answer for a disabled version: 403 with an inner code naming what is disabled.
fn disabled(noun: &str) -> Response {
    let inner = match noun {
        "key" => "KeyDisabled",
        "certificate" => "CertificateDisabled",
        _ => "SecretDisabled",
    };
    json(
        403,
        &serde_json::json!({ "error": {
            "code": "Forbidden",
            "message": format!("Operation get is not allowed on a disabled {noun}."),
            "innererror": { "code": inner }
        } }),
    )
}

pub(super) fn key_vault(state: &mut State, vault_name: &str, request: &Request) -> Response {
    let response = vault_answer(state, vault_name, request);
    state.vault_requests.push(VaultRequest {
        vault: vault_name.to_owned(),
        path: request.uri.path().to_owned(),
        status: response.status().as_u16(),
        user_agent: request
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    });
    response
}

pub(super) fn vault_answer(state: &mut State, vault_name: &str, request: &Request) -> Response {
    let path = request.uri.path().to_owned();
    if let Some(throttle) = state
        .throttles
        .iter_mut()
        .find(|(fragment, remaining, _)| *remaining > 0 && path.contains(fragment.as_str()))
    {
        throttle.1 -= 1;
        let mut response = kv_error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        );
        if let Ok(value) = http::HeaderValue::from_str(&throttle.2.to_string()) {
            response.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        return response;
    }
    if let Some(outage) = state
        .outages
        .iter_mut()
        .find(|(fragment, remaining)| *remaining > 0 && path.contains(fragment.as_str()))
    {
        outage.1 -= 1;
        return kv_error(503, "ServiceUnavailable", "The service is temporarily unavailable.");
    }
    if let Some(garbled) =
        state.garbled.iter_mut().find(|g| g.remaining > 0 && path.contains(g.fragment.as_str()))
    {
        garbled.remaining -= 1;
        let mut response = http::Response::new(Full::new(Bytes::from(garbled.body.clone())));
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        return response;
    }
    let port = state.port;
    let Some(vault) = state.vaults.get(vault_name) else {
        return kv_error(404, "VaultNotFound", &format!("No vault named {vault_name}"));
    };
    let bearer = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let resource = format!("https://{VAULT_SUFFIX}");
    let caller = bearer
        .and_then(|token| state.issued.get(token))
        .filter(|issued| issued.tenant == vault.tenant && issued.scope == format!("{resource}/.default"));
    let Some(caller) = caller else {
        let challenge = format!(
            "Bearer authorization=\"https://{AUTHORITY_HOST}:{port}/{}\", resource=\"{resource}\"",
            vault.tenant
        );
        let mut response =
            kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.");
        if let Ok(value) = http::HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, value);
        }
        return response;
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, name, rest) = match segments.as_slice() {
        // The secret list: restricted as the object named "" (see `FakeAzure::restrict_list`).
        ["secrets"] => ("secrets", "", Some("list")),
        [kind, name] => (*kind, *name, None),
        [kind, name, rest] => (*kind, *name, Some(*rest)),
        _ => return kv_error(400, "BadParameter", "unsupported path"),
    };
    if let Some(allowed) = state.restricted.get(&(vault_name.to_owned(), name.to_owned()))
        && !allowed.contains(&caller.client_id)
    {
        return json(
            403,
            &serde_json::json!({ "error": {
                "code": "Forbidden",
                "message": format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};\r\nAction: 'Microsoft.KeyVault/vaults/{kind}/{}/action'\r\nResource: '{vault_name}/{kind}/{name}'", caller.client_id, if name.is_empty() { "readMetadata" } else { "getSecret" }),
                "innererror": { "code": "ForbiddenByRbac" }
            }}),
        );
    }
    match kind {
        "secrets" if name.is_empty() => secret_list(vault, vault_name, port, request),
        "secrets" => object(vault.secrets.get(name), rest, "Secret", "secret", name, |v| {
            let mut body = serde_json::json!({ "value": v.content.value, "id": v.id, "attributes": attributes(v.enabled, v.created) });
            if let Some(content_type) = &v.content.content_type {
                body["contentType"] = content_type.clone().into();
            }
            if let Some(kid) = &v.content.kid {
                body["kid"] = kid.clone().into();
                body["managed"] = true.into();
            }
            body
        }),
        "keys" => object(
            vault.keys.get(name),
            rest,
            "Key",
            "key",
            name,
            |v| serde_json::json!({ "key": v.content, "attributes": attributes(v.enabled, v.created) }),
        ),
        "certificates" => object(
            vault.certificates.get(name),
            rest,
            "Certificate",
            "certificate",
            name,
            |v| serde_json::json!({ "id": v.id, "cer": STANDARD.encode(&v.content), "attributes": attributes(v.enabled, v.created) }),
        ),
        _ => kv_error(400, "BadParameter", "unsupported collection"),
    }
}

/// Secrets a list page holds at most: fewer than Key Vault's 25, so a test of a few secrets
/// pages (Key Vault, too, may answer fewer items than `maxresults` with a `nextLink`).
const LIST_PAGE: usize = 3;

/// `GET /secrets`: one page of the vault's secrets (no values; the current version's
/// attributes and tags), and a `nextLink` with a `$skiptoken` while more are left.
fn secret_list(vault: &super::Vault, vault_name: &str, port: u16, request: &Request) -> Response {
    // Keys as sent, `$` perhaps percent-encoded by the client's URL builder.
    let query: Vec<(String, String)> = request
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.replace("%24", "$"), v.to_owned()))
        .collect();
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if get("api-version").is_none() {
        return kv_error(400, "BadParameter", "The 'api-version' query parameter is missing.");
    }
    let skip: usize = get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let asked: usize = get("maxresults").and_then(|m| m.parse().ok()).unwrap_or(25);
    let page = asked.clamp(1, 25).min(LIST_PAGE);
    let items: Vec<serde_json::Value> = vault
        .secrets
        .iter()
        .filter_map(|(name, versions)| Some((name, versions.last()?)))
        .skip(skip)
        .take(page)
        .map(|(name, current)| {
            let mut item = serde_json::json!({
                "id": format!("https://{vault_name}.{VAULT_SUFFIX}:{port}/secrets/{name}"),
                "attributes": attributes(current.enabled, current.created),
                "tags": vault.secret_tags.get(name).cloned().unwrap_or_default(),
            });
            if let Some(content_type) = &current.content.content_type {
                item["contentType"] = content_type.clone().into();
            }
            if current.content.kid.is_some() {
                item["managed"] = true.into();
            }
            item
        })
        .collect();
    let total = vault.secrets.values().filter(|v| !v.is_empty()).count();
    let next = if skip + page < total {
        serde_json::Value::String(format!(
            "https://{vault_name}.{VAULT_SUFFIX}:{port}/secrets?api-version=7.6&$skiptoken={}&maxresults={asked}",
            skip + page
        ))
    } else {
        serde_json::Value::Null
    };
    json(200, &serde_json::json!({ "value": items, "nextLink": next }))
}

pub(super) fn attributes(enabled: bool, created: u64) -> serde_json::Value {
    serde_json::json!({ "enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable" })
}

/// GET of one version, the latest, or the version list, with Key Vault's error bodies.
pub(super) fn object<T>(
    versions: Option<&Vec<Version<T>>>,
    rest: Option<&str>,
    kind: &str,
    noun: &str,
    name: &str,
    render: impl Fn(&Version<T>) -> serde_json::Value,
) -> Response {
    let not_found = || {
        kv_error(
            404,
            &format!("{kind}NotFound"),
            &format!(
                "A {noun} with (name/id) {name} was not found in this key vault. If you recently deleted this {noun} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    };
    let Some(versions) = versions.filter(|v| !v.is_empty()) else { return not_found() };
    match rest {
        Some("versions") => {
            let value: Vec<serde_json::Value> = versions
                .iter()
                .map(|v| {
                    let mut item = render(v);
                    if let Some(map) = item.as_object_mut() {
                        map.remove("value");
                        map.remove("cer");
                        // Key versions are listed as KeyProperties: `kid` at the top level.
                        if let Some(key) = map.remove("key") {
                            map.insert("kid".to_owned(), key["kid"].clone());
                        }
                    }
                    item
                })
                .collect();
            json(200, &serde_json::json!({ "value": value, "nextLink": null }))
        }
        Some(version) if !version.is_empty() => {
            match versions.iter().find(|v| v.id.ends_with(&format!("/{version}"))) {
                Some(v) if v.enabled => json(200, &render(v)),
                Some(_) => disabled(noun),
                None => not_found(),
            }
        }
        _ => match versions.last() {
            Some(v) if v.enabled => json(200, &render(v)),
            Some(_) => disabled(noun),
            None => not_found(),
        },
    }
}

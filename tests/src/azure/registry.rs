//! Azure Container Registry's token service as the peer: `POST /oauth2/exchange` takes an Azure
//! AD access token this peer issued for the cloud's Resource Manager and answers a refresh token
//! (a JWT with `exp`, three hours out) when the token's app may pull from the registry; every
//! exchange is counted.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::State;
use crate::http_server::{Request, Response, json};

/// The peer's registry suffix (`<name>.azurecr.test`), as the environment file says.
pub const REGISTRY_SUFFIX: &str = "azurecr.test";
/// The Resource Manager endpoint of the test cloud, whose tokens the exchange takes.
pub const RESOURCE_MANAGER: &str = "https://management.test/";

/// One token exchange at a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcrExchange {
    pub registry: String,
    /// The app the access token was issued to; empty when the token was none of this peer's.
    pub client_id: String,
    pub granted: bool,
}

/// A refresh token for `client_id` at `registry`, valid three hours from now.
fn refresh_token(registry: &str, client_id: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let header = part(serde_json::json!({ "typ": "JWT", "alg": "RS256" }));
    let claims = part(serde_json::json!({
        "iss": "Azure Container Registry",
        "aud": format!("{registry}.{REGISTRY_SUFFIX}"),
        "sub": client_id,
        "iat": now,
        "exp": now + 3 * 3600,
        "grant_type": "refresh_token",
    }));
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

pub(super) fn exchange(state: &mut State, registry: &str, request: &Request) -> Response {
    if request.method != http::Method::POST || request.uri.path() != "/oauth2/exchange" {
        return json(404, &serde_json::json!({ "errors": [{ "code": "NOT_FOUND" }] }));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&request.body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let issued = state.issued.get(&field("access_token"));
    let manager_scope = format!("{RESOURCE_MANAGER}.default");
    let client_id = issued.map(|i| i.client_id.clone()).unwrap_or_default();
    let valid = field("grant_type") == "access_token"
        && issued.is_some_and(|i| i.scope == manager_scope && i.tenant == field("tenant"))
        && field("service").starts_with(&format!("{registry}.{REGISTRY_SUFFIX}"));
    let allowed = state.registries.get(registry).is_some_and(|pullers| pullers.contains(&client_id));
    let granted = valid && allowed;
    state.acr_exchanges.push(AcrExchange {
        registry: registry.to_owned(),
        client_id: client_id.clone(),
        granted,
    });
    if !state.registries.contains_key(registry) {
        return json(
            404,
            &serde_json::json!({ "errors": [{ "code": "NAME_UNKNOWN", "message": "registry not found" }] }),
        );
    }
    if !granted {
        return json(
            401,
            &serde_json::json!({ "errors": [{ "code": "UNAUTHORIZED", "message": "authentication required" }] }),
        );
    }
    json(200, &serde_json::json!({ "refresh_token": refresh_token(registry, &client_id) }))
}

//! The Azure AD side: the v2.0 token endpoint (client assertions and secrets, directly or through
//! the identity binding proxy), NMI for AAD pod identity, and service account tokens.

use std::collections::HashMap;

use super::{AUDIENCE, Issued, State, TokenRequest};
use crate::http_server::{Request, Response, json};
use crate::jwt::{self, ISSUER};

/// A service account token as kubelet issues it for `api://AzureADTokenExchange`.
pub fn service_account_token(namespace: &str, service_account: &str) -> String {
    jwt::service_account_token(namespace, service_account, AUDIENCE, jwt::VALID_UNTIL)
}

/// A service account token for another audience (`api://AKSIdentityBinding`).
pub fn service_account_token_for(namespace: &str, service_account: &str, audience: &str) -> String {
    jwt::service_account_token(namespace, service_account, audience, jwt::VALID_UNTIL)
}

/// A workload identity token that expired (in 2001).
pub fn expired_service_account_token(namespace: &str, service_account: &str) -> String {
    jwt::service_account_token(namespace, service_account, AUDIENCE, jwt::EXPIRED_AT)
}

/// NMI's `GET /host/token/?resource=<resource>` with headers `podns` and `podname`, as
/// aad-pod-identity answers it.
pub(super) fn nmi_token(state: &mut State, request: &Request) -> Response {
    state.nmi_requests += 1;
    let header =
        |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (namespace, pod) = (header("podns"), header("podname"));
    let resource = form_urlencoded::parse(request.uri.query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "resource")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if request.uri.path() != "/host/token/" || resource.is_empty() || namespace.is_empty() || pod.is_empty() {
        return json(400, &serde_json::json!({ "error": "bad NMI request" }));
    }
    let Some((tenant, client_id)) = state.pod_identities.get(&(namespace.clone(), pod.clone())).cloned()
    else {
        return json(
            403,
            &serde_json::json!({ "error": format!("no AzureAssignedIdentity found for pod:{namespace}/{pod} in assigned state") }),
        );
    };
    let token = format!("nmi-{}-{client_id}", state.nmi_requests);
    state.issued.insert(
        token.clone(),
        Issued { tenant, scope: format!("{resource}/.default"), client_id: client_id.clone() },
    );
    let now = jwt::now();
    let expires_on = (now + 3600).to_string();
    json(
        200,
        &serde_json::json!({
            "token": { "access_token": token, "refresh_token": "", "expires_in": "3599", "expires_on": expires_on,
                       "not_before": now.to_string(), "resource": resource, "token_type": "Bearer" },
            "clientid": client_id
        }),
    )
}

pub(super) fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Response {
    json(
        status,
        &serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: 2026-11-25 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-11-25 00:00:00Z",
        }),
    )
}

/// The v2.0 token endpoint, taking client assertions for `audience` (Azure AD's own, or the
/// identity binding's when reached through the token proxy).
pub(super) fn token_endpoint(
    state: &mut State,
    request: &Request,
    audience: &str,
    via_proxy: bool,
) -> Response {
    if state.token_outages > 0 {
        state.token_outages -= 1;
        return aad_error(503, "temporarily_unavailable", 90033, "The service is temporarily unavailable.");
    }
    let mut parts = request.uri.path().trim_start_matches('/').split('/');
    let tenant = parts.next().unwrap_or_default().to_owned();
    if request.method != http::Method::POST || parts.collect::<Vec<_>>() != ["oauth2", "v2.0", "token"] {
        return json(404, &serde_json::json!({ "error": "not_found" }));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&request.body).into_owned().collect();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let (client_id, scope) = (field("client_id"), field("scope"));
    if field("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    // The refusal to answer, if any.
    let (grant, refusal) = if let Some(assertion) = form.get("client_assertion") {
        (
            "assertion",
            assertion_refusal(
                state,
                &tenant,
                &client_id,
                assertion,
                &field("client_assertion_type"),
                audience,
            ),
        )
    } else if let Some(secret) = form.get("client_secret") {
        let known =
            state.client_secrets.iter().any(|(t, c, s)| *t == tenant && *c == client_id && s == secret);
        let app = state.client_secrets.iter().any(|(t, c, _)| *t == tenant && *c == client_id);
        let refusal = match (known, app) {
            (true, _) => None,
            (false, true) => Some(aad_error(
                401,
                "invalid_client",
                7_000_215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            )),
            (false, false) => Some(aad_error(
                400,
                "unauthorized_client",
                700_016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            )),
        };
        ("secret", refusal)
    } else {
        (
            "none",
            Some(aad_error(
                400,
                "invalid_request",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
        )
    };
    state.token_requests.push(TokenRequest {
        tenant: tenant.clone(),
        client_id: client_id.clone(),
        grant: grant.to_owned(),
        scope: scope.clone(),
        granted: refusal.is_none(),
        via_proxy,
    });
    if let Some(response) = refusal {
        return response;
    }
    let token = format!("at-{}-{}", state.token_requests.len(), client_id);
    state.issued.insert(token.clone(), Issued { tenant, scope, client_id });
    json(
        200,
        &serde_json::json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token }),
    )
}

/// Azure AD's refusal of a client assertion, or `None` when a federated credential matches.
pub(super) fn assertion_refusal(
    state: &State,
    tenant: &str,
    client_id: &str,
    assertion: &str,
    assertion_type: &str,
    audience: &str,
) -> Option<Response> {
    if assertion_type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Some(aad_error(400, "invalid_request", 700_010, "Invalid client assertion type."));
    }
    let Some(claims) = jwt::claims(assertion) else {
        return Some(aad_error(400, "invalid_request", 50_027, "JWT token is invalid or malformed."));
    };
    if claims["exp"].as_u64().is_some_and(|exp| exp <= jwt::now()) {
        return Some(aad_error(
            400,
            "invalid_client",
            700_024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let subject = claims["sub"].as_str().unwrap_or_default();
    let audience_ok = jwt::has_audience(&claims, audience);
    let matched = audience_ok
        && claims["iss"] == ISSUER
        && state.federated.iter().any(|(t, c, s)| t == tenant && c == client_id && s == subject);
    if matched {
        return None;
    }
    Some(aad_error(
        400,
        "invalid_client",
        70_021,
        &format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: '{ISSUER}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"
        ),
    ))
}

//! The identity side of the Google peer: the GKE token exchange and STS, IAM Credentials
//! `generateAccessToken`, service account keys' self-signed JWTs, the tokens it issues (opaque,
//! mapped to principals), and the metadata server.

use super::*;

/// A service account key's self-signed JWT (what Google's SDKs send instead of asking a token
/// endpoint): the principal is its issuer, when the key its header names is one this peer
/// issued to that account ([`FakeGoogle::issue_key`]) and the signature is that key's.
pub(super) fn self_signed(state: &State, token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let json = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (header_claims, claims) = (json(header)?, json(payload)?);
    let issuer = claims["iss"].as_str()?;
    let key_id = header_claims["kid"].as_str()?;
    let public_key = state.service_account_keys.get(&(issuer.to_owned(), key_id.to_owned()))?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signed = &token[..header.len() + 1 + payload.len()];
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let (_, algorithms) = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == rustls::SignatureScheme::RSA_PKCS1_SHA256)?;
    let verified =
        algorithms.iter().any(|a| a.verify_signature(public_key, signed.as_bytes(), &signature).is_ok());
    (verified && issuer.ends_with(".iam.gserviceaccount.com")).then(|| format!("gsa:{issuer}"))
}

/// A service account key file (`key.json`) for `email`, with a fresh RSA key, and the key's
/// public half (as a verifier takes it).
pub(super) fn new_service_account_key(
    email: &str,
    key_id: &str,
) -> Result<(String, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": key_id,
        "private_key": key.serialize_pem(),
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    Ok((json, key.public_key_raw().to_vec()))
}

pub(super) fn issue(state: &mut State, principal: String) -> String {
    state.next_token += 1;
    let token = format!("ya29.fake-{}-{}", state.next_token, principal.len());
    state.tokens.insert(token.clone(), principal);
    token
}

/// The `sub` of a Kubernetes service account token: `system:serviceaccount:NS:SA` → `NS/SA`.
pub(super) fn ksa_of(jwt: &str) -> Option<(String, Vec<String>)> {
    let payload = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let subject = claims["sub"].as_str()?.strip_prefix("system:serviceaccount:")?.replacen(':', "/", 1);
    let audiences = match &claims["aud"] {
        serde_json::Value::String(a) => vec![a.clone()],
        serde_json::Value::Array(list) => list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    Some((subject, audiences))
}

pub(super) fn exchange(state: &mut State, request: &Request) -> Response {
    // GKE's identitybindingtoken takes JSON; STS takes a form too.
    let fields: HashMap<String, String> =
        serde_json::from_slice::<HashMap<String, serde_json::Value>>(&request.body)
            .map(|m| m.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_else(|_| form_urlencoded::parse(&request.body).into_owned().collect());
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || field("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt"
    {
        return json(
            400,
            &serde_json::json!({ "error": "invalid_request", "error_description": "bad grant" }),
        );
    }
    if field("audience") != state.audience {
        return json(
            400,
            &serde_json::json!({ "error": "invalid_target", "error_description": "The target service indicated by the \"audience\" parameters is invalid." }),
        );
    }
    let Some((subject, audiences)) = ksa_of(&field("subject_token")) else {
        return json(
            400,
            &serde_json::json!({ "error": "invalid_grant", "error_description": "The subject token is not a valid JWT." }),
        );
    };
    if !audiences.iter().any(|a| a == POOL) {
        return json(
            400,
            &serde_json::json!({ "error": "invalid_grant", "error_description": "The audience in the subject token does not match the pool." }),
        );
    }
    let token = issue(state, format!("ksa:{subject}"));
    json(
        200,
        &serde_json::json!({
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600
        }),
    )
}

pub(super) fn generate(
    state: &mut State,
    path: &str,
    request: &Request,
    principal: Option<&str>,
) -> Response {
    let Some(principal) = principal else {
        return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    };
    let email = path
        .trim_start_matches("/v1/projects/-/serviceAccounts/")
        .trim_end_matches(":generateAccessToken")
        .to_owned();
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let scoped = body["scope"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s.as_str().is_some_and(|s| s.ends_with("/cloud-platform"))));
    let allowed = principal
        .strip_prefix("ksa:")
        .is_some_and(|ksa| state.impersonators.get(&email).is_some_and(|list| list.iter().any(|k| k == ksa)));
    if !scoped {
        return error(400, "INVALID_ARGUMENT", "Scope required.");
    }
    if !allowed {
        return error(
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        );
    }
    let token = issue(state, format!("gsa:{email}"));
    let expires = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    json(200, &serde_json::json!({ "accessToken": token, "expireTime": expires.to_string() }))
}

pub(super) fn metadata(state: &Arc<Mutex<State>>, request: &Request) -> Response {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = request.uri.path().to_owned();
    let flavored = header(request, http::HeaderName::from_static("metadata-flavor")) == "Google";
    let text = |body: &str| {
        let mut response =
            http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())));
        response.headers_mut().insert("Metadata-Flavor", http::HeaderValue::from_static("Google"));
        response
    };
    let response = if !flavored {
        error(403, "FORBIDDEN", "Missing Metadata-Flavor:Google header.")
    } else {
        match path.trim_start_matches("/computeMetadata/v1/") {
            "project/project-id" => text(PROJECT),
            "project/numeric-project-id" => text(PROJECT_NUMBER),
            "instance/attributes/cluster-name" => text(CLUSTER),
            "instance/attributes/cluster-location" => text(LOCATION),
            "universe/universe-domain" => text("googleapis.com"),
            "instance/service-accounts/default/" | "instance/service-accounts/default" => json(
                200,
                &serde_json::json!({ "email": format!("node@{PROJECT}.iam.gserviceaccount.com"), "scopes": ["https://www.googleapis.com/auth/cloud-platform"] }),
            ),
            "instance/service-accounts/default/email" => {
                text(&format!("node@{PROJECT}.iam.gserviceaccount.com"))
            }
            "instance/service-accounts/default/token" => {
                let token = issue(&mut state, format!("gsa:node@{PROJECT}.iam.gserviceaccount.com"));
                json(
                    200,
                    &serde_json::json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" }),
                )
            }
            "" => text("computeMetadata/"),
            _ => error(404, "NOT_FOUND", "no such metadata"),
        }
    };
    let user_agent = header(request, http::header::USER_AGENT);
    state.calls.push(GoogleCall {
        api: "metadata",
        path,
        status: response.status().as_u16(),
        principal: None,
        user_agent,
        delegates: Vec::new(),
    });
    response
}

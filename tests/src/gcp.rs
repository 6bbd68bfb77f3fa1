//! A Google Cloud test peer: Secret Manager (global and regional secrets), the GKE token
//! exchange (`identitybindingtoken`) and STS, IAM Credentials `generateAccessToken` over TLS,
//! and a metadata server over plain HTTP, with Google's REST shapes and error bodies
//! (`{"error":{"code","message","status"}}`). Tokens are opaque and mapped to principals, so a
//! read is allowed or denied as Google would for that principal. Every call is recorded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::http_server::{self, Request, Response, Server, json};
use crate::tls::TestCa;

pub const PROJECT: &str = "shop-prod";
pub const PROJECT_NUMBER: &str = "123456789012";
pub const CLUSTER: &str = "apps";
pub const LOCATION: &str = "europe-west1";
pub const POOL: &str = "shop-prod.svc.id.goog";

/// The identity provider the GKE cluster's exchange audience names.
pub fn identity_provider(gke_endpoint: &str) -> String {
    format!("{gke_endpoint}/projects/{PROJECT}/locations/{LOCATION}/clusters/{CLUSTER}")
}

/// One call the peer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleCall {
    /// `access`, `exchange`, `sts`, `generateAccessToken`, `metadata`.
    pub api: &'static str,
    pub path: String,
    pub status: u16,
    /// The principal the bearer token stood for (`ksa:NS/SA`, `gsa:EMAIL`), when any.
    pub principal: Option<String>,
    pub user_agent: String,
    /// `generateAccessToken`'s delegation chain, as sent.
    pub delegates: Vec<String>,
}

#[derive(Debug, Clone)]
struct Version {
    data: Vec<u8>,
    enabled: bool,
}

#[derive(Debug, Default)]
struct Secret {
    versions: Vec<Version>,
    aliases: HashMap<String, usize>,
    readers: Vec<String>,
    labels: std::collections::BTreeMap<String, String>,
    /// Creation order: the list answers newest first, as Secret Manager does.
    created: u64,
}

#[derive(Debug, Default)]
struct State {
    /// By (location, secret); `None` is global.
    secrets: HashMap<(Option<String>, String), Secret>,
    /// Opaque token → principal.
    tokens: HashMap<String, String>,
    next_token: u64,
    /// GSA email → Kubernetes service accounts (`NS/SA`) allowed to impersonate it.
    impersonators: HashMap<String, Vec<String>>,
    calls: Vec<GoogleCall>,
    /// Faults by path fragment: status and how many times.
    faults: Vec<(String, u16, usize)>,
    /// CRC32C answers to corrupt, by path fragment.
    corrupt: Vec<(String, usize)>,
    /// The exchange's audience, once the port is known.
    audience: String,
    /// How long every answer of the TLS server waits.
    delay: std::time::Duration,
    /// How long the answers to paths holding a fragment wait (a hang of one API).
    path_delays: Vec<(String, std::time::Duration)>,
    /// Bodies answered as they are (not JSON, cut off), by path fragment, how many times.
    garbled: Vec<(String, usize, String)>,
    /// Principals allowed to list the project's secrets (`secretmanager.secrets.list`).
    listers: Vec<String>,
    clock: u64,
}

/// The peer. Stops when dropped.
#[derive(Debug)]
pub struct FakeGoogle {
    server: Server,
    metadata: Server,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
}

impl FakeGoogle {
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let ca = TestCa::new(&[])?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let server = http_server::serve(Some(ca.server_config.clone()), move |request| {
            let answer = handle(&shared, &request);
            let delay = {
                let state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                let path = request.uri.path();
                state
                    .path_delays
                    .iter()
                    .filter(|(fragment, _)| path.contains(fragment.as_str()))
                    .map(|(_, delay)| *delay)
                    .fold(state.delay, std::cmp::max)
            };
            async move {
                tokio::time::sleep(delay).await;
                answer
            }
        })
        .await?;
        let shared = Arc::clone(&state);
        let metadata = http_server::serve(None, move |request| {
            let answer = metadata(&shared, &request);
            async move { answer }
        })
        .await?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem)?;
        let peer = Self { server, metadata, state, dir };
        let audience = format!("identitynamespace:{POOL}:{}", identity_provider(&peer.gke_endpoint()));
        peer.lock().audience = audience;
        Ok(peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.server.addr.port())
    }

    /// The GKE API base the provider builds the identity provider URL on.
    pub fn gke_endpoint(&self) -> String {
        format!("{}/gke/v1", self.url())
    }

    /// The CA file, for `SSL_CERT_FILE`.
    /// The peer's own directory (its CA and keys).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Provider arguments that reach this peer (cluster facts from the metadata server), but
    /// those among `overridden` (flags a test sets itself).
    pub fn provider_args(&self, overridden: &[&str]) -> Vec<String> {
        let url = self.url();
        [
            ("--gcp-secret-manager-endpoint", url.clone()),
            ("--gcp-regional-endpoint", url.clone()),
            ("--gcp-iam-credentials-endpoint", url.clone()),
            ("--gcp-token-exchange-endpoint", format!("{url}/v1/identitybindingtoken")),
            ("--gcp-gke-endpoint", self.gke_endpoint()),
        ]
        .into_iter()
        .filter(|(flag, _)| !overridden.iter().any(|o| o.starts_with(flag)))
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }

    /// The metadata server's `host:port`, for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        format!("127.0.0.1:{}", self.metadata.addr.port())
    }

    /// Adds a version to a secret (created if new); returns its number.
    pub fn add_version(&self, location: Option<&str>, secret: &str, data: &[u8]) -> usize {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        if entry.created == 0 {
            entry.created = clock;
        }
        entry.versions.push(Version { data: data.to_vec(), enabled: true });
        entry.versions.len()
    }

    pub fn set_alias(&self, location: Option<&str>, secret: &str, alias: &str, version: usize) {
        let mut state = self.lock();
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        entry.aliases.insert(alias.to_owned(), version);
    }

    pub fn disable_version(&self, location: Option<&str>, secret: &str, version: usize) {
        let mut state = self.lock();
        if let Some(entry) = state.secrets.get_mut(&(location.map(str::to_owned), secret.to_owned()))
            && let Some(v) = entry.versions.get_mut(version.saturating_sub(1))
        {
            v.enabled = false;
        }
    }

    /// Sets the labels of a secret.
    pub fn label(&self, location: Option<&str>, secret: &str, labels: &[(&str, &str)]) {
        let mut state = self.lock();
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        entry.labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    }

    /// Deletes a secret with its versions.
    pub fn delete_secret(&self, location: Option<&str>, secret: &str) {
        self.lock().secrets.remove(&(location.map(str::to_owned), secret.to_owned()));
    }

    /// Lets `principal` list the project's secrets.
    pub fn grant_list(&self, principal: &str) {
        self.lock().listers.push(principal.to_owned());
    }

    /// Lets `principal` (`ksa:NS/SA`, `gsa:EMAIL`) access `secret`.
    pub fn grant(&self, location: Option<&str>, secret: &str, principal: &str) {
        let mut state = self.lock();
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        entry.readers.push(principal.to_owned());
    }

    /// Lets Kubernetes service account `namespace/sa` act as Google service account `email`.
    pub fn allow_impersonation(&self, email: &str, namespace: &str, service_account: &str) {
        self.lock()
            .impersonators
            .entry(email.to_owned())
            .or_default()
            .push(format!("{namespace}/{service_account}"));
    }

    /// Answers the next `times` requests whose path contains `fragment` with `status`.
    pub fn fail(&self, fragment: &str, status: u16, times: usize) {
        self.lock().faults.push((fragment.to_owned(), status, times));
    }

    /// Sends a wrong CRC32C with the next `times` answers whose path contains `fragment`.
    pub fn corrupt(&self, fragment: &str, times: usize) {
        self.lock().corrupt.push((fragment.to_owned(), times));
    }

    /// Answers every request of the TLS server only after `delay`.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.lock().delay = delay;
    }

    /// The audience the token exchange accepts (by default GKE's `identitynamespace:POOL:…` of
    /// this peer): a Workload Identity Federation provider's, for a cluster off GKE.
    pub fn set_exchange_audience(&self, audience: &str) {
        self.lock().audience = audience.to_owned();
    }

    /// Answers requests whose path contains `fragment` only after `delay` (the rest at once).
    pub fn delay_path(&self, fragment: &str, delay: std::time::Duration) {
        self.lock().path_delays.push((fragment.to_owned(), delay));
    }

    /// Answers the next `times` requests whose path contains `fragment` with 200 and `body`.
    pub fn garble(&self, fragment: &str, times: usize, body: &str) {
        self.lock().garbled.push((fragment.to_owned(), times, body.to_owned()));
    }

    /// Goes away: connections cut and refused (see `http_server::Server::close`).
    pub fn close(&self) {
        self.server.close();
    }

    pub fn calls(&self) -> Vec<GoogleCall> {
        self.lock().calls.clone()
    }

    /// Calls of `api` answered so far.
    pub fn count(&self, api: &str) -> usize {
        self.lock().calls.iter().filter(|c| c.api == api).count()
    }
}

fn error(code: u16, status: &str, message: &str) -> Response {
    json(code, &serde_json::json!({ "error": { "code": code, "message": message, "status": status } }))
}

fn bearer(request: &Request) -> Option<String> {
    request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

fn header(request: &Request, name: http::header::HeaderName) -> String {
    request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn handle(state: &Arc<Mutex<State>>, request: &Request) -> Response {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = request.uri.path().to_owned();
    let api = if path.ends_with(":access") {
        "access"
    } else if path.ends_with("/secrets") && request.method == http::Method::GET {
        "list"
    } else if path.ends_with("/identitybindingtoken") {
        "exchange"
    } else if path.ends_with("/v1/token") {
        "sts"
    } else if path.ends_with(":generateAccessToken") {
        "generateAccessToken"
    } else {
        "other"
    };
    let principal =
        bearer(request).and_then(|token| state.tokens.get(&token).cloned().or_else(|| self_signed(&token)));
    let garbled = state
        .garbled
        .iter_mut()
        .find(|(fragment, left, _)| *left > 0 && path.contains(fragment.as_str()))
        .map(|(_, left, body)| {
            *left -= 1;
            body.clone()
        });
    if let Some(body) = garbled {
        let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        let user_agent = header(request, http::header::USER_AGENT);
        state.calls.push(GoogleCall { api, path, status: 200, principal, user_agent, delegates: Vec::new() });
        return response;
    }
    let fault =
        state.faults.iter_mut().find(|(fragment, _, left)| *left > 0 && path.contains(fragment.as_str()));
    let response = match fault {
        Some((_, status, left)) => {
            *left -= 1;
            let status = *status;
            let name = match status {
                429 => "RESOURCE_EXHAUSTED",
                403 => "PERMISSION_DENIED",
                _ => "UNAVAILABLE",
            };
            error(status, name, "injected by the test")
        }
        None => match api {
            "access" => access(&mut state, &path, principal.as_deref()),
            "list" => list(&state, &path, request.uri.query().unwrap_or_default(), principal.as_deref()),
            "exchange" | "sts" => exchange(&mut state, request),
            "generateAccessToken" => generate(&mut state, &path, request, principal.as_deref()),
            _ => error(404, "NOT_FOUND", "no such method"),
        },
    };
    let user_agent = header(request, http::header::USER_AGENT);
    let delegates = serde_json::from_slice::<serde_json::Value>(&request.body)
        .ok()
        .and_then(|body| body["delegates"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| d.as_str().map(str::to_owned))
        .collect();
    state.calls.push(GoogleCall {
        api,
        path,
        status: response.status().as_u16(),
        principal,
        user_agent,
        delegates,
    });
    response
}

/// A service account key's self-signed JWT (what Google's SDKs send instead of asking a token
/// endpoint): the principal is its issuer. The signature is not checked: this peer trusts its
/// test's keys.
fn self_signed(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let issuer = claims["iss"].as_str()?;
    issuer.ends_with(".iam.gserviceaccount.com").then(|| format!("gsa:{issuer}"))
}

/// A service account key file (`key.json`) for `email`, with a fresh RSA key.
pub fn service_account_key(email: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    Ok(serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": key.serialize_pem(),
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string())
}

fn issue(state: &mut State, principal: String) -> String {
    state.next_token += 1;
    let token = format!("ya29.fake-{}-{}", state.next_token, principal.len());
    state.tokens.insert(token.clone(), principal);
    token
}

/// The `sub` of a Kubernetes service account token: `system:serviceaccount:NS:SA` → `NS/SA`.
fn ksa_of(jwt: &str) -> Option<(String, Vec<String>)> {
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

fn exchange(state: &mut State, request: &Request) -> Response {
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

fn generate(state: &mut State, path: &str, request: &Request, principal: Option<&str>) -> Response {
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

/// Secrets a list page holds at most: fewer than asked, so tests of a few secrets page (Secret
/// Manager, too, may answer fewer than `pageSize` with a `nextPageToken`).
const LIST_PAGE: usize = 2;

/// `GET /v1/projects/P[/locations/L]/secrets`: a page of the secrets (newest first), names with
/// the project number as Secret Manager answers; `filter` as far as this provider uses it
/// (`labels.<key>=<value>` terms joined by `AND`).
fn list(state: &State, path: &str, query: &str, principal: Option<&str>) -> Response {
    let Some(principal) = principal else {
        return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    };
    let parent = path.trim_start_matches("/v1/").trim_end_matches("/secrets");
    let location = match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l] if *p == PROJECT || *p == PROJECT_NUMBER => Some((*l).to_owned()),
        ["projects", p] if *p == PROJECT || *p == PROJECT_NUMBER => None,
        _ => {
            return error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission 'secretmanager.secrets.list' denied for resource '{parent}' (or it may not exist)."
                ),
            );
        }
    };
    if !state.listers.iter().any(|l| l == principal) {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.secrets.list' denied for resource '{parent}' (or it may not exist)."
            ),
        );
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for term in get("filter").split(" AND ").map(str::trim).filter(|t| !t.is_empty()) {
        match term.strip_prefix("labels.").and_then(|t| t.split_once('=')) {
            Some((k, v)) => wanted.push((k.to_owned(), v.trim_matches('"').to_owned())),
            None => return error(400, "INVALID_ARGUMENT", &format!("Invalid filter: {term}")),
        }
    }
    let mut matching: Vec<(&String, &Secret)> = state
        .secrets
        .iter()
        .filter(|((l, _), _)| *l == location)
        .filter(|(_, s)| wanted.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|((_, name), secret)| (name, secret))
        .collect();
    matching.sort_by_key(|(_, s)| std::cmp::Reverse(s.created));
    let skip: usize = get("pageToken").parse().unwrap_or(0);
    let asked: usize = get("pageSize").parse().ok().filter(|n| *n > 0).unwrap_or(25);
    let page = asked.min(LIST_PAGE);
    let prefix = match &location {
        Some(l) => format!("projects/{PROJECT_NUMBER}/locations/{l}/secrets"),
        None => format!("projects/{PROJECT_NUMBER}/secrets"),
    };
    let secrets: Vec<serde_json::Value> = matching
        .iter()
        .skip(skip)
        .take(page)
        .map(|(name, secret)| serde_json::json!({ "name": format!("{prefix}/{name}"), "labels": secret.labels }))
        .collect();
    let next = if skip + page < matching.len() { (skip + page).to_string() } else { String::new() };
    json(200, &serde_json::json!({ "secrets": secrets, "nextPageToken": next }))
}

/// `%XX` escapes and `+` of a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn access(state: &mut State, path: &str, principal: Option<&str>) -> Response {
    let Some(principal) = principal else {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    };
    let name = path.trim_start_matches("/v1/").trim_end_matches(":access");
    let parts: Vec<&str> = name.split('/').collect();
    let (project, location, secret, version) = match parts.as_slice() {
        ["projects", p, "secrets", s, "versions", v] => (*p, None, *s, *v),
        ["projects", p, "locations", l, "secrets", s, "versions", v] => (*p, Some((*l).to_owned()), *s, *v),
        _ => return error(400, "INVALID_ARGUMENT", "Invalid resource field value in the request."),
    };
    if project != PROJECT && project != PROJECT_NUMBER {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{name}' (or it may not exist)."
            ),
        );
    }
    let prefix = match &location {
        Some(l) => format!("projects/{PROJECT_NUMBER}/locations/{l}/secrets/{secret}"),
        None => format!("projects/{PROJECT_NUMBER}/secrets/{secret}"),
    };
    let Some(entry) = state.secrets.get(&(location.clone(), secret.to_owned())) else {
        return error(404, "NOT_FOUND", &format!("Secret [{prefix}] not found or has no versions."));
    };
    if !entry.readers.iter().any(|r| r == principal) {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{name}' (or it may not exist)."
            ),
        );
    }
    let number = match version {
        "latest" => entry.versions.len(),
        v => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => entry.aliases.get(v).copied().unwrap_or(0),
        },
    };
    let Some(found) = number.checked_sub(1).and_then(|i| entry.versions.get(i)) else {
        return error(404, "NOT_FOUND", &format!("Secret Version [{prefix}/versions/{version}] not found."));
    };
    if !found.enabled {
        return error(
            400,
            "FAILED_PRECONDITION",
            &format!("Secret Version [{prefix}/versions/{number}] is in DISABLED state."),
        );
    }
    let mut crc = i64::from(crc32c::crc32c(&found.data));
    if let Some((_, left)) =
        state.corrupt.iter_mut().find(|(fragment, left)| *left > 0 && path.contains(fragment.as_str()))
    {
        *left -= 1;
        crc += 1;
    }
    json(
        200,
        &serde_json::json!({
            "name": format!("{prefix}/versions/{number}"),
            "payload": { "data": STANDARD.encode(&found.data), "dataCrc32c": crc.to_string() }
        }),
    )
}

fn metadata(state: &Arc<Mutex<State>>, request: &Request) -> Response {
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

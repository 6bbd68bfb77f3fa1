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

mod identity;
mod secret_manager;

use identity::{exchange, generate, metadata, new_service_account_key, self_signed};
use secret_manager::{access, list};

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
    /// The public halves of the service account keys issued, by (account, key id).
    service_account_keys: HashMap<(String, String), Vec<u8>>,
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

    /// Lets only `principals` access `secret` from now on.
    pub fn restrict(&self, location: Option<&str>, secret: &str, principals: &[&str]) {
        let mut state = self.lock();
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        entry.readers = principals.iter().map(|p| (*p).to_owned()).collect();
    }

    /// Lets `principal` (`ksa:NS/SA`, `gsa:EMAIL`) access `secret`.
    pub fn grant(&self, location: Option<&str>, secret: &str, principal: &str) {
        let mut state = self.lock();
        let entry = state.secrets.entry((location.map(str::to_owned), secret.to_owned())).or_default();
        entry.readers.push(principal.to_owned());
    }

    /// A key file for Google service account `email` whose self-signed tokens this peer takes
    /// (key id `key_id`).
    pub fn issue_key(
        &self,
        email: &str,
        key_id: &str,
    ) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let (json, public_key) = new_service_account_key(email, key_id)?;
        self.lock().service_account_keys.insert((email.to_owned(), key_id.to_owned()), public_key);
        Ok(json)
    }

    /// A key file naming `email` and `key_id` with a key this peer never issued: a forgery,
    /// whose tokens it refuses.
    pub fn forged_key(email: &str, key_id: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(new_service_account_key(email, key_id)?.0)
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
    /// Whose token `token` is (`ksa:NS/SA`, `gsa:EMAIL`), if this peer issued it: what a
    /// registry would check a Docker login's password against.
    pub fn principal_of(&self, token: &str) -> Option<String> {
        self.lock().tokens.get(token).cloned()
    }

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
    let principal = bearer(request)
        .and_then(|token| state.tokens.get(&token).cloned().or_else(|| self_signed(&state, &token)));
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

//! A Key Vault + Azure AD test server, faithful to what the official Azure SDK for Rust expects:
//! TLS with a generated CA, Key Vault's 401 `WWW-Authenticate` challenge, a v2.0 token endpoint
//! that checks client assertions against registered federated identities (AADSTS70021 when none
//! matches) and client secrets, secrets/keys/certificates with versions, disabled versions,
//! Key Vault's 404 bodies and injectable 429s.
//!
//! Host names: `login.test` (Azure AD) and `<vault>.vault.test` (Key Vault), all on 127.0.0.1;
//! the provider reaches them through `--azure-resolve` and trusts the CA via `SSL_CERT_FILE`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::http_server::{self, Request, Response, Server, json};
use crate::tls::TestCa;

pub const AUTHORITY_HOST: &str = "login.test";
pub const VAULT_SUFFIX: &str = "vault.test";
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
/// AKS identity binding: the token proxy's own name, the cluster id its certificate carries, the
/// SNI name derived from that id (as the Azure provider derives it), and the token audience.
pub const TOKEN_PROXY_HOST: &str = "token-proxy.test";
const API_SERVER_SAN: &str = "hcp-kubernetes.testcluster.svc.cluster.local";
pub const BINDING_SNI: &str = "af9khffslqcvk96mvd89h63hnufucr6ecgdisbv1v2ck7n6hsu9m0.ests.aks";
pub const BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";
const ISSUER: &str = "https://oidc.cluster.test";

#[derive(Debug, Clone)]
struct Version<T> {
    id: String,
    enabled: bool,
    created: u64,
    content: T,
}

#[derive(Debug, Clone)]
struct SecretContent {
    value: String,
    content_type: Option<String>,
    /// Set for a certificate's secret.
    kid: Option<String>,
}

#[derive(Debug, Default)]
struct Vault {
    tenant: String,
    secrets: BTreeMap<String, Vec<Version<SecretContent>>>,
    keys: BTreeMap<String, Vec<Version<serde_json::Value>>>,
    certificates: BTreeMap<String, Vec<Version<Vec<u8>>>>,
}

/// One request to the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub tenant: String,
    pub client_id: String,
    /// `assertion` or `secret`.
    pub grant: String,
    pub scope: String,
    pub granted: bool,
    /// Whether it came through the identity binding proxy rather than to Azure AD directly.
    pub via_proxy: bool,
}

/// One request to a vault, and the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRequest {
    pub vault: String,
    pub path: String,
    pub status: u16,
}

/// An access token the token endpoint issued.
#[derive(Debug, Clone)]
struct Issued {
    tenant: String,
    scope: String,
    client_id: String,
}

#[derive(Debug, Default)]
struct State {
    port: u16,
    federated: Vec<(String, String, String)>,
    client_secrets: Vec<(String, String, String)>,
    issued: HashMap<String, Issued>,
    token_requests: Vec<TokenRequest>,
    vault_requests: Vec<VaultRequest>,
    /// (vault, object name) readable only by these client ids (an access policy / RBAC role
    /// assignment on one object).
    restricted: HashMap<(String, String), Vec<String>>,
    vaults: HashMap<String, Vault>,
    throttles: Vec<(String, usize, u64)>,
    /// AAD pod identity: (namespace, pod) → (tenant, client id) NMI assigns.
    pod_identities: HashMap<(String, String), (String, String)>,
    nmi_requests: usize,
    /// How long every vault answer waits, so concurrent reads overlap.
    vault_delay: std::time::Duration,
    clock: u64,
}

#[derive(Debug)]
pub struct FakeAzure {
    server: Server,
    /// The node's NMI (AAD pod identity), plain HTTP as on the node.
    nmi: Server,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
}

impl FakeAzure {
    pub async fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let wildcard = format!("*.{VAULT_SUFFIX}");
        let ca = TestCa::new(&[
            AUTHORITY_HOST,
            VAULT_SUFFIX,
            &wildcard,
            TOKEN_PROXY_HOST,
            API_SERVER_SAN,
            BINDING_SNI,
        ])?;
        let state: Arc<Mutex<State>> =
            Arc::new(Mutex::new(State { clock: 1_700_000_000, ..State::default() }));
        let shared = Arc::clone(&state);
        let server = http_server::serve(Some(ca.server_config.clone()), move |request| {
            let (answer, delay) = handle(&shared, &request);
            async move {
                tokio::time::sleep(delay).await;
                answer
            }
        })
        .await?;
        state.lock().unwrap_or_else(PoisonError::into_inner).port = server.addr.port();
        let shared = Arc::clone(&state);
        let nmi = http_server::serve(None, move |request| {
            let answer = nmi_token(&mut shared.lock().unwrap_or_else(PoisonError::into_inner), &request);
            async move { answer }
        })
        .await?;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem)?;
        let environment = serde_json::json!({
            "name": "AzureStackCloud",
            "activeDirectoryEndpoint": format!("https://{AUTHORITY_HOST}:{}/", server.addr.port()),
            "keyVaultEndpoint": format!("https://{VAULT_SUFFIX}:{}/", server.addr.port()),
            "keyVaultDNSSuffix": format!("{VAULT_SUFFIX}:{}", server.addr.port()),
        });
        std::fs::write(dir.path().join("environment.json"), environment.to_string())?;
        Ok(Self { server, nmi, state, dir })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The CA certificate file, for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The AzureStackCloud environment file, for `AZURE_ENVIRONMENT_FILEPATH`.
    pub fn environment_file(&self) -> PathBuf {
        self.dir.path().join("environment.json")
    }

    /// Provider arguments that reach this server: host names pinned to loopback.
    pub fn resolve_args(&self, vaults: &[&str]) -> Vec<String> {
        let mut args = vec!["--azure-resolve".to_owned(), format!("{AUTHORITY_HOST}=127.0.0.1")];
        for vault in vaults {
            args.push("--azure-resolve".to_owned());
            args.push(format!("{vault}.{VAULT_SUFFIX}=127.0.0.1"));
        }
        args
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A vault owned by `tenant`.
    pub fn add_vault(&self, name: &str, tenant: &str) {
        self.lock().vaults.insert(name.to_owned(), Vault { tenant: tenant.to_owned(), ..Vault::default() });
    }

    /// Trusts tokens of `namespace/service_account` for the app `client_id` (a federated
    /// identity credential).
    pub fn federate(&self, tenant: &str, client_id: &str, namespace: &str, service_account: &str) {
        let subject = format!("system:serviceaccount:{namespace}:{service_account}");
        self.lock().federated.push((tenant.to_owned(), client_id.to_owned(), subject));
    }

    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        self.lock().client_secrets.push((tenant.to_owned(), client_id.to_owned(), secret.to_owned()));
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.lock().token_requests.clone()
    }

    /// Provider arguments that reach this server as the identity binding token proxy.
    pub fn token_proxy_args(&self) -> Vec<String> {
        vec![
            "--token-proxy-url".to_owned(),
            format!("https://{TOKEN_PROXY_HOST}:{}", self.server.addr.port()),
            "--token-proxy-ca-file".to_owned(),
            self.ca_file().display().to_string(),
            "--azure-resolve".to_owned(),
            format!("{TOKEN_PROXY_HOST}=127.0.0.1"),
        ]
    }

    /// NMI's address, for the provider's `--aad-pod-identity-nmi-endpoint`.
    pub fn nmi_url(&self) -> String {
        format!("http://{}", self.nmi.addr)
    }

    /// Makes NMI hand pod `namespace/pod` tokens of app `client_id` (an AzureIdentityBinding).
    pub fn bind_pod_identity(&self, namespace: &str, pod: &str, tenant: &str, client_id: &str) {
        self.lock()
            .pod_identities
            .insert((namespace.to_owned(), pod.to_owned()), (tenant.to_owned(), client_id.to_owned()));
    }

    /// Token requests NMI answered or refused.
    pub fn nmi_requests(&self) -> usize {
        self.lock().nmi_requests
    }

    /// Answers every vault request only after `delay`.
    pub fn set_vault_delay(&self, delay: std::time::Duration) {
        self.lock().vault_delay = delay;
    }

    /// Every request a vault received, in order (401 challenges included).
    pub fn vault_requests(&self) -> Vec<VaultRequest> {
        self.lock().vault_requests.clone()
    }

    /// Object reads a vault answered (200), the challenges and refusals left out.
    pub fn vault_reads(&self) -> usize {
        self.lock().vault_requests.iter().filter(|r| r.status == 200).count()
    }

    /// Lets only `client_ids` read any object named `name` in `vault`; others get Key Vault's
    /// 403 `ForbiddenByPolicy`.
    pub fn restrict(&self, vault: &str, name: &str, client_ids: &[&str]) {
        self.lock().restricted.insert(
            (vault.to_owned(), name.to_owned()),
            client_ids.iter().map(|c| (*c).to_owned()).collect(),
        );
    }

    /// Answers the next `times` Key Vault requests whose path contains `fragment` with 429.
    pub fn throttle(&self, fragment: &str, times: usize, retry_after_seconds: u64) {
        self.lock().throttles.push((fragment.to_owned(), times, retry_after_seconds));
    }

    fn url(&self, vault: &str, kind: &str, name: &str, version: &str) -> String {
        format!("https://{vault}.{VAULT_SUFFIX}:{}/{kind}/{name}/{version}", self.server.addr.port())
    }

    fn next_version(&self) -> (String, u64) {
        let mut state = self.lock();
        state.clock += 10;
        (format!("{:032x}", u128::from(state.clock) * 7_919), state.clock)
    }

    fn with_vault<T>(&self, vault: &str, f: impl FnOnce(&mut Vault) -> T) -> T {
        let mut state = self.lock();
        let vault = state.vaults.entry(vault.to_owned()).or_default();
        f(vault)
    }

    /// Stores a new version of a secret; returns the version id.
    pub fn set_secret(&self, vault: &str, name: &str, value: &str) -> String {
        self.put_secret(vault, name, SecretContent { value: value.to_owned(), content_type: None, kid: None })
    }

    fn put_secret(&self, vault: &str, name: &str, content: SecretContent) -> String {
        let (version, created) = self.next_version();
        let id = self.url(vault, "secrets", name, &version);
        self.with_vault(vault, |v| {
            v.secrets.entry(name.to_owned()).or_default().push(Version {
                id,
                enabled: true,
                created,
                content,
            })
        });
        version
    }

    /// Disables one version of a secret.
    pub fn disable_secret_version(&self, vault: &str, name: &str, version: &str) {
        self.with_vault(vault, |v| {
            for entry in v.secrets.get_mut(name).into_iter().flatten() {
                if entry.id.ends_with(&format!("/{version}")) {
                    entry.enabled = false;
                }
            }
        });
    }

    /// Stores a key version from its public JWK fields (`kty`, `n`/`e` or `crv`/`x`/`y`).
    pub fn set_key(&self, vault: &str, name: &str, mut jwk: serde_json::Value) -> String {
        let (version, created) = self.next_version();
        let kid = self.url(vault, "keys", name, &version);
        jwk["kid"] = serde_json::Value::String(kid.clone());
        self.with_vault(vault, |v| {
            v.keys.entry(name.to_owned()).or_default().push(Version {
                id: kid,
                enabled: true,
                created,
                content: jwk,
            })
        });
        version
    }

    /// Imports a certificate: the certificate (leaf DER) and its secret (`pfx` bytes or PEM
    /// text), as Key Vault keeps both under one name and version.
    pub fn import_certificate(
        &self,
        vault: &str,
        name: &str,
        leaf_der: &[u8],
        secret: CertificateSecret,
    ) -> String {
        let (version, created) = self.next_version();
        let id = self.url(vault, "certificates", name, &version);
        let kid = self.url(vault, "keys", name, &version);
        let secret_id = self.url(vault, "secrets", name, &version);
        let (value, content_type) = match secret {
            CertificateSecret::Pfx(bytes) => (STANDARD.encode(bytes), "application/x-pkcs12"),
            CertificateSecret::Pem(text) => (text, "application/x-pem-file"),
        };
        let content = SecretContent { value, content_type: Some(content_type.to_owned()), kid: Some(kid) };
        self.with_vault(vault, |v| {
            v.certificates.entry(name.to_owned()).or_default().push(Version {
                id,
                enabled: true,
                created,
                content: leaf_der.to_vec(),
            });
            v.secrets.entry(name.to_owned()).or_default().push(Version {
                id: secret_id,
                enabled: true,
                created,
                content,
            });
        });
        version
    }
}

/// A certificate's secret as Key Vault stores it.
#[derive(Debug, Clone)]
pub enum CertificateSecret {
    Pfx(Vec<u8>),
    Pem(String),
}

/// A service account token as kubelet issues it for `api://AzureADTokenExchange` (unsigned: the
/// test server checks issuer, subject and audience, not the signature).
pub fn service_account_token(namespace: &str, service_account: &str) -> String {
    service_account_token_for(namespace, service_account, AUDIENCE)
}

/// A service account token for another audience (`api://AKSIdentityBinding`).
pub fn service_account_token_for(namespace: &str, service_account: &str, audience: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let claims = serde_json::json!({
        "aud": [audience], "iss": ISSUER, "exp": 4_102_444_800u64,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    });
    format!("{header}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The answer, and how long to wait before sending it.
fn handle(state: &Mutex<State>, request: &Request) -> (Response, std::time::Duration) {
    let host = request.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default().to_owned();
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    if host == AUTHORITY_HOST {
        (token_endpoint(&mut state, request, AUDIENCE, false), std::time::Duration::ZERO)
    } else if host == BINDING_SNI {
        (token_endpoint(&mut state, request, BINDING_AUDIENCE, true), std::time::Duration::ZERO)
    } else if host == TOKEN_PROXY_HOST {
        // The API server itself, asked for nothing but its certificate.
        (
            json(401, &serde_json::json!({ "kind": "Status", "code": 401, "reason": "Unauthorized" })),
            std::time::Duration::ZERO,
        )
    } else if let Some(vault) = host.strip_suffix(&format!(".{VAULT_SUFFIX}")) {
        (key_vault(&mut state, vault, request), state.vault_delay)
    } else {
        (
            json(404, &serde_json::json!({ "error": format!("unknown host {host}") })),
            std::time::Duration::ZERO,
        )
    }
}

/// NMI's `GET /host/token/?resource=<resource>` with headers `podns` and `podname`, as
/// aad-pod-identity answers it.
fn nmi_token(state: &mut State, request: &Request) -> Response {
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
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
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

fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Response {
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
fn token_endpoint(state: &mut State, request: &Request, audience: &str, via_proxy: bool) -> Response {
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
fn assertion_refusal(
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
    let claims: serde_json::Value = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let subject = claims["sub"].as_str().unwrap_or_default();
    let audience_ok = claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v == audience));
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

fn kv_error(status: u16, code: &str, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": { "code": code, "message": message } }))
}

fn key_vault(state: &mut State, vault_name: &str, request: &Request) -> Response {
    let response = vault_answer(state, vault_name, request);
    state.vault_requests.push(VaultRequest {
        vault: vault_name.to_owned(),
        path: request.uri.path().to_owned(),
        status: response.status().as_u16(),
    });
    response
}

fn vault_answer(state: &mut State, vault_name: &str, request: &Request) -> Response {
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
                "message": format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};\r\nAction: 'Microsoft.KeyVault/vaults/{kind}/getSecret/action'\r\nResource: '{vault_name}/{kind}/{name}'", caller.client_id),
                "innererror": { "code": "ForbiddenByRbac" }
            }}),
        );
    }
    match kind {
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

fn attributes(enabled: bool, created: u64) -> serde_json::Value {
    serde_json::json!({ "enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable" })
}

/// GET of one version, the latest, or the version list, with Key Vault's error bodies.
fn object<T>(
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
                Some(_) => {
                    kv_error(403, "Forbidden", &format!("Operation get is not allowed on a disabled {noun}."))
                }
                None => not_found(),
            }
        }
        _ => match versions.last() {
            Some(v) if v.enabled => json(200, &render(v)),
            Some(_) => {
                kv_error(403, "Forbidden", &format!("Operation get is not allowed on a disabled {noun}."))
            }
            None => not_found(),
        },
    }
}

/// A certificate chain root → intermediate → leaf, for certificate tests.
#[derive(Debug)]
pub struct TestChain {
    pub leaf: Vec<u8>,
    pub intermediate: Vec<u8>,
    pub root: Vec<u8>,
    /// The leaf's private key, PKCS#8 DER.
    pub leaf_key: Vec<u8>,
}

impl TestChain {
    pub fn new() -> Result<Self, rcgen::Error> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca = |name: &str| -> Result<(CertificateParams, KeyPair), rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            Ok((params, KeyPair::generate()?))
        };
        let (root_params, root_key) = ca("Test Root")?;
        let root = root_params.self_signed(&root_key)?;
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let (mid_params, mid_key) = ca("Test Intermediate")?;
        let intermediate = mid_params.signed_by(&mid_key, &root_issuer)?;
        let mid_issuer = rcgen::Issuer::new(mid_params, mid_key);
        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec!["app.example.com".to_owned()])?;
        leaf_params.distinguished_name.push(DnType::CommonName, "app.example.com");
        let leaf = leaf_params.signed_by(&leaf_key, &mid_issuer)?;
        Ok(Self {
            leaf: leaf.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            root: root.der().to_vec(),
            leaf_key: leaf_key.serialize_der(),
        })
    }

    /// A PFX with an empty password (as Key Vault stores it), certificates in `order`
    /// (indexes into [leaf, intermediate, root]).
    pub fn pfx(&self, order: [usize; 3]) -> Result<Vec<u8>, p12_keystore::error::Error> {
        let all = [&self.leaf, &self.intermediate, &self.root];
        let certificates = order
            .iter()
            .map(|&i| p12_keystore::Certificate::from_der(all[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let key = p12_keystore::PrivateKey::from_der(&self.leaf_key)?;
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "cert",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
                b"1".to_vec(),
                key,
                certificates,
            )),
        );
        store.writer("").write()
    }

    /// PEM text as a user would upload it: key, then certificates in the given order.
    pub fn pem(&self, order: [usize; 3]) -> String {
        let all = [&self.leaf, &self.intermediate, &self.root];
        let block = |tag: &str, der: &[u8]| {
            pem::encode_config(
                &pem::Pem::new(tag, der.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        };
        let mut text = block("PRIVATE KEY", &self.leaf_key);
        for i in order {
            text.push_str(&block("CERTIFICATE", all[i]));
        }
        text
    }
}

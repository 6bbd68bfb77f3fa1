//! AWS test peers: a proxy in front of the moto server that records each call (action, region,
//! access key) and can make a region answer 503, and a fake EKS Pod Identity agent.
//!
//! Each test starts its own proxy, so counts are per test although moto is shared.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::http_server::{self, Request, Response, Server, json};
use crate::jwt;

/// The moto server that `scripts/test.sh` starts (`MOTO_ENDPOINT`).
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!("MOTO_ENDPOINT is not set: run the suite with scripts/test.sh, which starts moto"),
    }
}

/// One call seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    /// `AssumeRoleWithWebIdentity`, `GetSecretValue`, `GetParameters`, ...
    pub action: String,
    pub region: String,
    pub access_key: String,
    /// The SDK's `User-Agent` (it carries `app/<name>`).
    pub user_agent: String,
}

#[derive(Debug, Default)]
struct ProxyState {
    calls: Vec<AwsCall>,
    failing_regions: HashSet<String>,
    injected: Vec<Injected>,
    /// Secret ids readable only with this access key (an IAM policy on one role).
    readable_only_by: HashMap<String, String>,
    /// Actions answered only after this long (a slow region), so concurrent calls overlap.
    delays: HashMap<String, Duration>,
    /// How long ECR logins live from the call (ECR's 12 hours unless a test says).
    registry_token_lifetime: Option<Duration>,
}

/// An error to answer for the next `remaining` calls of `action` (of `secret_id` only, when set).
#[derive(Debug, Clone)]
struct Injected {
    action: String,
    secret_id: Option<String>,
    /// Answered as is instead of an AWS error document (a broken or cut-off answer).
    raw_body: Option<String>,
    remaining: usize,
    status: u16,
    code: String,
    message: String,
}

#[derive(Debug)]
pub struct AwsProxy {
    server: Server,
    state: Arc<Mutex<ProxyState>>,
}

impl AwsProxy {
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let state: Arc<Mutex<ProxyState>> = Arc::default();
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let shared = Arc::clone(&state);
        let server = http_server::serve(None, move |request| {
            let (client, upstream, state) = (client.clone(), upstream.clone(), Arc::clone(&shared));
            async move { forward(&client, &upstream, &state, request).await }
        })
        .await?;
        Ok(Self { server, state })
    }

    /// The same proxy over TLS, with a certificate for `names` from a CA of its own (the CA's
    /// PEM is returned): an AWS endpoint that only a client trusting that CA reaches.
    pub async fn start_tls(
        upstream: &str,
        names: &[&str],
    ) -> Result<(Self, String), Box<dyn std::error::Error + Send + Sync>> {
        let ca = crate::tls::TestCa::new(names)?;
        let state: Arc<Mutex<ProxyState>> = Arc::default();
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let shared = Arc::clone(&state);
        let server = http_server::serve(Some(ca.server_config.clone()), move |request| {
            let (client, upstream, state) = (client.clone(), upstream.clone(), Arc::clone(&shared));
            async move { forward(&client, &upstream, &state, request).await }
        })
        .await?;
        Ok((Self { server, state }, ca.ca_pem))
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// What to put in `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Stops answering: open connections are cut and new ones refused.
    pub fn close(&self) {
        self.server.close();
    }

    /// Makes every call signed for `region` answer 503 (as a regional outage would).
    pub fn fail_region(&self, region: &str) {
        self.lock().failing_regions.insert(region.to_owned());
    }

    /// Answers the next `times` calls of `action` with an AWS error (`code`, HTTP `status`),
    /// in the protocol the action's service speaks (XML for STS, JSON otherwise).
    pub fn inject(&self, action: &str, times: usize, status: u16, code: &str, message: &str) {
        self.lock().injected.push(Injected {
            action: action.to_owned(),
            secret_id: None,
            raw_body: None,
            remaining: times,
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Answers the next `times` calls of `action` with `status` and `body` as is: a body that
    /// is not JSON, or one cut off mid-document.
    pub fn inject_raw(&self, action: &str, times: usize, status: u16, body: &str) {
        self.lock().injected.push(Injected {
            action: action.to_owned(),
            secret_id: None,
            raw_body: Some(body.to_owned()),
            remaining: times,
            status,
            code: String::new(),
            message: String::new(),
        });
    }

    /// Like [`Self::inject`] for `GetSecretValue` of `secret_id` only.
    pub fn inject_for_secret(&self, secret_id: &str, times: usize, status: u16, code: &str, message: &str) {
        self.lock().injected.push(Injected {
            action: "GetSecretValue".to_owned(),
            secret_id: Some(secret_id.to_owned()),
            raw_body: None,
            remaining: times,
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Lets only `access_key` read the Secrets Manager secret or SSM parameter `secret_id`; any
    /// other caller gets `AccessDeniedException` (for the whole `GetParameters` call naming it),
    /// as IAM answers a role without the permission.
    pub fn allow_only(&self, secret_id: &str, access_key: &str) {
        self.lock().readable_only_by.insert(secret_id.to_owned(), access_key.to_owned());
    }

    /// Makes ECR logins live `lifetime` from the call (ECR's are 12 hours).
    pub fn set_registry_token_lifetime(&self, lifetime: Duration) {
        self.lock().registry_token_lifetime = Some(lifetime);
    }

    /// Answers every call of `action` only after `delay`.
    pub fn delay(&self, action: &str, delay: Duration) {
        self.lock().delays.insert(action.to_owned(), delay);
    }

    pub fn calls(&self) -> Vec<AwsCall> {
        self.lock().calls.clone()
    }

    pub fn count(&self, action: &str) -> usize {
        self.lock().calls.iter().filter(|c| c.action == action).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Mutex<ProxyState>,
    request: Request,
) -> Response {
    let call = describe(&request);
    if call.action == "BatchGetSecretValue" {
        return forward_batch(client, upstream, state, request, call).await;
    }
    let (failing, injected, denied, delay) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.calls.push(call.clone());
        let body = serde_json::from_slice::<serde_json::Value>(&request.body).unwrap_or_default();
        let secret_id =
            (call.action == "GetSecretValue").then(|| body["SecretId"].as_str().map(str::to_owned)).flatten();
        // The parameters a GetParameters call names (without their `:version` selectors).
        let parameters: Vec<String> = match call.action.as_str() {
            "GetParameters" => body["Names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|name| name.as_str())
                .map(|name| name.split_once(':').map_or(name, |(name, _)| name).to_owned())
                .collect(),
            _ => Vec::new(),
        };
        let injected = state
            .injected
            .iter_mut()
            .find(|i| {
                i.action == call.action
                    && i.remaining > 0
                    && i.secret_id.as_ref().is_none_or(|id| Some(id) == secret_id.as_ref())
            })
            .map(|i| {
                i.remaining -= 1;
                i.clone()
            });
        let denied = secret_id
            .iter()
            .chain(&parameters)
            .filter_map(|id| state.readable_only_by.get(id))
            .any(|allowed| *allowed != call.access_key);
        (
            state.failing_regions.contains(&call.region),
            injected,
            denied,
            state.delays.get(&call.action).copied(),
        )
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if denied {
        let service = if call.action == "GetParameters" { "ssm" } else { "secretsmanager" };
        return json(
            400,
            &serde_json::json!({
                "__type": "AccessDeniedException",
                "message": format!("User: {} is not authorized to perform: {service}:{} because no identity-based policy allows the {service}:{} action", call.access_key, call.action, call.action)
            }),
        );
    }
    if failing {
        return json(
            503,
            &serde_json::json!({ "__type": "ServiceUnavailable", "message": "injected regional outage" }),
        );
    }
    if let Some(error) = injected {
        return aws_error(&error);
    }
    if call.action == "AssumeRoleWithWebIdentity"
        && let Some(refusal) = web_identity_refusal(&request.body)
    {
        return aws_error(&refusal);
    }
    let answer = send_upstream(client, upstream, &request, request.body.clone()).await;
    if call.action == "GetAuthorizationToken" {
        let lifetime = state.lock().unwrap_or_else(PoisonError::into_inner).registry_token_lifetime;
        return with_real_token_expiry(answer, lifetime.unwrap_or(Duration::from_secs(12 * 3600)));
    }
    answer
}

/// moto answers ECR logins that expired in 2015; ECR's live 12 hours from the call.
fn with_real_token_expiry(answer: Response, lifetime: Duration) -> Response {
    let (parts, body) = answer.into_parts();
    let body = futures::executor::block_on(body.collect()).map(|b| b.to_bytes()).unwrap_or_default();
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return http::Response::from_parts(parts, Full::new(body));
    };
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| (now + lifetime).as_secs_f64())
        .unwrap_or_default();
    for data in value["authorizationData"].as_array_mut().into_iter().flatten() {
        data["expiresAt"] = serde_json::json!(expiry);
    }
    let body = Bytes::from(value.to_string());
    let mut parts = parts;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    http::Response::from_parts(parts, Full::new(body))
}

/// `request` with `body` sent on to moto, and moto's answer.
async fn send_upstream(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    request: &Request,
    body: Bytes,
) -> Response {
    let uri = format!("{upstream}{}", request.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut builder = http::Request::builder().method(request.method.clone()).uri(uri);
    for (name, value) in request.headers.iter().filter(|(name, _)| *name != http::header::CONTENT_LENGTH) {
        builder = builder.header(name, value);
    }
    let Ok(outgoing) = builder.body(Full::new(body)) else {
        return json(500, &serde_json::json!({ "message": "proxy could not build the request" }));
    };
    match client.request(outgoing).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            http::Response::from_parts(parts, Full::new(body))
        }
        Err(e) => json(502, &serde_json::json!({ "message": format!("proxy: moto unreachable: {e}") })),
    }
}

/// `BatchGetSecretValue` as the real service answers it under this proxy's rules: a regional
/// outage or an injected `BatchGetSecretValue` error fails the call; a throttling or 5xx fault
/// injected for one of its secrets fails the call too (a batch is one request); a secret readable
/// only by another key, or with another fault injected, comes back in `Errors` while moto answers
/// the rest.
async fn forward_batch(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Mutex<ProxyState>,
    request: Request,
    call: AwsCall,
) -> Response {
    let mut body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let ids: Vec<String> = body["SecretIdList"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let (failing, call_fault, errors, delay) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.calls.push(call.clone());
        let mut call_fault =
            state.injected.iter_mut().find(|i| i.action == call.action && i.remaining > 0).map(|i| {
                i.remaining -= 1;
                i.clone()
            });
        let mut errors = Vec::new();
        for id in &ids {
            if state.readable_only_by.get(id).is_some_and(|allowed| *allowed != call.access_key) {
                errors.push(serde_json::json!({
                    "SecretId": id, "ErrorCode": "AccessDeniedException",
                    "Message": format!("User: {} is not authorized to perform: secretsmanager:GetSecretValue", call.access_key)
                }));
                continue;
            }
            let injected = state.injected.iter_mut().find(|i| {
                i.action == "GetSecretValue" && i.remaining > 0 && i.secret_id.as_deref() == Some(id.as_str())
            });
            if let Some(injected) = injected {
                injected.remaining -= 1;
                let whole_call =
                    injected.status == 429 || injected.status >= 500 || injected.code.contains("Throttl");
                if whole_call {
                    call_fault.get_or_insert_with(|| injected.clone());
                } else {
                    errors.push(serde_json::json!({
                        "SecretId": id, "ErrorCode": injected.code, "Message": injected.message
                    }));
                }
            }
        }
        (
            state.failing_regions.contains(&call.region),
            call_fault,
            errors,
            state.delays.get(&call.action).copied(),
        )
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if failing {
        return json(
            503,
            &serde_json::json!({ "__type": "ServiceUnavailable", "message": "injected regional outage" }),
        );
    }
    if let Some(fault) = call_fault {
        return aws_error(&fault);
    }
    let refused: HashSet<&str> = errors.iter().filter_map(|e| e["SecretId"].as_str()).collect();
    let asked: Vec<&String> = ids.iter().filter(|id| !refused.contains(id.as_str())).collect();
    let mut answer = if asked.is_empty() {
        serde_json::json!({ "SecretValues": [], "Errors": [] })
    } else {
        body["SecretIdList"] = serde_json::json!(asked);
        let forwarded = send_upstream(client, upstream, &request, Bytes::from(body.to_string())).await;
        if !forwarded.status().is_success() || errors.is_empty() {
            return forwarded;
        }
        let bytes = forwarded.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    };
    match answer["Errors"].as_array_mut() {
        Some(listed) => listed.extend(errors),
        None => answer["Errors"] = serde_json::json!(errors),
    }
    json(200, &answer)
}

/// STS's own checks of the web identity token, which moto skips: a JWT, for the audience
/// `sts.amazonaws.com`, not expired (with STS's codes and words).
fn web_identity_refusal(form: &[u8]) -> Option<Injected> {
    let token = form_urlencoded::parse(form).find(|(key, _)| key == "WebIdentityToken").map(|(_, v)| v)?;
    let refusal = |code: &str, message: String| Injected {
        action: "AssumeRoleWithWebIdentity".to_owned(),
        secret_id: None,
        raw_body: None,
        remaining: 0,
        status: 400,
        code: code.to_owned(),
        message,
    };
    let Some(claims) = jwt::claims(&token) else {
        return Some(refusal("InvalidIdentityToken", "The web identity token is not a valid JWT".to_owned()));
    };
    if !jwt::has_audience(&claims, "sts.amazonaws.com") {
        return Some(refusal("InvalidIdentityToken", "Incorrect token audience".to_owned()));
    }
    let now = jwt::now();
    match claims["exp"].as_u64() {
        Some(expires) if expires > now => None,
        expires => Some(refusal(
            "ExpiredTokenException",
            format!(
                "Token expired: current date/time {now} must be before the expiration date/time {}",
                expires.unwrap_or_default()
            ),
        )),
    }
}

fn aws_error(error: &Injected) -> Response {
    if let Some(body) = &error.raw_body {
        let mut response = http::Response::new(Full::new(Bytes::from(body.clone())));
        *response.status_mut() = http::StatusCode::from_u16(error.status).unwrap_or(http::StatusCode::OK);
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-amz-json-1.1"));
        return response;
    }
    if error.action == "AssumeRoleWithWebIdentity" {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>injected</RequestId></ErrorResponse>",
            error.code, error.message
        );
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() =
            http::StatusCode::from_u16(error.status).unwrap_or(http::StatusCode::BAD_REQUEST);
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml"));
        return response;
    }
    json(error.status, &serde_json::json!({ "__type": error.code, "message": error.message }))
}

/// Action from `X-Amz-Target` (JSON protocols) or `Action=` (query protocol); region and
/// access key from the SigV4 credential scope.
fn describe(request: &Request) -> AwsCall {
    let header =
        |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let target = header("x-amz-target");
    let action = if let Some((_, action)) = target.split_once('.') {
        action.to_owned()
    } else {
        let body = String::from_utf8_lossy(&request.body);
        body.split('&').find_map(|pair| pair.strip_prefix("Action=")).unwrap_or("Unknown").to_owned()
    };
    let authorization = header("authorization");
    let scope = authorization.split("Credential=").nth(1).unwrap_or_default();
    let mut parts = scope.split('/');
    let access_key = parts.next().unwrap_or_default().to_owned();
    let region = parts.nth(1).unwrap_or_default().to_owned();
    AwsCall { action, region, access_key, user_agent: header("user-agent") }
}

/// Credentials the fake agent issued: to which token, under which access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub token: String,
    pub access_key: String,
}

/// A fake EKS Pod Identity agent: answers credentials for a token that starts with the expected
/// one (the world's tokens end in the pod they were issued for), 403 otherwise. Like the real
/// agent (`AssumeRoleForPodIdentity` opens a new session, tagged with the token's pod, per
/// call), every call gets new credentials: access key `<prefix>0001`, `<prefix>0002`, ... so a
/// test can tell whose credentials made a read.
#[derive(Debug)]
pub struct FakePodIdentityAgent {
    server: Server,
    calls: Arc<Mutex<usize>>,
    issued: Arc<Mutex<Vec<IssuedCredentials>>>,
}

impl FakePodIdentityAgent {
    pub async fn start(expected_token: &str, access_key_prefix: &str) -> std::io::Result<Self> {
        let calls: Arc<Mutex<usize>> = Arc::default();
        let issued: Arc<Mutex<Vec<IssuedCredentials>>> = Arc::default();
        let (token, prefix) = (expected_token.to_owned(), access_key_prefix.to_owned());
        let (counter, record) = (Arc::clone(&calls), Arc::clone(&issued));
        let server = http_server::serve(None, move |request| {
            *counter.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            let presented = request.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let answer = if request.uri.path() == "/v1/credentials" && presented.starts_with(&token) {
                let mut issued = record.lock().unwrap_or_else(PoisonError::into_inner);
                let access_key = format!("{prefix}{:04}", issued.len() + 1);
                issued.push(IssuedCredentials { token: presented, access_key: access_key.clone() });
                json(200, &serde_json::json!({
                    "AccessKeyId": access_key, "SecretAccessKey": "pod-identity-secret", "Token": "pod-identity-session",
                    "AccountId": "123456789012", "Expiration": "2099-01-01T00:00:00Z"
                }))
            } else {
                json(403, &serde_json::json!({ "code": "AccessDeniedException", "message": "invalid token" }))
            };
            async move { answer }
        })
        .await?;
        Ok(Self { server, calls, issued })
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/credentials", self.server.addr)
    }

    pub fn calls(&self) -> usize {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every credential issued, in order.
    pub fn issued(&self) -> Vec<IssuedCredentials> {
        self.issued.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

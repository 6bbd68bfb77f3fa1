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
use base64::engine::general_purpose::STANDARD;

use crate::http_server::{self, Request, Response, Server, json};
use crate::tls::TestCa;

mod aad;
mod certs;
mod key_vault;
mod registry;

pub use aad::{expired_service_account_token, service_account_token, service_account_token_for};
use aad::{nmi_token, token_endpoint};
pub use certs::{CertificateSecret, TestChain, chain_with_key_ids, pem_text, pfx_of, pfx_with_password};
use key_vault::key_vault;
pub use registry::{AcrExchange, REGISTRY_SUFFIX, RESOURCE_MANAGER};

pub const AUTHORITY_HOST: &str = "login.test";
pub const VAULT_SUFFIX: &str = "vault.test";
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
/// AKS identity binding: the token proxy's own name, the cluster id its certificate carries, the
/// SNI name derived from that id (as the Azure provider derives it), and the token audience.
pub const TOKEN_PROXY_HOST: &str = "token-proxy.test";
const API_SERVER_SAN: &str = "hcp-kubernetes.testcluster.svc.cluster.local";
pub const BINDING_SNI: &str = "af9khffslqcvk96mvd89h63hnufucr6ecgdisbv1v2ck7n6hsu9m0.ests.aks";
pub const BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

#[derive(Debug, Clone)]
pub(super) struct Version<T> {
    id: String,
    enabled: bool,
    created: u64,
    content: T,
}

#[derive(Debug, Clone)]
pub(super) struct SecretContent {
    value: String,
    content_type: Option<String>,
    /// Set for a certificate's secret.
    kid: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Vault {
    tenant: String,
    secrets: BTreeMap<String, Vec<Version<SecretContent>>>,
    /// Tags of a secret (Key Vault keeps them per version; the list shows the current one's).
    secret_tags: BTreeMap<String, BTreeMap<String, String>>,
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
    /// The User-Agent, as Key Vault's diagnostic logs record it (`clientInfo`).
    pub user_agent: String,
}

/// A broken answer for requests whose path contains `fragment`.
#[derive(Debug)]
pub(crate) struct Garbled {
    pub(crate) fragment: String,
    pub(crate) remaining: usize,
    pub(crate) body: String,
}

/// An access token the token endpoint issued.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    tenant: String,
    scope: String,
    client_id: String,
}

#[derive(Debug, Default)]
pub(super) struct State {
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
    /// Path fragment -> requests left to answer with 503.
    outages: Vec<(String, usize)>,
    garbled: Vec<Garbled>,
    /// Token requests left to answer with 503 (Azure AD down).
    token_outages: usize,
    /// AAD pod identity: (namespace, pod) → (tenant, client id) NMI assigns.
    pod_identities: HashMap<(String, String), (String, String)>,
    nmi_requests: usize,
    /// How long every vault answer waits, so concurrent reads overlap.
    vault_delay: std::time::Duration,
    clock: u64,
    /// Container registries by name: the apps (client ids) that may pull from each.
    registries: HashMap<String, Vec<String>>,
    acr_exchanges: Vec<AcrExchange>,
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
        let registries = format!("*.{REGISTRY_SUFFIX}");
        let ca = TestCa::new(&[
            AUTHORITY_HOST,
            VAULT_SUFFIX,
            &wildcard,
            &registries,
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
            "containerRegistryDNSSuffix": format!("{REGISTRY_SUFFIX}:{}", server.addr.port()),
            "resourceManagerEndpoint": RESOURCE_MANAGER,
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

    /// A container registry the apps `pullers` (client ids) may pull from.
    pub fn add_registry(&self, name: &str, pullers: &[&str]) {
        self.lock().registries.insert(name.to_owned(), pullers.iter().map(|p| (*p).to_owned()).collect());
    }

    /// The login server of registry `name` as the provider reaches it (with this server's port).
    pub fn registry_host(&self, name: &str) -> String {
        format!("{name}.{REGISTRY_SUFFIX}:{}", self.server.addr.port())
    }

    /// Provider arguments that reach registry `name` on this server.
    pub fn registry_resolve_args(&self, name: &str) -> Vec<String> {
        vec!["--azure-resolve".to_owned(), format!("{name}.{REGISTRY_SUFFIX}=127.0.0.1")]
    }

    pub fn acr_exchanges(&self) -> Vec<AcrExchange> {
        self.lock().acr_exchanges.clone()
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

    /// Stops answering (Key Vault and Azure AD alike): open connections are cut and new ones
    /// refused.
    pub fn close(&self) {
        self.server.close();
    }

    /// Answers the next `times` Azure AD token requests with 503.
    pub fn fail_token_requests(&self, times: usize) {
        self.lock().token_outages = times;
    }

    /// Answers the next `times` Key Vault requests whose path contains `fragment` with 200 and
    /// `body` as is: not JSON, or JSON cut off.
    pub fn garble(&self, fragment: &str, times: usize, body: &str) {
        self.lock().garbled.push(Garbled {
            fragment: fragment.to_owned(),
            remaining: times,
            body: body.to_owned(),
        });
    }

    /// Answers the next `times` Key Vault requests whose path contains `fragment` with 503.
    pub fn fail_requests(&self, fragment: &str, times: usize) {
        self.lock().outages.push((fragment.to_owned(), times));
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

    /// Lets only `client_ids` list the secrets of `vault` (others get 403 `ForbiddenByRbac`,
    /// as a role without `secrets/list` does).
    pub fn restrict_list(&self, vault: &str, client_ids: &[&str]) {
        self.restrict(vault, "", client_ids);
    }

    /// Sets the tags of a secret.
    pub fn tag_secret(&self, vault: &str, name: &str, tags: &[(&str, &str)]) {
        let tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.with_vault(vault, |v| v.secret_tags.insert(name.to_owned(), tags));
    }

    /// Deletes a secret (every version; Key Vault moves it to its deleted secrets, which the
    /// secret list does not show).
    pub fn delete_secret(&self, vault: &str, name: &str) {
        self.with_vault(vault, |v| {
            v.secrets.remove(name);
            v.secret_tags.remove(name);
        });
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
    } else if let Some(registry) = host.strip_suffix(&format!(".{REGISTRY_SUFFIX}")) {
        (registry::exchange(&mut state, registry, request), std::time::Duration::ZERO)
    } else {
        (
            json(404, &serde_json::json!({ "error": format!("unknown host {host}") })),
            std::time::Duration::ZERO,
        )
    }
}

//! AKS identity binding (`useAzureTokenProxy: "true"`), as the Azure provider does it: the pod's
//! `api://AKSIdentityBinding` service account token is exchanged for an Azure AD token through
//! the cluster's token proxy instead of Azure AD directly. The token request is the usual
//! client-assertion request, sent to the proxy URL plus the request's own path, over TLS whose
//! server name is the binding's SNI name and whose root is the cluster CA.
//!
//! Without `--sni-name` the SNI name is derived as upstream does: the API server certificate
//! names the cluster (`hcp-kubernetes.<id>.svc.cluster.local`), and the SNI name is
//! `a<base32hex(sha256("identity-binding" + id))>.ests.aks`, lower case.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::{AsyncRawResponse, HttpClient, Request, Url};
use csi_secrets_provider_core::{CloudCalls, Error};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::transport::CountingClient;

/// Audience of the service account token exchanged through the proxy.
pub const IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";
/// Upstream's defaults: the API server's in-cluster name and the pod's service account CA.
pub const DEFAULT_TOKEN_PROXY_URL: &str = "https://kubernetes.default.svc.cluster.local";
pub const DEFAULT_TOKEN_PROXY_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

const API_SERVER_SAN_PREFIX: &str = "hcp-kubernetes.";
const API_SERVER_SAN_SUFFIX: &str = ".svc.cluster.local";

/// Where the token proxy is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProxyOptions {
    pub url: String,
    /// Derived from the API server certificate when `None`.
    pub sni_name: Option<String>,
    pub ca_file: PathBuf,
}

impl Default for TokenProxyOptions {
    fn default() -> Self {
        Self {
            url: DEFAULT_TOKEN_PROXY_URL.to_owned(),
            sni_name: None,
            ca_file: PathBuf::from(DEFAULT_TOKEN_PROXY_CA_FILE),
        }
    }
}

/// The HTTP client of token requests through the proxy, made on first use (deriving the SNI
/// name needs a connection); a failure is reported to the mount and tried again next time.
#[derive(Debug)]
pub(crate) struct TokenProxy {
    options: TokenProxyOptions,
    /// Host names pinned to addresses (`--azure-resolve`), for the proxy too.
    resolve: Vec<(String, std::net::IpAddr)>,
    /// Token requests through the proxy are counted as `aad:Token` too.
    calls: Arc<CloudCalls>,
    client: OnceCell<Arc<dyn HttpClient>>,
}

impl TokenProxy {
    pub(crate) fn new(
        options: TokenProxyOptions,
        resolve: Vec<(String, std::net::IpAddr)>,
        calls: Arc<CloudCalls>,
    ) -> Self {
        Self { options, resolve, calls, client: OnceCell::new() }
    }

    pub(crate) async fn http_client(&self) -> Result<Arc<dyn HttpClient>, Error> {
        self.client.get_or_try_init(|| self.connect()).await.cloned()
    }

    async fn connect(&self) -> Result<Arc<dyn HttpClient>, Error> {
        let failed = |what: String| Error::unavailable(format!("AKS identity binding: {what}"));
        let proxy = Url::parse(&self.options.url)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host_str().is_some())
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "the token proxy URL {:?} must be an https URL",
                    self.options.url
                ))
            })?;
        let host = proxy.host_str().unwrap_or_default().to_owned();
        let port = proxy.port_or_known_default().unwrap_or(443);
        let pem = std::fs::read(&self.options.ca_file).map_err(|e| {
            failed(format!("cannot read the cluster CA {}: {e}", self.options.ca_file.display()))
        })?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            failed(format!("cannot parse the cluster CA {}: {e}", self.options.ca_file.display()))
        })?;
        let builder = || {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .tls_certs_only(roots.clone());
            for (name, ip) in &self.resolve {
                builder = builder.resolve(name, SocketAddr::new(*ip, 0));
            }
            builder
        };
        let sni_name = match &self.options.sni_name {
            Some(name) => name.clone(),
            None => {
                let probe = builder()
                    .tls_info(true)
                    .build()
                    .map_err(|e| failed(format!("cannot create the HTTPS client: {e}")))?;
                let certificate = api_server_certificate(&probe, &proxy)
                    .await
                    .map_err(|e| failed(format!("{e} (set --sni-name to skip discovering the SNI name)")))?;
                sni_name_for(&cluster_id(&certificate).map_err(|e| failed(format!("{e} (set --sni-name)")))?)
            }
        };
        // Connect to the proxy's addresses while TLS (and Host) name the binding's SNI name.
        let pinned =
            self.resolve.iter().find(|(name, _)| *name == host).map(|(_, ip)| SocketAddr::new(*ip, port));
        let addresses: Vec<SocketAddr> = match pinned {
            Some(address) => vec![address],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| failed(format!("cannot resolve the token proxy {host}: {e}")))?
                .collect(),
        };
        let client = builder()
            .resolve_to_addrs(&sni_name, &addresses)
            .build()
            .map_err(|e| failed(format!("cannot create the HTTPS client: {e}")))?;
        let mut base = proxy.clone();
        base.set_host(Some(&sni_name)).map_err(|e| failed(format!("bad SNI name {sni_name:?}: {e}")))?;
        tracing::info!(token_proxy = %self.options.url, sni_name, "AKS identity binding: token proxy configured");
        let counted = CountingClient::new(Arc::new(client), Arc::clone(&self.calls));
        Ok(Arc::new(ProxyClient { inner: Arc::new(counted), base }))
    }
}

/// Sends every request to the proxy: its URL with the request's path appended, the query kept.
#[derive(Debug)]
struct ProxyClient {
    inner: Arc<dyn HttpClient>,
    base: Url,
}

#[async_trait]
impl HttpClient for ProxyClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut url = self.base.clone();
        let path =
            format!("{}/{}", url.path().trim_end_matches('/'), request.url().path().trim_start_matches('/'));
        url.set_path(&path);
        url.set_query(request.url().query());
        let mut rewritten = request.clone();
        *rewritten.url_mut() = url;
        self.inner.execute_request(&rewritten).await
    }
}

/// The API server's leaf certificate, from a TLS connection to the proxy URL.
async fn api_server_certificate(client: &reqwest::Client, proxy: &Url) -> Result<Vec<u8>, String> {
    let response = client
        .get(proxy.as_str())
        .send()
        .await
        .map_err(|e| format!("cannot connect to the API server at {proxy}: {e}"))?;
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("the API server at {proxy} presented no certificate"))
}

/// The cluster id from a `hcp-kubernetes.<id>.svc.cluster.local` name of the certificate.
fn cluster_id(der: &[u8]) -> Result<String, String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("cannot read the API server certificate: {e}"))?;
    let names = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|extension| extension.value.general_names.clone())
        .unwrap_or_default();
    names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns
                .strip_prefix(API_SERVER_SAN_PREFIX)
                .and_then(|rest| rest.strip_suffix(API_SERVER_SAN_SUFFIX))
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            _ => None,
        })
        .ok_or_else(|| "the cluster id is not in the API server certificate".to_owned())
}

/// Upstream's SNI name for a cluster id.
fn sni_name_for(cluster_id: &str) -> String {
    let digest = Sha256::digest(format!("identity-binding{cluster_id}").as_bytes());
    format!("a{}.ests.aks", data_encoding::BASE32HEX_NOPAD.encode(&digest)).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_names_follow_upstream() {
        // sha256("identity-binding" + "testcluster") in base32hex without padding, lower case.
        let name = sni_name_for("testcluster");
        assert!(name.starts_with('a') && name.ends_with(".ests.aks"), "{name}");
        assert_eq!(name.len(), 1 + 52 + ".ests.aks".len(), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'), "{name}");
        // As computed independently: Python's hashlib.sha256 and base64.b32hexencode.
        assert_eq!(name, "af9khffslqcvk96mvd89h63hnufucr6ecgdisbv1v2ck7n6hsu9m0.ests.aks");
        assert_ne!(name, sni_name_for("other"));
    }
}

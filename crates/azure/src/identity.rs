//! Azure AD credentials per identity. Each identity keeps one SDK credential (whose token cache
//! coalesces concurrent requests and refreshes shortly before expiry) and one set of Key Vault
//! clients per vault (which remember the vault's authentication challenge), so mounts and
//! rotation polls of one identity share a token instead of each exchanging its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use csi_secrets_provider_core::Error;
use csi_secrets_provider_core::kit::{Authorization, IdleCache, Method};

use crate::pod_identity::PodIdentityCredential;

/// Whose tokens these are: the kit's one key type, built by [`key`].
pub use csi_secrets_provider_core::kit::IdentityKey;

/// The key of an identity obtained by `method` from the AAD authority `authority`.
pub fn key(method: Method, authority: &str, authorization: Authorization) -> IdentityKey {
    IdentityKey::new("azure", method, Authorization { endpoint: Some(authority.to_owned()), ..authorization })
}

/// The service account token of the newest mount of a workload identity, handed to Azure AD as
/// the client assertion when the credential needs a new token.
#[derive(Clone, Default)]
pub struct ServiceAccountAssertion(Arc<RwLock<String>>);

impl std::fmt::Debug for ServiceAccountAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountAssertion([REDACTED])")
    }
}

impl ServiceAccountAssertion {
    pub fn update(&self, token: &str) {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if *current != token {
            token.clone_into(&mut current);
        }
    }
}

#[async_trait::async_trait]
impl ClientAssertion for ServiceAccountAssertion {
    async fn secret(
        &self,
        _options: Option<azure_core::http::ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        Ok(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The Key Vault clients of one identity for one vault.
#[derive(Clone)]
pub struct VaultClients {
    pub secrets: Arc<SecretClient>,
    pub keys: Arc<KeyClient>,
    pub certificates: Arc<CertificateClient>,
    /// The identity's credential the clients use (for calls outside Key Vault: a registry).
    pub credential: Arc<dyn TokenCredential>,
    /// For AAD pod identity: the credential, which knows the identity NMI assigned.
    pub(crate) pod_identity: Option<Arc<PodIdentityCredential>>,
}

impl std::fmt::Debug for VaultClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClients").field("endpoint", &self.secrets.endpoint().as_str()).finish()
    }
}

#[derive(Debug)]
struct IdentityEntry {
    credential: Arc<dyn TokenCredential>,
    assertion: Option<ServiceAccountAssertion>,
    pod_identity: Option<Arc<PodIdentityCredential>>,
    vaults: Mutex<HashMap<String, VaultClients>>,
}

/// IdentityCache unused this long are dropped (their tokens expire within about an hour anyway),
/// so a node that sees many short-lived service accounts does not grow without bound.
pub const IDLE_EVICTION: Duration = Duration::from_secs(60 * 60);

/// How to build a credential when an identity is first seen.
#[derive(Debug, Clone)]
pub enum CredentialSource<'a> {
    Workload {
        tenant: &'a str,
        client_id: &'a str,
        token: &'a str,
    },
    ServicePrincipal {
        tenant: &'a str,
        client_id: &'a str,
        secret: &'a str,
    },
    VmManaged {
        user_assigned_id: Option<&'a str>,
    },
    PodIdentity {
        namespace: &'a str,
        pod: &'a str,
        nmi: &'a Nmi,
    },
    /// AKS identity binding: a client assertion sent through the token proxy's HTTP client.
    TokenProxy {
        tenant: &'a str,
        client_id: &'a str,
        token: &'a str,
        proxy: Arc<dyn azure_core::http::HttpClient>,
    },
}

/// Where NMI answers (AAD pod identity) and the HTTP client to ask it with.
#[derive(Debug, Clone)]
pub struct Nmi {
    pub http: Arc<dyn azure_core::http::HttpClient>,
    pub endpoint: String,
}

/// Each identity's credential and clients (the kit's [`IdleCache`]), built when an identity is
/// first seen and dropped once unused for [`IDLE_EVICTION`].
#[derive(Debug)]
pub struct IdentityCache {
    entries: IdleCache<IdentityKey, IdentityEntry>,
}

impl Default for IdentityCache {
    fn default() -> Self {
        Self::with_idle_eviction(IDLE_EVICTION)
    }
}

impl IdentityCache {
    pub fn with_idle_eviction(idle_eviction: Duration) -> Self {
        Self { entries: IdleCache::new(idle_eviction) }
    }

    /// The clients for `vault_url` acting as `key`, creating the credential on first use. For a
    /// workload identity the newest service account token replaces the stored assertion.
    pub fn clients(
        &self,
        key: IdentityKey,
        spec: CredentialSource<'_>,
        vault_url: &str,
        options: &ClientOptions,
    ) -> Result<VaultClients, Error> {
        let entry = self.entries.get_or_try_insert(key, || new_entry(&spec, options))?;
        if let (
            Some(assertion),
            CredentialSource::Workload { token, .. } | CredentialSource::TokenProxy { token, .. },
        ) = (&entry.assertion, &spec)
        {
            assertion.update(token);
        }
        let mut vaults = entry.vaults.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(clients) = vaults.get(vault_url) {
            return Ok(clients.clone());
        }
        let credential = Arc::clone(&entry.credential);
        let sdk = |e: azure_core::Error| {
            Error::invalid_config(format!("cannot create Key Vault clients for {vault_url}: {e}"))
        };
        let clients = VaultClients {
            secrets: Arc::new(
                SecretClient::new(
                    vault_url,
                    Arc::clone(&credential),
                    Some(SecretClientOptions { client_options: options.clone(), ..Default::default() }),
                )
                .map_err(sdk)?,
            ),
            keys: Arc::new(
                KeyClient::new(
                    vault_url,
                    Arc::clone(&credential),
                    Some(KeyClientOptions { client_options: options.clone(), ..Default::default() }),
                )
                .map_err(sdk)?,
            ),
            credential: Arc::clone(&credential),
            certificates: Arc::new(
                CertificateClient::new(
                    vault_url,
                    credential,
                    Some(CertificateClientOptions { client_options: options.clone(), ..Default::default() }),
                )
                .map_err(sdk)?,
            ),
            pod_identity: entry.pod_identity.clone(),
        };
        vaults.insert(vault_url.to_owned(), clients.clone());
        Ok(clients)
    }

    /// IdentityCache held, for the tests of reuse and eviction.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

fn new_entry(spec: &CredentialSource<'_>, options: &ClientOptions) -> Result<IdentityEntry, Error> {
    let invalid =
        |e: azure_core::Error| Error::invalid_config(format!("cannot create the Azure credential: {e}"));
    let mut pod_identity = None;
    let (credential, assertion): (Arc<dyn TokenCredential>, _) = match spec {
        CredentialSource::Workload { tenant, client_id, token } => {
            let assertion = ServiceAccountAssertion::default();
            assertion.update(token);
            let credential = ClientAssertionCredential::new(
                (*tenant).to_owned(),
                (*client_id).to_owned(),
                assertion.clone(),
                Some(ClientAssertionCredentialOptions { client_options: options.clone() }),
            )
            .map_err(invalid)?;
            (credential, Some(assertion))
        }
        CredentialSource::ServicePrincipal { tenant, client_id, secret } => {
            let credential = ClientSecretCredential::new(
                tenant,
                (*client_id).to_owned(),
                Secret::from((*secret).to_owned()),
                Some(ClientSecretCredentialOptions { client_options: options.clone() }),
            )
            .map_err(invalid)?;
            (credential, None)
        }
        CredentialSource::VmManaged { user_assigned_id } => {
            let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: user_assigned_id.map(|id| UserAssignedId::ClientId(id.to_owned())),
                client_options: options.clone(),
            }))
            .map_err(invalid)?;
            (credential, None)
        }
        CredentialSource::TokenProxy { tenant, client_id, token, proxy } => {
            let assertion = ServiceAccountAssertion::default();
            assertion.update(token);
            // Token requests go through the proxy; Key Vault requests keep the shared client.
            let through_proxy = ClientOptions {
                transport: Some(azure_core::http::Transport::new(Arc::clone(proxy))),
                ..options.clone()
            };
            let credential = ClientAssertionCredential::new(
                (*tenant).to_owned(),
                (*client_id).to_owned(),
                assertion.clone(),
                Some(ClientAssertionCredentialOptions { client_options: through_proxy }),
            )
            .map_err(invalid)?;
            (credential, Some(assertion))
        }
        CredentialSource::PodIdentity { namespace, pod, nmi } => {
            let credential =
                Arc::new(PodIdentityCredential::new(Arc::clone(&nmi.http), &nmi.endpoint, namespace, pod));
            pod_identity = Some(Arc::clone(&credential));
            (credential, None)
        }
    };
    Ok(IdentityEntry { credential, assertion, pod_identity, vaults: Mutex::new(HashMap::new()) })
}

#[cfg(test)]
mod tests {
    use super::key as key_of;
    use super::*;

    fn key(client_id: &str) -> IdentityKey {
        key_of(
            Method::ServicePrincipal,
            "https://login.test/",
            Authorization {
                principal: client_id.into(),
                tenant: Some("t".into()),
                credential: Some(csi_secrets_provider_core::kit::CredentialDigest::of(b"s")),
                ..Authorization::default()
            },
        )
    }

    fn spec(client_id: &str) -> CredentialSource<'_> {
        CredentialSource::ServicePrincipal { tenant: "t", client_id, secret: "s" }
    }

    #[test]
    fn one_entry_per_identity_and_idle_ones_are_evicted() -> Result<(), Error> {
        let options = ClientOptions::default();
        let identities = IdentityCache::default();
        identities.clients(key("a"), spec("a"), "https://kv.vault.test/", &options)?;
        identities.clients(key("a"), spec("a"), "https://kv2.vault.test/", &options)?;
        identities.clients(key("b"), spec("b"), "https://kv.vault.test/", &options)?;
        assert_eq!(identities.len(), 2, "identities are never shared, and reused across vaults");

        // An identity unused for the eviction window is dropped at the next lookup; with a zero
        // window every earlier one has been idle long enough, without sleeping in the test.
        let evicting = IdentityCache::with_idle_eviction(Duration::ZERO);
        evicting.clients(key("a"), spec("a"), "https://kv.vault.test/", &options)?;
        evicting.clients(key("b"), spec("b"), "https://kv.vault.test/", &options)?;
        assert_eq!(evicting.len(), 1, "the idle identity was dropped");
        Ok(())
    }
}

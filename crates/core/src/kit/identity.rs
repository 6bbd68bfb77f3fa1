//! Whose credentials a mount reads with: one key type for every backend, built from one struct
//! of everything that authorizes a read.
//!
//! The key decides which cached credentials, clients and shared reads a mount may use: two
//! mounts share them only when every field is equal. A backend fills in [`Authorization`] (the
//! fields it has no use for stay at their defaults) instead of writing its own key type, so a
//! field cannot be missed in one backend without the others showing it: a credential a mount
//! supplies itself (a client secret, a key file) is always in the key as its digest, a
//! pod-scoped identity always names its pod, an identity reached through another (an assumed
//! role, an impersonated service account) always carries the chain.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// How a backend obtained an identity: also what a log line or a metric may say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// AWS IRSA: the pod's token exchanged with STS for a role.
    Irsa,
    /// AWS EKS Pod Identity: the pod's token given to the node's agent.
    EksPodIdentity,
    /// Azure workload identity: the pod's token as a client assertion.
    WorkloadIdentity,
    /// Azure identity binding: workload identity through the cluster's token proxy.
    TokenProxy,
    /// Azure AAD pod identity: NMI chooses the identity per pod.
    AadPodIdentity,
    /// Azure: the identity NMI assigned, once known (shared by every pod NMI gives it).
    AadPodIdentityClient,
    /// Azure: a service principal's secret from the node-publish secret.
    ServicePrincipal,
    /// Azure: the node's (VM's) managed identity, system- or user-assigned.
    VmManagedIdentity,
    /// GCP: the pod's token exchanged at STS (principal access).
    FederatedToken,
    /// GCP: the provider's own application default credentials (`auth: provider-adc`).
    ProviderCredentials,
    /// GCP: a service account key from the node-publish secret.
    NodePublishKey,
}

/// Everything that authorizes a read. Fields a method has no use for stay at their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Authorization {
    /// The cloud principal: a role ARN, a client id, a Google service account, a token subject.
    pub principal: String,
    /// Identities reached through the principal, in order (an assumed role with its external
    /// id; a Google service account's delegates, then the service account).
    pub chain: Vec<Link>,
    /// The tenant, project or account the principal is looked up in.
    pub tenant: Option<String>,
    /// The audience a token was exchanged for (GCP's workload identity pool provider).
    pub audience: Option<String>,
    /// Who issues the credential (the AAD authority host).
    pub endpoint: Option<String>,
    /// The Kubernetes service account whose token was exchanged.
    pub service_account: Option<ServiceAccount>,
    /// The pod, for identities that are the pod's own (AAD pod identity; EKS Pod Identity with
    /// its session tags).
    pub pod: Option<String>,
    /// A digest of a credential the mount supplied itself ([`CredentialDigest::of`]).
    pub credential: Option<CredentialDigest>,
}

/// One identity reached through the one before it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// The role or service account reached.
    pub principal: String,
    /// What else the step names (an AWS `ExternalId`).
    pub qualifier: Option<String>,
}

impl Link {
    pub fn to(principal: impl Into<String>) -> Self {
        Self { principal: principal.into(), qualifier: None }
    }
}

/// A Kubernetes service account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

/// The SHA-256 of a credential a mount supplied (a service principal's secret, a service
/// account key file): a rotated or forged credential is another identity, and the key holds no
/// secret. A cryptographic digest, so that nobody can make a credential of theirs collide with
/// another namespace's to borrow its cached client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CredentialDigest([u8; 32]);

impl CredentialDigest {
    pub fn of(credential: &[u8]) -> Self {
        Self(Sha256::digest(credential).into())
    }
}

impl fmt::Debug for CredentialDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialDigest(..)")
    }
}

/// Whose credentials these are: a cached credential, client or read is only ever used for an
/// equal key. Cheap to clone (every read key holds one).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey(Arc<KeyParts>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyParts {
    backend: &'static str,
    method: Method,
    authorization: Authorization,
}

impl IdentityKey {
    /// The key of `backend`'s identity obtained by `method` as `authorization` says.
    pub fn new(backend: &'static str, method: Method, authorization: Authorization) -> Self {
        Self(Arc::new(KeyParts { backend, method, authorization }))
    }

    pub fn backend(&self) -> &'static str {
        self.0.backend
    }

    pub fn method(&self) -> Method {
        self.0.method
    }

    pub fn authorization(&self) -> &Authorization {
        &self.0.authorization
    }

    /// This identity reaching `next` (an assumed role, impersonated accounts): the same key
    /// with `next` at the end of its chain.
    pub fn then(&self, next: impl IntoIterator<Item = Link>) -> Self {
        let mut authorization = self.0.authorization.clone();
        authorization.chain.extend(next);
        Self::new(self.0.backend, self.0.method, authorization)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("backend", &self.0.backend)
            .field("method", &self.0.method)
            .field("authorization", &self.0.authorization)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(namespace: &str) -> Authorization {
        Authorization {
            principal: "client".into(),
            tenant: Some("tenant".into()),
            service_account: Some(ServiceAccount::new(namespace, "sa")),
            ..Authorization::default()
        }
    }

    #[test]
    fn every_field_separates_identities() {
        let base = IdentityKey::new("azure", Method::WorkloadIdentity, workload("a"));
        assert_eq!(base, IdentityKey::new("azure", Method::WorkloadIdentity, workload("a")));
        assert_ne!(base, IdentityKey::new("aws", Method::WorkloadIdentity, workload("a")));
        assert_ne!(base, IdentityKey::new("azure", Method::TokenProxy, workload("a")));
        assert_ne!(base, IdentityKey::new("azure", Method::WorkloadIdentity, workload("b")));
        let variants: Vec<fn(&mut Authorization)> = vec![
            |a| a.principal.push('x'),
            |a| a.chain.push(Link::to("role")),
            |a| a.tenant = None,
            |a| a.audience = Some("aud".into()),
            |a| a.endpoint = Some("https://login".into()),
            |a| a.service_account = None,
            |a| a.pod = Some("pod".into()),
            |a| a.credential = Some(CredentialDigest::of(b"secret")),
        ];
        for change in variants {
            let mut changed = workload("a");
            change(&mut changed);
            assert_ne!(base, IdentityKey::new("azure", Method::WorkloadIdentity, changed));
        }
    }

    #[test]
    fn a_chain_is_another_identity_and_the_digest_hides_the_credential() {
        let base = IdentityKey::new("aws", Method::Irsa, workload("a"));
        let assumed = base.then([Link::to("arn:aws:iam::1:role/x")]);
        assert_ne!(base, assumed);
        let with_external_id =
            base.then([Link { principal: "arn:aws:iam::1:role/x".into(), qualifier: Some("id".into()) }]);
        assert_ne!(assumed, with_external_id);
        assert_eq!(assumed.authorization().chain, [Link::to("arn:aws:iam::1:role/x")]);
        assert_ne!(CredentialDigest::of(b"one"), CredentialDigest::of(b"two"));
        let mut with_secret = workload("a");
        with_secret.credential = Some(CredentialDigest::of(b"hunter2-secret"));
        let shown = format!("{:?}", IdentityKey::new("azure", Method::ServicePrincipal, with_secret));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

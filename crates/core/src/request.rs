//! The mount request model: what the driver sends, decoded and checked once.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::common::CommonParameters;
use crate::error::{Error, Result};
use crate::mode::FileMode;
use crate::parameters::{Parameters, attr};
use crate::response::ObjectVersion;
use crate::sharing::{MountKind, ReadPolicy};

/// Who the mount is for, from the attributes kubelet adds (`podInfoOnMount: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub service_account: Option<String>,
}

impl PodInfo {
    fn from_parameters(parameters: &Parameters) -> Self {
        let get = |key| parameters.get_trimmed(key).map(str::to_owned);
        Self {
            namespace: get(attr::POD_NAMESPACE),
            name: get(attr::POD_NAME),
            uid: get(attr::POD_UID),
            service_account: get(attr::SERVICE_ACCOUNT),
        }
    }

    /// The names kubelet sends are Kubernetes names; they reach Kubernetes API paths
    /// (ServiceAccount lookups), request headers (AAD pod identity's NMI) and cache keys, so
    /// anything else is refused, naming the attribute (the driver sets these from the pod; a
    /// hand-made request or a parameter of the same name must not reach further).
    fn check(&self) -> Result<()> {
        use crate::grammar::{DNS_LABEL, NameRule, lower_digit_or_hyphen, lower_or_digit};
        const SUBDOMAIN: NameRule = NameRule {
            what: "a Kubernetes name",
            words: "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            min: 1,
            max: 253,
            first: lower_or_digit,
            middle: |c| lower_digit_or_hyphen(c) || c == '.',
            last: lower_or_digit,
        };
        const UID: NameRule = NameRule {
            what: "a Kubernetes UID",
            words: "letters, digits and '-'",
            min: 1,
            max: 64,
            first: crate::grammar::alphanumeric_or_hyphen,
            middle: crate::grammar::alphanumeric_or_hyphen,
            last: crate::grammar::alphanumeric_or_hyphen,
        };
        let checks = [
            (&self.namespace, DNS_LABEL, attr::POD_NAMESPACE),
            (&self.name, SUBDOMAIN, attr::POD_NAME),
            (&self.service_account, SUBDOMAIN, attr::SERVICE_ACCOUNT),
            (&self.uid, UID, attr::POD_UID),
        ];
        for (value, rule, key) in checks {
            if let Some(value) = value {
                rule.check(value).map_err(|e| e.with_field(key))?;
            }
        }
        Ok(())
    }

    /// The namespace, or an error naming the attribute kubelet should have sent.
    pub fn require_namespace(&self) -> Result<&str> {
        self.namespace.as_deref().ok_or_else(|| missing_attribute(attr::POD_NAMESPACE))
    }

    pub fn require_name(&self) -> Result<&str> {
        self.name.as_deref().ok_or_else(|| missing_attribute(attr::POD_NAME))
    }

    pub fn require_service_account(&self) -> Result<&str> {
        self.service_account.as_deref().ok_or_else(|| missing_attribute(attr::SERVICE_ACCOUNT))
    }

    /// How cloud calls name the mounting pod (a User-Agent token, an app id), so the cloud's
    /// own logs say which pod read what: `csi-<namespace>.<pod>`; `None` without pod
    /// attributes. Kubernetes names are valid token characters; each backend applies its
    /// service's length limit.
    pub fn caller_name(&self) -> Option<String> {
        Some(format!("csi-{}.{}", self.namespace.as_deref()?, self.name.as_deref()?))
    }
}

fn missing_attribute(key: &str) -> Error {
    Error::invalid_config(format!(
        "the volume attribute {key} is missing; the CSIDriver object must have podInfoOnMount: true"
    ))
    .with_field(key)
}

/// A service account token the driver obtained for one audience.
#[derive(Clone)]
pub struct ServiceAccountToken {
    token: SecretString,
    pub expires_at: Option<SystemTime>,
}

impl ServiceAccountToken {
    pub fn new(token: impl Into<String>, expires_at: Option<SystemTime>) -> Self {
        Self { token: SecretString::from(token.into()), expires_at }
    }

    pub fn expose(&self) -> &str {
        self.token.expose_secret()
    }
}

impl fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at.map(humantime::format_rfc3339_seconds))
            .finish()
    }
}

/// `csi.storage.k8s.io/serviceAccount.tokens`, by audience.
#[derive(Debug, Clone, Default)]
pub struct ServiceAccountTokens {
    /// `None` when the attribute was absent (CSIDriver without `tokenRequests`), which differs
    /// from present-but-lacking-an-audience for error messages.
    by_audience: Option<BTreeMap<String, ServiceAccountToken>>,
}

#[derive(Deserialize)]
struct RawToken {
    token: String,
    #[serde(rename = "expirationTimestamp", default)]
    expiration_timestamp: Option<String>,
}

impl ServiceAccountTokens {
    pub fn from_tokens(tokens: impl IntoIterator<Item = (String, ServiceAccountToken)>) -> Self {
        Self { by_audience: Some(tokens.into_iter().collect()) }
    }

    /// Decodes the attribute's JSON. Malformed input is reported without echoing it: it holds
    /// bearer tokens.
    pub fn parse(json: &str) -> Result<Self> {
        let field = attr::SERVICE_ACCOUNT_TOKENS;
        if json.trim().is_empty() {
            return Ok(Self::from_tokens([]));
        }
        let raw: BTreeMap<String, RawToken> = serde_json::from_str(json).map_err(|e| {
            Error::invalid_config(format!(
                "malformed JSON at line {} column {} (expected an object audience -> {{token, expirationTimestamp}})",
                e.line(),
                e.column()
            ))
            .with_field(field)
        })?;
        let mut by_audience = BTreeMap::new();
        for (audience, raw) in raw {
            let expires_at = match raw.expiration_timestamp.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(stamp) => Some(humantime::parse_rfc3339_weak(stamp).map_err(|e| {
                    Error::invalid_config(format!(
                        "token for audience {audience:?} has an invalid expirationTimestamp {stamp:?}: {e}"
                    ))
                    .with_field(field)
                })?),
            };
            by_audience.insert(audience, ServiceAccountToken::new(raw.token, expires_at));
        }
        Ok(Self { by_audience: Some(by_audience) })
    }

    /// Whether the driver sent the attribute at all.
    pub fn is_provided(&self) -> bool {
        self.by_audience.is_some()
    }

    pub fn get(&self, audience: &str) -> Option<&ServiceAccountToken> {
        self.by_audience.as_ref().and_then(|tokens| tokens.get(audience))
    }
}

/// The node-publish secret (`nodePublishSecretRef`) data. Values are secrets.
#[derive(Clone, Default)]
pub struct NodePublishSecrets(BTreeMap<String, SecretString>);

impl NodePublishSecrets {
    /// Decodes the `secrets` field: `"null"` or empty means none. On Kubernetes >= 1.35 the
    /// service account tokens may arrive here too; they are taken from the attributes instead.
    pub fn parse(json: &str) -> Result<Self> {
        Self::parse_with_tokens(json).map(|(secrets, _)| secrets)
    }

    /// Like [`Self::parse`], also returning the service account tokens attribute when the
    /// secrets carry it (Kubernetes >= 1.35 with `serviceAccountTokenInSecrets`).
    pub fn parse_with_tokens(json: &str) -> Result<(Self, Option<String>)> {
        let trimmed = json.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok((Self::default(), None));
        }
        let raw: Option<BTreeMap<String, String>> = serde_json::from_str(trimmed).map_err(|e| {
            // serde's message may quote a value: report only the position.
            Error::invalid_config(format!(
                "malformed node-publish secrets JSON at line {} column {} (expected an object of strings)",
                e.line(),
                e.column()
            ))
            .with_field("secrets")
        })?;
        let mut raw = raw.unwrap_or_default();
        let tokens = raw.remove(attr::SERVICE_ACCOUNT_TOKENS);
        Ok((Self(raw.into_iter().map(|(key, value)| (key, SecretString::from(value))).collect()), tokens))
    }

    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.0.get(key)
    }

    /// Looks a key up ignoring ASCII case (`clientid`, `ClientID`), as the Azure provider does.
    pub fn get_ignore_ascii_case(&self, key: &str) -> Option<&SecretString> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for NodePublishSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, "[REDACTED]"))).finish()
    }
}

/// One Mount call, decoded.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub parameters: Parameters,
    pub pod: PodInfo,
    pub spc_name: Option<String>,
    pub tokens: ServiceAccountTokens,
    pub secrets: NodePublishSecrets,
    /// The driver's default mode for files without their own `filePermission`.
    pub default_mode: FileMode,
    pub target_path: String,
    /// Only drivers <= v1.5 send these (rotation reconciler); backends may use them as hints.
    pub current_versions: Vec<ObjectVersion>,
    /// When the caller stops waiting. Backends bound retries by it.
    pub deadline: Option<Instant>,
    /// Whether this target path was served before (set by the server): remounts may reuse a
    /// recent read of the same identity (see [`crate::sharing`]).
    pub kind: MountKind,
    /// The parameters every backend accepts (`staleIfError`), checked when decoded.
    pub common: CommonParameters,
    /// The admin policy in force (set by the server): the objects named in the
    /// SecretProviderClass are checked before the backend is called; what a prefix entry
    /// lists is filtered by the backend with [`Self::allows`] before any read.
    pub policy: Option<PolicyGate>,
    /// The SecretProviderClass as the backend parsed it for the policy check (set by the
    /// server from [`crate::SecretBackend::prepare`]), so the mount does not parse it again.
    pub parsed: Option<ParsedSpc>,
}

/// A backend's parsed SecretProviderClass, carried from the policy check to the mount in
/// [`MountRequest::parsed`]; only the backend that made it knows its type.
#[derive(Clone)]
pub struct ParsedSpc(std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl ParsedSpc {
    pub fn new<T: std::any::Any + Send + Sync>(parsed: T) -> Self {
        Self(std::sync::Arc::new(parsed))
    }

    /// The parsed form, if it is a `T` (a backend asks for its own type).
    pub fn get<T: std::any::Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for ParsedSpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParsedSpc(..)")
    }
}

/// A parsed SecretProviderClass, kept from the policy check or parsed for this mount.
#[derive(Debug)]
pub enum ParsedOr<'a, T> {
    Kept(&'a T),
    Now(T),
}

impl<T> std::ops::Deref for ParsedOr<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Self::Kept(parsed) => parsed,
            Self::Now(parsed) => parsed,
        }
    }
}

/// The admin policy as one backend applies it.
#[derive(Debug, Clone)]
pub struct PolicyGate {
    pub policy: std::sync::Arc<crate::policy::Policy>,
    pub backend: &'static str,
}

impl MountRequest {
    /// The backend's parsed SecretProviderClass: the one the policy check made, else `parse`
    /// run now (no policy in force, or a request built elsewhere).
    pub fn parsed_or<T: std::any::Any, E>(
        &self,
        parse: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<ParsedOr<'_, T>, E> {
        match self.parsed.as_ref().and_then(|parsed| parsed.get::<T>()) {
            Some(parsed) => Ok(ParsedOr::Kept(parsed)),
            None => parse().map(ParsedOr::Now),
        }
    }

    /// Whether the admin policy lets this pod's namespace and service account read `object`
    /// (as the backend resolves it, like [`crate::Validation::reads`]); always without a
    /// policy.
    pub fn allows(&self, object: &str) -> bool {
        let Some(gate) = &self.policy else { return true };
        let requester = crate::policy::Requester {
            namespace: self.pod.namespace.as_deref().unwrap_or(""),
            service_account: self.pod.service_account.as_deref().unwrap_or(""),
        };
        gate.policy.decide(gate.backend, requester, object).is_ok()
    }

    /// How this mount's object reads go: remount reuse (or `refreshInterval`) and
    /// `staleIfError`.
    pub fn read_policy(&self) -> ReadPolicy {
        ReadPolicy {
            kind: self.kind,
            stale_if_error: self.common.stale_if_error,
            refresh_interval: self.common.refresh_interval,
        }
    }

    /// How this mount's lookups on the way to its identity go (a service account's role or
    /// annotations, the node's region): like its reads, but never served stale.
    pub fn lookup_policy(&self) -> ReadPolicy {
        ReadPolicy { stale_if_error: None, ..self.read_policy() }
    }

    /// Decodes the driver's fields. `attributes` must be a JSON object of strings. Checked in
    /// the official providers' order, with their words inside ours (alerts match them): the
    /// target path, the attributes, the permission.
    pub fn from_driver(
        attributes_json: &str,
        secrets_json: &str,
        target_path: &str,
        permission: &str,
        current_versions: Vec<ObjectVersion>,
    ) -> Result<Self> {
        if target_path.trim().is_empty() {
            return Err(Error::invalid_config("Missing mount path: the driver sent an empty target path")
                .with_field("target_path"));
        }
        let mut attributes: BTreeMap<String, String> =
            serde_json::from_str(attributes_json).map_err(|e| {
                Error::invalid_config(format!(
                    "failed to unmarshal attributes: malformed attributes JSON at line {} column {}: {} (expected an object of strings)",
                    e.line(),
                    e.column(),
                    e.classify_message()
                ))
                .with_field("attributes")
            })?;
        let (secrets, tokens_in_secrets) = NodePublishSecrets::parse_with_tokens(secrets_json)?;
        // The driver copies tokens from the secrets into the attributes; take them from the
        // secrets only when that copy is missing.
        let tokens = match attributes.remove(attr::SERVICE_ACCOUNT_TOKENS).or(tokens_in_secrets) {
            Some(json) => ServiceAccountTokens::parse(&json)?,
            None => ServiceAccountTokens::default(),
        };
        let parameters = Parameters::new(attributes);
        let common = CommonParameters::parse(&parameters).map_err(Error::from_problems)?;
        let pod = PodInfo::from_parameters(&parameters);
        pod.check()?;
        Ok(Self {
            pod,
            spc_name: parameters.get_trimmed(attr::SPC_NAME).map(str::to_owned),
            tokens,
            secrets,
            default_mode: FileMode::from_driver_permission(permission)?,
            target_path: target_path.to_owned(),
            current_versions,
            parameters,
            deadline: None,
            kind: MountKind::First,
            common,
            policy: None,
            parsed: None,
        })
    }
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    /// A description that never quotes the input.
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "a value is not a string",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const TOKENS: &str = r#"{"sts.amazonaws.com":{"token":"eyJhbGciOi.secret.jwt","expirationTimestamp":"2026-11-25T10:00:00Z"},"api://AzureADTokenExchange":{"token":"azure-jwt"}}"#;

    fn attributes() -> String {
        serde_json::json!({
            "objects": "- objectName: x",
            "secretProviderClass": "my-spc",
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": "shop",
            "csi.storage.k8s.io/pod.uid": "uid-1",
            "csi.storage.k8s.io/serviceAccount.name": "web",
            "csi.storage.k8s.io/serviceAccount.tokens": TOKENS,
        })
        .to_string()
    }

    #[test]
    fn decodes_a_driver_request() -> Result<()> {
        let request = MountRequest::from_driver(&attributes(), "null", "/target", "420", vec![])?;
        assert_eq!(request.pod.namespace.as_deref(), Some("shop"));
        assert_eq!(request.pod.name.as_deref(), Some("web-0"));
        assert_eq!(request.pod.service_account.as_deref(), Some("web"));
        assert_eq!(request.spc_name.as_deref(), Some("my-spc"));
        assert_eq!(request.default_mode, FileMode::DEFAULT);
        assert_eq!(request.parameters.get("objects"), Some("- objectName: x"));
        assert_eq!(request.parameters.get(attr::SERVICE_ACCOUNT_TOKENS), None, "tokens are held apart");
        let sts = request.tokens.get("sts.amazonaws.com").map(ServiceAccountToken::expose);
        assert_eq!(sts, Some("eyJhbGciOi.secret.jwt"));
        assert!(request.tokens.get("sts.amazonaws.com").is_some_and(|t| t.expires_at.is_some()));
        assert_eq!(
            request.tokens.get("api://AzureADTokenExchange").map(ServiceAccountToken::expose),
            Some("azure-jwt")
        );
        assert!(request.secrets.is_empty());
        Ok(())
    }

    #[test]
    fn debug_output_hides_tokens_and_secrets() -> Result<()> {
        let secrets = r#"{"clientid":"id","clientsecret":"s3cr3t-value"}"#;
        let request = MountRequest::from_driver(&attributes(), secrets, "/t", "420", vec![])?;
        let debug = format!("{request:?}");
        assert!(!debug.contains("eyJhbGciOi.secret.jwt"), "{debug}");
        assert!(!debug.contains("azure-jwt"), "{debug}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("clientsecret"));
        Ok(())
    }

    #[test]
    fn tokens_carried_only_in_the_secrets_are_used() -> Result<()> {
        let attributes = serde_json::json!({ "csi.storage.k8s.io/pod.namespace": "shop" }).to_string();
        let secrets = serde_json::json!({ attr::SERVICE_ACCOUNT_TOKENS: TOKENS }).to_string();
        let request = MountRequest::from_driver(&attributes, &secrets, "/t", "420", vec![])?;
        assert_eq!(
            request.tokens.get("api://AzureADTokenExchange").map(ServiceAccountToken::expose),
            Some("azure-jwt")
        );
        assert!(request.secrets.is_empty(), "the token attribute is not a node-publish secret");
        Ok(())
    }

    #[test]
    fn malformed_attributes_name_the_field() {
        for bad in ["{", "[]", r#"{"a": 1}"#, ""] {
            let error = MountRequest::from_driver(bad, "null", "/t", "420", vec![]).err();
            assert_eq!(error.as_ref().map(Error::kind), Some(ErrorKind::InvalidConfig), "{bad}");
            assert_eq!(error.as_ref().and_then(Error::field), Some("attributes"), "{bad}");
        }
    }

    #[test]
    fn malformed_secrets_do_not_echo_values() {
        let error = NodePublishSecrets::parse(r#"{"clientsecret": 123456789}"#).err();
        let text = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("secrets"), "{text}");
        assert!(!text.contains("123456789"), "{text}");
    }

    #[test]
    fn secrets_drop_the_copied_token_attribute_and_match_case_insensitively() -> Result<()> {
        let secrets = NodePublishSecrets::parse(
            &serde_json::json!({
                "ClientID": "abc", attr::SERVICE_ACCOUNT_TOKENS: TOKENS
            })
            .to_string(),
        )?;
        assert_eq!(secrets.keys().collect::<Vec<_>>(), ["ClientID"]);
        assert_eq!(
            secrets.get_ignore_ascii_case("clientid").map(|s| s.expose_secret().to_owned()),
            Some("abc".into())
        );
        Ok(())
    }

    #[test]
    fn absent_tokens_differ_from_missing_audience() -> Result<()> {
        let none = ServiceAccountTokens::default();
        assert!(!none.is_provided());
        let empty = ServiceAccountTokens::parse("{}")?;
        assert!(empty.is_provided());
        assert!(empty.get("sts.amazonaws.com").is_none());
        let bad = ServiceAccountTokens::parse(r#"{"a":{"token":"t","expirationTimestamp":"soon"}}"#).err();
        assert_eq!(bad.as_ref().and_then(Error::field), Some(attr::SERVICE_ACCOUNT_TOKENS));
        let malformed = ServiceAccountTokens::parse(r#"{"a":"secret-jwt"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!malformed.contains("secret-jwt"), "{malformed}");
        Ok(())
    }

    #[test]
    fn bad_permission_is_refused() {
        let error = MountRequest::from_driver(&attributes(), "null", "/t", "0644x", vec![]).err();
        assert_eq!(error.as_ref().and_then(Error::field), Some("permission"));
    }
}

//! Container registry credentials as mountable objects (AWS `objectType: ecr`, Azure
//! `objectType: acr`, GCP `registry:`): a login the pod's identity obtains like a read, kept per
//! identity and registry until half its lifetime is gone, written as a Docker config file that
//! docker, podman, crane and a `kubernetes.io/dockerconfigjson` Secret read.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::files::SecretBytes;
use crate::sharing::HeldBytes;

use super::caches::ExpiringCache;

/// A registry login: who, with what, and for how long. `Debug` shows no password.
#[derive(Clone)]
pub struct RegistryLogin {
    pub host: String,
    pub username: String,
    password: SecretString,
    pub issued_at: SystemTime,
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl RegistryLogin {
    /// A login the registry's service issued at `issued_at`, valid until `expires_at`. One
    /// already expired (or expiring before it was issued) is refused: a pod never gets it.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
        issued_at: SystemTime,
        expires_at: SystemTime,
    ) -> Result<Self> {
        let host = host.into();
        if expires_at <= SystemTime::now().max(issued_at) {
            return Err(Error::unavailable(format!(
                "the registry login for {host} the service answered has already expired (at {})",
                humantime::format_rfc3339_seconds(expires_at)
            ))
            .with_object(&host));
        }
        Ok(Self { host, username: username.into(), password, issued_at, expires_at })
    }

    /// When a mount asks for a new login: once half its lifetime is gone, so a pod's file
    /// always has at least half a lifetime left when written.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self.expires_at.duration_since(self.issued_at).unwrap_or(Duration::ZERO);
        self.issued_at + lifetime / 2
    }

    /// The version a mount reports for it: its expiry (RFC 3339, UTC).
    pub fn version(&self) -> String {
        humantime::format_rfc3339_seconds(self.expires_at).to_string()
    }

    /// The Docker config file: `{"auths":{"<host>":{"username":…,"password":…,"auth":…}}}`
    /// (`auth` is base64 of `username:password`).
    pub fn docker_config(&self) -> SecretBytes {
        let pair = Zeroizing::new(format!("{}:{}", self.username, self.password.expose_secret()));
        let auth = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
        let config = serde_json::json!({
            "auths": {
                self.host.as_str(): {
                    "username": self.username,
                    "password": self.password.expose_secret(),
                    "auth": auth.as_str(),
                }
            }
        });
        let text = Zeroizing::new(config.to_string());
        SecretBytes::new(text.as_bytes().to_vec())
    }
}

/// The file of a registry entry: the login's Docker config at `file_name`, its version the
/// login's expiry; `host` names it (for `writeFile`/`files`).
pub fn registry_file(
    login: &RegistryLogin,
    file_name: &str,
    mode: crate::mode::FileMode,
    shape: crate::shaping::FileShape,
) -> super::Rendered {
    super::Rendered::file(
        crate::response::MountedFile::new(file_name, mode, login.docker_config()).shaped(&login.host, shape),
        crate::response::ObjectVersion::new(file_name, login.version()),
    )
}

impl HeldBytes for RegistryLogin {
    fn held_bytes(&self) -> usize {
        self.host.len() + self.username.len() + self.password.expose_secret().len()
    }
}

/// Logins by identity and registry, each renewed once half its lifetime is gone; concurrent
/// mounts of one identity wait for a single request.
pub fn registry_logins<K: Eq + std::hash::Hash>() -> ExpiringCache<K, RegistryLogin> {
    ExpiringCache::new(Duration::ZERO, |login| Some(login.renew_at()))
}

/// A registry host as an SPC names it: a DNS name (lowercase letters, digits, `-`, `.`),
/// optionally with a port; it becomes a key of the Docker config and the default file name.
pub fn check_registry_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let name_ok = name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok);
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a registry host name (lowercase DNS labels separated by dots, an optional :port)",
            crate::grammar::shown(host)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(issued_ago: u64, lifetime: u64) -> Result<RegistryLogin> {
        let issued = SystemTime::now() - Duration::from_secs(issued_ago);
        RegistryLogin::new(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "AWS",
            SecretString::from("s3cr3t-token".to_owned()),
            issued,
            issued + Duration::from_secs(lifetime),
        )
    }

    #[test]
    fn the_docker_config_carries_user_password_and_auth() -> Result<()> {
        let login = login(0, 43_200)?;
        let config: serde_json::Value = serde_json::from_slice(login.docker_config().expose())
            .map_err(|e| Error::internal(e.to_string()))?;
        let entry = &config["auths"]["123456789012.dkr.ecr.eu-west-1.amazonaws.com"];
        assert_eq!(entry["username"], "AWS");
        assert_eq!(entry["password"], "s3cr3t-token");
        assert_eq!(entry["auth"], base64::engine::general_purpose::STANDARD.encode("AWS:s3cr3t-token"));
        assert!(!format!("{login:?}").contains("s3cr3t"), "Debug shows no password");
        Ok(())
    }

    #[test]
    fn renewed_at_half_life_and_never_expired() -> Result<()> {
        let fresh = login(0, 43_200)?;
        assert_eq!(fresh.renew_at().duration_since(fresh.issued_at).ok(), Some(Duration::from_secs(21_600)));
        assert!(fresh.version().ends_with('Z'));
        let expired = login(100, 50).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(expired.contains("has already expired"), "{expired}");
        Ok(())
    }

    #[test]
    fn hosts_are_dns_names() {
        for good in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "europe-west1-docker.pkg.dev",
            "gcr.io",
            "myreg.azurecr.io",
            "registry.local:5000",
        ] {
            assert_eq!(check_registry_host(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "localhost",
            "UPPER.io",
            "a..b",
            "-a.io",
            "x.io:",
            "x.io:99999x",
            "evil.io/path",
            "x.io#frag",
            "user@x.io",
        ] {
            assert!(check_registry_host(bad).is_err(), "{bad}");
        }
    }
}

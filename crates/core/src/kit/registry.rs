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

    /// The Docker config file of this login alone:
    /// `{"auths":{"<host>":{"username":…,"password":…,"auth":…}}}` (`auth` is base64 of
    /// `username:password`).
    pub fn docker_config(&self) -> SecretBytes {
        docker_config(&[self])
    }
}

/// A registry entry of a SecretProviderClass as a backend parsed it (a backend may keep more
/// beside it: AWS the registry's account and region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    /// The registry host, as written (it keys the Docker config).
    pub host: String,
    /// The entry's file name (`objectAlias`, `path`), else the host.
    pub file_name: String,
    pub mode: crate::mode::FileMode,
    pub optional: bool,
    pub shape: crate::shaping::FileShape,
}

impl RegistrySpec {
    /// The entry as the mount writes it.
    pub fn entry(&self) -> RegistryEntry<'_> {
        RegistryEntry { host: &self.host, file_name: &self.file_name, mode: self.mode, shape: self.shape }
    }
}

/// A registry entry of a SecretProviderClass as the mount writes it.
#[derive(Debug, Clone, Copy)]
pub struct RegistryEntry<'a> {
    /// The registry host, as written: the object's name in records and errors.
    pub host: &'a str,
    /// The file its login goes in; entries naming the same file share one Docker config.
    pub file_name: &'a str,
    pub mode: crate::mode::FileMode,
    pub shape: crate::shaping::FileShape,
}

/// The Docker config holding every login of `logins` (one `auths` entry per registry).
pub fn docker_config(logins: &[&RegistryLogin]) -> SecretBytes {
    let mut auths = serde_json::Map::new();
    for login in logins {
        let pair = Zeroizing::new(format!("{}:{}", login.username, login.password.expose_secret()));
        let auth = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()));
        auths.insert(
            login.host.clone(),
            serde_json::json!({
                "username": login.username,
                "password": login.password.expose_secret(),
                "auth": auth.as_str(),
            }),
        );
    }
    let text = Zeroizing::new(serde_json::json!({ "auths": auths }).to_string());
    SecretBytes::new(text.as_bytes().to_vec())
}

impl super::MountAssembly {
    /// The registry entries of a mount and how each ended (a login, or skipped as optional and
    /// absent): one audit record each, and one Docker config per file name holding the logins
    /// of every entry naming it (several registries merge into one file), its version the
    /// earliest expiry among them (when the file is due for renewal).
    pub fn add_registries(
        &mut self,
        entries: Vec<(RegistryEntry<'_>, std::result::Result<RegistryLogin, crate::outcome::SkippedObject>)>,
    ) {
        let mut files: Vec<&str> = Vec::new();
        for (entry, _) in &entries {
            if !files.contains(&entry.file_name) {
                files.push(entry.file_name);
            }
        }
        for file in files {
            let group: Vec<&(RegistryEntry<'_>, _)> =
                entries.iter().filter(|(e, _)| e.file_name == file).collect();
            let logins: Vec<&RegistryLogin> =
                group.iter().filter_map(|(_, outcome)| outcome.as_ref().ok()).collect();
            let mut rendered = match (group.first(), logins.iter().map(|l| l.expires_at).min()) {
                (Some((first, _)), Some(earliest)) => {
                    let version = humantime::format_rfc3339_seconds(earliest).to_string();
                    super::Rendered::file(
                        crate::response::MountedFile::new(file, first.mode, docker_config(&logins))
                            .shaped(first.host, first.shape),
                        crate::response::ObjectVersion::new(file, version),
                    )
                }
                _ => super::Rendered::default(),
            };
            for (entry, outcome) in group {
                let names = super::ObjectNames { object: entry.host, resolved: entry.host };
                match outcome {
                    Ok(login) => {
                        let served = crate::sharing::Served::fresh(());
                        self.served(names, &login.version(), &served, std::mem::take(&mut rendered));
                    }
                    Err(skipped) => self.skipped(names, skipped.clone()),
                }
            }
        }
    }
}

impl HeldBytes for RegistryLogin {
    fn held_bytes(&self) -> usize {
        self.host.len() + self.username.len() + self.password.expose_secret().len()
    }
}

/// The most registry entries one SecretProviderClass may have.
pub const MAX_REGISTRIES: usize = 32;

/// The most logins a backend keeps (identity × registry, keys an SPC chooses): past it, a new
/// one is asked for every mount.
pub const MAX_KEPT_LOGINS: usize = 4096;

/// Logins by identity and registry, each renewed once half its lifetime is gone; concurrent
/// mounts of one identity wait for a single request; at most [`MAX_KEPT_LOGINS`] kept.
pub fn registry_logins<K: Eq + std::hash::Hash>() -> ExpiringCache<K, RegistryLogin> {
    ExpiringCache::new(Duration::ZERO, |login: &RegistryLogin| Some(login.renew_at()))
        .with_max_slots(MAX_KEPT_LOGINS)
}

/// Plans the file of registry `entry`: added to `plan` for the first registry naming it; a
/// later one (`earlier`: the first) shares that Docker config and must agree on its mode and
/// shape.
pub fn plan_registry_file(
    plan: &mut crate::files::FilePlan,
    earlier: Option<&RegistrySpec>,
    entry: &RegistrySpec,
) -> std::result::Result<(), Error> {
    if entry.optional {
        plan.mark_optional(&entry.host);
    }
    match earlier {
        None => plan
            .add_shaped(&entry.host, entry.file_name.clone(), entry.mode, entry.shape)
            .map_err(|e| e.with_object(&entry.host)),
        Some(earlier) if (earlier.mode, earlier.shape) == (entry.mode, entry.shape) => Ok(()),
        Some(_) => Err(Error::invalid_config(format!(
            "{:?} is the Docker config of several registries, which must agree on its mode and writeFile/expandKeys/decode",
            entry.file_name
        ))
        .with_object(&entry.host)),
    }
}

/// A problem when a SecretProviderClass has more than [`MAX_REGISTRIES`] registry entries.
pub fn check_registry_count(count: usize) -> std::result::Result<(), Error> {
    if count > MAX_REGISTRIES {
        return Err(Error::invalid_config(format!(
            "{count} registry entries, more than the {MAX_REGISTRIES} one SecretProviderClass may have"
        )));
    }
    Ok(())
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

    /// Registries naming one file share one Docker config, its version the earliest expiry;
    /// each gets its audit record; a skipped one is left out of the file.
    #[test]
    fn registries_of_one_file_merge() -> Result<()> {
        let now = SystemTime::now();
        let login = |host: &str, hours: u64| {
            RegistryLogin::new(
                host,
                "u",
                SecretString::from(format!("p-{host}")),
                now,
                now + Duration::from_secs(hours * 3600),
            )
        };
        let (a, b, c) = (login("a.example", 12)?, login("b.example", 3)?, login("c.example", 1)?);
        let entry = |host, file_name| RegistryEntry {
            host,
            file_name,
            mode: crate::mode::FileMode::DEFAULT,
            shape: crate::shaping::FileShape::PLAIN,
        };
        let skipped =
            crate::outcome::SkippedObject { object: "d.example".into(), reason: "not found".into() };
        let mut mount = super::super::MountAssembly::new(Vec::new());
        mount.add_registries(vec![
            (entry("a.example", "config.json"), Ok(a)),
            (entry("c.example", "other.json"), Ok(c)),
            (entry("b.example", "config.json"), Ok(b.clone())),
            (entry("d.example", "config.json"), Err(skipped)),
        ]);
        let response = mount.finish();
        let paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["config.json", "other.json"]);
        let config: serde_json::Value = serde_json::from_slice(response.files[0].contents.expose())
            .map_err(|e| Error::internal(e.to_string()))?;
        let hosts: Vec<&String> = config["auths"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        assert_eq!(hosts, ["a.example", "b.example"]);
        let version = response.versions.iter().find(|v| v.id == "config.json").map(|v| v.version.clone());
        assert_eq!(version, Some(b.version()), "the earliest expiry of the file's logins");
        assert_eq!(response.records.len(), 4, "a record per registry");
        Ok(())
    }

    /// Registries naming one file plan it once, and must agree on its mode and shape.
    #[test]
    fn a_shared_file_is_planned_once_with_one_mode() {
        let entry = |host: &str, mode: u32, optional: bool| RegistrySpec {
            host: host.to_owned(),
            file_name: ".dockerconfigjson".to_owned(),
            mode: crate::mode::FileMode::new(mode).unwrap_or_default(),
            optional,
            shape: crate::shaping::FileShape::PLAIN,
        };
        let first = entry("a.example", 0o400, false);
        let mut plan = crate::files::FilePlan::new();
        assert!(plan_registry_file(&mut plan, None, &first).is_ok());
        assert!(plan_registry_file(&mut plan, Some(&first), &entry("b.example", 0o400, true)).is_ok());
        assert_eq!(plan.optional_objects(), ["b.example"]);
        let refused = plan_registry_file(&mut plan, Some(&first), &entry("c.example", 0o644, false))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("must agree on its mode"), "{refused}");
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

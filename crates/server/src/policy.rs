//! The admin policy as the server holds it (`serve --policy FILE`): loaded at start, where a file
//! that does not parse refuses the start; re-read when the file changes, where a change that does
//! not parse keeps the last good policy (and sets `csi_secrets_provider_policy_valid 0`); and
//! checked for every mount before the backend is called, so a denied object costs no token
//! exchange and no cloud read. The rules themselves are core's ([`Policy`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use csi_secrets_provider_core::{Error, MountRequest, Policy, Requester, Validation};
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

/// How often the file is looked at. A ConfigMap update reaches the pod's volume within about a
/// minute anyway; two seconds adds nothing noticeable to that.
pub const POLICY_POLL: Duration = Duration::from_secs(2);

/// The policy in force, shared by every backend's service.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    path: PathBuf,
    current: Arc<RwLock<Arc<Policy>>>,
    /// The file's content last read, and whether it is the policy in force.
    seen: Arc<RwLock<Vec<u8>>>,
    valid: Arc<AtomicBool>,
}

impl PolicyStore {
    /// Loads `path`; an unreadable or invalid file is the error (the provider does not start).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let content = std::fs::read(path).map_err(|e| {
            Error::invalid_config(format!("cannot read the policy file {}: {e}", path.display()))
        })?;
        let policy = parse(path, &content)?;
        Ok(Self {
            path: path.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(policy))),
            seen: Arc::new(RwLock::new(content)),
            valid: Arc::new(AtomicBool::new(true)),
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the file when its content changed: a policy that parses replaces the one in
    /// force; one that does not is logged and leaves it. Returns whether the file's content is
    /// the policy in force.
    pub fn reload(&self) -> bool {
        let content = match std::fs::read(&self.path) {
            Ok(content) => content,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the policy file; the last good policy stays");
                self.seen.write().unwrap_or_else(PoisonError::into_inner).clear();
                self.valid.store(false, Ordering::Relaxed);
                return false;
            }
        };
        {
            let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
            if *seen == content {
                return self.valid.load(Ordering::Relaxed);
            }
            *seen = content.clone();
        }
        let valid = match parse(&self.path, &content) {
            Ok(policy) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
                tracing::info!(path = %self.path.display(), "policy reloaded");
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "the policy file does not parse; the last good policy stays");
                false
            }
        };
        self.valid.store(valid, Ordering::Relaxed);
        valid
    }

    /// Re-reads the file every [`POLICY_POLL`] until `stop`, keeping `valid` at 1 while the
    /// file's content is the policy in force.
    pub fn watch(self, valid: Gauge, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        valid.set(1);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(POLICY_POLL) => {}
                }
                valid.set(i64::from(self.reload()));
            }
        })
    }
}

fn parse(path: &Path, content: &[u8]) -> Result<Policy, Error> {
    let text = std::str::from_utf8(content)
        .map_err(|_| Error::invalid_config(format!("the policy file {} is not UTF-8", path.display())))?;
    Policy::parse(text).map_err(|e| e.prefixed(format!("policy file {}", path.display())))
}

/// A mount the admin policy refused: the error for the driver, and the objects denied (as the
/// policy names them).
#[derive(Debug)]
pub struct Refusal {
    pub error: Error,
    pub denied: Vec<String>,
}

/// Checks every object `request` would read from `backend` (its parameters parsed as
/// `validation`) against `policy`: `Ok` when all may
/// be read (or when the SecretProviderClass does not parse: the backend refuses it before any
/// call), else a `PermissionDenied` naming each denied object, the namespace and the policy.
pub fn check(
    policy: &Policy,
    backend: &str,
    validation: &Validation,
    request: &MountRequest,
) -> Result<(), Refusal> {
    if !validation.problems.is_empty() {
        return Ok(());
    }
    let requester = Requester {
        namespace: request.pod.namespace.as_deref().unwrap_or(""),
        service_account: request.pod.service_account.as_deref().unwrap_or(""),
    };
    let denials = validation.denials(policy, backend, requester);
    let denied = denials.iter().filter_map(|e| e.object().map(str::to_owned)).collect();
    match Error::combine(denials) {
        Some(error) => Err(Refusal { error, denied }),
        None => Ok(()),
    }
}

//! `v1alpha1.CSIDriverProvider` for one backend.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csi_secrets_provider_core::{
    DRIVER_MAX_RESPONSE_BYTES, Error, MountKind, MountRequest, MountResponse, ObjectRecord, ObjectVersion,
    SecretBackend, check_response_size,
};
use futures::FutureExt;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::audit::{AuditLog, MountFacts};
use crate::metrics::Metrics;
use crate::proto;
use crate::proto::csi_driver_provider_server::CsiDriverProvider;
use crate::status::to_status;
use crate::targets::{MountedTargets, TargetMemory};
use csi_secrets_provider_core::audit::{denied_mount, failed_mount};
use prometheus_client::metrics::gauge::Gauge;

/// Limits applied to every mount.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Largest encoded response; the driver refuses larger ones.
    pub max_response_bytes: usize,
    /// Longest a mount may take when the driver sends no deadline (or a longer one).
    pub mount_timeout: Duration,
    /// Which target paths are remembered to recognise remounts.
    pub targets: TargetMemory,
    /// The admin policy, checked before the backend is called (`serve --policy`).
    pub policy: Option<crate::policy::PolicyStore>,
    /// The audit trail, written before each Mount answers (`serve --audit-log`).
    pub audit: Option<Arc<AuditLog>>,
    /// Where templates and shapes run, off the async workers, bounded by the deadline.
    pub shaping: crate::shaping_pool::ShapingPool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: DRIVER_MAX_RESPONSE_BYTES,
            mount_timeout: Duration::from_secs(60),
            targets: TargetMemory::default(),
            policy: None,
            audit: None,
            shaping: crate::shaping_pool::ShapingPool::default(),
        }
    }
}

/// The provider service for one backend; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProviderService {
    backend: Arc<dyn SecretBackend>,
    config: ServiceConfig,
    /// Mounts being served: the metrics gauge itself, so the drain log and `/metrics` agree.
    in_flight: Gauge,
    metrics: Metrics,
    /// Target paths mounted successfully, shared by every connection to this socket.
    targets: Arc<MountedTargets>,
}

impl ProviderService {
    pub fn new(backend: Arc<dyn SecretBackend>, config: ServiceConfig) -> Self {
        Self::with_metrics(backend, config, Metrics::new())
    }

    /// A service recording into shared `metrics`.
    pub fn with_metrics(backend: Arc<dyn SecretBackend>, config: ServiceConfig, metrics: Metrics) -> Self {
        let in_flight = metrics.in_flight(backend.name());
        let targets = Arc::new(MountedTargets::new(config.targets));
        Self { backend, config, in_flight, metrics, targets }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Mounts being served right now.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.in_flight.get()).unwrap_or(0)
    }

    pub fn version_response() -> proto::VersionResponse {
        proto::VersionResponse {
            version: crate::PROTOCOL_VERSION.to_owned(),
            runtime_name: crate::RUNTIME_NAME.to_owned(),
            runtime_version: crate::RUNTIME_VERSION.to_owned(),
        }
    }

    /// One mount, exactly as the gRPC handler runs it (the `mount` command calls this too):
    /// decode, call the backend within the deadline, enforce the driver's rules, log one line.
    pub async fn mount(
        &self,
        request: proto::MountRequest,
        caller_timeout: Option<Duration>,
    ) -> Result<proto::MountResponse, Error> {
        let started = Instant::now();
        let _guard = InFlightGuard::enter(&self.in_flight);
        let decoded = decode(request);
        let volume = decoded.as_ref().ok().map(volume_key);
        let mut decoded = decoded.map(|mut decoded| {
            decoded.kind = volume.as_deref().map_or(MountKind::First, |volume| self.targets.kind_of(volume));
            decoded
        });
        let mut checked = Prechecked::default();
        let outcome = match &mut decoded {
            Ok(decoded) => self.run(decoded, started, caller_timeout, &mut checked).await,
            Err(error) => Err(error.clone()),
        };
        if let (Some(volume), Ok(_)) = (&volume, &outcome) {
            self.targets.remember(volume);
        }
        log_mount(self.backend.name(), decoded.as_ref().ok(), &outcome, started.elapsed());
        if let Some(audit) = &self.config.audit {
            self.audit(audit, decoded.as_ref().ok(), &outcome, checked, started.elapsed());
        }
        let counted = outcome.as_ref().map(|done| done.response.files.len()).map_err(Error::kind);
        let kind = decoded.as_ref().map_or(MountKind::First, |d| d.kind);
        self.metrics.mount_finished(self.backend.name(), kind, counted, started.elapsed());
        outcome.map(|done| done.response)
    }

    /// The audit lines of one mount: the backend's records when it answered; otherwise what
    /// the SecretProviderClass names, blamed as the error says (see `core::audit`).
    fn audit(
        &self,
        trail: &AuditLog,
        request: Option<&MountRequest>,
        outcome: &Result<Mounted, Error>,
        checked: Prechecked,
        duration: Duration,
    ) {
        let facts = MountFacts { backend: self.backend.name(), request, duration };
        // The SecretProviderClass as the policy check parsed it, else parsed now (failures only).
        let planned = checked.planned;
        let planned = || {
            planned.clone().unwrap_or_else(|| {
                request.map(|r| self.backend.validate(&r.parameters).objects).unwrap_or_default()
            })
        };
        match (outcome, checked.denied.as_deref()) {
            (Ok(done), _) => trail.record(facts, &done.records, None),
            (Err(error), Some(denied)) => trail.record(facts, &denied_mount(&planned(), denied), Some(error)),
            (Err(error), None) => trail.record(facts, &failed_mount(&planned(), error), Some(error)),
        }
    }

    async fn run(
        &self,
        request: &mut MountRequest,
        started: Instant,
        caller_timeout: Option<Duration>,
        checked: &mut Prechecked,
    ) -> Result<Mounted, Error> {
        let budget = caller_timeout.map_or(self.config.mount_timeout, |t| t.min(self.config.mount_timeout));
        // The mount's own request, not a copy (it carries every parameter, `objects` and all):
        // it is given the deadline, the policy gate and the parsed SecretProviderClass here.
        // Before any token exchange or cloud read: a denied object costs nothing. The
        // SecretProviderClass parsed here is the one the backend mounts (parsed once).
        if let Some(policy) = &self.config.policy {
            let prepared = self.backend.prepare(&request.parameters, request.default_mode);
            let refused =
                crate::policy::check(&policy.current(), self.backend.name(), &prepared.validation, request)
                    .err();
            checked.planned = Some(prepared.validation.objects);
            if let Some(refusal) = refused {
                self.metrics.policy_denied(self.backend.name(), refusal.denied.len());
                checked.denied = Some(refusal.denied);
                return Err(refusal.error);
            }
            request.parsed = prepared.parsed;
        }
        let deadline = started + budget;
        request.deadline = Some(deadline);
        request.policy = self.config.policy.as_ref().map(|store| csi_secrets_provider_core::PolicyGate {
            policy: store.current(),
            backend: self.backend.name(),
        });
        let backend_call = AssertUnwindSafe(self.backend.mount(request)).catch_unwind();
        let mut response = match tokio::time::timeout(budget, backend_call).await {
            Err(_elapsed) => {
                return Err(Error::deadline_exceeded(format!("the mount did not finish within {budget:?}")));
            }
            Ok(Err(_panic)) => {
                return Err(Error::internal(format!(
                    "the {} backend failed unexpectedly (panic); see the provider log",
                    self.backend.name()
                )));
            }
            Ok(Ok(result)) => result?,
        };
        response.keep_last_per_path();
        // Files as the application wants them, from every object read, before anything is
        // answered: an error here fails the mount and nothing is written.
        let shaped = if csi_secrets_provider_core::shaping::needs_shaping(&response, &request.common.files) {
            let files = request.common.files.clone();
            let (shaped_response, shaped) = self
                .config
                .shaping
                .shape(deadline, response, files, request.default_mode, self.config.max_response_bytes)
                .await?;
            response = shaped_response;
            shaped
        } else {
            Vec::new()
        };
        self.metrics.files_rendered(self.backend.name(), &shaped);
        response.check()?;
        log_warnings(self.backend.name(), request, &response.warnings);
        log_skipped(self.backend.name(), request, &response.skipped);
        self.metrics.optional_objects_skipped(self.backend.name(), response.skipped.len());
        log_stale(self.backend.name(), request, &response.stale);
        self.metrics.stale_served(self.backend.name(), response.stale.len());
        let encoded = to_proto(&response);
        check_response_size(encoded.encoded_len(), self.config.max_response_bytes, &response.files)?;
        Ok(Mounted { objects: response.versions.len(), response: encoded, records: response.records })
    }
}

/// What the policy check learnt before the backend was called, for the audit trail: the
/// objects it denied, and the SecretProviderClass's objects as it parsed them (so a failed
/// mount's audit lines do not parse it again).
#[derive(Debug, Default)]
struct Prechecked {
    denied: Option<Vec<String>>,
    planned: Option<Vec<ObjectRecord>>,
}

/// A mount that succeeded: what the driver gets, and what the log and the audit trail say.
struct Mounted {
    response: proto::MountResponse,
    /// Object versions reported.
    objects: usize,
    records: Vec<ObjectRecord>,
}

/// Counts a mount in flight until dropped: also when the driver abandons the call and tonic
/// drops the handler's future half-way.
struct InFlightGuard<'a>(&'a Gauge);

impl<'a> InFlightGuard<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What one volume is across its remounts: its target path, and what it mounts for whom (the
/// parameters, which carry the SecretProviderClass's and the pod's namespace, service account
/// and UID; the tokens, new at every republish, are not among them). The driver gives each pod
/// volume a target path of its own; the Secrets Store Sync Controller sends `/mnt/secrets-store`
/// for every SecretSync, which the rest tells apart: two SecretSyncs are one volume only when
/// they ask the same thing as the same identity, and then sharing between them is sharing
/// between identical reads.
///
/// The digest is foldhash's (fixed seed), not SipHash's: it runs over every parameter, the whole
/// `objects` text included, at every mount, and SipHash costs about 2.5 instructions a byte.
/// Neither is collision-resistant against a chosen input; a collision only makes two SecretSyncs
/// of one target path one volume for the remount rule, which shares only identical reads.
fn volume_key(request: &MountRequest) -> String {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = foldhash::quality::FixedState::with_seed(VOLUME_KEY_SEED).build_hasher();
    for (key, value) in request.parameters.iter() {
        key.hash(&mut hasher);
        value.hash(&mut hasher);
    }
    format!("{}#{:016x}", request.target_path, hasher.finish())
}

/// Any constant: the key only has to be the same for the same parameters within one process.
const VOLUME_KEY_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn decode(request: proto::MountRequest) -> Result<MountRequest, Error> {
    let current =
        request.current_object_version.into_iter().map(|v| ObjectVersion::new(v.id, v.version)).collect();
    MountRequest::from_driver(
        &request.attributes,
        &request.secrets,
        &request.target_path,
        &request.permission,
        current,
    )
}

/// The answer to the driver: every file, and the version of every object this mount read (or
/// skipped). The versions a (pre-v1.6) driver sent are not echoed: every object the
/// SecretProviderClass names is read (or skipped) and reported on every mount, so an old id
/// missing from the answer is a folder member that is gone, which the driver's
/// SecretProviderClassPodStatus must stop listing.
fn to_proto(response: &MountResponse) -> proto::MountResponse {
    let mut files: Vec<proto::File> = response
        .files
        .iter()
        .map(|file| proto::File {
            path: file.path.clone(),
            mode: file.mode.to_driver_mode(),
            contents: file.contents.expose().to_vec(),
        })
        .collect();
    // The driver writes nothing for an answer without files (`MountContent`): the files of a
    // folder whose last member was deleted would stay in the pod. One marker file makes it
    // replace the volume's files with it.
    if files.is_empty() {
        files.push(proto::File {
            path: NO_FILES_MARKER.to_owned(),
            mode: 0o444,
            contents: NO_FILES_MARKER_TEXT.as_bytes().to_vec(),
        });
    }
    let versions = response
        .versions
        .iter()
        .map(|v| proto::ObjectVersion { id: v.id.clone(), version: v.version.clone() })
        .collect();
    proto::MountResponse { object_version: versions, error: None, files }
}

/// The one file of a mount that has no other (every object skipped: an optional folder that
/// is empty, optional objects that are absent), docs/folders.md.
pub const NO_FILES_MARKER: &str = ".csi-secrets-provider-no-files";
const NO_FILES_MARKER_TEXT: &str = "No object of this volume has a file now (each was skipped: optional and absent, or an empty optional folder). This file makes the Secrets Store CSI Driver replace the volume's files, which it does not do for an answer without files.\n";

fn log_mount(
    backend: &str,
    request: Option<&MountRequest>,
    outcome: &Result<Mounted, Error>,
    elapsed: Duration,
) {
    let namespace = request.and_then(|r| r.pod.namespace.as_deref()).unwrap_or("-");
    let pod = request.and_then(|r| r.pod.name.as_deref()).unwrap_or("-");
    let spc = request.and_then(|r| r.spc_name.as_deref()).unwrap_or("-");
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Mounted { response, objects, .. }) => tracing::info!(
            backend,
            pod.namespace = namespace,
            pod.name = pod,
            spc,
            remount = request.is_some_and(|r| r.kind.is_remount()),
            objects,
            files = response.files.len(),
            duration_ms,
            outcome = "ok",
            "mount"
        ),
        Err(error) => tracing::warn!(
            backend,
            pod.namespace = namespace,
            pod.name = pod,
            spc,
            remount = request.is_some_and(|r| r.kind.is_remount()),
            duration_ms,
            outcome = "error",
            error.kind = ?error.kind(),
            error = %error,
            "mount"
        ),
    }
}

/// What the mount went on with but the user should fix, one line each, with the pod.
fn log_warnings(backend: &str, request: &MountRequest, warnings: &[csi_secrets_provider_core::Warning]) {
    for warning in warnings {
        tracing::warn!(
            backend,
            pod.namespace = request.pod.namespace.as_deref().unwrap_or("-"),
            pod.name = request.pod.name.as_deref().unwrap_or("-"),
            spc = request.spc_name.as_deref().unwrap_or("-"),
            warning = %warning,
            "SecretProviderClass warning"
        );
    }
}

/// Optional objects the cloud does not have: no file for them, one line each, with the pod.
fn log_skipped(backend: &str, request: &MountRequest, skipped: &[csi_secrets_provider_core::SkippedObject]) {
    for object in skipped {
        tracing::info!(
            backend,
            pod.namespace = request.pod.namespace.as_deref().unwrap_or("-"),
            pod.name = request.pod.name.as_deref().unwrap_or("-"),
            spc = request.spc_name.as_deref().unwrap_or("-"),
            object = %object.object,
            reason = %object.reason,
            "optional object not found; skipped"
        );
    }
}

/// Objects served their last good value during an outage (`staleIfError`): one warning each,
/// with the pod, the object, the value's age and why the fresh read failed.
fn log_stale(backend: &str, request: &MountRequest, stale: &[csi_secrets_provider_core::StaleObject]) {
    for object in stale {
        let age_seconds = object.age.as_secs();
        tracing::warn!(
            backend,
            pod.namespace = request.pod.namespace.as_deref().unwrap_or("-"),
            pod.name = request.pod.name.as_deref().unwrap_or("-"),
            spc = request.spc_name.as_deref().unwrap_or("-"),
            object = %object.object,
            age_seconds,
            reason = %object.reason,
            "cloud unavailable; served the last good value (staleIfError)"
        );
    }
}

/// Reads the gRPC `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        _request: Request<proto::VersionRequest>,
    ) -> Result<Response<proto::VersionResponse>, Status> {
        Ok(Response::new(Self::version_response()))
    }

    async fn mount(
        &self,
        request: Request<proto::MountRequest>,
    ) -> Result<Response<proto::MountResponse>, Status> {
        let timeout =
            request.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        ProviderService::mount(self, request.into_inner(), timeout)
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }
}

//! Prometheus metrics. Labels are bounded: backend, outcome and error kind only; never object
//! names, pods or values.

use std::sync::Arc;
use std::time::Duration;

use csi_secrets_provider_core::{ErrorKind, MountKind, SecretBackend};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabels {
    pub backend: String,
    /// `ok` or the error kind (`invalid_config`, `not_found`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudRequestLabels {
    pub backend: String,
    /// `secretsmanager:GetSecretValue`, `keyvault:GetSecret`, `kubernetes:GetServiceAccount`, ...
    pub api: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SharedReadLabels {
    pub backend: String,
    /// `remount` (a remount took a recent read) or `in_flight` (joined an identical read).
    pub how: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShapedLabels {
    pub backend: String,
    /// `template`, `dotenv`, `properties`, `json`, `yaml` (a `files` entry), `expanded_key`
    /// (`expandKeys`), `decoded` (`decode`).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfoLabels {
    version: String,
    backends: String,
}

/// What the binary is, for `csi_secrets_provider_build_info{version, backends} 1`: which
/// release and which image flavour runs on each node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// The backends compiled in, comma-separated (`aws,azure`), whether served or not.
    pub backends: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self { version: env!("CARGO_PKG_VERSION").to_owned(), backends: String::new() }
    }
}

/// The provider's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    mounts: Family<MountLabels, Counter>,
    mount_seconds: Family<BackendLabels, Histogram>,
    in_flight: Family<BackendLabels, Gauge>,
    files: Family<BackendLabels, Counter>,
    remounts: Family<BackendLabels, Counter>,
    skipped: Family<BackendLabels, Counter>,
    stale: Family<BackendLabels, Counter>,
    policy_denials: Family<BackendLabels, Counter>,
    files_rendered: Family<ShapedLabels, Counter>,
    policy_valid: Gauge,
    audit_write_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_backends(&[], &BuildInfo::default())
    }

    /// Metrics that also report, on each scrape, the cloud calls and sharing figures of
    /// `backends`, and what the binary is (`build`).
    pub fn with_backends(backends: &[Arc<dyn SecretBackend>], build: &BuildInfo) -> Self {
        let mut registry = Registry::with_prefix("csi_secrets_provider");
        let build_info = Family::<BuildInfoLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildInfoLabels {
                version: build.version.clone(),
                backends: build.backends.clone(),
            })
            .set(1);
        registry.register(
            "build_info",
            "The provider's version and compiled-in backends (always 1)",
            build_info,
        );
        let mounts = Family::<MountLabels, Counter>::default();
        registry.register("mounts", "Mount calls by backend and outcome", mounts.clone());
        let mount_seconds = Family::<BackendLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
        });
        registry.register("mount_duration_seconds", "Mount call duration by backend", mount_seconds.clone());
        let in_flight = Family::<BackendLabels, Gauge>::default();
        registry.register("mounts_in_flight", "Mount calls being served", in_flight.clone());
        let files = Family::<BackendLabels, Counter>::default();
        registry.register("files_returned", "Files returned to the driver", files.clone());
        let remounts = Family::<BackendLabels, Counter>::default();
        registry.register(
            "remounts",
            "Mount calls for a target path already served (kubelet republish, rotation)",
            remounts.clone(),
        );
        let skipped = Family::<BackendLabels, Counter>::default();
        registry.register(
            "optional_objects_skipped",
            "Optional objects (optional: true) skipped because the cloud does not have them",
            skipped.clone(),
        );
        let stale = Family::<BackendLabels, Counter>::default();
        registry.register(
            "stale_served",
            "Objects served their last good value because the cloud was out (staleIfError)",
            stale.clone(),
        );
        let policy_denials = Family::<BackendLabels, Counter>::default();
        registry.register(
            "policy_denials",
            "Objects the admin policy (serve --policy) denied, before any cloud call",
            policy_denials.clone(),
        );
        let files_rendered = Family::<ShapedLabels, Counter>::default();
        registry.register(
            "files_rendered",
            "Files the provider built from objects: files entries by kind, expandKeys files, decoded files",
            files_rendered.clone(),
        );
        let policy_valid = Gauge::default();
        policy_valid.set(1);
        registry.register(
            "policy_valid",
            "1 while the policy file's content is the policy in force (or there is no policy); 0 when it no longer parses and the last good policy stays",
            policy_valid.clone(),
        );
        let audit_write_errors = Counter::default();
        registry.register(
            "audit_write_errors",
            "Audit trail lines (serve --audit-log) that could not be written: disk full, file removed; mounts go on",
            audit_write_errors.clone(),
        );
        registry.register_collector(Box::new(BackendStatsCollector { backends: backends.to_vec() }));
        Self {
            registry: Arc::new(registry),
            mounts,
            mount_seconds,
            in_flight,
            files,
            remounts,
            skipped,
            stale,
            policy_denials,
            files_rendered,
            policy_valid,
            audit_write_errors,
        }
    }

    /// The in-flight gauge of a backend. The service raises and lowers it around each mount
    /// with a drop guard, so a call the driver abandons (its future dropped) still counts down.
    pub fn in_flight(&self, backend: &str) -> Gauge {
        self.in_flight.get_or_create(&BackendLabels { backend: backend.to_owned() }).clone()
    }

    pub fn mount_finished(
        &self,
        backend: &str,
        kind: MountKind,
        outcome: Result<usize, ErrorKind>,
        elapsed: Duration,
    ) {
        let labels = BackendLabels { backend: backend.to_owned() };
        if kind.is_remount() {
            self.remounts.get_or_create(&labels).inc();
        }
        self.mount_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Ok(files) = outcome {
            self.files.get_or_create(&labels).inc_by(u64::try_from(files).unwrap_or(u64::MAX));
        }
        let outcome = outcome.map_or_else(ErrorKind::as_str, |_| "ok");
        self.mounts
            .get_or_create(&MountLabels { backend: backend.to_owned(), outcome: outcome.to_owned() })
            .inc();
    }

    /// Counts optional objects a mount skipped.
    pub fn optional_objects_skipped(&self, backend: &str, count: usize) {
        if count > 0 {
            self.skipped
                .get_or_create(&BackendLabels { backend: backend.to_owned() })
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// Counts objects a mount was served stale (`staleIfError`).
    pub fn stale_served(&self, backend: &str, count: usize) {
        if count > 0 {
            self.stale
                .get_or_create(&BackendLabels { backend: backend.to_owned() })
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// Counts files a mount built (`files`, `expandKeys`, `decode`), one kind per file.
    pub fn files_rendered(&self, backend: &str, kinds: &[&'static str]) {
        for kind in kinds {
            self.files_rendered
                .get_or_create(&ShapedLabels { backend: backend.to_owned(), kind: (*kind).to_owned() })
                .inc();
        }
    }

    /// Counts objects the admin policy denied.
    pub fn policy_denied(&self, backend: &str, count: usize) {
        self.policy_denials
            .get_or_create(&BackendLabels { backend: backend.to_owned() })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// The counter of audit lines that could not be written.
    pub fn audit_write_errors(&self) -> Counter {
        self.audit_write_errors.clone()
    }

    /// The gauge that says whether the policy file's content is in force.
    pub fn policy_valid(&self) -> Gauge {
        self.policy_valid.clone()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// Reads each backend's own counters on every scrape.
#[derive(Debug)]
struct BackendStatsCollector {
    backends: Vec<Arc<dyn SecretBackend>>,
}

impl Collector for BackendStatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests = Family::<CloudRequestLabels, Counter>::default();
        let shared = Family::<SharedReadLabels, Counter>::default();
        let held = Family::<BackendLabels, Gauge>::default();
        for backend in &self.backends {
            let Some(stats) = backend.stats() else { continue };
            let name = backend.name().to_owned();
            for call in stats.cloud_calls.snapshot() {
                let labels = CloudRequestLabels {
                    backend: name.clone(),
                    api: call.api.to_owned(),
                    outcome: call.outcome.as_str().to_owned(),
                };
                requests.get_or_create(&labels).inc_by(call.count);
            }
            let shared_by = |how: &str| SharedReadLabels { backend: name.clone(), how: how.to_owned() };
            shared.get_or_create(&shared_by("remount")).inc_by(stats.sharing.remount_hits());
            shared.get_or_create(&shared_by("in_flight")).inc_by(stats.sharing.in_flight_joins());
            held.get_or_create(&BackendLabels { backend: name })
                .set(i64::try_from(stats.sharing.bytes_held()).unwrap_or(i64::MAX));
        }
        let described = [
            (
                "cloud_requests",
                "Requests to the cloud and the APIs around it (token exchange, Kubernetes lookups) by API and outcome",
                &requests as &dyn EncodeMetric,
            ),
            (
                "shared_reads",
                "Reads served without asking the cloud: by a recent read (remount) or one in flight",
                &shared,
            ),
            ("shared_read_bytes", "Bytes of values held for remounts to share", &held),
        ];
        for (name, help, metric) in described {
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_backend_and_outcome() {
        let metrics = Metrics::new();
        let in_flight = metrics.in_flight("aws");
        in_flight.inc();
        in_flight.dec();
        metrics.mount_finished("aws", MountKind::First, Ok(3), Duration::from_millis(20));
        metrics.mount_finished(
            "aws",
            MountKind::Remount { previous: tokio::time::Instant::now() },
            Err(ErrorKind::NotFound),
            Duration::from_millis(5),
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"csi_secrets_provider_mounts_total{backend="aws",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"csi_secrets_provider_mounts_total{backend="aws",outcome="not_found"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"csi_secrets_provider_files_returned_total{backend="aws"} 3"#), "{text}");
        assert!(text.contains(r#"csi_secrets_provider_mounts_in_flight{backend="aws"} 0"#), "{text}");
        assert!(text.contains(r#"csi_secrets_provider_remounts_total{backend="aws"} 1"#), "{text}");
        assert!(
            text.contains("csi_secrets_provider_mount_duration_seconds_count{backend=\"aws\"} 2"),
            "{text}"
        );
    }

    #[derive(Debug, Default)]
    struct Counting(csi_secrets_provider_core::BackendStats);

    #[async_trait::async_trait]
    impl SecretBackend for Counting {
        fn name(&self) -> &'static str {
            "aws"
        }
        fn validate(
            &self,
            _: &csi_secrets_provider_core::Parameters,
        ) -> csi_secrets_provider_core::Validation {
            csi_secrets_provider_core::Validation::default()
        }
        async fn mount(
            &self,
            _: &csi_secrets_provider_core::MountRequest,
        ) -> csi_secrets_provider_core::Result<csi_secrets_provider_core::MountResponse> {
            Err(csi_secrets_provider_core::Error::internal("not used"))
        }
        fn stats(&self) -> Option<&csi_secrets_provider_core::BackendStats> {
            Some(&self.0)
        }
    }

    #[test]
    fn backend_counters_are_read_on_each_scrape() {
        let backend = Arc::new(Counting::default());
        let metrics =
            Metrics::with_backends(&[backend.clone() as Arc<dyn SecretBackend>], &BuildInfo::default());
        backend.0.cloud_calls.record("secretsmanager:GetSecretValue", &Ok(()));
        backend.0.cloud_calls.record_kind("kubernetes:GetServiceAccount", Some(ErrorKind::PermissionDenied));
        let text = metrics.render();
        for expected in [
            r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="secretsmanager:GetSecretValue",outcome="ok"} 1"#,
            r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="kubernetes:GetServiceAccount",outcome="permission_denied"} 1"#,
            r#"csi_secrets_provider_shared_reads_total{backend="aws",how="remount"} 0"#,
            r#"csi_secrets_provider_shared_read_bytes{backend="aws"} 0"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        backend.0.cloud_calls.record("secretsmanager:GetSecretValue", &Ok(()));
        assert!(metrics.render().contains(
            r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="secretsmanager:GetSecretValue",outcome="ok"} 2"#
        ));
    }

    /// Every series name and label name the provider exports once it has served each kind of
    /// mount, from a real scrape.
    fn exported() -> (std::collections::BTreeSet<String>, std::collections::BTreeSet<String>) {
        let backend = Arc::new(Counting::default());
        let metrics =
            Metrics::with_backends(&[backend.clone() as Arc<dyn SecretBackend>], &BuildInfo::default());
        backend.0.cloud_calls.record("secretsmanager:GetSecretValue", &Ok(()));
        let _in_flight = metrics.in_flight("aws");
        metrics.mount_finished("aws", MountKind::First, Ok(1), Duration::from_millis(3));
        metrics.optional_objects_skipped("aws", 1);
        metrics.stale_served("aws", 1);
        metrics.policy_denied("aws", 1);
        metrics.files_rendered("aws", &["template"]);
        metrics.mount_finished(
            "aws",
            MountKind::Remount { previous: tokio::time::Instant::now() },
            Err(ErrorKind::Throttled),
            Duration::from_millis(3),
        );
        let mut series = std::collections::BTreeSet::new();
        let mut labels = std::collections::BTreeSet::new();
        for line in metrics.render().lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            series.insert(line[..name_end].to_owned());
            if let Some(set) = line.get(name_end..).and_then(|rest| rest.strip_prefix('{')) {
                for pair in set.split(',') {
                    if let Some((name, _)) = pair.split_once('=') {
                        labels.insert(name.to_owned());
                    }
                }
            }
        }
        (series, labels)
    }

    fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    match child {
                        serde_json::Value::String(text) if key == "expr" || key == "definition" => {
                            out.push(text.clone());
                        }
                        _ => queries(child, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
            _ => {}
        }
    }

    /// docs/grafana-dashboard.json parses, and asks only for series and labels the provider
    /// exports (plus Prometheus' own `instance` and the histogram's `le`): a renamed metric
    /// fails here instead of leaving an empty panel.
    #[test]
    fn grafana_dashboard_queries_only_exported_metrics() -> Result<(), Box<dyn std::error::Error>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let mut exprs = Vec::new();
        queries(&dashboard, &mut exprs);
        assert!(exprs.len() >= 10, "{exprs:?}");
        let (series, mut labels) = exported();
        labels.extend(["instance".to_owned(), "le".to_owned()]);
        let mut used = std::collections::BTreeSet::new();
        for expr in &exprs {
            for (start, _) in expr.match_indices("csi_secrets_provider_") {
                let name: String =
                    expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                assert!(series.contains(&name), "{name} is not exported; exported: {series:?}");
                used.insert(name);
            }
            for (start, _) in expr.match_indices(" by (") {
                let rest = &expr[start + 5..];
                let list = &rest[..rest.find(')').unwrap_or(rest.len())];
                for label in list.split(',').map(str::trim) {
                    assert!(labels.contains(label), "label {label} in {expr} is not exported");
                }
            }
        }
        // Every metric family has a panel.
        for family in [
            "mounts_total",
            "mount_duration_seconds_bucket",
            "mounts_in_flight",
            "files_returned_total",
            "remounts_total",
            "optional_objects_skipped_total",
            "stale_served_total",
            "policy_denials_total",
            "files_rendered_total",
            "policy_valid",
            "cloud_requests_total",
            "shared_reads_total",
            "shared_read_bytes",
            "build_info",
        ] {
            assert!(used.contains(&format!("csi_secrets_provider_{family}")), "no panel for {family}");
        }
        Ok(())
    }
}

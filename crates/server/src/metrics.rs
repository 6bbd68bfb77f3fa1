//! Prometheus metrics. Labels are bounded: backend, outcome and error kind only; never object
//! names, pods or values.

use std::sync::Arc;
use std::time::Duration;

use csi_secrets_provider_core::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
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

/// The provider's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    mounts: Family<MountLabels, Counter>,
    mount_seconds: Family<BackendLabels, Histogram>,
    in_flight: Family<BackendLabels, Gauge>,
    files: Family<BackendLabels, Counter>,
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
        let mut registry = Registry::with_prefix("csi_secrets_provider");
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
        Self { registry: Arc::new(registry), mounts, mount_seconds, in_flight, files }
    }

    /// The in-flight gauge of a backend. The service raises and lowers it around each mount
    /// with a drop guard, so a call the driver abandons (its future dropped) still counts down.
    pub fn in_flight(&self, backend: &str) -> Gauge {
        self.in_flight.get_or_create(&BackendLabels { backend: backend.to_owned() }).clone()
    }

    pub fn mount_finished(&self, backend: &str, outcome: Result<usize, ErrorKind>, elapsed: Duration) {
        let labels = BackendLabels { backend: backend.to_owned() };
        self.mount_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Ok(files) = outcome {
            self.files.get_or_create(&labels).inc_by(u64::try_from(files).unwrap_or(u64::MAX));
        }
        let outcome = match outcome {
            Ok(_) => "ok",
            Err(ErrorKind::InvalidConfig) => "invalid_config",
            Err(ErrorKind::NotFound) => "not_found",
            Err(ErrorKind::PermissionDenied) => "permission_denied",
            Err(ErrorKind::Throttled) => "throttled",
            Err(ErrorKind::Unavailable) => "unavailable",
            Err(ErrorKind::DeadlineExceeded) => "deadline_exceeded",
            Err(ErrorKind::Internal) => "internal",
        };
        self.mounts
            .get_or_create(&MountLabels { backend: backend.to_owned(), outcome: outcome.to_owned() })
            .inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_backend_and_outcome() {
        let metrics = Metrics::new();
        let in_flight = metrics.in_flight("aws");
        in_flight.inc();
        in_flight.dec();
        metrics.mount_finished("aws", Ok(3), Duration::from_millis(20));
        metrics.mount_finished("aws", Err(ErrorKind::NotFound), Duration::from_millis(5));
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
        assert!(
            text.contains("csi_secrets_provider_mount_duration_seconds_count{backend=\"aws\"} 2"),
            "{text}"
        );
    }
}

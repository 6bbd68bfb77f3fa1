//! HTTP `/healthz` and `/readyz` for kubelet probes, and `/metrics` for Prometheus. Both ask each socket for `Version`, as the
//! driver's own health check does, so a socket that vanished from the host directory (or a
//! wedged server) fails the probe and kubelet restarts us, which recreates the socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::proto::VersionRequest;
use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
use crate::uds;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct HealthState {
    sockets: Arc<Vec<PathBuf>>,
    draining: Arc<AtomicBool>,
    metrics: Metrics,
}

impl HealthState {
    pub fn new(sockets: Vec<PathBuf>, metrics: Metrics) -> Self {
        Self { sockets: Arc::new(sockets), draining: Arc::new(AtomicBool::new(false)), metrics }
    }

    /// From now on `/readyz` fails: we are shutting down.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Problems with the sockets; empty when every socket answers `Version`.
    pub async fn probe(&self) -> Vec<String> {
        let probes = self.sockets.iter().map(|path| async move {
            let mut client = CsiDriverProviderClient::new(uds::channel(path.clone()));
            let call = client.version(VersionRequest { version: crate::PROTOCOL_VERSION.to_owned() });
            match tokio::time::timeout(PROBE_TIMEOUT, call).await {
                Ok(Ok(_)) => None,
                Ok(Err(status)) => Some(format!("{}: {}", path.display(), status.message())),
                Err(_) => Some(format!("{}: no answer within {PROBE_TIMEOUT:?}", path.display())),
            }
        });
        futures::future::join_all(probes).await.into_iter().flatten().collect()
    }
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(state): State<HealthState>) -> (StatusCode, String) {
    answer(state.probe().await)
}

async fn readyz(State(state): State<HealthState>) -> (StatusCode, String) {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_owned());
    }
    answer(state.probe().await)
}

async fn metrics(State(state): State<HealthState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.render(),
    )
}

fn answer(problems: Vec<String>) -> (StatusCode, String) {
    if problems.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n")
    }
}

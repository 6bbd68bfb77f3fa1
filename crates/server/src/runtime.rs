//! `serve`: one socket per backend, health endpoints, and a bounded graceful drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use csi_secrets_provider_core::SecretBackend;
use tokio::task::JoinSet;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::health::{self, HealthState};
use crate::metrics::{BuildInfo, Metrics};
use crate::proto::csi_driver_provider_server::CsiDriverProviderServer;
use crate::service::{ProviderService, ServiceConfig};
use crate::uds::{self, BoundSocket, Removal};

/// The driver's default provider directory, as the AWS provider uses.
pub const DEFAULT_PROVIDER_VOLUME: &str = "/var/run/secrets-store-csi-providers";

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Directory of the sockets: `<provider_volume>/<backend>.sock`.
    pub provider_volume: PathBuf,
    /// Where to answer `/healthz`, `/readyz` and `/metrics`; off when `None`.
    pub health_addr: Option<SocketAddr>,
    /// How long in-flight calls may run after a stop signal.
    pub grace_period: Duration,
    pub service: ServiceConfig,
    /// What the `build_info` metric reports.
    pub build: BuildInfo,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            provider_volume: PathBuf::from(DEFAULT_PROVIDER_VOLUME),
            health_addr: None,
            grace_period: Duration::from_secs(25),
            service: ServiceConfig::default(),
            build: BuildInfo::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no backend to serve")]
    NoBackends,
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot listen for health checks on {addr}: {source}")]
    HealthBind { addr: SocketAddr, source: io::Error },
    #[error("the server for {socket} stopped: {message}")]
    Server { socket: PathBuf, message: String },
}

/// The socket path of a backend.
pub fn socket_path(provider_volume: &Path, backend: &str) -> PathBuf {
    provider_volume.join(format!("{backend}.sock"))
}

/// Serves every backend on its own socket until `shutdown` completes, then stops accepting,
/// lets in-flight calls finish within the grace period, and removes the sockets.
pub async fn serve(
    options: ServeOptions,
    backends: Vec<Arc<dyn SecretBackend>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if backends.is_empty() {
        return Err(ServeError::NoBackends);
    }
    let stop = CancellationToken::new();
    let mut bound = Vec::new();
    for backend in &backends {
        let path = socket_path(&options.provider_volume, backend.name());
        match uds::bind(&path) {
            Ok((listener, socket)) => bound.push((Arc::clone(backend), socket, listener)),
            Err(source) => {
                remove_sockets(bound.iter().map(|(_, socket, _)| socket));
                return Err(ServeError::Bind { path, source });
            }
        }
    }
    let owned: Vec<BoundSocket> = bound.iter().map(|(_, socket, _)| socket.clone()).collect();
    let sockets: Vec<PathBuf> = owned.iter().map(|socket| socket.path.clone()).collect();
    let metrics = Metrics::with_backends(&backends, &options.build);
    let health_state = HealthState::new(sockets.clone(), metrics.clone());

    let mut servers = JoinSet::new();
    let mut services = Vec::new();
    for (backend, socket, listener) in bound {
        let path = socket.path;
        let service = ProviderService::with_metrics(backend, options.service.clone(), metrics.clone());
        services.push(service.clone());
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_serving::<CsiDriverProviderServer<ProviderService>>().await;
        let stopped = stop.clone().cancelled_owned();
        servers.spawn(async move {
            let result = Server::builder()
                .add_service(health_service)
                .add_service(CsiDriverProviderServer::new(service))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    stopped.await;
                    reporter.set_not_serving::<CsiDriverProviderServer<ProviderService>>().await;
                })
                .await;
            (path, result.map_err(|e| e.to_string()))
        });
    }

    let mut health_task = None;
    if let Some(addr) = options.health_addr {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(source) => {
                stop.cancel();
                servers.shutdown().await;
                remove_sockets(owned.iter());
                return Err(ServeError::HealthBind { addr, source });
            }
        };
        // The bound address, so a port of 0 shows which one was chosen.
        let addr = listener.local_addr().unwrap_or(addr);
        let router = health::router(health_state.clone());
        let stopped = stop.clone().cancelled_owned();
        health_task =
            Some(tokio::spawn(
                async move { axum::serve(listener, router).with_graceful_shutdown(stopped).await },
            ));
        tracing::info!(%addr, "health and metrics endpoints /healthz, /readyz and /metrics listening");
    }
    let names: Vec<&str> = services.iter().map(ProviderService::backend_name).collect();
    tracing::info!(
        backends = ?names,
        sockets = ?sockets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        version = crate::RUNTIME_VERSION,
        "serving"
    );

    let mut failure = None;
    tokio::select! {
        () = shutdown => {}
        Some(finished) = servers.join_next() => {
            // A server that stops on its own is a fault: stop the others too.
            failure = Some(match finished {
                Ok((socket, Err(message))) => ServeError::Server { socket, message },
                Ok((socket, Ok(()))) => ServeError::Server { socket, message: "stopped unexpectedly".to_owned() },
                Err(join) => ServeError::Server { socket: PathBuf::new(), message: join.to_string() },
            });
        }
    }

    health_state.set_draining();
    stop.cancel();
    let in_flight: usize = services.iter().map(ProviderService::in_flight).sum();
    tracing::info!(in_flight, grace_period = ?options.grace_period, "stopping: no new connections, draining");
    let drained = tokio::time::timeout(options.grace_period, async {
        while let Some(finished) = servers.join_next().await {
            if let Ok((socket, Err(message))) = finished {
                tracing::warn!(socket = %socket.display(), %message, "server ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        let abandoned: usize = services.iter().map(ProviderService::in_flight).sum();
        tracing::warn!(abandoned, "grace period elapsed; abandoning calls still in flight");
        servers.shutdown().await;
    }
    if let Some(task) = health_task {
        task.abort();
    }
    remove_sockets(owned.iter());
    tracing::info!("stopped");
    failure.map_or(Ok(()), Err)
}

/// Removes the sockets this process bound, leaving any a successor bound since.
fn remove_sockets<'a>(sockets: impl Iterator<Item = &'a BoundSocket>) {
    for socket in sockets {
        match socket.remove_if_ours() {
            Ok(Removal::Replaced) => tracing::info!(
                socket = %socket.path.display(),
                "the socket now belongs to a newer provider; leaving it"
            ),
            Ok(Removal::Removed | Removal::Gone) => {}
            Err(e) => tracing::warn!(socket = %socket.path.display(), error = %e, "cannot remove socket"),
        }
    }
}

/// Completes on SIGTERM (kubelet stopping the pod) or SIGINT (Ctrl-C), naming the signal.
pub async fn termination_signal() -> io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

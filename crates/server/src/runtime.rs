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
    /// A listener already bound for them (wins over `health_addr`): an embedder or a test binds
    /// port 0 itself and knows the address before serving, with no bind-release-rebind race.
    pub health_listener: Option<Arc<std::net::TcpListener>>,
    /// How long in-flight calls may run after a stop signal.
    pub grace_period: Duration,
    pub service: ServiceConfig,
    /// What the `build_info` metric reports.
    pub build: BuildInfo,
    /// The admin policy file (`serve --policy`): loaded at start, re-read when it changes.
    pub policy_file: Option<PathBuf>,
    /// The audit trail (`serve --audit-log`): a file appended to, or stdout; off when `None`.
    pub audit_log: Option<crate::audit::AuditTarget>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            provider_volume: PathBuf::from(DEFAULT_PROVIDER_VOLUME),
            health_addr: None,
            health_listener: None,
            grace_period: Duration::from_secs(25),
            service: ServiceConfig::default(),
            build: BuildInfo::default(),
            policy_file: None,
            audit_log: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no backend to serve")]
    NoBackends,
    #[error("cannot listen on {path}: {source}{hint}")]
    Bind { path: PathBuf, source: io::Error, hint: String },
    #[error("cannot listen for health checks on {addr}: {source}")]
    HealthBind { addr: SocketAddr, source: io::Error },
    #[error("{0}")]
    Policy(csi_secrets_provider_core::Error),
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog { path: PathBuf, source: io::Error },
    #[error("the server for {socket} stopped: {message}")]
    Server { socket: PathBuf, message: String },
}

/// Why a socket could not be made in a directory another user owns (the GCP provider's
/// chart leaves `/etc/kubernetes/secrets-store-csi-providers` to 1000:1000), and what to do.
fn ownership_hint(socket: &Path, error: &io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    if error.kind() != io::ErrorKind::PermissionDenied {
        return String::new();
    }
    let Some(metadata) = socket.parent().and_then(|dir| std::fs::metadata(dir).ok()) else {
        return String::new();
    };
    format!(
        " (the directory is owned by {}:{} with mode {:o}; this process runs as another user \
         without capabilities: run as that user, or let `csi-secrets-provider prepare-volume` \
         give the directory to this user first: the chart's providerVolumeChown=true)",
        metadata.uid(),
        metadata.gid(),
        metadata.mode() & 0o7777
    )
}

/// The socket path of a backend.
pub fn socket_path(provider_volume: &Path, backend: &str) -> PathBuf {
    provider_volume.join(format!("{backend}.sock"))
}

/// A backend's socket, bound and not yet served.
struct BoundBackend {
    backend: Arc<dyn SecretBackend>,
    socket: BoundSocket,
    listener: tokio::net::UnixListener,
}

/// The servers of a running provider, and what its drain needs.
struct Running {
    servers: JoinSet<(PathBuf, Result<(), String>)>,
    services: Vec<ProviderService>,
    owned: Vec<BoundSocket>,
    health_state: HealthState,
    health_task: Option<tokio::task::JoinHandle<io::Result<()>>>,
    stop: CancellationToken,
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
    // A policy that does not parse refuses the start: serving without it would widen access.
    let mut options = options;
    if let Some(path) = &options.policy_file {
        options.service.policy = Some(crate::policy::PolicyStore::load(path).map_err(ServeError::Policy)?);
    }
    // An audit file that cannot be written refuses the start too: the operator asked for a trail.
    let audit = match options.audit_log.clone() {
        Some(target) => {
            Some(crate::audit::AuditLog::open(target.clone(), Default::default()).map_err(|source| {
                let path = match target {
                    crate::audit::AuditTarget::File(path) => path,
                    crate::audit::AuditTarget::Stdout => PathBuf::from("-"),
                };
                ServeError::AuditLog { path, source }
            })?)
        }
        None => None,
    };
    let bound = bind_sockets(&options.provider_volume, &backends)?;
    let mut running = start(&options, &backends, bound, audit).await?;
    let failure = tokio::select! {
        () = shutdown => None,
        Some(finished) = running.servers.join_next() => {
            // A server that stops on its own is a fault: stop the others too.
            Some(match finished {
                Ok((socket, Err(message))) => ServeError::Server { socket, message },
                Ok((socket, Ok(()))) => ServeError::Server { socket, message: "stopped unexpectedly".to_owned() },
                Err(join) => ServeError::Server { socket: PathBuf::new(), message: join.to_string() },
            })
        }
    };
    drain(running, options.grace_period).await;
    failure.map_or(Ok(()), Err)
}

/// Binds (or takes over) every backend's socket; on a failure, removes those already bound.
fn bind_sockets(
    provider_volume: &Path,
    backends: &[Arc<dyn SecretBackend>],
) -> Result<Vec<BoundBackend>, ServeError> {
    let mut bound: Vec<BoundBackend> = Vec::new();
    for backend in backends {
        let path = socket_path(provider_volume, backend.name());
        match uds::bind(&path) {
            Ok((listener, socket)) => {
                bound.push(BoundBackend { backend: Arc::clone(backend), socket, listener })
            }
            Err(source) => {
                remove_sockets(bound.iter().map(|b| &b.socket));
                let hint = ownership_hint(&path, &source);
                return Err(ServeError::Bind { path, source, hint });
            }
        }
    }
    Ok(bound)
}

/// Starts one gRPC server per socket and the health endpoints.
async fn start(
    options: &ServeOptions,
    backends: &[Arc<dyn SecretBackend>],
    bound: Vec<BoundBackend>,
    audit: Option<crate::audit::AuditLog>,
) -> Result<Running, ServeError> {
    let stop = CancellationToken::new();
    let owned: Vec<BoundSocket> = bound.iter().map(|b| b.socket.clone()).collect();
    let sockets: Vec<PathBuf> = owned.iter().map(|socket| socket.path.clone()).collect();
    let metrics = Metrics::with_backends(backends, &options.build);
    let health_state = HealthState::new(sockets.clone(), metrics.clone());
    if let Some(policy) = &options.service.policy {
        // Ends with the stop token; a poll in progress is harmless to abandon.
        drop(policy.clone().watch(metrics.policy_valid(), stop.clone()));
    }

    let mut service_config = options.service.clone();
    if let Some(mut audit) = audit {
        audit.set_error_counter(metrics.audit_write_errors());
        service_config.audit = Some(Arc::new(audit));
    }
    let mut servers = JoinSet::new();
    let mut services = Vec::new();
    for BoundBackend { backend, socket, listener } in bound {
        let service = ProviderService::with_metrics(backend, service_config.clone(), metrics.clone());
        services.push(service.clone());
        servers.spawn(serve_socket(socket.path, listener, service, stop.clone()));
    }
    let health_task = match start_health(options, &health_state, &stop).await {
        Ok(task) => task,
        Err(error) => {
            stop.cancel();
            servers.shutdown().await;
            remove_sockets(owned.iter());
            return Err(error);
        }
    };
    let names: Vec<&str> = services.iter().map(ProviderService::backend_name).collect();
    tracing::info!(
        backends = ?names,
        sockets = ?sockets.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        version = crate::RUNTIME_VERSION,
        "serving"
    );
    Ok(Running { servers, services, owned, health_state, health_task, stop })
}

/// One socket's gRPC server (the driver's service and gRPC health) until `stop`.
async fn serve_socket(
    path: PathBuf,
    listener: tokio::net::UnixListener,
    service: ProviderService,
    stop: CancellationToken,
) -> (PathBuf, Result<(), String>) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_serving::<CsiDriverProviderServer<ProviderService>>().await;
    let result = Server::builder()
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            stop.cancelled().await;
            reporter.set_not_serving::<CsiDriverProviderServer<ProviderService>>().await;
        })
        .await;
    (path, result.map_err(|e| e.to_string()))
}

/// `/healthz`, `/readyz` and `/metrics` on the configured listener or address, if any.
async fn start_health(
    options: &ServeOptions,
    state: &HealthState,
    stop: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<io::Result<()>>>, ServeError> {
    let listener = match (&options.health_listener, options.health_addr) {
        (Some(listener), _) => {
            let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let owned = listener.try_clone().and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            });
            owned.map_err(|source| ServeError::HealthBind { addr, source })?
        }
        (None, Some(addr)) => tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::HealthBind { addr, source })?,
        (None, None) => return Ok(None),
    };
    // The bound address, so a port of 0 shows which one was chosen.
    let addr = listener.local_addr().map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
    let router = health::router(state.clone());
    let stopped = stop.clone().cancelled_owned();
    let task =
        tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stopped).await });
    tracing::info!(%addr, "health and metrics endpoints /healthz, /readyz and /metrics listening");
    Ok(Some(task))
}

/// Stops accepting, lets in-flight calls finish within `grace_period`, then removes the sockets
/// this process still owns.
async fn drain(mut running: Running, grace_period: Duration) {
    running.health_state.set_draining();
    running.stop.cancel();
    let in_flight: usize = running.services.iter().map(ProviderService::in_flight).sum();
    tracing::info!(in_flight, ?grace_period, "stopping: no new connections, draining");
    let drained = tokio::time::timeout(grace_period, async {
        while let Some(finished) = running.servers.join_next().await {
            if let Ok((socket, Err(message))) = finished {
                tracing::warn!(socket = %socket.display(), %message, "server ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        let abandoned: usize = running.services.iter().map(ProviderService::in_flight).sum();
        tracing::warn!(abandoned, "grace period elapsed; abandoning calls still in flight");
        running.servers.shutdown().await;
    }
    if let Some(task) = running.health_task {
        task.abort();
    }
    remove_sockets(running.owned.iter());
    tracing::info!("stopped");
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

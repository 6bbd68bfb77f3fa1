//! Running the provider: in-process on a temporary socket directory, or as a real process.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csi_secrets_provider_core::SecretBackend;
use csi_secrets_provider_server::{ServeOptions, serve};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::DriverClient;

/// The provider served in this test process, on sockets in a temporary directory.
#[derive(Debug)]
pub struct InProcess {
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), csi_secrets_provider_server::ServeError>>>,
}

impl InProcess {
    pub async fn start(backends: Vec<Arc<dyn SecretBackend>>) -> io::Result<Self> {
        Self::start_with(backends, |_| {}).await
    }

    pub async fn start_with(
        backends: Vec<Arc<dyn SecretBackend>>,
        configure: impl FnOnce(&mut ServeOptions),
    ) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut options = ServeOptions {
            provider_volume: dir.path().to_path_buf(),
            health_addr: None,
            grace_period: Duration::from_secs(5),
            ..ServeOptions::default()
        };
        configure(&mut options);
        let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        let sockets: Vec<PathBuf> =
            names.iter().map(|n| options.provider_volume.join(format!("{n}.sock"))).collect();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(options, backends, async move {
            let _ = stopped.await;
        }));
        for socket in &sockets {
            wait_for_socket(socket, Duration::from_secs(10)).await?;
        }
        Ok(Self { dir, stop: Some(stop), task: Some(task) })
    }

    pub fn socket(&self, backend: &str) -> PathBuf {
        self.dir.path().join(format!("{backend}.sock"))
    }

    pub fn client(&self, backend: &str) -> DriverClient {
        DriverClient::new(&self.socket(backend))
    }

    /// Stops like SIGTERM would and waits for the drain.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Waits until `path` exists (a test backend's `startedFile`): the mount is in flight.
pub async fn wait_for_file(path: &Path, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} never appeared", path.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Waits until a socket answers `Version`.
pub async fn wait_for_socket(socket: &Path, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if socket.exists() && DriverClient::new(socket).version().await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} never answered", socket.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A provider binary running as its own process, its stderr captured in a file.
#[derive(Debug)]
pub struct ProviderProcess {
    pub child: Child,
    pub dir: TempDir,
    pub log: PathBuf,
    /// The socket directory (`--provider-volume`).
    pub provider_volume: PathBuf,
}

impl ProviderProcess {
    /// Starts `binary serve --provider-volume <tmp> <extra args>`.
    pub fn serve(binary: &str, extra: &[&str]) -> io::Result<Self> {
        Self::serve_with_env(binary, extra, &[], &[])
    }

    /// Like [`Self::serve`], with variables set and removed in the child's environment only.
    pub fn serve_with_env(
        binary: &str,
        extra: &[&str],
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> io::Result<Self> {
        Self::serve_in(binary, None, extra, set, remove)
    }

    /// Starts `binary serve` on `provider_volume` (a directory of its own when `None`): two
    /// processes on one directory are a rolling update with surge.
    pub fn serve_in(
        binary: &str,
        provider_volume: Option<&Path>,
        extra: &[&str],
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("provider.log");
        let provider_volume = provider_volume.map_or_else(|| dir.path().join("sockets"), Path::to_path_buf);
        let mut command = Command::new(binary);
        for name in remove {
            command.env_remove(name);
        }
        let child = command
            .envs(set.iter().copied())
            .arg("serve")
            .arg("--provider-volume")
            .arg(&provider_volume)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { child, dir, log, provider_volume })
    }

    pub fn socket(&self, backend: &str) -> PathBuf {
        self.provider_volume.join(format!("{backend}.sock"))
    }

    /// Sends a signal by name (TERM, INT) with the system `kill`, keeping tests free of unsafe.
    pub fn signal(&self, name: &str) -> io::Result<()> {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status()?;
        if status.success() { Ok(()) } else { Err(io::Error::other(format!("kill -{name} failed"))) }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the provider did not exit"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of `/healthz` and `/metrics`, from the provider's start-up log line (start it
    /// with `--health-addr 127.0.0.1:0` so the system picks a free port).
    pub async fn health_addr(&self, timeout: Duration) -> io::Result<std::net::SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .log_text()
                .lines()
                .filter(|line| line.contains("/metrics"))
                .find_map(|line| line.split("addr=").nth(1)?.split_whitespace().next()?.parse().ok());
            if let Some(addr) = found {
                return Ok(addr);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no health address in the provider log"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

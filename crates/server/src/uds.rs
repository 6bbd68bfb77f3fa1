//! Unix socket plumbing: binding with stale-socket replacement, and a client channel (used by
//! the HTTP health probe, `mount` tests and the test harness).

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint};

/// Binds `path`, replacing a socket file a previous run left behind. Anything else at that path
/// (a directory, a regular file) is left alone and reported: it is not ours to delete.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(socket = %path.display(), "replacing stale socket");
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; refusing to replace it", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // Only the driver (root) needs to connect; nobody else on the node should.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A gRPC channel over the Unix socket at `path`, shaped like the driver's (authority
/// `localhost`). Connects lazily on first use.
pub fn channel(path: impl Into<PathBuf>) -> Channel {
    let path: PathBuf = path.into();
    // The URI is only used for the `:authority` header, as with the driver's `unix://` dialer.
    Endpoint::from_static("http://localhost").connect_with_connector_lazy(tower::service_fn(move |_| {
        let path = path.clone();
        async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_but_other_files_are_not() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("nested/aws.sock");
        let first = bind(&socket)?;
        drop(first);
        assert!(socket.exists(), "a dropped listener leaves its file behind");
        let _second = bind(&socket)?;
        let mode = std::fs::metadata(&socket)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let file = dir.path().join("azure.sock");
        std::fs::write(&file, b"not a socket")?;
        let error = bind(&file).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("is not a socket"), "{error}");
        assert_eq!(std::fs::read(&file)?, b"not a socket");
        Ok(())
    }
}

//! Unix socket plumbing: binding that takes a socket over from a previous or still-running
//! provider, removal that leaves a successor's socket alone, and a client channel (used by the
//! HTTP health probe, `mount` tests and the test harness).
//!
//! A DaemonSet update with `maxSurge` starts the new provider on the node while the old one
//! still serves the same directory. The new one binds a fresh socket at the path (the driver's
//! next dial reaches it); the old one finishes its in-flight calls on the connections it has and,
//! on exit, removes the socket file only if it is still the one it bound.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint};

/// A socket file this process bound, told apart from a later one at the same path. The inode
/// number alone is not enough: a removed socket's number is reused at once for the next one, so
/// the change time (to the nanosecond) is part of the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSocket {
    pub path: PathBuf,
    identity: FileIdentity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    changed: (i64, i64),
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self { device: meta.dev(), inode: meta.ino(), changed: (meta.ctime(), meta.ctime_nsec()) }
    }
}

impl BoundSocket {
    /// Removes the socket file if it is still the one this process bound; a successor's socket
    /// (a rolling update started a new provider on this directory) is left to it.
    pub fn remove_if_ours(&self) -> io::Result<Removal> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if FileIdentity::of(&meta) == self.identity => {
                std::fs::remove_file(&self.path)?;
                Ok(Removal::Removed)
            }
            Ok(_) => Ok(Removal::Replaced),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Gone),
            Err(e) => Err(e),
        }
    }
}

/// What [`BoundSocket::remove_if_ours`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Another process bound the path since; its socket stays.
    Replaced,
    /// Nothing was there any more.
    Gone,
}

/// Binds `path`. A socket already there is taken over: a stale one a previous run left behind,
/// or a live one whose provider is being replaced (rolling update with surge). Anything else at
/// that path (a directory, a regular file) is left alone and reported: it is not ours to delete.
pub fn bind(path: &Path) -> io::Result<(UnixListener, BoundSocket)> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                tracing::info!(
                    socket = %path.display(),
                    "taking over a live socket from another provider (rolling update); it finishes its own calls"
                );
            } else {
                tracing::info!(socket = %path.display(), "replacing stale socket");
            }
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
    let identity = FileIdentity::of(&std::fs::symlink_metadata(path)?);
    Ok((listener, BoundSocket { path: path.to_path_buf(), identity }))
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
        let (first, first_bound) = bind(&socket)?;
        drop(first);
        assert!(socket.exists(), "a dropped listener leaves its file behind");
        let (_second, second_bound) = bind(&socket)?;
        assert_eq!(first_bound.remove_if_ours()?, Removal::Replaced, "the successor's socket stays");
        assert!(socket.exists());
        assert_eq!(second_bound.remove_if_ours()?, Removal::Removed);
        assert!(!socket.exists());
        assert_eq!(second_bound.remove_if_ours()?, Removal::Gone);
        let _third = bind(&socket)?;
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

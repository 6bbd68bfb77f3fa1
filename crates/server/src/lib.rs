//! The Secrets Store CSI Driver provider service (`v1alpha1.CSIDriverProvider`) over Unix
//! sockets: request decoding, the driver's response rules, error-to-status mapping, graceful
//! drain, gRPC and HTTP health.
#![forbid(unsafe_code)]

mod audit;
mod health;
mod metrics;
mod policy;
mod runtime;
mod service;
mod shaping_pool;
mod status;
mod targets;
pub mod uds;

/// Code generated from `proto/v1alpha1/service.proto` at build time.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("v1alpha1");

    impl std::fmt::Debug for File {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("File")
                .field("path", &self.path)
                .field("mode", &format_args!("{:#o}", self.mode))
                .field("contents", &format_args!("[REDACTED {} bytes]", self.contents.len()))
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn file_debug_hides_contents() {
            let file = super::File { path: "db".to_owned(), mode: 0o600, contents: b"hunter2".to_vec() };
            let response = super::MountResponse { files: vec![file], ..Default::default() };
            let debug = format!("{response:?}");
            assert!(!debug.contains("hunter2") && !debug.contains("104, 117"), "{debug}");
            assert!(debug.contains("[REDACTED 7 bytes]"), "{debug}");
        }
    }
}

pub use audit::{AuditLog, AuditTarget};
pub use metrics::{BuildInfo, Metrics};
pub use policy::{POLICY_POLL, PolicyStore};
pub use runtime::{DEFAULT_PROVIDER_VOLUME, ServeError, ServeOptions, serve, termination_signal};
pub use service::{NO_FILES_MARKER, ProviderService, ServiceConfig};
pub use shaping_pool::ShapingPool;
pub use targets::{MountedTargets, TargetMemory};

/// What `Version` answers as `runtime_name`.
pub const RUNTIME_NAME: &str = "csi-secrets-provider";
/// What `Version` answers as `runtime_version`: the workspace version.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The protocol version the driver sends and expects back.
pub const PROTOCOL_VERSION: &str = "v1alpha1";

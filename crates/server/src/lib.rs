//! The Secrets Store CSI Driver provider service (`v1alpha1.CSIDriverProvider`) over Unix
//! sockets: request decoding, the driver's response rules, error-to-status mapping, graceful
//! drain, gRPC and HTTP health.
#![forbid(unsafe_code)]

pub mod health;
pub mod runtime;
pub mod service;
pub mod status;
pub mod uds;

/// Code generated from `proto/v1alpha1/service.proto` at build time.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}

pub use runtime::{ServeError, ServeOptions, serve, termination_signal};
pub use service::{ProviderService, ServiceConfig};

/// What `Version` answers as `runtime_name`.
pub const RUNTIME_NAME: &str = "csi-secrets-provider";
/// What `Version` answers as `runtime_version`: the workspace version.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The protocol version the driver sends and expects back.
pub const PROTOCOL_VERSION: &str = "v1alpha1";

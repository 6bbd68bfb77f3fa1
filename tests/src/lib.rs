//! Test support for csi-secrets-provider: a driver-shaped gRPC client, ways to run the provider
//! (in-process and as a process), a backend that lives in test code only, and fake peers
//! (Kubernetes API, AWS proxy in front of moto, Pod Identity agent).
#![forbid(unsafe_code)]

pub mod aws;
pub mod azure;
pub mod backend;
pub mod client;
pub mod conformance;
pub mod harness;
pub mod http_server;
pub mod kube_api;
pub mod tls;
pub mod worlds;

pub use backend::TestBackend;
pub use client::{DriverClient, file_contents, http_get, new_target_path, pod_attributes};
pub use harness::{InProcess, ProviderProcess, wait_for_file, wait_for_socket};

//! Test support for csi-secrets-provider: a driver-shaped gRPC client, ways to run the provider
//! (in-process and as a process) and a backend that lives in test code only.
#![forbid(unsafe_code)]

pub mod backend;
pub mod client;
pub mod harness;

pub use backend::TestBackend;
pub use client::{DriverClient, pod_attributes};
pub use harness::{InProcess, ProviderProcess, wait_for_socket};

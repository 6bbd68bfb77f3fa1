//! Test support for csi-secrets-provider: a driver-shaped gRPC client, ways to run the provider
//! (in-process and as a process), a backend that lives in test code only, and fake peers
//! (Kubernetes API, AWS proxy in front of moto, Pod Identity agent).
#![forbid(unsafe_code)]

pub mod aws;
pub mod azure;
pub mod backend;
pub mod bench;
pub mod client;
pub mod conformance;
mod conformance_certs;
mod conformance_files;
mod conformance_folders;
mod conformance_trail;
pub mod connect_proxy;
pub mod driver;
pub mod driver_paths;
pub mod gcp;
pub mod harness;
pub mod http_server;
pub mod jwt;
pub mod kube_api;
pub mod pod;
pub mod tls;
pub mod worlds;

pub use backend::TestBackend;
pub use client::{
    DriverClient, file_contents, file_paths, file_text, http_get, new_target_path, pod_attributes,
};
pub use harness::{InProcess, ProviderProcess, wait_for_file, wait_for_socket};

/// The example SecretProviderClasses (`examples/*.yaml`), sorted.
pub fn example_files() -> std::io::Result<Vec<std::path::PathBuf>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The provider binary a benchmark drives: `--binary` when given, else the
/// `csi-secrets-provider` next to the running program (what a release build ships), as a
/// UTF-8 path.
pub fn provider_binary(given: Option<&str>) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let binary = match given {
        Some(binary) => std::path::PathBuf::from(binary),
        None => std::env::current_exe()?.parent().ok_or("no parent directory")?.join("csi-secrets-provider"),
    };
    if !binary.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --locked -p csi-secrets-provider -p csi-secrets-provider-tests --bins",
            binary.display()
        )
        .into());
    }
    Ok(binary.to_str().ok_or("non-UTF-8 path")?.to_owned())
}

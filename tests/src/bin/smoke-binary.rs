//! Smoke test of a shipped binary, e.g. the arm64 image's binary under qemu-user:
//!
//!   smoke-binary --binary PATH [--runner qemu-aarch64-static]
//!
//! With the binary (through the runner, when given) it checks what a node would do first:
//! `--version` names the compiled-in backends; `validate` passes every example; `serve` answers
//! Version on each backend's socket and mounts a secret through each cloud's test peer (moto at
//! `MOTO_ENDPOINT` for AWS, with IRSA through the HTTPS Kubernetes test API; the Key Vault +
//! Azure AD test server for Azure; the Google test peer for GCP, through Google's SDK), so TLS,
//! the crypto provider and the allocator of that build all run; TERM stops it cleanly. Prints one line per check; exits non-zero on the first failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use csi_secrets_provider_tests::bench::flag_values;
use csi_secrets_provider_tests::worlds::{
    AZURE_VAULT, AwsWorld, AzureWorld, BoxError, GCP_NAMESPACE, GcpWorld,
};
use csi_secrets_provider_tests::{DriverClient, ProviderProcess, example_files, file_contents};

struct Options {
    binary: PathBuf,
    runner: Option<PathBuf>,
}

fn options() -> Result<Options, BoxError> {
    let mut binary = None;
    let mut runner = None;
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--binary" => binary = Some(PathBuf::from(value)),
            "--runner" => runner = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag} (--binary PATH [--runner PROGRAM])").into()),
        }
    }
    Ok(Options { binary: binary.ok_or("--binary PATH is required")?, runner })
}

/// The command that runs the binary: directly, or as `runner binary` (the test harness starts
/// a program by path, so a runner gets a one-line wrapper script).
fn launcher(options: &Options, dir: &Path) -> Result<String, BoxError> {
    let binary = std::fs::canonicalize(&options.binary)?;
    let Some(runner) = &options.runner else {
        return Ok(binary.to_str().ok_or("non-UTF-8 path")?.to_owned());
    };
    let script = dir.join("provider");
    std::fs::write(&script, format!("#!/bin/sh\nexec {} {} \"$@\"\n", runner.display(), binary.display()))?;
    let status = Command::new("chmod").arg("+x").arg(&script).status()?;
    if !status.success() {
        return Err("chmod failed".into());
    }
    Ok(script.to_str().ok_or("non-UTF-8 path")?.to_owned())
}

fn check(what: &str, ok: bool, detail: &str) -> Result<(), BoxError> {
    if ok {
        println!("ok    {what}");
        Ok(())
    } else {
        Err(format!("FAIL  {what}: {detail}").into())
    }
}

async fn version_call(socket: &Path, backend: &str) -> Result<(), BoxError> {
    let version = DriverClient::new(socket).version().await?;
    check(
        &format!("{backend}: Version over {}", socket.display()),
        version.runtime_name == "csi-secrets-provider" && !version.runtime_version.is_empty(),
        &format!("{version:?}"),
    )
}

async fn aws(binary: &str) -> Result<(), BoxError> {
    let mut world = AwsWorld::start(binary, "smoke", &[]).await?;
    version_call(&world.provider.socket("aws"), "aws").await?;
    let name = world.name("smoke");
    world.put_secret(&name, "smoke-value").await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: smoke}}");
    let response = world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    check(
        "aws: IRSA mount through STS and the Kubernetes API (TLS) returns the secret",
        file_contents(&response, "smoke") == Ok(b"smoke-value".as_slice()),
        "wrong or missing file",
    )?;
    stop(&mut world.provider, "aws")
}

async fn azure(binary: &str) -> Result<(), BoxError> {
    let mut world = AzureWorld::start(binary, &[]).await?;
    version_call(&world.provider.socket("azure"), "azure").await?;
    world.azure.set_secret(AZURE_VAULT, "smoke", "smoke-value");
    let response = world.mount(&["objectName: smoke\nobjectType: secret"]).await?;
    check(
        "azure: workload identity mount (token exchange, 401 challenge, TLS) returns the secret",
        file_contents(&response, "smoke") == Ok(b"smoke-value".as_slice()),
        "wrong or missing file",
    )?;
    stop(&mut world.provider, "azure")
}

async fn gcp(binary: &str) -> Result<(), BoxError> {
    let mut world = GcpWorld::start(binary, &[]).await?;
    version_call(&world.provider.socket("gcp"), "gcp").await?;
    world.google.add_version(None, "smoke", b"smoke-value");
    world.google.grant(None, "smoke", &format!("ksa:{GCP_NAMESPACE}/web"));
    let secrets = format!(
        "- {{resourceName: projects/{}/secrets/smoke/versions/latest, path: smoke}}",
        csi_secrets_provider_tests::gcp::PROJECT
    );
    let response = world.mount(&secrets).await?;
    check(
        "gcp: workload identity mount (metadata server, token exchange, Google's SDK over TLS) returns the secret",
        file_contents(&response, "smoke") == Ok(b"smoke-value".as_slice()),
        "wrong or missing file",
    )?;
    stop(&mut world.provider, "gcp")
}

fn stop(provider: &mut ProviderProcess, backend: &str) -> Result<(), BoxError> {
    provider.signal("TERM")?;
    let status = provider.wait(Duration::from_secs(30))?;
    check(
        &format!("{backend}: TERM stops the provider cleanly and removes its socket"),
        status.success() && !provider.socket(backend).exists(),
        &format!("{status}\n{}", provider.log_text()),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let dir = tempfile::tempdir()?;
    let binary = launcher(&options, dir.path())?;

    let output = Command::new(&binary).arg("--version").output()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    check(
        &format!("--version: {version}"),
        output.status.success() && version.contains("(backends: "),
        &version,
    )?;
    let backends: Vec<String> = version
        .split("(backends: ")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches(')')
        .split(',')
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect();

    if backends.len() == 3 {
        let files = example_files()?;
        let output = Command::new(&binary).arg("validate").args(&files).output()?;
        check(
            &format!("validate: {} examples", files.len()),
            output.status.success() && !files.is_empty(),
            &String::from_utf8_lossy(&output.stdout),
        )?;
    }
    for backend in &backends {
        match backend.as_str() {
            "aws" => aws(&binary).await?,
            "azure" => azure(&binary).await?,
            "gcp" => gcp(&binary).await?,
            other => return Err(format!("unknown backend {other}").into()),
        }
    }
    check("a backend was compiled in", !backends.is_empty(), &version)
}

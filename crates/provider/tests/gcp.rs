//! The gcp backend end to end: the real binary over its socket against the Google test peer
//! (Secret Manager, the token exchange, IAM Credentials, the metadata server) and the
//! Kubernetes API test server, driven as the Secrets Store CSI Driver drives a provider.
#![cfg(feature = "gcp")]

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::gcp::{LOCATION, PROJECT, PROJECT_NUMBER};
use csi_secrets_provider_tests::worlds::{BoxError, GCP_GSA, GCP_NAMESPACE, GcpWorld};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

fn versions(response: &MountResponse) -> Vec<(String, String)> {
    response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

fn principal(namespace: &str, sa: &str) -> String {
    format!("ksa:{namespace}/{sa}")
}

/// Global and regional secrets by number, `latest` and alias; `path` over `fileName`, nested
/// paths, `mode`; the object versions as the GCP provider reports them (the id as written, the
/// version Secret Manager resolved, with the project number).
#[tokio::test(flavor = "multi_thread")]
async fn global_and_regional_secrets_with_versions_aliases_and_modes() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = principal(GCP_NAMESPACE, "web");
    world.google.add_version(None, "db", b"one");
    world.google.add_version(None, "db", b"two");
    world.google.set_alias(None, "db", "prod", 1);
    world.google.add_version(Some(LOCATION), "api", b"regional");
    for (location, secret) in [(None, "db"), (Some(LOCATION), "api")] {
        world.google.grant(location, secret, &web);
    }
    let secrets = format!(
        "- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db/latest\n  mode: 0400\n\
         - resourceName: projects/{PROJECT}/secrets/db/versions/prod\n  fileName: prod.txt\n\
         - resourceName: projects/{PROJECT}/secrets/db/versions/1\n  fileName: ignored\n  path: first\n\
         - resourceName: projects/{PROJECT}/locations/{LOCATION}/secrets/api/versions/latest\n  fileName: api\n"
    );
    let response = world.mount(&secrets).await?;
    assert_eq!(file(&response, "db/latest")?, b"two");
    assert_eq!(file(&response, "prod.txt")?, b"one");
    assert_eq!(file(&response, "first")?, b"one");
    assert_eq!(file(&response, "api")?, b"regional");
    let modes: Vec<(String, i32)> = response.files.iter().map(|f| (f.path.clone(), f.mode)).collect();
    assert!(modes.contains(&("db/latest".to_owned(), 0o400)), "{modes:?}");
    assert!(modes.contains(&("prod.txt".to_owned(), 0o644)), "the driver's permission: {modes:?}");
    assert!(versions(&response).contains(&(
        format!("projects/{PROJECT}/secrets/db/versions/latest"),
        format!("projects/{PROJECT_NUMBER}/secrets/db/versions/2")
    )));
    let regional = world
        .google
        .calls()
        .into_iter()
        .find(|c| c.path.contains("/locations/"))
        .ok_or("no regional read")?;
    assert!(
        regional.path.starts_with(&format!("/v1/projects/{PROJECT}/locations/{LOCATION}/")),
        "{regional:?}"
    );
    // One exchange for the pod's identity, whatever the number of secrets.
    assert_eq!(world.google.count("exchange"), 1);
    Ok(())
}

/// Workload identity as the GCP provider does it: the driver's token for the pool exchanged
/// once per identity (cluster facts from the metadata server); a service account annotated
/// with a Google service account reads as that account (`generateAccessToken`), one without
/// as its own principal; each read names the mounting pod in its User-Agent.
#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_principal_and_impersonation() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    world.google.add_version(None, "only-gsa", b"gsa-value");
    world.google.grant(None, "only-gsa", &format!("gsa:{GCP_GSA}"));
    let secrets =
        format!("- {{resourceName: projects/{PROJECT}/secrets/only-gsa/versions/latest, path: s}}\n");
    let response = world.mount_as("impersonating", &secrets).await?;
    assert_eq!(file(&response, "s")?, b"gsa-value");
    assert_eq!((world.google.count("exchange"), world.google.count("generateAccessToken")), (1, 1));
    let read = world.google.calls().into_iter().find(|c| c.api == "access").ok_or("no read")?;
    assert_eq!(read.principal.as_deref(), Some(format!("gsa:{GCP_GSA}").as_str()));
    assert!(read.user_agent.contains("csi-shop.web-0"), "{}", read.user_agent);
    // Again as a new pod: no exchange, no IAM call (tokens kept until shortly before expiry).
    world.mount_as("impersonating", &secrets).await?;
    assert_eq!((world.google.count("exchange"), world.google.count("generateAccessToken")), (1, 1));

    // Service account web has no annotation: its principal reads, and is refused here.
    let denied = world.mount(&secrets).await.err().ok_or("web may not read only-gsa")?;
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains(&format!("projects/{PROJECT}/secrets/only-gsa/versions/latest")),
        "{}",
        denied.message()
    );
    let metadata: Vec<String> =
        world.google.calls().into_iter().filter(|c| c.api == "metadata").map(|c| c.path).collect();
    assert!(metadata.iter().any(|p| p.ends_with("project/project-id")), "{metadata:?}");
    Ok(())
}

/// Errors by meaning, naming every failing `resourceName`; nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn errors_name_every_failing_secret() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = principal(GCP_NAMESPACE, "web");
    world.google.add_version(None, "ok", b"v");
    world.google.grant(None, "ok", &web);
    let missing = format!(
        "- {{resourceName: projects/{PROJECT}/secrets/ok/versions/latest, path: a}}\n\
         - {{resourceName: projects/{PROJECT}/secrets/gone/versions/latest, path: b}}\n\
         - {{resourceName: projects/{PROJECT}/secrets/ok/versions/9, path: c}}\n"
    );
    let status = world.mount(&missing).await.err().ok_or("missing secrets")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    for named in ["secrets/gone/versions/latest", "secrets/ok/versions/9", "2 problems"] {
        assert!(status.message().contains(named), "{named}: {}", status.message());
    }
    // A bad SecretProviderClass: refused before any call, naming the entry.
    let calls = world.google.calls().len();
    let bad = format!(
        "- {{resourceName: projects/{PROJECT}/secrets/ok/versions/1, path: a, extractJSONKey: x, extractYAMLKey: y}}\n"
    );
    let status = world.mount(&bad).await.err().ok_or("both extract keys")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("cannot both be set"), "{}", status.message());
    assert_eq!(world.google.calls().len(), calls, "no call for a bad SecretProviderClass");
    // A corrupted payload fails the secret.
    world.google.corrupt("secrets/ok", 5);
    let one = format!("- {{resourceName: projects/{PROJECT}/secrets/ok/versions/1, path: a}}\n");
    let status = world.mount(&one).await.err().ok_or("corrupted payload")?;
    assert!(status.message().contains("CRC32C"), "{}", status.message());
    Ok(())
}

//! Whole folders on GCP (`resourcePrefix`): the real binary's `gcp.sock` against the Google test
//! peer, whose `ListSecrets` pages two secrets at a time: global and regional prefixes, labels,
//! the `path` directory, the cap, an empty selection, a collision, a folder that changes between
//! two remounts, one listing per remount round, and a refused list.
#![cfg(feature = "gcp")]

use csi_secrets_provider_tests::gcp::{LOCATION, PROJECT, PROJECT_NUMBER};
use csi_secrets_provider_tests::worlds::{BoxError, GCP_NAMESPACE, GcpWorld};
use csi_secrets_provider_tests::{file_contents as file, file_paths, new_target_path};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// A world where `shop/web` may list and read `secrets` (global) and `regional` (in
/// [`LOCATION`]).
async fn world(secrets: &[&str], regional: &[&str]) -> Result<GcpWorld, BoxError> {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = format!("ksa:{GCP_NAMESPACE}/web");
    world.google.grant_list(&web);
    for (location, name) in
        secrets.iter().map(|s| (None, *s)).chain(regional.iter().map(|s| (Some(LOCATION), *s)))
    {
        world.google.add_version(location, name, format!("{name}-value").as_bytes());
        world.google.grant(location, name, &web);
    }
    Ok(world)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_by_prefix_labels_and_directory_over_several_pages() -> TestResult {
    let world = world(&["app-db", "app-api", "app-cache", "other"], &["app-eu"]).await?;
    world.google.label(None, "app-db", &[("env", "prod")]);
    world.google.label(None, "app-api", &[("env", "prod"), ("team", "a")]);

    let secrets = format!("- resourcePrefix: projects/{PROJECT}/secrets/app-\n  path: app\n  mode: 0400\n");
    let response = world.mount(&secrets).await?;
    assert_eq!(file_paths(&response), ["app/api", "app/cache", "app/db"]);
    assert_eq!(file(&response, "app/db")?, b"app-db-value");
    assert!(response.files.iter().all(|f| f.mode == 0o400));
    let version = response
        .object_version
        .iter()
        .find(|v| v.id == format!("projects/{PROJECT}/secrets/app-db/versions/latest"))
        .map(|v| v.version.clone());
    assert_eq!(version, Some(format!("projects/{PROJECT_NUMBER}/secrets/app-db/versions/1")));
    assert!(world.google.count("list") >= 2, "four secrets, two to a page");

    let secrets =
        format!("- resourcePrefix: projects/{PROJECT}/secrets/app-\n  tags: {{env: prod, team: a}}\n");
    assert_eq!(file_paths(&world.mount(&secrets).await?), ["api"]);
    let secrets = format!("- resourcePrefix: projects/{PROJECT}/locations/{LOCATION}/secrets/app-\n");
    let response = world.mount(&secrets).await?;
    assert_eq!(file_paths(&response), ["eu"]);
    assert_eq!(file(&response, "eu")?, b"app-eu-value");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_empty_optional_collision_and_denied_list() -> TestResult {
    let world = world(&["app-a", "app-b", "app-c"], &[]).await?;
    let prefix = format!("projects/{PROJECT}/secrets/app-");
    let status = world
        .mount(&format!("- {{resourcePrefix: {prefix}, maxObjects: 2}}\n"))
        .await
        .err()
        .ok_or("over the cap must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("resourcePrefix \"{prefix}\" selects 3 secrets, more than maxObjects (2)")),
        "{}",
        status.message()
    );

    let none = format!("projects/{PROJECT}/secrets/none-");
    let status =
        world.mount(&format!("- {{resourcePrefix: {none}}}\n")).await.err().ok_or("empty must fail")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let response = world.mount(&format!("- {{resourcePrefix: {none}, optional: true}}\n")).await?;
    assert_eq!(
        file_paths(&response),
        [csi_secrets_provider_server::NO_FILES_MARKER],
        "only the marker: the driver then replaces the volume's files"
    );
    assert_eq!(response.object_version.len(), 1);
    assert!(response.object_version[0].version.starts_with("skipped"));

    let clash = format!(
        "- {{resourceName: projects/{PROJECT}/secrets/app-a/versions/latest, path: b}}\n- {{resourcePrefix: {prefix}}}\n"
    );
    let status = world.mount(&clash).await.err().ok_or("a collision must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("file \"b\" of secret")
            && status.message().contains("also written by object"),
        "{}",
        status.message()
    );

    let status = world
        .mount_as("batch", &format!("- {{resourcePrefix: {prefix}}}\n"))
        .await
        .err()
        .ok_or("a refused list must fail")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("needs the secretmanager.secrets.list permission"),
        "{}",
        status.message()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remount_lists_again_and_a_round_lists_once() -> TestResult {
    let world = world(&["app-keep", "app-drop"], &[]).await?;
    let secrets = format!("- resourcePrefix: projects/{PROJECT}/secrets/app-\n");
    let targets: Vec<String> = (0..3).map(|_| new_target_path()).collect();
    for target in &targets {
        world.mount_at(target, "web", &secrets, &[]).await?;
    }
    assert_eq!(file_paths(&world.mount_at(&targets[0], "web", &secrets, &[]).await?), ["drop", "keep"]);
    world.google.add_version(None, "app-new", b"n");
    world.google.grant(None, "app-new", &format!("ksa:{GCP_NAMESPACE}/web"));
    world.google.delete_secret(None, "app-drop");
    let listed = world.google.count("list");
    let response = world.mount_at(&targets[0], "web", &secrets, &[]).await?;
    assert_eq!(file_paths(&response), ["keep", "new"]);
    assert_eq!(file(&response, "new")?, b"n");
    for target in &targets[1..] {
        assert_eq!(file_paths(&world.mount_at(target, "web", &secrets, &[]).await?), ["keep", "new"]);
    }
    assert_eq!(world.google.count("list") - listed, 1, "one listing (one page of two) for the round");
    Ok(())
}

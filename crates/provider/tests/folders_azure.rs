//! Whole folders on Azure (`objectPrefix`): the real binary's `azure.sock` against the Key Vault
//! and Azure AD test server, whose secret list pages three secrets at a time: prefix, tags, alias
//! directory, disabled secrets, the cap, an empty selection, a collision, a folder that changes
//! between two remounts, one listing per remount round, and a refused list.
#![cfg(feature = "azure")]

use csi_secrets_provider_tests::worlds::{AZURE_VAULT as VAULT, AzureWorld, BoxError};
use csi_secrets_provider_tests::{file_contents as file, file_paths, new_target_path};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

fn list_calls(world: &AzureWorld) -> usize {
    world.azure.vault_requests().iter().filter(|r| r.path.trim_matches('/') == "secrets").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_by_prefix_tags_and_alias_directory_over_several_pages() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    let db = world.azure.set_secret(VAULT, "app-db", "db-pass");
    for name in ["app-api", "app-cache", "app-queue", "other-db"] {
        world.azure.set_secret(VAULT, name, &format!("{name}-value"));
    }
    world.azure.tag_secret(VAULT, "app-db", &[("env", "prod"), ("team", "a")]);
    world.azure.tag_secret(VAULT, "app-api", &[("env", "prod")]);
    let off = world.azure.set_secret(VAULT, "app-off", "disabled");
    world.azure.disable_secret_version(VAULT, "app-off", &off);

    let response = world.mount(&["objectPrefix: app-\nobjectAlias: app"]).await?;
    assert_eq!(
        file_paths(&response),
        ["app/api", "app/cache", "app/db", "app/queue"],
        "the disabled one is not selected"
    );
    assert_eq!(file(&response, "app/db")?, b"db-pass");
    let version =
        response.object_version.iter().find(|v| v.id == "secret/app-db").map(|v| v.version.as_str());
    assert_eq!(version, Some(db.as_str()), "each selected secret is its own object version");
    assert_eq!(response.object_version.len(), 4);
    assert!(list_calls(&world) >= 2, "six secrets, three to a page");

    let response =
        world.mount(&["objectPrefix: app-\nobjectType: secret\ntags: {env: prod, team: a}"]).await?;
    assert_eq!(file_paths(&response), ["db"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_empty_optional_collision_and_bad_entries() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    for name in ["app-a", "app-b", "app-c"] {
        world.azure.set_secret(VAULT, name, name);
    }
    let status =
        world.mount(&["objectPrefix: app-\nmaxObjects: 2"]).await.err().ok_or("over the cap must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("objectPrefix \"app-\" selects 3 secrets, more than maxObjects (2)"),
        "{}",
        status.message()
    );

    let status = world.mount(&["objectPrefix: none-"]).await.err().ok_or("an empty selection must fail")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let response = world.mount(&["objectPrefix: none-\noptional: true"]).await?;
    assert_eq!(
        file_paths(&response),
        [csi_secrets_provider_server::NO_FILES_MARKER],
        "only the marker: the driver then replaces the volume's files"
    );
    assert_eq!(response.object_version.len(), 1);
    assert!(response.object_version[0].version.starts_with("skipped"), "{:?}", response.object_version);

    let status = world
        .mount(&["objectName: app-a\nobjectType: secret\nobjectAlias: b", "objectPrefix: app-"])
        .await
        .err()
        .ok_or("a collision must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("file \"b\" of secret \"app-b\"")
            && status.message().contains("also written by object \"app-a\""),
        "{}",
        status.message()
    );

    let reads = world.azure.vault_reads();
    let status = world
        .mount(&[
            "objectPrefix: app-\nobjectType: key",
            "objectPrefix: app-\nobjectVersion: abc\nmaxObjects: 0",
        ])
        .await
        .err()
        .ok_or("bad entries must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for words in [
        "objectType must be secret",
        "objectVersion names one object",
        "maxObjects must be a whole number from 1 to 1000",
    ] {
        assert!(status.message().contains(words), "{words}: {}", status.message());
    }
    assert_eq!(world.azure.vault_reads(), reads, "refused before any Key Vault call");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remount_lists_again_and_a_round_lists_once() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    world.azure.set_secret(VAULT, "app-keep", "k");
    world.azure.set_secret(VAULT, "app-drop", "d");
    let objects = ["objectPrefix: app-"];
    let targets: Vec<String> = (0..3).map(|_| new_target_path()).collect();
    for target in &targets {
        world.mount_at(target, "workload-sa", &objects, &[]).await?;
    }
    // A remount may take a listing younger than its own previous mount (the last first mount's).
    assert_eq!(
        file_paths(&world.mount_at(&targets[0], "workload-sa", &objects, &[]).await?),
        ["drop", "keep"]
    );
    world.azure.set_secret(VAULT, "app-new", "n");
    world.azure.delete_secret(VAULT, "app-drop");
    let listed = list_calls(&world);
    let response = world.mount_at(&targets[0], "workload-sa", &objects, &[]).await?;
    assert_eq!(file_paths(&response), ["keep", "new"]);
    assert_eq!(file(&response, "new")?, b"n");
    for target in &targets[1..] {
        assert_eq!(file_paths(&world.mount_at(target, "workload-sa", &objects, &[]).await?), ["keep", "new"]);
    }
    assert_eq!(list_calls(&world) - listed, 1, "one listing (one page) for the round");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_list_names_the_entry_and_the_permission() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    world.azure.set_secret(VAULT, "app-a", "a");
    world.azure.restrict_list(VAULT, &["someone-else"]);
    let status = world.mount(&["objectPrefix: app-"]).await.err().ok_or("a refused list must fail")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("the secret list for objectPrefix \"app-\"")
            && status.message().contains("needs the secrets list permission"),
        "{}",
        status.message()
    );
    Ok(())
}

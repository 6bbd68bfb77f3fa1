//! Whole folders on AWS (`objectPrefix`): the real binary's `aws.sock` against moto (through the
//! recording proxy): Secrets Manager by prefix, tags and alias directory; SSM by path and by
//! name prefix with tags; the cap, an empty selection, a collision, a folder that changes between
//! two remounts, a refused listing, the admin policy, and one listing per remount round.
#![cfg(feature = "aws")]

use aws_sdk_secretsmanager::types::Tag;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::worlds::{AwsWorld, BoxError};
use csi_secrets_provider_tests::{file_contents as file, file_paths, new_target_path};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

#[path = "common/moto.rs"]
mod moto;

async fn clients() -> (aws_sdk_secretsmanager::Client, aws_sdk_ssm::Client) {
    moto::clients("us-east-1").await
}

async fn secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
) -> Result<String, BoxError> {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build());
    let created =
        sm.create_secret().name(name).secret_string(value).set_tags(Some(tags.collect())).send().await?;
    Ok(created.version_id().ok_or("no version")?.to_owned())
}

fn version<'a>(response: &'a MountResponse, id: &str) -> Option<&'a str> {
    response.object_version.iter().find(|v| v.id == id).map(|v| v.version.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_by_prefix_tags_and_alias_directory() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-sm", &[]).await?;
    let (sm, _) = clients().await;
    let db = secret(&sm, &world.name("app/db"), "db-pass", &[("env", "prod")]).await?;
    secret(&sm, &world.name("app/api/key"), "api-key", &[("env", "prod"), ("team", "a")]).await?;
    secret(&sm, &world.name("app/dev"), "dev", &[("env", "dev")]).await?;
    secret(&sm, &world.name("other"), "not selected", &[("env", "prod")]).await?;
    // Scheduled for deletion: not current, not selected.
    secret(&sm, &world.name("app/leaving"), "gone soon", &[("env", "prod")]).await?;
    sm.delete_secret().secret_id(world.name("app/leaving")).recovery_window_in_days(7).send().await?;

    let objects =
        format!("- objectPrefix: {}\n  objectType: secretsmanager\n  objectAlias: app\n", world.name("app/"));
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["app/api_key", "app/db", "app/dev"]);
    assert_eq!(file(&response, "app/db")?, b"db-pass");
    assert_eq!(version(&response, "app/db"), Some(db.as_str()), "each selected secret has its own version");
    assert_eq!(response.object_version.len(), 3);

    // Tags narrow it (every pair must match); without pathTranslation the paths nest.
    let objects = format!(
        "- objectPrefix: {}\n  objectType: secretsmanager\n  tags: {{env: prod, team: a}}\n",
        world.name("app/")
    );
    let response = world.mount(&[("objects", &objects), ("pathTranslation", "False")]).await?;
    assert_eq!(file_paths(&response), ["api/key"]);
    assert_eq!(file(&response, "api/key")?, b"api-key");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_by_path_and_by_name_prefix_with_tags() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-ssm", &[]).await?;
    let (_, ssm) = clients().await;
    let root = format!("/{}", world.name("app"));
    for (name, value) in [("db", "one"), ("nested/x", "two")] {
        ssm.put_parameter()
            .name(format!("{root}/{name}"))
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await?;
    }
    ssm.put_parameter()
        .name(format!("{root}x"))
        .value("three")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .tags(aws_sdk_ssm::types::Tag::builder().key("env").value("prod").build()?)
        .send()
        .await?;

    let objects = format!("- {{objectPrefix: '{root}/', objectType: ssmparameter}}\n");
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["db", "nested_x"]);
    assert_eq!(file(&response, "nested_x")?, b"two", "decrypted when read");
    assert_eq!(version(&response, "db"), Some("1"));
    assert_eq!(world.proxy.count("GetParametersByPath"), 1);
    assert_eq!(world.proxy.count("GetParameters"), 1, "two parameters, one batch");

    // A name prefix (not a path) lists with DescribeParameters; the tag narrows it to one.
    let objects = format!("- {{objectPrefix: '{root}', objectType: ssmparameter, objectAlias: all}}\n");
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["all/db", "all/nested_x", "all/x"]);
    let objects = format!("- {{objectPrefix: '{root}', objectType: ssmparameter, tags: {{env: prod}}}}\n");
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["x"]);
    assert_eq!(file(&response, "x")?, b"three");
    assert_eq!(world.proxy.count("DescribeParameters"), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_empty_optional_and_collision() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-bounds", &[]).await?;
    let (sm, _) = clients().await;
    for name in ["a", "b", "c"] {
        secret(&sm, &world.name(&format!("app/{name}")), name, &[]).await?;
    }
    let prefix = world.name("app/");
    let capped = format!("- {{objectPrefix: '{prefix}', objectType: secretsmanager, maxObjects: 2}}\n");
    let status = world.mount(&[("objects", &capped)]).await.err().ok_or("over the cap must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("objectPrefix \"{prefix}\" selects 3 secrets, more than maxObjects (2)")),
        "{}",
        status.message()
    );
    assert_eq!(
        world.proxy.count("GetSecretValue") + world.proxy.count("BatchGetSecretValue"),
        0,
        "nothing read"
    );

    // Nothing under the prefix: an error, unless optional; then no file, and a version that
    // says so (the driver refuses an answer without versions).
    let empty = world.name("none/");
    let required = format!("- {{objectPrefix: '{empty}', objectType: secretsmanager}}\n");
    let status = world.mount(&[("objects", &required)]).await.err().ok_or("an empty selection must fail")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("selects no secret; set optional: true"), "{}", status.message());
    let optional = format!("- {{objectPrefix: '{empty}', objectType: secretsmanager, optional: true}}\n");
    let response = world.mount(&[("objects", &optional)]).await?;
    assert_eq!(
        file_paths(&response),
        [csi_secrets_provider_server::NO_FILES_MARKER],
        "only the marker: the driver then replaces the volume's files"
    );
    assert_eq!(response.object_version.len(), 1, "{:?}", response.object_version);
    assert_eq!(response.object_version[0].id, empty);
    assert!(response.object_version[0].version.starts_with("skipped"), "{:?}", response.object_version);

    // A selected file that another object already writes: an error naming both.
    let clash = format!(
        "- {{objectName: '{a}', objectType: secretsmanager, objectAlias: b}}\n- {{objectPrefix: '{prefix}', objectType: secretsmanager}}\n",
        a = world.name("app/a")
    );
    let status = world.mount(&[("objects", &clash)]).await.err().ok_or("a collision must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let b = world.name("app/b");
    assert!(
        status.message().contains(&format!("file \"b\" of secret \"{b}\""))
            && status.message().contains(&format!("also written by object \"{}\"", world.name("app/a"))),
        "{}",
        status.message()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remount_lists_again_and_a_round_lists_once() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-remount", &[]).await?;
    let (sm, _) = clients().await;
    secret(&sm, &world.name("app/keep"), "k", &[]).await?;
    secret(&sm, &world.name("app/drop"), "d", &[]).await?;
    let objects = format!("- {{objectPrefix: '{}', objectType: secretsmanager}}\n", world.name("app/"));
    let parameters = [("objects", objects.as_str())];
    let targets: Vec<String> = (0..3).map(|_| new_target_path()).collect();
    for target in &targets {
        world.mount_at(target, "web", &parameters).await?;
    }
    assert_eq!(file_paths(&world.mount_at(&targets[0], "web", &parameters).await?), ["drop", "keep"]);

    // One added, one deleted: the next remount sees both changes.
    secret(&sm, &world.name("app/new"), "n", &[]).await?;
    sm.delete_secret().secret_id(world.name("app/drop")).force_delete_without_recovery(true).send().await?;
    let listed = world.proxy.count("ListSecrets");
    let response = world.mount_at(&targets[0], "web", &parameters).await?;
    assert_eq!(file_paths(&response), ["keep", "new"]);
    assert_eq!(file(&response, "new")?, b"n");
    // The other pods of the identity remounting in the same round share that listing.
    for target in &targets[1..] {
        assert_eq!(file_paths(&world.mount_at(target, "web", &parameters).await?), ["keep", "new"]);
    }
    assert_eq!(world.proxy.count("ListSecrets") - listed, 1, "one listing for the round");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_listing_names_the_entry_and_the_right() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-denied", &[]).await?;
    world.proxy.inject(
        "ListSecrets",
        1,
        400,
        "AccessDeniedException",
        "not authorized to perform: secretsmanager:ListSecrets",
    );
    let prefix = world.name("app/");
    let objects = format!("- {{objectPrefix: '{prefix}', objectType: secretsmanager}}\n");
    let status = world.mount(&[("objects", &objects)]).await.err().ok_or("a refused listing must fail")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(&format!("cannot list objectPrefix \"{prefix}\""))
            && status.message().contains("needs the secretsmanager:ListSecrets permission"),
        "{}",
        status.message()
    );
    Ok(())
}

/// A folder selects only what the admin policy lets the namespace read.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_policy_applies_to_every_selected_secret() -> TestResult {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.yaml");
    let test = "folder-policy";
    let allowed = format!("{test}-{}/app/ok*", std::process::id());
    std::fs::write(
        &policy,
        format!("rules:\n  - namespaces: [shop]\n    allow:\n      aws: ['{allowed}']\n"),
    )?;
    let world = AwsWorld::start(BINARY, test, &["--policy", &policy.display().to_string()]).await?;
    let (sm, _) = clients().await;
    secret(&sm, &world.name("app/ok"), "fine", &[]).await?;
    let objects = format!("- {{objectPrefix: '{}', objectType: secretsmanager}}\n", world.name("app/"));
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["ok"]);

    // A secret the namespace may not read is left out of the folder, and nothing answered to
    // the pod names it, counts it or says that something was denied.
    secret(&sm, &world.name("app/secret"), "not for shop", &[]).await?;
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file_paths(&response), ["ok"]);
    let versions: Vec<&str> = response.object_version.iter().map(|v| v.id.as_str()).collect();
    assert!(!versions.iter().any(|id| id.contains("app/secret")), "{versions:?}");
    let only_denied = format!("- {{objectPrefix: '{}', objectType: secretsmanager}}\n", world.name("app/s"));
    let status = world.mount(&[("objects", &only_denied)]).await.err().ok_or("a folder of denied secrets")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("selects no secret"), "{}", status.message());
    for withheld in ["app/secret", "denied", "may not read"] {
        assert!(!status.message().contains(withheld), "{}", status.message());
    }
    let capped =
        format!("- {{objectPrefix: '{}', objectType: secretsmanager, maxObjects: 1}}\n", world.name("app/"));
    assert_eq!(
        file_paths(&world.mount(&[("objects", &capped)]).await?),
        ["ok"],
        "denied secrets are not counted"
    );
    Ok(())
}

/// The driver refuses an answer without object versions ("missing object versions"; the Sync
/// Controller checks the same list): a mount whose every object was skipped (an optional
/// object that is absent, an optional folder that is empty) answers no file and one version
/// per skipped entry, saying so.
#[tokio::test(flavor = "multi_thread")]
async fn a_mount_whose_every_object_is_skipped_still_answers_versions() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-all-skipped", &[]).await?;
    let (absent, empty) = (world.name("absent"), world.name("empty/"));
    let objects = format!(
        "- {{objectName: '{absent}', objectType: secretsmanager, optional: true}}\n\
         - {{objectPrefix: '{empty}', objectType: secretsmanager, optional: true}}\n"
    );
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(
        file_paths(&response),
        [csi_secrets_provider_server::NO_FILES_MARKER],
        "only the marker: the driver then replaces the volume's files"
    );
    let mut versions: Vec<(&str, &str)> =
        response.object_version.iter().map(|v| (v.id.as_str(), v.version.as_str())).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        [(absent.as_str(), "skipped: optional and absent"), (empty.as_str(), "skipped: optional and absent")]
    );
    Ok(())
}

/// Per-entry keys apply to every selected secret, and `files` reads selected secrets by their
/// file names: a folder of JSON secrets read for templates only (`writeFile: false`), each
/// secret's `password` extracted to `<file>/password` (`jmesPath`), a DSN built from one.
#[tokio::test(flavor = "multi_thread")]
async fn per_entry_keys_and_files_apply_to_selected_secrets() -> TestResult {
    let world = AwsWorld::start(BINARY, "folder-shape", &[]).await?;
    let (sm, _) = clients().await;
    for (name, user) in [("db", "app"), ("cache", "svc")] {
        let value = format!(r#"{{"username": "{user}", "password": "{name}-pw"}}"#);
        secret(&sm, &world.name(&format!("app/{name}")), &value, &[]).await?;
    }
    let objects = format!(
        "- objectPrefix: '{}'\n  objectType: secretsmanager\n  objectAlias: app\n  writeFile: false\n  jmesPath:\n    - {{path: password, objectAlias: password}}\n",
        world.name("app/")
    );
    let files = "- path: dsn\n  template: \"{% set db = objects['app/db'] | fromjson %}postgres://{{ db.username }}:{{ db.password }}@db/app\"\n";
    let response = world.mount(&[("objects", &objects), ("files", files)]).await?;
    assert_eq!(file_paths(&response), ["app/cache/password", "app/db/password", "dsn"]);
    assert_eq!(file(&response, "app/db/password")?, b"db-pw");
    assert_eq!(file(&response, "dsn")?, b"postgres://app:db-pw@db/app");
    Ok(())
}

/// A folder's deleted secrets leave the pod as the driver writes it (`driver::TargetDir`,
/// the driver's own writer): one of two deleted, then the last one too — an answer without
/// files would make the driver write nothing and keep the file, so the answer carries the
/// marker file and the driver replaces the volume's files. A driver that sends the versions
/// it holds (v1.5's rotation) gets none back for the deleted secrets.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_folder_members_leave_the_pod_down_to_the_last() -> TestResult {
    use csi_secrets_provider_server::proto::ObjectVersion;
    use csi_secrets_provider_tests::driver::{TargetDir, Written};
    let world = AwsWorld::start(BINARY, "folder-emptied", &[]).await?;
    let (sm, _) = clients().await;
    let (first, last) = (world.name("gone/first"), world.name("gone/last"));
    secret(&sm, &first, "1", &[]).await?;
    secret(&sm, &last, "2", &[]).await?;
    let objects = format!(
        "- {{objectPrefix: '{}', objectType: secretsmanager, optional: true}}\n",
        world.name("gone/")
    );
    let parameters = [("objects", objects.as_str())];
    let pod = TargetDir::new()?;
    let target = pod.path().display().to_string();
    let paths =
        |pod: &TargetDir| -> Result<Vec<String>, std::io::Error> { Ok(pod.files()?.into_keys().collect()) };

    let (versions, _) = pod.apply(&world.mount_at(&target, "web", &parameters).await?)?;
    assert_eq!(paths(&pod)?, ["first", "last"]);
    let held: Vec<ObjectVersion> =
        versions.into_iter().map(|(id, version)| ObjectVersion { id, version }).collect();

    sm.delete_secret().secret_id(&first).force_delete_without_recovery(true).send().await?;
    let answer = world.remount_with_versions(&target, &parameters, held.clone()).await?;
    assert!(!answer.object_version.iter().any(|v| v.id.contains("first")), "{:?}", answer.object_version);
    pod.apply(&answer)?;
    assert_eq!(paths(&pod)?, ["last"]);

    sm.delete_secret().secret_id(&last).force_delete_without_recovery(true).send().await?;
    let answer = world.remount_with_versions(&target, &parameters, held).await?;
    let (versions, written) = pod.apply(&answer)?;
    assert_eq!(written, Written::Replaced);
    assert_eq!(paths(&pod)?, [csi_secrets_provider_server::NO_FILES_MARKER], "the last secret left the pod");
    assert_eq!(versions.into_values().collect::<Vec<_>>(), ["skipped: optional and absent"]);
    Ok(())
}

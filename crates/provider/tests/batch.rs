//! Secrets Manager reads in batches, end to end: the real binary's `aws.sock` against moto
//! (which implements `BatchGetSecretValue`) through the recording proxy, which counts every call
//! as AWS would bill it.
#![cfg(feature = "aws")]

use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::worlds::{AwsWorld, BoxError};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// Creates `count` secrets `s0`, `s1`, ... and returns their `objects` entries (aliased `s<i>`).
async fn secrets(world: &AwsWorld, count: usize) -> Result<String, BoxError> {
    let mut objects = String::new();
    for i in 0..count {
        let name = world.name(&format!("s{i}"));
        world.put_secret(&name, &format!("value {i}")).await?;
        objects
            .push_str(&format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: s{i}}}\n"));
    }
    Ok(objects)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_mount_of_ten_secrets_is_one_call() -> TestResult {
    let world = AwsWorld::start(BINARY, "batch10", &[]).await?;
    let objects = secrets(&world, 10).await?;
    let response = world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    for i in 0..10 {
        assert_eq!(file(&response, &format!("s{i}"))?, format!("value {i}").as_bytes());
    }
    assert_eq!(response.object_version.len(), 10);
    assert!(response.object_version.iter().all(|v| !v.version.is_empty()), "{:?}", response.object_version);
    assert_eq!(world.proxy.count("BatchGetSecretValue"), 1, "{:?}", world.proxy.calls());
    assert_eq!(world.proxy.count("GetSecretValue"), 0, "the official provider makes 10");
    // CloudTrail's userAgent names the pod that read (pod shop/web-0).
    let call =
        world.proxy.calls().into_iter().find(|c| c.action == "BatchGetSecretValue").ok_or("no call")?;
    assert!(call.user_agent.contains("app/csi-shop.web-0"), "{}", call.user_agent);

    // Twenty-five secrets: twenty to a call.
    let world = AwsWorld::start(BINARY, "batch25", &[]).await?;
    let objects = secrets(&world, 25).await?;
    world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    assert_eq!((world.proxy.count("BatchGetSecretValue"), world.proxy.count("GetSecretValue")), (2, 0));
    Ok(())
}

/// What a batch cannot ask (a version id, another stage) is read on its own; the same secret
/// twice is asked once and written twice; a missing optional one is skipped; jmesPath applies.
#[tokio::test(flavor = "multi_thread")]
async fn versions_stages_aliases_optional_and_jmes_path_as_before() -> TestResult {
    let world = AwsWorld::start(BINARY, "batchmix", &[]).await?;
    let (db, api, pinned) = (world.name("db"), world.name("api"), world.name("pinned"));
    world.put_secret(&db, r#"{"username":"app","password":"pw"}"#).await?;
    world.put_secret(&api, "key").await?;
    let first = world.put_secret(&pinned, "first").await?;
    world.put_secret(&pinned, "second").await?;
    let missing = world.name("missing");
    let objects = format!(
        "- {{objectName: {db}, objectType: secretsmanager, objectAlias: db, jmesPath: [{{path: username, objectAlias: user}}]}}\n\
         - {{objectName: {db}, objectType: secretsmanager, objectAlias: db-again}}\n\
         - {{objectName: {api}, objectType: secretsmanager, objectAlias: api, objectVersionLabel: AWSCURRENT}}\n\
         - {{objectName: {pinned}, objectType: secretsmanager, objectAlias: pinned, objectVersion: {first}}}\n\
         - {{objectName: {pinned}, objectType: secretsmanager, objectAlias: previous, objectVersionLabel: AWSPREVIOUS}}\n\
         - {{objectName: {missing}, objectType: secretsmanager, objectAlias: missing, optional: true}}\n"
    );
    let response = world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    assert_eq!(file(&response, "db")?, file(&response, "db-again")?);
    assert_eq!(file(&response, "user")?, b"app");
    assert_eq!(file(&response, "api")?, b"key");
    assert_eq!(file(&response, "pinned")?, b"first", "the version id is honoured");
    assert_eq!(file(&response, "previous")?, b"first", "the stage is honoured");
    assert!(response.files.iter().all(|f| f.path != "missing"), "the optional missing one is skipped");
    assert_eq!(world.proxy.count("BatchGetSecretValue"), 1, "db, api and missing in one batch");
    assert_eq!(world.proxy.count("GetSecretValue"), 2, "the pinned version and the stage, each on its own");

    // Not optional: the batch's ResourceNotFoundException is the object's error, as a read's.
    let objects = format!(
        "- {{objectName: {db}, objectType: secretsmanager, objectAlias: db}}\n- {{objectName: {missing}, objectType: secretsmanager}}\n"
    );
    let status = world
        .mount(&[("objects", objects.as_str()), ("region", "us-east-1")])
        .await
        .err()
        .ok_or("missing")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains(&missing) && status.message().contains("ResourceNotFoundException"),
        "{}",
        status.message()
    );
    Ok(())
}

/// IAM may allow `GetSecretValue` but not `BatchGetSecretValue`: the mount reads each secret on
/// its own, and the identity is remembered, so the refusal costs one call once.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_batch_falls_back_to_single_reads_once_per_identity() -> TestResult {
    let world = AwsWorld::start(BINARY, "batchrefused", &[]).await?;
    let objects = secrets(&world, 10).await?;
    let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
    world.proxy.inject(
        "BatchGetSecretValue",
        1,
        400,
        "AccessDeniedException",
        "User is not authorized to perform: secretsmanager:BatchGetSecretValue",
    );
    let response = world.mount(&parameters).await?;
    assert_eq!(file(&response, "s9")?, b"value 9");
    assert_eq!((world.proxy.count("BatchGetSecretValue"), world.proxy.count("GetSecretValue")), (1, 10));

    world.mount(&parameters).await?;
    assert_eq!(
        (world.proxy.count("BatchGetSecretValue"), world.proxy.count("GetSecretValue")),
        (1, 20),
        "the refusal is remembered for the identity"
    );
    // Another identity is asked in batches again.
    world.mount_as("batch", &parameters).await?;
    assert_eq!((world.proxy.count("BatchGetSecretValue"), world.proxy.count("GetSecretValue")), (2, 20));
    Ok(())
}

/// A secret the identity may not read comes back in the batch's `Errors`; it is read on its own
/// (as upstream, also in the failover region) and fails the mount naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_refused_inside_a_batch_fails_the_mount_naming_it() -> TestResult {
    let world = AwsWorld::start(BINARY, "batchdenied", &[]).await?;
    let objects = secrets(&world, 3).await?;
    world.proxy.allow_only(&world.name("s1"), "nobody");
    let status =
        world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await.err().ok_or("denied")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(&world.name("s1")), "{}", status.message());
    assert_eq!((world.proxy.count("BatchGetSecretValue"), world.proxy.count("GetSecretValue")), (1, 1));
    Ok(())
}

/// Upstream's `TestConflictingNameAndNotAliasWoVersionLabel`: one SSM parameter under two aliases
/// writes both files. `GetParameters` answers a name once, so the batch asks it once.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_ssm_parameter_under_two_aliases_writes_both() -> TestResult {
    let world = AwsWorld::start(BINARY, "paramtwice", &[]).await?;
    let name = format!("/{}", world.name("secret1"));
    let body =
        serde_json::json!({ "Name": name, "Value": "one value", "Type": "SecureString", "Overwrite": true });
    let answer = csi_secrets_provider_tests::worlds::moto_call("ssm", "PutParameter", &body).await?;
    assert!(answer["Version"].is_number(), "moto: {answer}");
    let objects = format!(
        "- {{objectName: {name}, objectType: ssmparameter, objectAlias: aliasOne}}\n- {{objectName: {name}, objectType: ssmparameter, objectAlias: aliasTwo}}\n"
    );
    let response = world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    assert_eq!(file(&response, "aliasOne")?, b"one value");
    assert_eq!(file(&response, "aliasTwo")?, b"one value");
    assert_eq!(world.proxy.count("GetParameters"), 1);
    Ok(())
}

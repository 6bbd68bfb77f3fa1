//! Cross-account reads (`assumeRoleArn`): after the pod's own identity, `sts:AssumeRole` into the
//! SecretProviderClass's role, against moto through the recording proxy.
#![cfg(feature = "aws")]

use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::worlds::{AwsWorld, BoxError};
use tonic::Code;

#[path = "common/moto.rs"]
mod moto;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");
const READER: &str = "arn:aws:iam::123456789012:role/cross-account-reader";

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_made_with_the_assumed_roles_credentials() -> TestResult {
    let world = AwsWorld::start(BINARY, "assume-role", &[]).await?;
    world.put_secret(&world.name("db"), "cross").await?;
    let objects =
        format!("- {{objectName: '{}', objectType: secretsmanager, objectAlias: db}}\n", world.name("db"));
    let parameters = [
        ("objects", objects.as_str()),
        ("region", "us-east-1"),
        ("assumeRoleArn", READER),
        ("assumeRoleExternalId", "ext-1234"),
        ("assumeRoleDurationSeconds", "900"),
        ("csi.storage.k8s.io/pod.name", "web-0"),
    ];
    let response = world.mount(&parameters).await?;
    assert_eq!(file(&response, "db")?, b"cross");
    let calls = world.proxy.calls();
    let assume = calls.iter().find(|c| c.action == "AssumeRole").ok_or("no AssumeRole call")?;
    let reads: Vec<&str> = calls
        .iter()
        .filter(|c| c.action == "GetSecretValue" || c.action == "BatchGetSecretValue")
        .map(|c| c.access_key.as_str())
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads.iter().all(|key| !key.is_empty() && *key != assume.access_key),
        "reads signed with the assumed role's key, not the pod's ({}): {reads:?}",
        assume.access_key
    );

    // Cached per (pod identity, role, external id): another mount assumes nothing.
    world.mount(&parameters).await?;
    assert_eq!(world.proxy.count("AssumeRole"), 1);
    assert_eq!(world.proxy.count("AssumeRoleWithWebIdentity"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_assume_role_names_the_role_and_bad_parameters_are_refused() -> TestResult {
    let world = AwsWorld::start(BINARY, "assume-role-denied", &[]).await?;
    let objects = format!("- {{objectName: '{}', objectType: secretsmanager}}\n", world.name("db"));
    world.proxy.inject(
        "AssumeRole",
        10,
        403,
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/web/csi-shop-web is not authorized to perform: sts:AssumeRole",
    );
    let status = world
        .mount(&[("objects", objects.as_str()), ("region", "us-east-1"), ("assumeRoleArn", READER)])
        .await
        .err()
        .ok_or("a refused AssumeRole must fail")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(&format!("AssumeRole into {READER} failed")), "{}", status.message());

    let status = world
        .mount(&[
            ("objects", objects.as_str()),
            ("region", "us-east-1"),
            ("assumeRoleArn", "reader"),
            ("assumeRoleDurationSeconds", "60"),
        ])
        .await
        .err()
        .ok_or("bad parameters must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for words in ["is not an IAM role ARN", "from 900 to 43200"] {
        assert!(status.message().contains(words), "{words}: {}", status.message());
    }
    Ok(())
}

/// With the primary region out, the failover region's STS assumes the role (with the pod's
/// credentials from that region's STS too) and the failover region's secret is read.
#[tokio::test(flavor = "multi_thread")]
async fn the_failover_region_goes_through_the_same_chain() -> TestResult {
    let world = AwsWorld::start(BINARY, "assume-role-failover", &[]).await?;
    let name = world.name("db");
    let (west, _) = moto::clients("us-west-2").await;
    west.create_secret().name(&name).secret_string("west").send().await?;
    world.proxy.fail_region("us-east-1");
    let objects = format!("- {{objectName: '{name}', objectType: secretsmanager, objectAlias: db}}\n");
    let response = world
        .mount(&[
            ("objects", objects.as_str()),
            ("region", "us-east-1"),
            ("failoverRegion", "us-west-2"),
            ("assumeRoleArn", READER),
        ])
        .await?;
    assert_eq!(file(&response, "db")?, b"west");
    let assumed: Vec<String> =
        world.proxy.calls().into_iter().filter(|c| c.action == "AssumeRole").map(|c| c.region).collect();
    assert!(assumed.iter().any(|region| region == "us-west-2"), "{assumed:?}");
    Ok(())
}

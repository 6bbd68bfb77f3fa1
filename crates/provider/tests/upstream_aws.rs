//! The AWS provider's own rotation tests (`server/server_test.go`: `TestReMounts`,
//! `TestNoWriteReMounts`, `TestMountMaxRegionsExceeded`, `TestAppID`), replayed through our socket
//! against moto as a driver would send them: one target path mounted again and again, each
//! remount carrying the object versions the previous answer reported. Our cases, our words; the
//! expectations are upstream's, except where docs/aws.md lists a deliberate difference.
#![cfg(feature = "aws")]

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::worlds::{AwsWorld, BoxError};

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

#[path = "common/moto.rs"]
mod moto;

async fn seed() -> (aws_sdk_secretsmanager::Client, aws_sdk_ssm::Client) {
    moto::clients("us-east-1").await
}

/// Every file of a response by path, as text.
fn files(response: &MountResponse) -> BTreeMap<String, String> {
    response
        .files
        .iter()
        .map(|f| (f.path.clone(), String::from_utf8_lossy(&f.contents).into_owned()))
        .collect()
}

fn versions(response: &MountResponse) -> BTreeMap<String, String> {
    response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

/// `TestReMounts` and `TestNoWriteReMounts`: secrets by name (binary), by label, by fixed
/// version and with jmesPath; eleven SSM parameters (two batches) by label, fixed version and
/// name. Four mounts of one target: the first, one with no change, one after a rotation (only
/// what follows AWSCURRENT or a moved label changes), one after labels move. Upstream's no-write
/// variant (the driver writes) answers with the same files here: this provider always returns
/// every file for the driver to write (docs/aws.md), so both tests are this one.
#[tokio::test(flavor = "multi_thread")]
async fn remounts_follow_rotations_and_moved_labels() -> TestResult {
    let world = AwsWorld::start(BINARY, "remounts", &[]).await?;
    let (sm, ssm) = seed().await;
    let name = |n: &str| world.name(n);
    let (s1, s2, s3, json) =
        (name("TestSecret1"), name("TestSecret2"), name("TestSecret3"), name("TestSecretJSON"));
    sm.create_secret().name(&s1).secret_binary(Blob::new("TestSecret1 v1")).send().await?;
    let s2_v1 = sm.create_secret().name(&s2).secret_string("TestSecret2 v1").send().await?;
    let s2_v1 = s2_v1.version_id().ok_or("version")?.to_owned();
    sm.update_secret_version_stage()
        .secret_id(&s2)
        .version_stage("custom")
        .move_to_version_id(&s2_v1)
        .send()
        .await?;
    let s3_v1 = sm.create_secret().name(&s3).secret_string("TestSecret3 v1").send().await?;
    let s3_v1 = s3_v1.version_id().ok_or("version")?.to_owned();
    sm.create_secret()
        .name(&json)
        .secret_string(r#"{"username": "SecretsManagerUser", "password": "SecretsManagerPassword"}"#)
        .send()
        .await?;
    let parameter = |i: usize| format!("/{}", world.name(&format!("TestParm{i}")));
    for i in 1..=11 {
        let put =
            ssm.put_parameter().name(parameter(i)).value(format!("parm{i} v1")).r#type(ParameterType::String);
        put.send().await?;
    }
    ssm.label_parameter_version().name(parameter(1)).parameter_version(1).labels("current").send().await?;

    let mut objects = format!(
        "- {{objectName: {s1}, objectType: secretsmanager, objectAlias: TestSecret1}}\n\
         - {{objectName: {s2}, objectType: secretsmanager, objectAlias: TestSecret2, objectVersionLabel: custom}}\n\
         - {{objectName: {s3}, objectType: secretsmanager, objectAlias: TestSecret3, objectVersion: {s3_v1}}}\n\
         - objectName: {json}\n  objectType: secretsmanager\n  objectAlias: TestSecretJSON\n  jmesPath: [{{path: username, objectAlias: username}}]\n\
         - {{objectName: {p1}, objectType: ssmparameter, objectAlias: TestParm1, objectVersionLabel: current}}\n\
         - {{objectName: {p2}, objectType: ssmparameter, objectAlias: TestParm2, objectVersion: '1'}}\n",
        p1 = parameter(1),
        p2 = parameter(2),
    );
    for i in 3..=11 {
        objects.push_str(&format!(
            "- {{objectName: {}, objectType: ssmparameter, objectAlias: TestParm{i}}}\n",
            parameter(i)
        ));
    }
    let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
    let target = csi_secrets_provider_tests::new_target_path();
    let expected = |changed: &[(&str, &str)]| {
        let mut all: BTreeMap<String, String> = [
            ("TestSecret1", "TestSecret1 v1"),
            ("TestSecret2", "TestSecret2 v1"),
            ("TestSecret3", "TestSecret3 v1"),
            ("TestSecretJSON", r#"{"username": "SecretsManagerUser", "password": "SecretsManagerPassword"}"#),
            ("username", "SecretsManagerUser"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain((1..=11).map(|i| (format!("TestParm{i}"), format!("parm{i} v1"))))
        .collect();
        for (path, value) in changed {
            all.insert((*path).to_owned(), (*value).to_owned());
        }
        all
    };

    // Initial mount: every file.
    let initial = world.remount_with_versions(&target, &parameters, Vec::new()).await?;
    assert_eq!(files(&initial), expected(&[]));
    assert_eq!(world.proxy.count("GetParameters"), 2, "eleven parameters, two batches");

    // No change: the same files and versions.
    let unchanged = world.remount_with_versions(&target, &parameters, initial.object_version.clone()).await?;
    assert_eq!(files(&unchanged), expected(&[]));
    assert_eq!(versions(&unchanged), versions(&initial));

    // Rotation: AWSCURRENT moves for secrets 1, 2 and JSON, and every parameter gets a version 2;
    // `custom` stays on secret 2's first version, secret 3 and parameter 2 are pinned, and
    // parameter 3 is not rotated. The label `current` moves to parameter 1's version 2.
    sm.put_secret_value().secret_id(&s1).secret_binary(Blob::new("TestSecret1 v2")).send().await?;
    sm.put_secret_value().secret_id(&s2).secret_string("TestSecret2 v2").send().await?;
    // Secrets Manager keeps other labels on the version AWSCURRENT leaves; moto 5 drops them, so
    // `custom` is put back where AWS would have left it.
    sm.update_secret_version_stage()
        .secret_id(&s2)
        .version_stage("custom")
        .move_to_version_id(&s2_v1)
        .send()
        .await?;
    sm.put_secret_value().secret_id(&s3).secret_string("TestSecret3 v2").send().await?;
    sm.put_secret_value()
        .secret_id(&json)
        .secret_string(r#"{"username": "SecretsManagerUser2", "password": "SecretsManagerPassword"}"#)
        .send()
        .await?;
    for i in (1..=11).filter(|&i| i != 3) {
        let put = ssm.put_parameter().name(parameter(i)).value(format!("parm{i} v2")).overwrite(true);
        put.send().await?;
    }
    ssm.label_parameter_version().name(parameter(1)).parameter_version(2).labels("current").send().await?;
    let rotated = world.remount_with_versions(&target, &parameters, unchanged.object_version.clone()).await?;
    let mut changed: Vec<(String, String)> = vec![
        ("TestSecret1".into(), "TestSecret1 v2".into()),
        (
            "TestSecretJSON".into(),
            r#"{"username": "SecretsManagerUser2", "password": "SecretsManagerPassword"}"#.into(),
        ),
        ("username".into(), "SecretsManagerUser2".into()),
    ];
    changed.extend(
        (1..=11).filter(|&i| i != 2 && i != 3).map(|i| (format!("TestParm{i}"), format!("parm{i} v2"))),
    );
    let changed_refs: Vec<(&str, &str)> = changed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(files(&rotated), expected(&changed_refs));
    let (before, after) = (versions(&unchanged), versions(&rotated));
    for id in ["TestSecret2", "TestSecret3", "TestParm2", "TestParm3"] {
        assert_eq!(before.get(id), after.get(id), "{id} did not move");
    }
    for id in ["TestSecret1", "TestSecretJSON", "username", "TestParm1", "TestParm11"] {
        assert_ne!(before.get(id), after.get(id), "{id} moved");
    }
    assert_eq!(after.get("TestParm1").map(String::as_str), Some("2"));

    // Labels move: `custom` to secret 2's current version.
    let s2_v2 = sm.describe_secret().secret_id(&s2).send().await?;
    let current = s2_v2
        .version_ids_to_stages()
        .and_then(|stages| stages.iter().find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT")))
        .map(|(id, _)| id.clone())
        .ok_or("no AWSCURRENT")?;
    sm.update_secret_version_stage()
        .secret_id(&s2)
        .version_stage("custom")
        .move_to_version_id(&current)
        .remove_from_version_id(&s2_v1)
        .send()
        .await?;
    let moved = world.remount_with_versions(&target, &parameters, rotated.object_version.clone()).await?;
    let mut moved_expected = expected(&changed_refs);
    moved_expected.insert("TestSecret2".into(), "TestSecret2 v2".into());
    assert_eq!(files(&moved), moved_expected);
    assert_eq!(versions(&moved).get("TestSecret2"), Some(&current));
    Ok(())
}

/// `TestMountMaxRegionsExceeded`: upstream guards against more than two regions (the SPC's and
/// its failover); a mount with one region, and one with a failover, never hits that guard.
#[tokio::test(flavor = "multi_thread")]
async fn one_or_two_regions_never_exceed_the_region_limit() -> TestResult {
    let world = AwsWorld::start(BINARY, "regions", &[]).await?;
    let (sm, _) = seed().await;
    let secret = world.name("TestSecret1");
    sm.create_secret().name(&secret).secret_string("v").send().await?;
    let objects = format!("- objectName: \"{secret}\"\n  objectType: \"secretsmanager\"\n");
    for parameters in [
        vec![("objects", objects.as_str()), ("region", "us-east-1")],
        vec![("objects", objects.as_str()), ("region", "us-east-1"), ("failoverRegion", "us-west-2")],
    ] {
        let response = world.mount(&parameters).await?;
        assert_eq!(response.files.len(), 1);
    }
    Ok(())
}

/// `TestAppID`: upstream's SDK app id is `secrets-store-csi-driver-provider-aws-<version>` (or
/// the EKS add-on version). Ours names the mounting pod instead, so CloudTrail says which pod
/// read what (a deliberate difference, docs/aws.md); the SDK's own product token stays.
#[tokio::test(flavor = "multi_thread")]
async fn the_user_agent_names_the_pod_where_upstream_names_the_provider() -> TestResult {
    let world = AwsWorld::start(BINARY, "appid", &[]).await?;
    let (sm, _) = seed().await;
    let secret = world.name("db");
    sm.create_secret().name(&secret).secret_string("v").send().await?;
    let objects = format!("- {{objectName: {secret}, objectType: secretsmanager}}\n");
    world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
    let calls = world.proxy.calls();
    let read = calls.iter().find(|c| c.action == "GetSecretValue").ok_or("no read")?;
    assert!(read.user_agent.contains("app/csi-shop.web-0"), "{}", read.user_agent);
    assert!(read.user_agent.contains("aws-sdk-rust"), "{}", read.user_agent);
    assert!(!read.user_agent.contains("secrets-store-csi-driver-provider-aws"), "{}", read.user_agent);
    Ok(())
}

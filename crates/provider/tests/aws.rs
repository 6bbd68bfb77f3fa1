//! The AWS backend end to end: the real binary's `aws.sock`, driven by a driver-shaped client,
//! against moto (through a per-test recording proxy) and an HTTPS fake Kubernetes API.
#![cfg(feature = "aws")]

use aws_sdk_secretsmanager::primitives::Blob;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::worlds::{AWS_ROLE as ROLE, AwsWorld, BoxError};
use csi_secrets_provider_tests::{DriverClient, file_contents as file, pod_attributes};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

type World = AwsWorld;

async fn world(test: &str, extra_args: &[&str]) -> Result<World, BoxError> {
    AwsWorld::start(BINARY, test, extra_args).await
}

#[path = "common/moto.rs"]
mod moto;
use moto::clients as seed;

fn version<'a>(response: &'a MountResponse, id: &str) -> Option<&'a str> {
    response.object_version.iter().find(|v| v.id == id).map(|v| v.version.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_shape_arn_and_alias_end_to_end() -> TestResult {
    let world = world("seed", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let created = sm.create_secret().name(world.name("db")).secret_string("p@ssw0rd").send().await?;
    let arn = created.arn().ok_or("arn")?.to_owned();
    let objects = format!("- objectName: \"{arn}\"\n  objectAlias: \"db-password\"\n");
    let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
    assert_eq!(file(&response, "db-password")?, b"p@ssw0rd");
    assert_eq!(response.files[0].mode, 0o644);
    assert_eq!(version(&response, "db-password"), created.version_id());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn by_name_versions_labels_and_rotation() -> TestResult {
    let world = world("versions", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let name = world.name("api");
    let first = sm.create_secret().name(&name).secret_string("one").send().await?;
    let objects = format!(
        "- {{objectName: {name}, objectType: secretsmanager, objectAlias: current, filePermission: '0600'}}\n\
         - {{objectName: {name}, objectType: secretsmanager, objectAlias: pinned, objectVersion: {v}}}\n",
        v = first.version_id().ok_or("version")?
    );
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file(&response, "current")?, b"one");
    assert_eq!(response.files.iter().find(|f| f.path == "current").map(|f| f.mode), Some(0o600));

    // Rotation: a new value appears with a new version; the previous one stays reachable.
    let second = sm.put_secret_value().secret_id(&name).secret_string("two").send().await?;
    let objects = format!(
        "{objects}- {{objectName: {name}, objectType: secretsmanager, objectAlias: previous, objectVersionLabel: AWSPREVIOUS}}\n"
    );
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file(&response, "current")?, b"two");
    assert_eq!(version(&response, "current"), second.version_id());
    assert_eq!(file(&response, "pinned")?, b"one");
    assert_eq!(file(&response, "previous")?, b"one");
    assert_eq!(version(&response, "previous"), first.version_id());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_string_secure_string_and_pinned_version() -> TestResult {
    let world = world("params", &[]).await?;
    let (_, ssm) = seed("us-east-1").await;
    let plain = format!("/{}", world.name("plain"));
    let secure = format!("/{}", world.name("secure"));
    ssm.put_parameter()
        .name(&plain)
        .value("v1")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await?;
    ssm.put_parameter()
        .name(&plain)
        .value("v2")
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await?;
    ssm.put_parameter()
        .name(&secure)
        .value("top-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await?;
    let objects = format!(
        "- {{objectName: {plain}, objectType: ssmparameter}}\n\
         - {{objectName: {plain}, objectType: ssmparameter, objectVersion: '1', objectAlias: plain-v1}}\n\
         - {{objectName: {secure}, objectType: ssmparameter, objectAlias: secure}}\n"
    );
    let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
    let translated = plain.replace('/', "_");
    assert_eq!(file(&response, &translated)?, b"v2");
    assert_eq!(version(&response, &translated), Some("2"));
    assert_eq!(file(&response, "plain-v1")?, b"v1");
    assert_eq!(version(&response, "plain-v1"), Some("1"));
    assert_eq!(file(&response, "secure")?, b"top-secret", "SecureString is decrypted");
    assert_eq!(world.proxy.count("GetParameters"), 1, "three parameters, one batch");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_batches_of_ten() -> TestResult {
    let world = world("batch", &[]).await?;
    let (_, ssm) = seed("us-east-1").await;
    let mut objects = String::new();
    for i in 0..23 {
        let name = format!("/{}", world.name(&format!("p{i}")));
        ssm.put_parameter()
            .name(&name)
            .value(format!("value-{i}"))
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await?;
        objects.push_str(&format!("- {{objectName: {name}, objectType: ssmparameter, objectAlias: p{i}}}\n"));
    }
    let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
    assert_eq!(response.files.len(), 23);
    for i in 0..23 {
        assert_eq!(file(&response, &format!("p{i}"))?, format!("value-{i}").as_bytes());
    }
    assert_eq!(world.proxy.count("GetParameters"), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn jmes_path_including_a_hyphenated_key_and_binary_bytes() -> TestResult {
    let world = world("jmes", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let json_name = world.name("json");
    sm.create_secret()
        .name(&json_name)
        .secret_string(r#"{"username":"admin","db-password":"hunter2","port":5432}"#)
        .send()
        .await?;
    let binary: Vec<u8> = (0u8..=255).chain([0, 0xff, 0xfe]).collect();
    let bin_name = world.name("bin");
    sm.create_secret().name(&bin_name).secret_binary(Blob::new(binary.clone())).send().await?;
    let objects = format!(
        "- objectName: {json_name}\n  objectType: secretsmanager\n  objectAlias: db.json\n  jmesPath:\n    - {{path: username, objectAlias: user}}\n    - {{path: '\"db-password\"', objectAlias: pass, filePermission: '0400'}}\n\
         - {{objectName: {bin_name}, objectType: secretsmanager, objectAlias: blob}}\n"
    );
    let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
    assert_eq!(file(&response, "user")?, b"admin");
    assert_eq!(file(&response, "pass")?, b"hunter2");
    assert_eq!(response.files.iter().find(|f| f.path == "pass").map(|f| f.mode), Some(0o400));
    assert_eq!(file(&response, "blob")?, binary.as_slice(), "binary bytes exact");
    assert_eq!(
        version(&response, "user"),
        version(&response, "db.json"),
        "jmes files carry the parent's version"
    );

    let bad = format!(
        "- objectName: {json_name}\n  objectType: secretsmanager\n  objectAlias: db.json\n  jmesPath:\n    - {{path: port, objectAlias: port}}\n"
    );
    let status = world.mount(&[("objects", &bad), ("region", "us-east-1")]).await.err().ok_or("must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("Invalid JMES search result type for path:port"),
        "{}",
        status.message()
    );
    assert!(status.message().contains(&format!("object \"{json_name}\"")), "{}", status.message());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_region_is_used_when_the_primary_fails() -> TestResult {
    let world = world("failover", &[]).await?;
    let name = world.name("db");
    let (west, _) = seed("us-west-2").await;
    west.create_secret().name(&name).secret_string("from-us-west-2").send().await?;
    world.proxy.fail_region("us-east-1");
    let objects = format!(
        "- objectName: {name}\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectName: {name}\n"
    );
    let response = world
        .mount(&[("objects", &objects), ("region", "us-east-1"), ("failoverRegion", "us-west-2")])
        .await?;
    assert_eq!(file(&response, "db")?, b"from-us-west-2");
    let regions: Vec<String> =
        world.proxy.calls().into_iter().filter(|c| c.action == "GetSecretValue").map(|c| c.region).collect();
    assert!(
        regions.contains(&"us-east-1".to_owned()) && regions.last().map(String::as_str) == Some("us-west-2"),
        "{regions:?}"
    );

    // Without a failover region the outage is reported in upstream's words.
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager}}\n");
    let status =
        world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("must fail")?;
    assert_eq!(status.code(), Code::Aborted);
    assert!(status.message().contains("Failed to fetch secret from all regions"), "{}", status.message());
    Ok(())
}

/// What upstream accepts mounts here too: any four octal digits as `filePermission` (the driver
/// keeps the permission bits).
#[tokio::test(flavor = "multi_thread")]
async fn upstream_leniencies_mount() -> TestResult {
    let world = world("lenient", &[]).await?;
    let name = world.name("db");
    let other = world.name("other");
    world.put_secret(&name, "value").await?;
    world.put_secret(&other, "other value").await?;
    // Keys in any case (upstream decodes through JSON); a typo'd key is ignored and named in the
    // log; a file named twice (an alias equal to another object's derived name) is written
    // once, the last object winning.
    let translated = other.replace('/', "_");
    let objects = format!(
        "- {{objectname: {name}, OBJECTTYPE: secretsmanager, objectalias: db, filePermission: '1640', objectAlais: typo}}\n\
         - {{objectName: {name}, objectType: secretsmanager, objectAlias: {translated}, objectVersionLabel: AWSCURRENT}}\n\
         - {{objectName: {other}, objectType: secretsmanager}}\n"
    );
    let response = world
        .mount(&[("objects", &objects), ("region", "us-east-1"), ("failoverRegoin", "us-west-2")])
        .await?;
    assert_eq!(file(&response, "db")?, b"value");
    assert_eq!(response.files.iter().find(|f| f.path == "db").map(|f| f.mode), Some(0o640));
    assert_eq!(file(&response, &translated)?, b"other value", "the last object wins");
    assert_eq!(response.files.iter().filter(|f| f.path == translated).count(), 1);
    let log = world.provider.log_text();
    assert!(log.contains("unknown key `objectAlais` is ignored (did you mean `objectAlias`?)"), "{log}");
    assert!(
        log.contains("unknown parameter `failoverRegoin` is ignored (did you mean `failoverRegion`?)"),
        "{log}"
    );
    assert!(log.contains("the last one wins"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_object_with_only_a_version_label_is_honoured() -> TestResult {
    let world = world("failoverlabel", &[]).await?;
    let name = world.name("db");
    let (west, _) = seed("us-west-2").await;
    west.create_secret().name(&name).secret_string("west-previous").send().await?;
    west.put_secret_value().secret_id(&name).secret_string("west-current").send().await?;
    world.proxy.fail_region("us-east-1");
    let objects = format!(
        "- objectName: {name}\n  objectType: secretsmanager\n  objectAlias: db\n  failoverObject:\n    objectVersionLabel: AWSPREVIOUS\n"
    );
    let response = world
        .mount(&[("objects", &objects), ("region", "us-east-1"), ("failoverRegion", "us-west-2")])
        .await?;
    assert_eq!(file(&response, "db")?, b"west-previous", "the failover region was asked for AWSPREVIOUS");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_exchanges_the_token_in_the_failover_region_when_sts_is_down() -> TestResult {
    let world = world("stsfailover", &[]).await?;
    let name = world.name("db");
    world.put_secret(&name, "value").await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");
    // The primary region's STS fails every attempt the SDK makes (three).
    world.proxy.inject("AssumeRoleWithWebIdentity", 3, 503, "ServiceUnavailable", "injected STS outage");
    let response = world
        .mount(&[("objects", &objects), ("region", "us-east-1"), ("failoverRegion", "us-west-2")])
        .await?;
    assert_eq!(file(&response, "db")?, b"value");
    assert_eq!(
        world.proxy.count("AssumeRoleWithWebIdentity"),
        4,
        "three in the primary, one in the failover region"
    );
    assert!(
        world.provider.log_text().contains("STS failed; trying the next region"),
        "{}",
        world.provider.log_text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_users_grep_for() -> TestResult {
    let world = world("errors", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let name = world.name("exists");
    sm.create_secret().name(&name).secret_string("x").send().await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager}}\n");

    let status = world
        .mount_as("no-role", &[("objects", &objects), ("region", "us-east-1")])
        .await
        .err()
        .ok_or("no role")?;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("An IAM role must be associated with service account no-role (namespace: shop)"),
        "{}",
        status.message()
    );

    let missing = world.name("missing");
    let objects_missing = format!(
        "- {{objectName: {name}, objectType: secretsmanager}}\n- {{objectName: {missing}, objectType: secretsmanager}}\n"
    );
    let status = world
        .mount(&[("objects", &objects_missing), ("region", "us-east-1")])
        .await
        .err()
        .ok_or("missing")?;
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains(&missing) && status.message().contains("ResourceNotFoundException"),
        "{}",
        status.message()
    );

    let duplicate = format!(
        "- {{objectName: {name}, objectType: secretsmanager, objectAlias: same}}\n- {{objectName: {missing}, objectType: secretsmanager, objectAlias: same}}\n"
    );
    let status = world.mount(&[("objects", &duplicate), ("region", "us-east-1")]).await.err().ok_or("dup")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("found duplicate object alias same"), "{}", status.message());

    let no_tokens = pod_attributes(&[("objects", &objects), ("region", "us-east-1")]).to_string();
    let status = DriverClient::new(&world.provider.socket("aws"))
        .mount_raw(no_tokens, "null".to_owned(), "420".to_owned())
        .await
        .err()
        .ok_or("no tokens")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("CSI token error: serviceAccount.tokens not provided"),
        "{}",
        status.message()
    );

    // Validation failures never reach AWS.
    // Only the mount with the missing secret reached AWS (both its objects, in one batch).
    assert_eq!(world.proxy.count("BatchGetSecretValue"), 1, "{:?}", world.proxy.calls());
    assert_eq!(world.proxy.count("GetSecretValue"), 0, "{:?}", world.proxy.calls());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn region_from_the_nodes_label() -> TestResult {
    let world = world("noderegion", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let name = world.name("db");
    sm.create_secret().name(&name).secret_string("east").send().await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");
    let response = world.mount(&[("objects", &objects)]).await?;
    assert_eq!(file(&response, "db")?, b"east");
    let requests = world.kube.requests();
    assert!(requests.contains(&"/api/v1/namespaces/shop/pods/web-0".to_owned()), "{requests:?}");
    assert!(requests.contains(&"/api/v1/nodes/node-a".to_owned()), "{requests:?}");
    let calls = world.proxy.calls();
    // AssumeRoleWithWebIdentity is unsigned; every signed call went to the node's region.
    assert!(calls.iter().filter(|c| !c.access_key.is_empty()).all(|c| c.region == "us-east-1"), "{calls:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_exchanged_once_per_identity() -> TestResult {
    let world = world("cache", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let mut objects = String::new();
    for i in 0..3 {
        let name = world.name(&format!("s{i}"));
        sm.create_secret().name(&name).secret_string(format!("v{i}")).send().await?;
        objects
            .push_str(&format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: s{i}}}\n"));
    }
    let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
    for _ in 0..5 {
        world.mount(&parameters).await?;
    }
    assert_eq!(world.proxy.count("AssumeRoleWithWebIdentity"), 1, "{:?}", world.proxy.calls());
    assert_eq!(world.proxy.count("BatchGetSecretValue"), 5, "one batch of three per mount");
    assert_eq!(world.proxy.count("GetSecretValue"), 0);

    world.mount_as("batch", &parameters).await?;
    assert_eq!(
        world.proxy.count("AssumeRoleWithWebIdentity"),
        2,
        "a second identity gets its own credentials"
    );
    let calls = world.proxy.calls();
    let keys: std::collections::BTreeSet<&str> =
        calls.iter().filter(|c| c.action == "BatchGetSecretValue").map(|c| c.access_key.as_str()).collect();
    assert_eq!(keys.len(), 2, "two identities, two distinct credentials: {keys:?}");
    let web_key = calls.iter().find(|c| c.action == "BatchGetSecretValue").map(|c| c.access_key.clone());
    let batch_key =
        calls.iter().rev().find(|c| c.action == "BatchGetSecretValue").map(|c| c.access_key.clone());
    assert_ne!(web_key, batch_key);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sts_refusal_and_throttling() -> TestResult {
    let world = world("stsrefusal", &[]).await?;
    let (sm, _) = seed("us-east-1").await;
    let name = world.name("db");
    sm.create_secret().name(&name).secret_string("x").send().await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");
    let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];

    world.proxy.inject(
        "AssumeRoleWithWebIdentity",
        1,
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    );
    let status = world.mount(&parameters).await.err().ok_or("STS refused")?;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains(&format!("AssumeRoleWithWebIdentity for role {ROLE} failed: AccessDenied")),
        "{}",
        status.message()
    );
    assert_eq!(world.proxy.count("GetSecretValue"), 0);

    // Throttling is retried by the SDK with backoff; the mount then succeeds.
    world.proxy.inject("GetSecretValue", 2, 400, "ThrottlingException", "Rate exceeded");
    let response = world.mount(&parameters).await?;
    assert_eq!(file(&response, "db")?, b"x");
    assert_eq!(world.proxy.count("GetSecretValue"), 3, "two throttled calls, then success");

    // Access denied is not retried.
    world.proxy.inject("GetSecretValue", 1, 400, "AccessDeniedException", "not allowed");
    let status = world.mount(&parameters).await.err().ok_or("denied")?;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("AccessDeniedException"), "{}", status.message());
    assert_eq!(world.proxy.count("GetSecretValue"), 4, "no retry after access denied");
    Ok(())
}

/// `objectType: ecr`: the registry's Docker login from `ecr:GetAuthorizationToken` with the
/// pod's identity (moto's token, for the account the host names; the recording proxy gives it
/// ECR's 12-hour expiry), the version that expiry; a remount within half its lifetime takes the
/// kept login (no call); an optional registry the identity may not log in to fails (a refusal
/// is never skipped); a host that is not ECR's is refused naming it, before any call.
#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_registry_is_a_docker_config_from_get_authorization_token() -> TestResult {
    let world = world("ecr", &[]).await?;
    let secret = world.name("app");
    world.put_secret(&secret, "v").await?;
    let host = "999999999999.dkr.ecr.us-east-1.amazonaws.com";
    let objects = format!(
        "- {{objectName: '{secret}', objectType: secretsmanager, objectAlias: app}}\n- {{objectName: {host}, objectType: ecr, objectAlias: .dockerconfigjson, filePermission: '0400'}}\n"
    );
    let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
    let target = csi_secrets_provider_tests::new_target_path();
    let first = world.mount_at(&target, "web", &parameters).await?;
    let config: serde_json::Value = serde_json::from_slice(file(&first, ".dockerconfigjson")?)?;
    let entry = &config["auths"][host];
    assert_eq!(
        (entry["username"].as_str(), entry["password"].as_str()),
        (Some("AWS"), Some("999999999999-auth-token"))
    );
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("AWS:999999999999-auth-token");
    assert_eq!(entry["auth"].as_str(), Some(auth.as_str()));
    assert_eq!(first.files.iter().find(|f| f.path == ".dockerconfigjson").map(|f| f.mode), Some(0o400));
    let expiry = humantime::parse_rfc3339(version(&first, ".dockerconfigjson").ok_or("no version")?)?;
    let left = expiry.duration_since(std::time::SystemTime::now())?;
    assert!(left > std::time::Duration::from_secs(11 * 3600), "the version is ECR's expiry, 12 hours out");
    assert_eq!(world.proxy.count("GetAuthorizationToken"), 1);

    let remount = world.mount_at(&target, "web", &parameters).await?;
    assert_eq!(file(&remount, ".dockerconfigjson")?, file(&first, ".dockerconfigjson")?);
    assert_eq!(world.proxy.count("GetAuthorizationToken"), 1, "the kept login, no call");

    world.proxy.inject(
        "GetAuthorizationToken",
        5,
        400,
        "AccessDeniedException",
        "not authorized to perform: ecr:GetAuthorizationToken",
    );
    let optional =
        "- {objectName: 111111111111.dkr.ecr.us-east-1.amazonaws.com, objectType: ecr, optional: true}\n";
    let status = world
        .mount(&[("objects", optional), ("region", "us-east-1")])
        .await
        .err()
        .ok_or("a refused registry login was skipped")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("111111111111.dkr.ecr.us-east-1.amazonaws.com"),
        "{}",
        status.message()
    );

    let calls = world.proxy.calls().len();
    let bad = "- {objectName: 123456789012.dkr.ecr.us-east-1.evil.com, objectType: ecr}\n";
    let status =
        world.mount(&[("objects", bad), ("region", "us-east-1")]).await.err().ok_or("a bad host mounted")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("is not an ECR registry host"), "{}", status.message());
    assert_eq!(world.proxy.calls().len(), calls, "no call for a bad SecretProviderClass");
    Ok(())
}

/// An ECR login is renewed once half its lifetime is gone, not before: logins living 6 s here,
/// remounts take the kept one for 3 s, then ask ECR again (an event polled for, not a sleep).
#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_login_is_renewed_at_half_its_lifetime() -> TestResult {
    let world = world("ecr-renewal", &[]).await?;
    world.proxy.set_registry_token_lifetime(std::time::Duration::from_secs(6));
    let objects = "- {objectName: 123456789012.dkr.ecr.us-east-1.amazonaws.com, objectType: ecr}\n";
    let parameters = [("objects", objects), ("region", "us-east-1")];
    let target = csi_secrets_provider_tests::new_target_path();
    let asked = std::time::Instant::now();
    world.mount_at(&target, "web", &parameters).await?;
    let answered = std::time::Instant::now();
    let renewed = loop {
        world.mount_at(&target, "web", &parameters).await?;
        if world.proxy.count("GetAuthorizationToken") == 2 {
            break std::time::Instant::now();
        }
        if asked.elapsed() > std::time::Duration::from_secs(20) {
            return Err("the login was never renewed".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        renewed.duration_since(asked) >= std::time::Duration::from_secs(3),
        "renewed before half its life"
    );
    assert!(
        renewed.duration_since(answered) < std::time::Duration::from_secs(6),
        "renewed before it expired"
    );
    Ok(())
}

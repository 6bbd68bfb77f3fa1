//! The admin policy (`serve --policy`) end to end: the real binary against the AWS and Azure test
//! peers, which count every call, so "before any cloud call" is what they saw.
#![cfg(any(feature = "aws", feature = "azure"))]

use std::process::Command;

use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::worlds::BoxError;
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// A provider whose policy file does not parse does not start: serving without it would widen
/// access.
#[test]
fn a_bad_policy_file_refuses_the_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "defaultAction: maybe\n")?;
    let output = Command::new(BINARY)
        .args(["serve", "--provider-volume"])
        .arg(dir.path())
        .arg("--policy")
        .arg(&policy)
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("policy file") && stderr.contains("unknown variant `maybe`"), "{stderr}");
    assert!(!dir.path().join("aws.sock").exists() && !dir.path().join("azure.sock").exists());
    Ok(())
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::http_get;
    use csi_secrets_provider_tests::worlds::AwsWorld;
    use std::time::Duration;

    fn metric(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    const TEAM_ONLY: &str = "defaultAction: deny\nrules:\n  - namespaces: [\"sh*p\"]\n    serviceAccounts: [\"web\"]\n    allow:\n      aws: [\"*/team-a/*\"]\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn denied_before_any_call_and_reloaded_when_the_file_changes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, TEAM_ONLY)?;
        let path = policy.display().to_string();
        let world =
            AwsWorld::start(BINARY, "policy", &["--policy", &path, "--health-addr", "127.0.0.1:0"]).await?;
        let (allowed, other) = (world.name("team-a/db"), world.name("team-b/db"));
        world.put_secret(&allowed, "a").await?;
        world.put_secret(&other, "b").await?;
        let spc =
            |name: &str| format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: f}}\n");
        let (ok_objects, denied_objects) = (spc(&allowed), spc(&other));

        let response = world.mount(&[("objects", ok_objects.as_str()), ("region", "us-east-1")]).await?;
        assert_eq!(file(&response, "f")?, b"a");
        let (calls, kube) = (world.proxy.calls().len(), world.kube.requests().len());
        let denied = world
            .mount(&[("objects", denied_objects.as_str()), ("region", "us-east-1")])
            .await
            .err()
            .ok_or("team-b is not allowed")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        for words in ["denied by policy", "namespace \"shop\"", &other, "rule 1"] {
            assert!(denied.message().contains(words), "{words}: {}", denied.message());
        }
        // Another service account of the namespace: no rule applies, the default denies.
        let status = world
            .mount_as("batch", &[("objects", ok_objects.as_str()), ("region", "us-east-1")])
            .await
            .err()
            .ok_or("batch is not allowed")?;
        assert!(status.message().contains("defaultAction is deny"), "{}", status.message());
        assert_eq!(
            (world.proxy.calls().len(), world.kube.requests().len()),
            (calls, kube),
            "no token exchange, no lookup, no read for a denied mount"
        );

        // The file changes: the next mounts follow it (polled: the provider re-reads the file
        // every 2 s, later on a loaded machine).
        std::fs::write(&policy, "defaultAction: allow\n")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !world.provider.log_text().contains("policy reloaded") {
            assert!(std::time::Instant::now() < deadline, "the changed policy was never read");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        world.mount(&[("objects", denied_objects.as_str()), ("region", "us-east-1")]).await?;
        // A change that does not parse keeps the last good policy, and says so: once the metric
        // says it was read, the last good policy still lets the mount through.
        std::fs::write(&policy, "rules: {oops\n")?;
        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut metrics = http_get(addr, "/metrics").await?;
        while metric(&metrics, "csi_secrets_provider_policy_valid ") != Some(0.0) {
            assert!(std::time::Instant::now() < deadline, "the bad policy was never read: {metrics}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            metrics = http_get(addr, "/metrics").await?;
        }
        world.mount(&[("objects", denied_objects.as_str()), ("region", "us-east-1")]).await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_policy_denials_total{backend="aws"}"#),
            Some(2.0),
            "{metrics}"
        );
        let log = world.provider.log_text();
        assert!(log.contains("policy reloaded") && log.contains("the last good policy stays"), "{log}");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn vault_and_object_are_what_the_patterns_match() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = dir.path().join("policy.yaml");
        let rule = format!(
            "defaultAction: deny\nrules:\n  - namespaces: [\"*\"]\n    allow:\n      azure: [\"{AZURE_VAULT}/app-*\"]\n"
        );
        std::fs::write(&policy, rule)?;
        let path = policy.display().to_string();
        let world = AzureWorld::start(BINARY, &["--policy", &path]).await?;
        world.azure.set_secret(AZURE_VAULT, "app-db", "ok");
        world.azure.set_secret(AZURE_VAULT, "admin-db", "no");
        let response = world.mount(&["objectName: app-db\nobjectType: secret"]).await?;
        assert_eq!(file(&response, "app-db")?, b"ok");
        let (reads, tokens) = (world.azure.vault_requests().len(), world.azure.token_requests().len());
        let denied = world
            .mount(&["objectName: app-db\nobjectType: secret", "objectName: admin-db\nobjectType: secret"])
            .await
            .err()
            .ok_or("admin-db is not allowed")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        assert!(denied.message().contains(&format!("{AZURE_VAULT}/admin-db")), "{}", denied.message());
        assert_eq!((world.azure.vault_requests().len(), world.azure.token_requests().len()), (reads, tokens));
        Ok(())
    }
}

//! What the official providers do not have, through the real binary's sockets against the test
//! peers: optional objects (both clouds), objects in their own region (AWS) or vault (Azure),
//! and `jmesPath` on Azure secrets.
#![cfg(any(feature = "aws", feature = "azure"))]

use std::time::Duration;

use csi_secrets_provider_tests::worlds::BoxError;
use csi_secrets_provider_tests::{file_contents as file, file_paths, http_get};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// The value of one series in a Prometheus scrape.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[cfg(feature = "aws")]
#[path = "common/moto.rs"]
mod moto;

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::AwsWorld;

    #[tokio::test(flavor = "multi_thread")]
    async fn optional_objects_are_skipped_when_missing_and_only_then() -> TestResult {
        let world = AwsWorld::start(BINARY, "optional", &["--health-addr", "127.0.0.1:0"]).await?;
        let present = world.name("present");
        world.put_secret(&present, "here").await?;
        let (missing, denied) = (world.name("missing"), world.name("denied"));
        let objects = format!(
            "- {{objectName: {present}, objectType: secretsmanager, objectAlias: present}}\n\
             - {{objectName: {missing}, objectType: secretsmanager, objectAlias: missing, optional: true}}\n\
             - {{objectName: /{missing}/param, objectType: ssmparameter, objectAlias: missing-param, optional: 'true'}}\n"
        );
        let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
        assert_eq!(file_paths(&response), ["present"], "only the object that exists is written");
        assert_eq!(file(&response, "present")?, b"here");
        let log = world.provider.log_text();
        assert_eq!(log.matches("optional object not found; skipped").count(), 2, "{log}");
        let addr = world.provider.health_addr(Duration::from_secs(10)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_optional_objects_skipped_total{backend="aws"}"#),
            Some(2.0),
            "{metrics}"
        );

        // Not optional: the mount fails as before, naming the object.
        let objects =
            format!("- {{objectName: {missing}, objectType: secretsmanager, objectAlias: missing}}\n");
        let status =
            world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("must fail")?;
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains(&missing), "{status:?}");

        // Optional does not hide a refusal: access denied still fails the mount.
        world.put_secret(&denied, "secret").await?;
        world.proxy.allow_only(&denied, "nobody");
        let objects = format!(
            "- {{objectName: {denied}, objectType: secretsmanager, objectAlias: d, optional: true}}\n"
        );
        let status =
            world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("must fail")?;
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

        // A value that is not a boolean is a bad SPC.
        let objects = format!("- {{objectName: {present}, objectType: secretsmanager, optional: maybe}}\n");
        let status =
            world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(&format!(
                r#"object "{present}", field "optional": optional must be true or false"#
            )),
            "{status:?}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn objects_are_read_in_their_own_region() -> TestResult {
        let world = AwsWorld::start(BINARY, "own-region", &[]).await?;
        let (east, west) = (world.name("east"), world.name("west"));
        world.put_secret(&east, "from us-east-1").await?;
        // The world's helper writes to us-east-1; eu-west-1 gets its own copy with another value.
        let (eu_west, _) = super::moto::clients("eu-west-1").await;
        eu_west.create_secret().name(&west).secret_string("from eu-west-1").send().await?;
        let objects = format!(
            "- {{objectName: {east}, objectType: secretsmanager, objectAlias: east}}\n\
             - {{objectName: {west}, objectType: secretsmanager, objectAlias: west, region: eu-west-1}}\n"
        );
        let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
        assert_eq!(file(&response, "east")?, b"from us-east-1");
        assert_eq!(file(&response, "west")?, b"from eu-west-1");
        let mut reads: Vec<String> = world
            .proxy
            .calls()
            .into_iter()
            .filter(|c| c.action == "GetSecretValue")
            .map(|c| c.region)
            .collect();
        reads.sort();
        assert_eq!(reads, ["eu-west-1", "us-east-1"], "one read per object, each in its region");
        assert_eq!(world.proxy.count("AssumeRoleWithWebIdentity"), 1, "one identity, one exchange");

        // Failover is the SecretProviderClass's: an object with its own region has none.
        let objects = format!(
            "- {{objectName: {west}, objectType: secretsmanager, objectAlias: w, region: eu-west-1, failoverObject: {{objectName: {west}}}}}\n"
        );
        let status = world
            .mount(&[("objects", &objects), ("region", "us-east-1"), ("failoverRegion", "us-west-2")])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("failoverObject cannot be used with the object's own region"),
            "{status:?}"
        );
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_TENANT, AZURE_VAULT, AzureWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn optional_objects_are_skipped_when_missing_or_disabled_and_only_then() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        world.azure.set_secret(AZURE_VAULT, "present", "here");
        let version = world.azure.set_secret(AZURE_VAULT, "switched-off", "old");
        world.azure.disable_secret_version(AZURE_VAULT, "switched-off", &version);
        let response = world
            .mount(&[
                "objectName: present\nobjectType: secret",
                "objectName: missing\nobjectType: secret\noptional: true",
                "objectName: switched-off\nobjectType: secret\noptional: \"true\"",
            ])
            .await?;
        assert_eq!(file_paths(&response), ["present"]);
        let log = world.provider.log_text();
        assert_eq!(log.matches("optional object not found; skipped").count(), 2, "{log}");
        let addr = world.provider.health_addr(Duration::from_secs(10)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_optional_objects_skipped_total{backend="azure"}"#),
            Some(2.0),
            "{metrics}"
        );

        // Not optional: missing and disabled fail the mount, with upstream's prefix.
        for name in ["missing", "switched-off"] {
            let status = world
                .mount(&[&format!("objectName: {name}\nobjectType: secret")])
                .await
                .err()
                .ok_or("must fail")?;
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert!(
                status.message().contains(&format!("failed to get objectType:secret, objectName:{name}")),
                "{status:?}"
            );
        }

        // A refusal is not hidden by optional.
        world.azure.set_secret(AZURE_VAULT, "guarded", "x");
        world.azure.restrict(AZURE_VAULT, "guarded", &["someone-else"]);
        let status = world
            .mount(&["objectName: guarded\nobjectType: secret\noptional: true"])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn objects_are_read_from_their_own_vault() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.add_vault("kv-other", AZURE_TENANT);
        world.azure.set_secret(AZURE_VAULT, "shared-name", "from the SPC's vault");
        world.azure.set_secret("kv-other", "shared-name", "from kv-other");
        let response = world
            .mount(&[
                "objectName: shared-name\nobjectType: secret\nobjectAlias: main",
                "objectName: shared-name\nobjectType: secret\nobjectAlias: other\nkeyvaultName: kv-other",
            ])
            .await?;
        assert_eq!(file(&response, "main")?, b"from the SPC's vault");
        assert_eq!(file(&response, "other")?, b"from kv-other");
        let reads: Vec<String> =
            world.azure.vault_requests().into_iter().filter(|r| r.status == 200).map(|r| r.vault).collect();
        assert!(
            reads.contains(&AZURE_VAULT.to_owned()) && reads.contains(&"kv-other".to_owned()),
            "{reads:?}"
        );
        // Each vault asks for its own token (its own 401 challenge), from the one identity.
        let challenges = world.azure.vault_requests().iter().filter(|r| r.status == 401).count();
        assert_eq!(challenges, 2, "{:?}", world.azure.vault_requests());

        // Errors name the object's own vault.
        let status = world
            .mount(&["objectName: nowhere\nobjectType: secret\nkeyvaultName: kv-other"])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::NotFound);
        assert!(
            status.message().contains("objectName:nowhere, objectVersion:, keyvaultName:kv-other"),
            "{status:?}"
        );
        let status = world
            .mount(&["objectName: x\nobjectType: secret\nkeyvaultName: not_a_vault!"])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(r#"object "x", field "keyvaultName""#), "{status:?}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn jmes_path_on_secrets() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", r#"{"username":"app","db-password":"s3cret","port":5432}"#);
        world.azure.set_secret(AZURE_VAULT, "plain", "not json");
        let response = world
            .mount(&[
                "objectName: db\nobjectType: secret\nfilePermission: \"0600\"\njmesPath:\n  - {path: username, objectAlias: db-user}\n  - {path: '\"db-password\"', objectAlias: db-pass, filePermission: \"0400\"}",
            ])
            .await?;
        assert_eq!(file_paths(&response), ["db", "db-pass", "db-user"], "the whole secret is still written");
        assert_eq!(file(&response, "db-user")?, b"app");
        assert_eq!(file(&response, "db-pass")?, b"s3cret");
        let mode = |path: &str| response.files.iter().find(|f| f.path == path).map(|f| f.mode);
        assert_eq!((mode("db"), mode("db-user"), mode("db-pass")), (Some(0o600), Some(0o600), Some(0o400)));

        let status = world
            .mount(&["objectName: plain\nobjectType: secret\njmesPath:\n  - {path: a, objectAlias: a}"])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("Invalid JSON used with jmesPath in secret: plain."), "{status:?}");
        assert!(status.message().contains(r#"object "plain""#), "{status:?}");

        let status = world
            .mount(&["objectName: k\nobjectType: key\njmesPath:\n  - {path: a, objectAlias: a}"])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("jmesPath is only supported for objectType secret"), "{status:?}");
        Ok(())
    }
}

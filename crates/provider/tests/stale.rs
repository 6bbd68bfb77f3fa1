//! `staleIfError` end to end: pods that start while the cloud is out. The real binary's sockets,
//! driven by a driver-shaped client, against the project's test peers made to answer 503 for
//! good. Only the same identity's last good value is served, only for an outage, only while it
//! is younger than the SecretProviderClass's `staleIfError`.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

use std::time::Duration;

use csi_secrets_provider_tests::worlds::BoxError;
use csi_secrets_provider_tests::{file_contents as file, http_get};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// The value of the metric line starting with `series` (name and labels), if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The provider's warning for a stale-served object names the pod, the object and the age.
fn assert_stale_warning(log: &str, pod: &str, object: &str) {
    let line = log
        .lines()
        .find(|line| line.contains("served the last good value") && line.contains(pod))
        .unwrap_or_else(|| panic!("no stale warning for {pod} in\n{log}"));
    assert!(line.contains(object), "{line}");
    assert!(line.contains("age_seconds"), "{line}");
    assert!(line.contains("WARN"), "{line}");
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::AwsWorld;

    /// The parameters of a mount of `objects` in us-east-1 as pod `pod`, with `staleIfError`
    /// when given.
    fn spc<'a>(objects: &'a str, stale: Option<&'a str>, pod: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut parameters =
            vec![("objects", objects), ("region", "us-east-1"), ("csi.storage.k8s.io/pod.name", pod)];
        parameters.extend(stale.map(|stale| ("staleIfError", stale)));
        parameters
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_pod_starting_during_an_outage_gets_its_identitys_last_good_value() -> TestResult {
        let world = AwsWorld::start(BINARY, "stale", &["--health-addr", "127.0.0.1:0"]).await?;
        let db = world.name("db");
        world.put_secret(&db, "before the outage").await?;
        world.put_secret(&world.name("batch-own"), "batch").await?;
        let objects = format!("- {{objectName: {db}, objectType: secretsmanager, objectAlias: db}}\n");
        let batch_objects = format!(
            "- {{objectName: {}, objectType: secretsmanager, objectAlias: own}}\n",
            world.name("batch-own")
        );
        // Pod A reads; the batch identity gets its credentials for another secret.
        let a = spc(&objects, Some("1h"), "web-a");
        assert_eq!(file(&world.mount(&a).await?, "db")?, b"before the outage");
        world.mount_as("batch", &[("objects", batch_objects.as_str()), ("region", "us-east-1")]).await?;

        // A refusal is never served stale, even with a value kept.
        world.proxy.inject("GetSecretValue", 1, 400, "AccessDeniedException", "not allowed");
        let denied = world.mount(&spc(&objects, Some("1h"), "web-d")).await.err().ok_or("denied")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

        // Secrets Manager goes down for good.
        world.proxy.fail_region("us-east-1");
        let b = world.mount(&spc(&objects, Some("1h"), "web-b")).await?;
        assert_eq!(file(&b, "db")?, b"before the outage", "pod B got A's value");
        assert_stale_warning(&world.provider.log_text(), "web-b", &db);

        // Another identity has no last good value of its own.
        let refused = world
            .mount_as("batch", &spc(&objects, Some("1h"), "batch-0"))
            .await
            .err()
            .ok_or("another identity")?;
        assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
        // Without the parameter, the outage is the answer.
        let status = world.mount(&spc(&objects, None, "web-p")).await.err().ok_or("no staleIfError")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // A value older than the SPC's staleIfError is not served.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let status = world.mount(&spc(&objects, Some("1s"), "web-o")).await.err().ok_or("too old")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_stale_served_total{backend="aws"}"#),
            Some(1.0),
            "{metrics}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_stale_if_error_is_refused_before_any_call() -> TestResult {
        let world = AwsWorld::start(BINARY, "badstale", &[]).await?;
        let objects = format!("- {{objectName: {}, objectType: secretsmanager}}\n", world.name("db"));
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1"), ("staleIfError", "soon")];
        let status = world.mount(&parameters).await.err().ok_or("bad duration")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("staleIfError"), "{}", status.message());
        assert!(world.proxy.calls().is_empty(), "no cloud call");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_NAMESPACE, AZURE_TENANT, AZURE_VAULT, AzureWorld};

    const OTHER_CLIENT: &str = "99999999-8888-7777-6666-555555555555";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_pod_starting_during_an_outage_gets_its_identitys_last_good_value() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        world.azure.federate(AZURE_TENANT, OTHER_CLIENT, AZURE_NAMESPACE, "other-sa");
        world.azure.set_secret(AZURE_VAULT, "db", "before the outage");
        let objects = ["objectName: db\nobjectType: secret"];
        let pod = |name| ("csi.storage.k8s.io/pod.name", name);
        let stale = |duration| ("staleIfError", duration);

        world.mount_as("workload-sa", &objects, &[stale("1h"), pod("web-a")]).await?;

        // A refusal is never served stale: the other identity may not read db at all.
        world.azure.restrict(AZURE_VAULT, "db", &[csi_secrets_provider_tests::worlds::AZURE_CLIENT]);
        let as_other = [("clientID", OTHER_CLIENT), stale("1h"), pod("other-0")];
        let denied = world.mount_as("other-sa", &objects, &as_other).await.err().ok_or("denied")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

        // Key Vault goes down for good.
        world.azure.fail_requests("/secrets/db", 100_000);
        let b = world.mount_as("workload-sa", &objects, &[stale("1h"), pod("web-b")]).await?;
        assert_eq!(file(&b, "db")?, b"before the outage", "pod B got A's value");
        assert_stale_warning(&world.provider.log_text(), "web-b", "db");

        // Another identity (allowed again, but with no value of its own) gets the outage.
        world.azure.restrict(
            AZURE_VAULT,
            "db",
            &[csi_secrets_provider_tests::worlds::AZURE_CLIENT, OTHER_CLIENT],
        );
        let status = world.mount_as("other-sa", &objects, &as_other).await.err().ok_or("other identity")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // Without the parameter, the outage is the answer.
        let status = world.mount_as("workload-sa", &objects, &[pod("web-p")]).await.err().ok_or("plain")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // A value older than the SPC's staleIfError is not served.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let status = world
            .mount_as("workload-sa", &objects, &[stale("1s"), pod("web-o")])
            .await
            .err()
            .ok_or("too old")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_stale_served_total{backend="azure"}"#),
            Some(1.0),
            "{metrics}"
        );
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::new_target_path;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn a_pod_starting_during_an_outage_gets_its_identitys_last_good_value() -> TestResult {
        let world = GcpWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        world.google.add_version(None, "db", b"before the outage");
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/web"));
        let secrets = format!("- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db\n");
        let pod = |name| ("csi.storage.k8s.io/pod.name", name);
        let stale = |duration| ("staleIfError", duration);
        let mount = |sa: &'static str, extra: Vec<(&'static str, &'static str)>| {
            let secrets = secrets.clone();
            let world = &world;
            async move { world.mount_at(&new_target_path(), sa, &secrets, &extra).await }
        };

        mount("web", vec![stale("1h"), pod("web-a")]).await?;

        // A refusal is never served stale: batch may not read db at all.
        let denied = mount("batch", vec![stale("1h"), pod("batch-0")]).await.err().ok_or("denied")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

        // Secret Manager goes down for good.
        world.google.fail("/secrets/db", 503, 100_000);
        let b = mount("web", vec![stale("1h"), pod("web-b")]).await?;
        assert_eq!(file(&b, "db")?, b"before the outage", "pod B got A's value");
        assert_stale_warning(&world.provider.log_text(), "web-b", "db");

        // Another identity (granted now, but with no value of its own) gets the outage.
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/batch"));
        let status = mount("batch", vec![stale("1h"), pod("batch-1")]).await.err().ok_or("other identity")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // Without the parameter, the outage is the answer.
        let status = mount("web", vec![pod("web-p")]).await.err().ok_or("plain")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        // A value older than the SPC's staleIfError is not served.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let status = mount("web", vec![stale("1s"), pod("web-o")]).await.err().ok_or("too old")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        assert_eq!(
            metric(&metrics, r#"csi_secrets_provider_stale_served_total{backend="gcp"}"#),
            Some(1.0),
            "{metrics}"
        );
        Ok(())
    }
}

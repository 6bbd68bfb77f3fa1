//! Remounts share cloud reads, end to end: the real binary's sockets, driven by a driver-shaped
//! client that sends a kubelet republish as a Mount for a target path already served, against
//! the project's test peers. The peers count what reaches them, so every figure here is what a
//! cloud would bill.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

#[cfg(any(feature = "aws", feature = "azure"))]
use std::time::Duration;

#[cfg(any(feature = "aws", feature = "azure"))]
use csi_secrets_provider_tests::http_get;
use csi_secrets_provider_tests::worlds::BoxError;
use csi_secrets_provider_tests::{file_contents as file, new_target_path};

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// The value of the metric line starting with `series` (name and labels), if present.
#[cfg(any(feature = "aws", feature = "azure"))]
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::AwsWorld;
    use tonic::Code;

    /// Secrets Manager objects aliased by their short names.
    fn objects(world: &AwsWorld, names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                format!("- {{objectName: {}, objectType: secretsmanager, objectAlias: {n}}}\n", world.name(n))
            })
            .collect()
    }

    /// (Secrets Manager calls: GetSecretValue and BatchGetSecretValue, ServiceAccount GETs,
    /// AssumeRoleWithWebIdentity) so far. A mount's two secrets are one batch call.
    fn counts(world: &AwsWorld) -> (usize, usize, usize) {
        (
            world.proxy.count("GetSecretValue") + world.proxy.count("BatchGetSecretValue"),
            world.service_account_reads(),
            world.proxy.count("AssumeRoleWithWebIdentity"),
        )
    }

    /// The remount rule: a remount takes a shared read only if it is newer than the target's own
    /// previous mount, so the last pod to mount reads again and the others share its read.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_remount_round_of_one_identity_costs_one_read_per_object_and_new_pods_read_fresh() -> TestResult
    {
        let world = AwsWorld::start(BINARY, "share", &["--health-addr", "127.0.0.1:0"]).await?;
        world.put_secret(&world.name("db"), "one").await?;
        world.put_secret(&world.name("api"), "key").await?;
        let objects = objects(&world, &["db", "api"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        let pods: Vec<String> = (0..10).map(|_| new_target_path()).collect();
        for pod in &pods {
            world.mount_at(pod, "web", &parameters).await?;
        }
        assert_eq!(
            counts(&world),
            (10, 10, 1),
            "first mounts read fresh (one batch each); one token exchange"
        );

        for pod in &pods {
            let response = world.mount_at(pod, "web", &parameters).await?;
            assert_eq!(file(&response, "db")?, b"one");
            assert_eq!(file(&response, "api")?, b"key");
        }
        assert_eq!(
            counts(&world),
            (11, 11, 1),
            "the round read the objects (one batch) and the lookup once, for the pod that mounted last"
        );

        // A pod started right after a change reads fresh, and its read refreshes the shared one.
        world.put_secret(&world.name("db"), "two").await?;
        let new_pod = world.mount(&parameters).await?;
        assert_eq!(file(&new_pod, "db")?, b"two");
        let remount = world.mount_at(&pods[0], "web", &parameters).await?;
        assert_eq!(file(&remount, "db")?, b"two");
        assert_eq!(counts(&world), (12, 12, 1));

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        let expect = [
            (r#"csi_secrets_provider_remounts_total{backend="aws"}"#, 11.0),
            (r#"csi_secrets_provider_shared_reads_total{backend="aws",how="remount"}"#, 30.0),
            (
                r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="secretsmanager:BatchGetSecretValue",outcome="ok"}"#,
                12.0,
            ),
            (
                r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="kubernetes:GetServiceAccount",outcome="ok"}"#,
                12.0,
            ),
            (
                r#"csi_secrets_provider_cloud_requests_total{backend="aws",api="sts:AssumeRoleWithWebIdentity",outcome="ok"}"#,
                1.0,
            ),
        ];
        for (series, value) in expect {
            assert_eq!(metric(&metrics, series), Some(value), "{series} in\n{metrics}");
        }
        assert!(
            metric(&metrics, r#"csi_secrets_provider_shared_read_bytes{backend="aws"}"#)
                .is_some_and(|b| b > 0.0)
        );
        assert!(
            !metrics.contains("two") && !metrics.contains(&world.prefix),
            "no values or names in metrics"
        );
        Ok(())
    }

    /// Users who want fast rotation set the driver's `--rotation-poll-interval` to seconds: a
    /// pod republished right after a change must get it, whatever our window.
    #[tokio::test(flavor = "multi_thread")]
    async fn one_pod_remounting_right_after_a_change_gets_the_new_value() -> TestResult {
        let world = AwsWorld::start(BINARY, "fresh", &["--shared-read-window", "10m"]).await?;
        world.put_secret(&world.name("db"), "one").await?;
        let objects = objects(&world, &["db"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        let pod = new_target_path();
        assert_eq!(file(&world.mount_at(&pod, "web", &parameters).await?, "db")?, b"one");
        world.put_secret(&world.name("db"), "two").await?;
        let remount = world.mount_at(&pod, "web", &parameters).await?;
        assert_eq!(file(&remount, "db")?, b"two", "the remount's only shared read was its own");
        assert_eq!(counts(&world).0, 2);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_first_mounts_join_one_read_in_flight() -> TestResult {
        let world = AwsWorld::start(BINARY, "flight", &[]).await?;
        world.put_secret(&world.name("db"), "one").await?;
        world.put_secret(&world.name("api"), "key").await?;
        // Slow peers, so every pod's mount arrives while the first reads are still in flight:
        // 3 s, far more than 20 concurrent mounts take to arrive even on a loaded machine.
        world.proxy.delay("BatchGetSecretValue", Duration::from_secs(3));
        world.kube.set_delay(Duration::from_secs(3));
        let objects = objects(&world, &["db", "api"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        let mounts = (0..20).map(|_| world.mount(&parameters));
        for response in futures::future::join_all(mounts).await {
            assert_eq!(file(&response?, "db")?, b"one");
        }
        assert_eq!(counts(&world), (1, 1, 1), "20 pods starting at once: one batch read of both");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn window_zero_shares_nothing() -> TestResult {
        let world = AwsWorld::start(BINARY, "nowindow", &["--shared-read-window", "0"]).await?;
        world.put_secret(&world.name("db"), "one").await?;
        world.put_secret(&world.name("api"), "key").await?;
        let objects = objects(&world, &["db", "api"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        for _ in 0..3 {
            let pod = new_target_path();
            world.mount_at(&pod, "web", &parameters).await?;
            world.mount_at(&pod, "web", &parameters).await?;
        }
        assert_eq!(
            counts(&world),
            (6, 6, 1),
            "every mount read every object (one batch each), as upstream does"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_window_ends() -> TestResult {
        let world = AwsWorld::start(BINARY, "windowend", &["--shared-read-window", "1s"]).await?;
        world.put_secret(&world.name("db"), "one").await?;
        let objects = objects(&world, &["db"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        // Pod b's read is newer than pod a's files: within the window a's remount may take it.
        let (pod_a, pod_b) = (new_target_path(), new_target_path());
        world.mount_at(&pod_a, "web", &parameters).await?;
        world.mount_at(&pod_b, "web", &parameters).await?;
        assert_eq!(counts(&world), (2, 2, 1));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        world.mount_at(&pod_a, "web", &parameters).await?;
        assert_eq!(counts(&world), (3, 3, 1), "past the window the remount asked again");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn values_over_the_byte_cap_are_not_kept() -> TestResult {
        let world = AwsWorld::start(BINARY, "cap", &["--shared-read-max-bytes", "200"]).await?;
        world.put_secret(&world.name("tiny"), "t").await?;
        world.put_secret(&world.name("big"), &"b".repeat(300)).await?;
        let objects = objects(&world, &["tiny", "big"]);
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        let (pod, other_pod) = (new_target_path(), new_target_path());
        world.mount_at(&pod, "web", &parameters).await?;
        world.mount_at(&other_pod, "web", &parameters).await?;
        let remount = world.mount_at(&pod, "web", &parameters).await?;
        assert_eq!(file(&remount, "big")?, "b".repeat(300).as_bytes());
        assert_eq!(
            counts(&world),
            (3, 2, 1),
            "two batches; then the big value was read again, the tiny one shared"
        );
        assert_eq!(world.proxy.count("GetSecretValue"), 1, "the big one alone: no batch of one");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_remount_never_gets_another_identitys_value() -> TestResult {
        let world = AwsWorld::start(BINARY, "isolation", &[]).await?;
        world.put_secret(&world.name("a-only"), "value only web may read").await?;
        world.put_secret(&world.name("b-own"), "batch's own").await?;
        let region = ("region", "us-east-1");
        // Pod B (service account batch, its own role) mounts its own secret.
        let pod_b = new_target_path();
        let b_objects = objects(&world, &["b-own"]);
        world.mount_at(&pod_b, "batch", &[("objects", b_objects.as_str()), region]).await?;
        // Identity A reads a secret only its role may read; that read is now shared for A.
        let a_objects = objects(&world, &["a-only"]);
        world.mount(&[("objects", a_objects.as_str()), region]).await?;
        let a_key = world.proxy.calls().last().map(|c| c.access_key.clone()).ok_or("no call")?;
        world.proxy.allow_only(&world.name("a-only"), &a_key);

        // B's SPC changes to name A's secret; B's remount goes to AWS with B's own credentials.
        let denied = world
            .mount_at(&pod_b, "batch", &[("objects", a_objects.as_str()), region])
            .await
            .err()
            .ok_or("B must not get A's secret")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        assert!(denied.message().contains("not authorized"), "{}", denied.message());
        assert!(!denied.message().contains("value only web may read"));
        let last = world.proxy.calls().last().cloned().ok_or("no call")?;
        assert_eq!(last.action, "GetSecretValue");
        assert_ne!(last.access_key, a_key, "B asked with its own credentials");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{
        AZURE_CLIENT, AZURE_NAMESPACE, AZURE_TENANT, AZURE_VAULT, AzureWorld,
    };
    use tonic::Code;

    const OTHER_CLIENT: &str = "99999999-8888-7777-6666-555555555555";

    fn granted_tokens(world: &AzureWorld) -> usize {
        world.azure.token_requests().iter().filter(|r| r.granted).count()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_remount_round_of_one_identity_costs_one_read_per_object() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "one");
        world.azure.set_secret(AZURE_VAULT, "api", "key");
        let objects = ["objectName: db\nobjectType: secret", "objectName: api\nobjectType: secret"];
        let pods: Vec<String> = (0..10).map(|_| new_target_path()).collect();
        for pod in &pods {
            world.mount_at(pod, "workload-sa", &objects, &[]).await?;
        }
        assert_eq!((world.azure.vault_reads(), granted_tokens(&world)), (20, 1));
        for pod in &pods {
            let response = world.mount_at(pod, "workload-sa", &objects, &[]).await?;
            assert_eq!(file(&response, "db")?, b"one");
        }
        assert_eq!(
            (world.azure.vault_reads(), granted_tokens(&world)),
            (22, 1),
            "the remount round read each object once (for the pod that mounted last)"
        );

        world.azure.set_secret(AZURE_VAULT, "db", "two");
        let new_pod = world.mount(&objects).await?;
        assert_eq!(file(&new_pod, "db")?, b"two", "a pod started after the change reads fresh");

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        let expect = [
            (r#"csi_secrets_provider_remounts_total{backend="azure"}"#, 10.0),
            (r#"csi_secrets_provider_shared_reads_total{backend="azure",how="remount"}"#, 18.0),
            (
                r#"csi_secrets_provider_cloud_requests_total{backend="azure",api="keyvault:GetSecret",outcome="ok"}"#,
                24.0,
            ),
            (
                r#"csi_secrets_provider_cloud_requests_total{backend="azure",api="aad:Token",outcome="ok"}"#,
                1.0,
            ),
        ];
        for (series, value) in expect {
            assert_eq!(metric(&metrics, series), Some(value), "{series} in\n{metrics}");
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_pod_remounting_right_after_a_change_gets_the_new_value() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--shared-read-window", "10m"]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "one");
        let objects = ["objectName: db\nobjectType: secret"];
        let pod = new_target_path();
        assert_eq!(file(&world.mount_at(&pod, "workload-sa", &objects, &[]).await?, "db")?, b"one");
        world.azure.set_secret(AZURE_VAULT, "db", "two");
        let remount = world.mount_at(&pod, "workload-sa", &objects, &[]).await?;
        assert_eq!(file(&remount, "db")?, b"two", "the remount's only shared read was its own");
        assert_eq!(world.azure.vault_reads(), 2);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_first_mounts_join_one_read_in_flight() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "one");
        // 3 s: every one of the 20 mounts arrives while the first read is in flight.
        world.azure.set_vault_delay(Duration::from_secs(3));
        let objects = ["objectName: db\nobjectType: secret"];
        let mounts = (0..20).map(|_| world.mount(&objects));
        for response in futures::future::join_all(mounts).await {
            assert_eq!(file(&response?, "db")?, b"one");
        }
        assert_eq!(world.azure.vault_reads(), 1, "{:?}", world.azure.vault_requests());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn window_zero_shares_nothing() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--shared-read-window", "0"]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "one");
        let objects = ["objectName: db\nobjectType: secret"];
        let pod = new_target_path();
        for _ in 0..3 {
            world.mount_at(&pod, "workload-sa", &objects, &[]).await?;
        }
        assert_eq!(world.azure.vault_reads(), 3);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_remount_never_gets_another_identitys_value() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.federate(AZURE_TENANT, OTHER_CLIENT, AZURE_NAMESPACE, "other-sa");
        world.azure.set_secret(AZURE_VAULT, "a-only", "value only the first app may read");
        world.azure.set_secret(AZURE_VAULT, "b-own", "b's own");
        world.azure.restrict(AZURE_VAULT, "a-only", &[AZURE_CLIENT]);
        let as_b = [("clientID", OTHER_CLIENT)];
        let pod_b = new_target_path();
        world.mount_at(&pod_b, "other-sa", &["objectName: b-own\nobjectType: secret"], &as_b).await?;
        let a_only = ["objectName: a-only\nobjectType: secret"];
        let a = world.mount(&a_only).await?;
        assert_eq!(file(&a, "a-only")?, b"value only the first app may read");

        let denied = world
            .mount_at(&pod_b, "other-sa", &a_only, &as_b)
            .await
            .err()
            .ok_or("B must not get A's secret")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        assert!(denied.message().contains("ForbiddenByRbac") || denied.message().contains("not authorized"));
        assert!(!denied.message().contains("value only the first app"));
        let last = world.azure.vault_requests().last().cloned().ok_or("no request")?;
        assert_eq!((last.path.trim_end_matches('/'), last.status), ("/secrets/a-only", 403));
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};
    use tonic::Code;

    fn secret(name: &str) -> String {
        format!("- resourceName: projects/{PROJECT}/secrets/{name}/versions/latest\n  path: {name}\n")
    }

    /// Pod B's SecretProviderClass names a secret only identity A may read, which A's mount
    /// has just read (and shares for A): B's remount asks Secret Manager with B's own token and
    /// is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_remount_never_gets_another_identitys_value() -> TestResult {
        let world = GcpWorld::start(BINARY, &[]).await?;
        world.google.add_version(None, "a-only", b"value only web may read");
        world.google.add_version(None, "b-own", b"batch's own");
        world.google.grant(None, "a-only", &format!("ksa:{GCP_NAMESPACE}/web"));
        world.google.grant(None, "b-own", &format!("ksa:{GCP_NAMESPACE}/batch"));
        let pod_b = new_target_path();
        world.mount_at(&pod_b, "batch", &secret("b-own"), &[]).await?;
        let a = world.mount_at(&new_target_path(), "web", &secret("a-only"), &[]).await?;
        assert_eq!(file(&a, "a-only")?, b"value only web may read");

        let denied = world
            .mount_at(&pod_b, "batch", &secret("a-only"), &[])
            .await
            .err()
            .ok_or("B must not get A's secret")?;
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        assert!(!denied.message().contains("value only web may read"));
        let last = world.google.calls().into_iter().rfind(|c| c.api == "access").ok_or("no read")?;
        assert_eq!(
            last.principal.as_deref(),
            Some(format!("ksa:{GCP_NAMESPACE}/batch").as_str()),
            "B asked as itself"
        );
        assert_eq!(last.status, 403);
        Ok(())
    }
}

//! The provider as the Secrets Store Sync Controller's sidecar: Mount requests shaped exactly as
//! the controller sends them (kubernetes-sigs/secrets-store-sync-controller,
//! `prepareCSIProviderParams` and `provider.MountContent`): the SecretProviderClass's
//! parameters plus the controller's own pod name and UID, the SecretSync's namespace and
//! service account and its tokens; `secrets` `{}`; permission `420`; no current versions; and
//! `/mnt/secrets-store` as the target path of every SecretSync.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

use csi_secrets_provider_server::proto::MountRequest;
use csi_secrets_provider_tests::worlds::BoxError;
use csi_secrets_provider_tests::{DriverClient, file_contents as file, http_get};

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");
/// The controller's own pod (its downward API), the same for every SecretSync.
const CONTROLLER_POD: &str = "secrets-store-sync-controller-7c9d8f6b5-x2x7q";
const CONTROLLER_UID: &str = "0b7a4d7e-5a43-4c57-9e3f-6f1e8e1b2c3d";
const TARGET_PATH: &str = "/mnt/secrets-store";

/// One SecretSync's request: `parameters` are its SecretProviderClass's.
fn request(
    parameters: &[(&str, &str)],
    namespace: &str,
    service_account: &str,
    tokens: &str,
) -> MountRequest {
    let mut attributes: serde_json::Map<String, serde_json::Value> =
        parameters.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    for (key, value) in [
        ("csi.storage.k8s.io/pod.name", CONTROLLER_POD),
        ("csi.storage.k8s.io/pod.uid", CONTROLLER_UID),
        ("csi.storage.k8s.io/pod.namespace", namespace),
        ("csi.storage.k8s.io/serviceAccount.name", service_account),
        ("csi.storage.k8s.io/serviceAccount.tokens", tokens),
    ] {
        attributes.insert(key.to_owned(), value.into());
    }
    MountRequest {
        attributes: serde_json::Value::Object(attributes).to_string(),
        secrets: "{}".to_owned(),
        target_path: TARGET_PATH.to_owned(),
        permission: "420".to_owned(),
        current_object_version: Vec::new(),
    }
}

fn tokens(audience: &str, token: &str) -> String {
    serde_json::json!({ audience: { "token": token, "expirationTimestamp": "2099-01-01T00:00:00Z" } })
        .to_string()
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn remounts(
    provider: &csi_secrets_provider_tests::ProviderProcess,
    backend: &str,
) -> Result<f64, BoxError> {
    let addr = provider.health_addr(std::time::Duration::from_secs(5)).await?;
    let metrics = http_get(addr, "/metrics").await?;
    Ok(metric(&metrics, &format!("csi_secrets_provider_remounts_total{{backend=\"{backend}\"}}"))
        .unwrap_or(0.0))
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::jwt;
    use csi_secrets_provider_tests::worlds::AwsWorld;
    use tonic::Code;

    /// Two SecretSyncs of one namespace and service account, with SecretProviderClasses naming
    /// different secrets, through the one target path: each gets its own files, each first sync
    /// is a first mount (not a remount of the other), a rotated secret reaches its next sync;
    /// without `region` (there is no node to ask) the error says to set it.
    #[tokio::test(flavor = "multi_thread")]
    async fn two_secret_syncs_through_one_target_path() -> TestResult {
        let world = AwsWorld::start(BINARY, "sync-controller", &["--health-addr", "127.0.0.1:0"]).await?;
        let (first, second) = (world.name("first"), world.name("second"));
        world.put_secret(&first, "one").await?;
        world.put_secret(&second, "two").await?;
        let spc = |name: &str| {
            format!("- {{objectName: '{name}', objectType: secretsmanager, objectAlias: value}}\n")
        };
        let (spc_a, spc_b) = (spc(&first), spc(&second));
        let token = jwt::service_account_token("shop", "web", "sts.amazonaws.com", jwt::VALID_UNTIL);
        let tokens = tokens("sts.amazonaws.com", &token);
        let sync =
            |objects: &str| request(&[("objects", objects), ("region", "us-east-1")], "shop", "web", &tokens);
        let mut client = DriverClient::new(&world.provider.socket("aws"));

        assert_eq!(file(&client.send(sync(&spc_a)).await?, "value")?, b"one");
        let b = client.send(sync(&spc_b)).await?;
        assert_eq!(b.files.len(), 1, "its own files only");
        assert_eq!(file(&b, "value")?, b"two");
        assert_eq!(remounts(&world.provider, "aws").await?, 0.0, "two SecretSyncs are two volumes");

        world.put_secret(&first, "rotated").await?;
        assert_eq!(file(&client.send(sync(&spc_a)).await?, "value")?, b"rotated");
        assert_eq!(file(&client.send(sync(&spc_b)).await?, "value")?, b"two");
        assert_eq!(
            remounts(&world.provider, "aws").await?,
            2.0,
            "each SecretSync's next sync is its remount"
        );

        let status = client
            .send(request(&[("objects", &spc_a)], "shop", "web", &tokens))
            .await
            .err()
            .ok_or("no region and no node must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("set the region parameter or AWS_REGION"), "{}", status.message());
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{
        AZURE_CLIENT, AZURE_TENANT, AZURE_VAULT, AzureWorld, azure_objects,
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn two_secret_syncs_through_one_target_path() -> TestResult {
        let world = AzureWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        world.azure.set_secret(AZURE_VAULT, "first", "one");
        world.azure.set_secret(AZURE_VAULT, "second", "two");
        let token = csi_secrets_provider_tests::azure::service_account_token("default", "workload-sa");
        let tokens = tokens("api://AzureADTokenExchange", &token);
        let sync = |objects: &str| {
            request(
                &[
                    ("usePodIdentity", "false"),
                    ("clientID", AZURE_CLIENT),
                    ("keyvaultName", AZURE_VAULT),
                    ("tenantId", AZURE_TENANT),
                    ("objects", objects),
                ],
                "default",
                "workload-sa",
                &tokens,
            )
        };
        let (a, b) = (
            azure_objects(&["objectName: first\nobjectType: secret\nobjectAlias: value"]),
            azure_objects(&["objectName: second\nobjectType: secret\nobjectAlias: value"]),
        );
        let mut client = DriverClient::new(&world.provider.socket("azure"));
        assert_eq!(file(&client.send(sync(&a)).await?, "value")?, b"one");
        assert_eq!(file(&client.send(sync(&b)).await?, "value")?, b"two");
        assert_eq!(remounts(&world.provider, "azure").await?, 0.0);
        world.azure.set_secret(AZURE_VAULT, "first", "rotated");
        assert_eq!(file(&client.send(sync(&a)).await?, "value")?, b"rotated");
        assert_eq!(remounts(&world.provider, "azure").await?, 1.0);
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::{POOL, PROJECT};
    use csi_secrets_provider_tests::jwt;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn two_secret_syncs_through_one_target_path() -> TestResult {
        let world = GcpWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
        for (name, value) in [("first", "one"), ("second", "two")] {
            world.google.add_version(None, name, value.as_bytes());
            world.google.grant(None, name, &format!("ksa:{GCP_NAMESPACE}/web"));
        }
        let token = jwt::service_account_token(GCP_NAMESPACE, "web", POOL, jwt::VALID_UNTIL);
        let tokens = tokens(POOL, &token);
        let sync = |secret: &str| {
            let secrets = format!(
                "- {{resourceName: projects/{PROJECT}/secrets/{secret}/versions/latest, path: value}}\n"
            );
            request(&[("secrets", secrets.as_str())], GCP_NAMESPACE, "web", &tokens)
        };
        let mut client = DriverClient::new(&world.provider.socket("gcp"));
        assert_eq!(file(&client.send(sync("first")).await?, "value")?, b"one");
        assert_eq!(file(&client.send(sync("second")).await?, "value")?, b"two");
        assert_eq!(remounts(&world.provider, "gcp").await?, 0.0);
        world.google.add_version(None, "first", b"rotated");
        assert_eq!(file(&client.send(sync("first")).await?, "value")?, b"rotated");
        assert_eq!(remounts(&world.provider, "gcp").await?, 1.0);
        Ok(())
    }
}

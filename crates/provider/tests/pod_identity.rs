//! EKS Pod Identity end to end: the real binary's `aws.sock` against moto (through the recording
//! proxy, which tells which access key made each call) and a fake Pod Identity agent that, like
//! the real one, issues new credentials per call for the pod whose token it is given.
#![cfg(feature = "aws")]

use csi_secrets_provider_tests::aws::FakePodIdentityAgent;
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::new_target_path;
use csi_secrets_provider_tests::worlds::{AwsWorld, BoxError};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

async fn world(test: &str, extra_args: &[&str]) -> Result<AwsWorld, BoxError> {
    AwsWorld::start(BINARY, test, extra_args).await
}

/// The SecretProviderClass parameters of a Pod Identity mount of `objects`, as pod `pod` (its
/// name and UID) of service account `web`.
fn as_pod<'a>(objects: &'a str, pod: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("objects", objects),
        ("region", "us-east-1"),
        ("usePodIdentity", "true"),
        ("preferredAddressType", "ipv4"),
        ("csi.storage.k8s.io/pod.name", pod),
        ("csi.storage.k8s.io/pod.uid", pod),
    ]
}

/// The access keys that made `GetSecretValue` calls, in order.
fn readers(world: &AwsWorld) -> Vec<String> {
    world.proxy.calls().into_iter().filter(|c| c.action == "GetSecretValue").map(|c| c.access_key).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn eks_pod_identity() -> TestResult {
    let agent = FakePodIdentityAgent::start("pod-identity-jwt-for-web", "ASIAPODIDENTITY").await?;
    let url = agent.url();
    let world = world("podidentity", &["--pod-identity-endpoint-ipv4", &url]).await?;
    let name = world.name("db");
    world.put_secret(&name, "via-pod-identity").await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");
    let parameters = [
        ("objects", objects.as_str()),
        ("region", "us-east-1"),
        ("usePodIdentity", "true"),
        ("preferredAddressType", "ipv4"),
    ];
    for _ in 0..3 {
        let response = world.mount(&parameters).await?;
        assert_eq!(file(&response, "db")?, b"via-pod-identity");
    }
    assert_eq!(agent.calls(), 1, "credentials cached per identity (one pod, three volumes)");
    assert_eq!(world.proxy.count("AssumeRoleWithWebIdentity"), 0);
    assert!(
        world
            .proxy
            .calls()
            .iter()
            .filter(|c| c.action == "GetSecretValue")
            .all(|c| c.access_key == "ASIAPODIDENTITY0001")
    );

    let status = world.mount_as("batch", &parameters).await.err().ok_or("wrong token")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("403"), "{}", status.message());
    Ok(())
}

/// The agent's credentials carry the mounting pod's session tags; IAM may grant a secret to one
/// pod (ABAC on `aws:PrincipalTag/kubernetes-pod-name`). Pod B of the same service account must
/// read with its own credentials, never with pod A's cached ones.
#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_credentials_and_reads_are_the_pods_own() -> TestResult {
    let agent = FakePodIdentityAgent::start("pod-identity-jwt-for-web", "ASIAPOD").await?;
    let url = agent.url();
    let world = world("podscope", &["--pod-identity-endpoint-ipv4", &url]).await?;
    let name = world.name("replica-0");
    world.put_secret(&name, "only for web-0").await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");

    let (pod_a, pod_b) = (new_target_path(), new_target_path());
    let a = world.mount_at(&pod_a, "web", &as_pod(&objects, "web-0")).await?;
    assert_eq!(file(&a, "db")?, b"only for web-0");
    // IAM grants the secret to pod web-0's session only, as an ABAC condition would.
    let issued = agent.issued();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].token.ends_with(".web-0"), "{issued:?}");
    world.proxy.allow_only(&name, &issued[0].access_key);

    let denied = world
        .mount_at(&pod_b, "web", &as_pod(&objects, "web-1"))
        .await
        .err()
        .ok_or("pod web-1 must not read with web-0's credentials (nor get web-0's read)")?;
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let issued = agent.issued();
    assert_eq!(issued.len(), 2, "one agent call per pod: {issued:?}");
    assert!(issued[1].token.ends_with(".web-1"), "web-1's own token: {issued:?}");
    assert_eq!(readers(&world), ["ASIAPOD0001", "ASIAPOD0002"], "each pod read with its own key");

    // Remounts keep to the pod too: web-0 reads with its cached credentials, no new agent call,
    // and never takes a read made for another pod.
    world.mount_at(&pod_a, "web", &as_pod(&objects, "web-0")).await?;
    assert_eq!(agent.calls(), 2);
    assert_eq!(readers(&world).last().map(String::as_str), Some("ASIAPOD0001"));
    Ok(())
}

/// An operator whose IAM policies use no pod-level tags may share credentials and reads per
/// service account again: one agent call for both pods.
#[tokio::test(flavor = "multi_thread")]
async fn service_account_scope_shares_one_agent_call() -> TestResult {
    let agent = FakePodIdentityAgent::start("pod-identity-jwt-for-web", "ASIASA").await?;
    let url = agent.url();
    let world =
        world("sascope", &["--pod-identity-endpoint-ipv4", &url, "--pod-identity-scope", "service-account"])
            .await?;
    let name = world.name("shared");
    world.put_secret(&name, "for every pod of web").await?;
    let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}\n");
    for pod in ["web-0", "web-1", "web-2"] {
        let response = world.mount_at(&new_target_path(), "web", &as_pod(&objects, pod)).await?;
        assert_eq!(file(&response, "db")?, b"for every pod of web");
    }
    assert_eq!(agent.calls(), 1, "one agent call per service account");
    assert!(readers(&world).iter().all(|key| key == "ASIASA0001"), "{:?}", readers(&world));
    Ok(())
}

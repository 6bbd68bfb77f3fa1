//! The one conformance suite (`csi_secrets_provider_tests::conformance`) against every cloud
//! backend through the real binary's socket: the same behaviours, one test each
//! (`conformance_tests!`), each backend's test peer behind the hooks (moto through the recording
//! proxy for AWS, the Key Vault + Azure AD test server for Azure, the Google test peer for GCP),
//! each backend's capabilities declared here and tabled in docs/architecture.md. The test
//! backend runs it in `tests/tests/conformance.rs`.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

use std::sync::atomic::{AtomicUsize, Ordering};

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::conformance::{self, BoxError, Capabilities, Fault, Fixture, ObjectRef};

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// Parameters as the worlds take them.
fn pairs(parameters: &[(String, String)]) -> Vec<(&str, &str)> {
    parameters.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
}

/// How long a hung store takes to answer: longer than any mount's deadline.
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AwsWorld, moto_call};

    pub(super) const CAPABILITIES: Capabilities = Capabilities {
        folders: true,
        stale_on_outage: true,
        shared_identity_exchange: true,
        kept_reads: true,
    };

    /// Which AWS service holds the objects: the same behaviours run on both.
    #[derive(Clone, Copy)]
    pub(super) enum AwsStore {
        SecretsManager,
        /// SSM Parameter Store, read in batches of `GetParameters`.
        Ssm,
    }

    impl AwsStore {
        fn object_type(self) -> &'static str {
            match self {
                Self::SecretsManager => "secretsmanager",
                Self::Ssm => "ssmparameter",
            }
        }
    }

    pub(super) struct AwsFixture {
        world: AwsWorld,
        store: AwsStore,
        counter: AtomicUsize,
        audit: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    pub(super) async fn fixture_for(store: AwsStore) -> Result<AwsFixture, BoxError> {
        let dir = tempfile::tempdir()?;
        let policy = conformance::write_policy(dir.path())?.display().to_string();
        let test = match store {
            AwsStore::SecretsManager => "conformance",
            AwsStore::Ssm => "conformance-ssm",
        };
        let audit = dir.path().join("audit.log");
        let world = AwsWorld::start(
            BINARY,
            test,
            &["--policy", &policy, "--audit-log", &audit.display().to_string()],
        )
        .await?;
        Ok(AwsFixture { world, store, counter: AtomicUsize::new(0), audit, _dir: dir })
    }

    async fn fixture() -> Result<AwsFixture, BoxError> {
        fixture_for(AwsStore::SecretsManager).await
    }

    csi_secrets_provider_tests::conformance_tests!(fixture, CAPABILITIES);

    #[async_trait::async_trait]
    impl Fixture for AwsFixture {
        fn unique(&self, base: &str) -> String {
            let name = self.world.name(&format!("{base}-{}", self.counter.fetch_add(1, Ordering::Relaxed)));
            match self.store {
                AwsStore::SecretsManager => name,
                // A parameter name with a `/` must start with one.
                AwsStore::Ssm => format!("/{name}"),
            }
        }

        async fn put(&self, name: &str, value: &str) -> Result<(), BoxError> {
            match self.store {
                AwsStore::SecretsManager => self.world.put_secret(name, value).await.map(drop),
                AwsStore::Ssm => {
                    let body = serde_json::json!({ "Name": name, "Value": value, "Type": "SecureString", "Overwrite": true });
                    let answer = moto_call("ssm", "PutParameter", &body).await?;
                    if answer["Version"].is_number() { Ok(()) } else { Err(format!("moto: {answer}").into()) }
                }
            }
        }

        fn parameters(&self, objects: &[ObjectRef]) -> Vec<(String, String)> {
            let kind = format!("objectType: {}, ", self.store.object_type());
            let yaml = conformance::yaml_object_list(objects, &kind);
            vec![("objects".to_owned(), yaml), ("region".to_owned(), "us-east-1".to_owned())]
        }

        fn folder(
            &self,
            prefix: &str,
            directory: Option<&str>,
            extra: &str,
        ) -> Option<Vec<(String, String)>> {
            let alias = directory.map(|d| format!(", objectAlias: {d}")).unwrap_or_default();
            let extra = if extra.is_empty() { String::new() } else { format!(", {extra}") };
            let kind = self.store.object_type();
            let yaml = format!("- {{objectPrefix: '{prefix}', objectType: {kind}{alias}{extra}}}\n");
            Some(vec![("objects".to_owned(), yaml), ("region".to_owned(), "us-east-1".to_owned())])
        }

        async fn mount_at(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            self.world.mount_at(target, "web", &pairs(parameters)).await
        }

        async fn mount_as_second(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            // `batch` has a role of its own.
            self.world.mount_at(target, "batch", &pairs(parameters)).await
        }

        async fn restrict_to_first(&self, name: &str) -> Result<(), BoxError> {
            // The last call was the first identity's read: its credentials alone may read.
            let first =
                self.world.proxy.calls().last().map(|call| call.access_key.clone()).ok_or("no call")?;
            self.world.proxy.allow_only(name, &first);
            Ok(())
        }

        fn audit_log(&self) -> &std::path::Path {
            &self.audit
        }

        fn object_forms(&self, name: &str) -> Vec<(&'static str, Vec<(String, String)>)> {
            let kind = self.store.object_type();
            let arn = match self.store {
                AwsStore::SecretsManager => {
                    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}")
                }
                AwsStore::Ssm => format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}"),
            };
            let allowed = self.unique("conf-allowed");
            let spc = |objects: String| {
                vec![
                    ("objects".to_owned(), objects),
                    ("region".to_owned(), "us-east-1".to_owned()),
                    ("failoverRegion".to_owned(), "us-west-2".to_owned()),
                ]
            };
            vec![
                ("by name", spc(format!("- {{objectName: '{name}', objectType: {kind}}}\n"))),
                ("by ARN", spc(format!("- {{objectName: '{arn}', objectAlias: by-arn}}\n"))),
                (
                    "as a failover object",
                    spc(format!(
                        "- {{objectName: '{allowed}', objectType: {kind}, objectAlias: f, failoverObject: {{objectName: '{name}'}}}}\n"
                    )),
                ),
                (
                    "with jmesPath",
                    spc(format!(
                        "- {{objectName: '{name}', objectType: {kind}, jmesPath: [{{path: a, objectAlias: a}}]}}\n"
                    )),
                ),
            ]
        }
        fn set_driver_deadline(&self, deadline: Option<std::time::Duration>) {
            self.world.set_driver_timeout(deadline);
        }

        async fn cloud_calls(&self) -> usize {
            self.world.proxy.calls().len() + self.world.kube.requests().len()
        }

        async fn identity_exchanges(&self) -> usize {
            self.world.proxy.count("AssumeRoleWithWebIdentity")
        }

        async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError> {
            match self.store {
                // More answers than the SDK's retries (three attempts).
                AwsStore::SecretsManager => match fault {
                    // Both ways a secret is read: alone, or with others in a batch.
                    Fault::Hang => {
                        for action in ["GetSecretValue", "BatchGetSecretValue"] {
                            self.world.proxy.delay(action, HANG);
                        }
                    }
                    Fault::Denied => self.world.proxy.allow_only(name, "nobody"),
                    Fault::Throttled => {
                        self.world.proxy.inject_for_secret(
                            name,
                            1000,
                            400,
                            "ThrottlingException",
                            "Rate exceeded",
                        );
                    }
                    Fault::Unavailable => self.world.proxy.inject_for_secret(
                        name,
                        1000,
                        503,
                        "ServiceUnavailableException",
                        "Service is unavailable",
                    ),
                },
                // SSM answers for the whole `GetParameters` batch, as IAM and the service do.
                AwsStore::Ssm => {
                    if fault == Fault::Hang {
                        self.world.proxy.delay("GetParameters", HANG);
                        return Ok(());
                    }
                    let (status, code, message) = match fault {
                        Fault::Denied => (
                            400,
                            "AccessDeniedException",
                            format!(
                                "User is not authorized to perform: ssm:GetParameters on resource: {name}"
                            ),
                        ),
                        Fault::Throttled => (400, "ThrottlingException", "Rate exceeded".to_owned()),
                        Fault::Unavailable | Fault::Hang => {
                            (503, "InternalServerError", "Service is unavailable".to_owned())
                        }
                    };
                    self.world.proxy.inject("GetParameters", 1000, status, code, &message);
                }
            }
            Ok(())
        }
    }
}

/// The same behaviours on SSM Parameter Store (`objectType: ssmparameter`, read in batches of
/// `GetParameters`): every behaviour runs on both AWS services.
#[cfg(feature = "aws")]
mod aws_ssm {
    use super::aws::{AwsFixture, AwsStore, fixture_for};
    use super::*;

    pub(super) const CAPABILITIES: Capabilities = super::aws::CAPABILITIES;

    async fn fixture() -> Result<AwsFixture, BoxError> {
        fixture_for(AwsStore::Ssm).await
    }

    csi_secrets_provider_tests::conformance_tests!(fixture, CAPABILITIES);
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{
        AZURE_CLIENT, AZURE_NAMESPACE, AZURE_TENANT, AZURE_VAULT, AzureWorld,
    };

    pub(super) const CAPABILITIES: Capabilities = Capabilities {
        folders: true,
        stale_on_outage: true,
        shared_identity_exchange: true,
        kept_reads: true,
    };

    struct AzureFixture {
        world: AzureWorld,
        counter: AtomicUsize,
        audit: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    /// The second identity: another app federated with service account `other-sa`.
    const SECOND_CLIENT: &str = "99999999-8888-7777-6666-555555555555";

    async fn fixture() -> Result<AzureFixture, BoxError> {
        let dir = tempfile::tempdir()?;
        let policy = conformance::write_policy(dir.path())?.display().to_string();
        let audit = dir.path().join("audit.log");
        let world =
            AzureWorld::start(BINARY, &["--policy", &policy, "--audit-log", &audit.display().to_string()])
                .await?;
        world.azure.federate(AZURE_TENANT, SECOND_CLIENT, AZURE_NAMESPACE, "other-sa");
        Ok(AzureFixture { world, counter: AtomicUsize::new(0), audit, _dir: dir })
    }

    impl AzureFixture {
        /// `objects` (the first parameter) split into the world's object entries, the rest as
        /// they are.
        fn split(parameters: &[(String, String)]) -> (Vec<&str>, Vec<(&str, &str)>) {
            let objects =
                parameters.first().map(|(_, objects)| objects.split("\n---\n").collect()).unwrap_or_default();
            (objects, pairs(parameters.get(1..).unwrap_or_default()))
        }
    }

    csi_secrets_provider_tests::conformance_tests!(fixture, CAPABILITIES);

    #[async_trait::async_trait]
    impl Fixture for AzureFixture {
        fn unique(&self, base: &str) -> String {
            format!("{base}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
        }

        async fn put(&self, name: &str, value: &str) -> Result<(), BoxError> {
            self.world.azure.set_secret(AZURE_VAULT, name, value);
            Ok(())
        }

        fn parameters(&self, objects: &[ObjectRef]) -> Vec<(String, String)> {
            let objects: Vec<String> = objects
                .iter()
                .map(|o| {
                    let permission = o
                        .file_permission
                        .as_ref()
                        .map(|p| format!("\nfilePermission: \"{p}\""))
                        .unwrap_or_default();
                    format!(
                        "objectName: {}\nobjectType: secret\nobjectAlias: {}{permission}{}",
                        o.name,
                        o.file,
                        o.block_keys()
                    )
                })
                .collect();
            vec![("objects".to_owned(), objects.join("\n---\n"))]
        }

        fn folder(
            &self,
            prefix: &str,
            directory: Option<&str>,
            extra: &str,
        ) -> Option<Vec<(String, String)>> {
            let alias = directory.map(|d| format!("\nobjectAlias: {d}")).unwrap_or_default();
            let extra = if extra.is_empty() { String::new() } else { format!("\n{extra}") };
            Some(vec![("objects".to_owned(), format!("objectPrefix: {prefix}{alias}{extra}"))])
        }

        async fn mount_at(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            let (objects, extra) = Self::split(parameters);
            self.world.mount_at(target, "workload-sa", &objects, &extra).await
        }

        async fn mount_as_second(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            let (objects, mut extra) = Self::split(parameters);
            extra.push(("clientID", SECOND_CLIENT));
            self.world.mount_at(target, "other-sa", &objects, &extra).await
        }

        async fn restrict_to_first(&self, name: &str) -> Result<(), BoxError> {
            self.world.azure.restrict(AZURE_VAULT, name, &[AZURE_CLIENT]);
            Ok(())
        }

        fn audit_log(&self) -> &std::path::Path {
            &self.audit
        }

        fn object_forms(&self, name: &str) -> Vec<(&'static str, Vec<(String, String)>)> {
            let object = |entry: String| vec![("objects".to_owned(), entry)];
            vec![
                ("a secret", object(format!("objectName: {name}\nobjectType: secret"))),
                ("a key", object(format!("objectName: {name}\nobjectType: key"))),
                ("a certificate", object(format!("objectName: {name}\nobjectType: cert"))),
                (
                    "in another vault",
                    object(format!("objectName: {name}\nobjectType: secret\nkeyvaultName: kv-other")),
                ),
                (
                    "with jmesPath",
                    object(format!(
                        "objectName: {name}\nobjectType: secret\njmesPath:\n  - {{path: a, objectAlias: a}}"
                    )),
                ),
            ]
        }
        fn set_driver_deadline(&self, deadline: Option<std::time::Duration>) {
            self.world.set_driver_timeout(deadline);
        }

        async fn cloud_calls(&self) -> usize {
            self.world.azure.vault_requests().len() + self.world.azure.token_requests().len()
        }

        async fn identity_exchanges(&self) -> usize {
            self.world.azure.token_requests().len()
        }

        async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError> {
            // More answers than the backend's retries (four), and Retry-After 0 so the test is quick.
            let path = format!("/secrets/{name}");
            match fault {
                Fault::Denied => self.world.azure.restrict(AZURE_VAULT, name, &["someone-else"]),
                Fault::Throttled => self.world.azure.throttle(&path, 1000, 0),
                Fault::Unavailable => self.world.azure.fail_requests(&path, 1000),
                // The Key Vault peer stalls every vault request: the fixture's only object is
                // the one that hangs.
                Fault::Hang => self.world.azure.set_vault_delay(HANG),
            }
            Ok(())
        }
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::{LOCATION, PROJECT, PROJECT_NUMBER};
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    pub(super) const CAPABILITIES: Capabilities = Capabilities {
        folders: true,
        stale_on_outage: true,
        shared_identity_exchange: true,
        kept_reads: true,
    };

    struct GcpFixture {
        world: GcpWorld,
        counter: AtomicUsize,
        audit: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    /// The identities: Kubernetes service accounts `web` and `batch`, each its own principal.
    fn principal(service_account: &str) -> String {
        format!("ksa:{GCP_NAMESPACE}/{service_account}")
    }

    async fn fixture() -> Result<GcpFixture, BoxError> {
        let dir = tempfile::tempdir()?;
        let policy = conformance::write_policy(dir.path())?.display().to_string();
        let audit = dir.path().join("audit.log");
        let world =
            GcpWorld::start(BINARY, &["--policy", &policy, "--audit-log", &audit.display().to_string()])
                .await?;
        world.google.grant_list(&principal("web"));
        Ok(GcpFixture { world, counter: AtomicUsize::new(0), audit, _dir: dir })
    }

    csi_secrets_provider_tests::conformance_tests!(fixture, CAPABILITIES);

    #[async_trait::async_trait]
    impl Fixture for GcpFixture {
        fn unique(&self, base: &str) -> String {
            format!("{base}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
        }

        async fn put(&self, name: &str, value: &str) -> Result<(), BoxError> {
            self.world.google.add_version(None, name, value.as_bytes());
            for service_account in ["web", "batch"] {
                self.world.google.grant(None, name, &principal(service_account));
            }
            Ok(())
        }

        fn parameters(&self, objects: &[ObjectRef]) -> Vec<(String, String)> {
            let secrets: String = objects
                .iter()
                .map(|o| {
                    let mode = o.file_permission.as_ref().map(|p| format!(", mode: {p}")).unwrap_or_default();
                    format!(
                        "- {{resourceName: projects/{PROJECT}/secrets/{}/versions/latest, path: {}{mode}{}}}\n",
                        o.name,
                        o.file,
                        o.flow_keys()
                    )
                })
                .collect();
            vec![("secrets".to_owned(), secrets)]
        }

        fn folder(
            &self,
            prefix: &str,
            directory: Option<&str>,
            extra: &str,
        ) -> Option<Vec<(String, String)>> {
            let path = directory.map(|d| format!(", path: {d}")).unwrap_or_default();
            let extra = if extra.is_empty() { String::new() } else { format!(", {extra}") };
            Some(vec![(
                "secrets".to_owned(),
                format!("- {{resourcePrefix: projects/{PROJECT}/secrets/{prefix}{path}{extra}}}\n"),
            )])
        }

        async fn mount_at(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            self.world.mount_at(target, "web", &parameters[0].1, &pairs(&parameters[1..])).await
        }

        async fn mount_as_second(
            &self,
            target: &str,
            parameters: &[(String, String)],
        ) -> Result<MountResponse, tonic::Status> {
            self.world.mount_at(target, "batch", &parameters[0].1, &pairs(&parameters[1..])).await
        }

        async fn restrict_to_first(&self, name: &str) -> Result<(), BoxError> {
            self.world.google.restrict(None, name, &[&principal("web")]);
            Ok(())
        }

        fn audit_log(&self) -> &std::path::Path {
            &self.audit
        }

        fn object_forms(&self, name: &str) -> Vec<(&'static str, Vec<(String, String)>)> {
            let secret = |entry: String| vec![("secrets".to_owned(), entry)];
            vec![
                (
                    "global",
                    secret(format!(
                        "- {{resourceName: projects/{PROJECT}/secrets/{name}/versions/latest, path: g}}\n"
                    )),
                ),
                (
                    "regional",
                    secret(format!(
                        "- {{resourceName: projects/{PROJECT}/locations/{LOCATION}/secrets/{name}/versions/1, path: r}}\n"
                    )),
                ),
                (
                    "by project number",
                    secret(format!(
                        "- {{resourceName: projects/{PROJECT_NUMBER}/secrets/{name}/versions/latest, path: n}}\n"
                    )),
                ),
            ]
        }
        fn set_driver_deadline(&self, deadline: Option<std::time::Duration>) {
            self.world.set_driver_timeout(deadline);
        }

        async fn cloud_calls(&self) -> usize {
            self.world.google.calls().len() + self.world.kube.requests().len()
        }

        async fn identity_exchanges(&self) -> usize {
            self.world.google.count("exchange")
        }

        async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError> {
            let path = format!("/secrets/{name}/");
            let status = match fault {
                Fault::Hang => {
                    self.world.google.delay_path(&path, HANG);
                    return Ok(());
                }
                Fault::Denied => 403,
                Fault::Throttled => 429,
                Fault::Unavailable => 503,
            };
            self.world.google.fail(&path, status, 1000);
            Ok(())
        }

        fn permission_key(&self) -> &'static str {
            "mode"
        }
    }
}

/// The capability table the suite runs with is the one docs/architecture.md shows.
#[cfg(all(feature = "aws", feature = "azure", feature = "gcp"))]
#[test]
fn the_capability_table_is_the_documented_one() -> Result<(), BoxError> {
    let table = conformance::capability_table(&[
        ("aws", aws::CAPABILITIES),
        ("aws (ssm)", aws_ssm::CAPABILITIES),
        ("azure", azure::CAPABILITIES),
        ("gcp", gcp::CAPABILITIES),
    ]);
    println!("{table}");
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/architecture.md"))?;
    assert!(page.contains(&table), "docs/architecture.md must show the capability table:\n{table}");
    Ok(())
}

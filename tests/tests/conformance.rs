//! The conformance suite against the test backend (with a store standing in for a cloud), which
//! checks the suite itself as much as the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::backend::TestStore;
use csi_secrets_provider_tests::conformance::{self, BoxError, Capabilities, Fault, Fixture, ObjectRef};
use csi_secrets_provider_tests::{InProcess, TestBackend};

struct TestFixture {
    provider: InProcess,
    store: Arc<TestStore>,
    counter: AtomicUsize,
    deadline: std::sync::Mutex<Option<std::time::Duration>>,
    audit: std::path::PathBuf,
    _policy: tempfile::TempDir,
}

#[async_trait]
impl Fixture for TestFixture {
    fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), BoxError> {
        self.store.put(name, value);
        Ok(())
    }

    fn parameters(&self, objects: &[ObjectRef]) -> Vec<(String, String)> {
        vec![("objects".to_owned(), conformance::yaml_object_list(objects, ""))]
    }

    async fn mount_at(
        &self,
        target: &str,
        parameters: &[(String, String)],
    ) -> Result<MountResponse, tonic::Status> {
        let pairs: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let deadline = *self.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let attributes = csi_secrets_provider_tests::pod_attributes(&pairs).to_string();
        self.provider
            .client("test")
            .with_timeout(deadline)
            .mount_raw_at(target, attributes, "null".to_owned(), "420".to_owned())
            .await
    }

    /// The test backend has no identities: the isolation behaviour is skipped for it (its
    /// capabilities say so), and a second identity mounts as the first.
    async fn mount_as_second(
        &self,
        target: &str,
        parameters: &[(String, String)],
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_at(target, parameters).await
    }

    async fn restrict_to_first(&self, _name: &str) -> Result<(), BoxError> {
        Err("the test backend has no identities".into())
    }

    fn audit_log(&self) -> &std::path::Path {
        &self.audit
    }

    fn set_driver_deadline(&self, deadline: Option<std::time::Duration>) {
        *self.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = deadline;
    }

    async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError> {
        self.store.inject(name, fault);
        Ok(())
    }

    async fn cloud_calls(&self) -> usize {
        self.store.reads()
    }

    async fn identity_exchanges(&self) -> usize {
        0
    }

    fn folder(&self, _prefix: &str, _directory: Option<&str>, _extra: &str) -> Option<Vec<(String, String)>> {
        None
    }
}

/// The test backend has no cloud: no folders, no stale values, no token exchange, no kept reads.
const CAPABILITIES: Capabilities = Capabilities {
    folders: false,
    stale_on_outage: false,
    shared_identity_exchange: false,
    kept_reads: false,
};

async fn fixture() -> Result<TestFixture, BoxError> {
    let store = Arc::new(TestStore::default());
    let dir = tempfile::tempdir()?;
    let policy = conformance::write_policy(dir.path())?;
    let audit = dir.path().join("audit.log");
    let audit_target = csi_secrets_provider_server::AuditTarget::File(audit.clone());
    let provider =
        InProcess::start_with(vec![Arc::new(TestBackend::with_store(Arc::clone(&store)))], |options| {
            options.policy_file = Some(policy);
            options.audit_log = Some(audit_target);
        })
        .await?;
    Ok(TestFixture {
        provider,
        store,
        counter: AtomicUsize::new(0),
        deadline: Default::default(),
        audit,
        _policy: dir,
    })
}

csi_secrets_provider_tests::conformance_tests!(fixture, CAPABILITIES);

/// The admin policy's check parses the SecretProviderClass, and the mount uses that parse:
/// one parse per mount with a policy in force, as without one.
#[tokio::test]
async fn a_mount_parses_its_secret_provider_class_once() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let policy = conformance::write_policy(dir.path())?;
    for with_policy in [true, false] {
        let store = Arc::new(TestStore::default());
        store.put("parsed-once", "v");
        let policy = policy.clone();
        let backend = Arc::new(TestBackend::with_store(Arc::clone(&store)));
        let provider = InProcess::start_with(vec![backend], |options| {
            if with_policy {
                options.policy_file = Some(policy);
            }
        })
        .await?;
        let objects = "- objectName: parsed-once\n";
        let answer = provider.client("test").mount(&[("objects", objects)]).await?;
        provider.stop().await?;
        assert_eq!(answer.files.len(), 1, "policy: {with_policy}");
        assert_eq!(store.parses(), 1, "policy: {with_policy}: parses of one mount");
    }
    Ok(())
}

//! The conformance suite against the test backend (with a store standing in for a cloud), which
//! checks the suite itself as much as the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::backend::TestStore;
use csi_secrets_provider_tests::conformance::{self, BoxError, Fault, Fixture, ObjectRef};
use csi_secrets_provider_tests::{InProcess, TestBackend};

struct TestFixture {
    provider: InProcess,
    store: Arc<TestStore>,
    counter: AtomicUsize,
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

    async fn mount(&self, parameters: &[(String, String)]) -> Result<MountResponse, tonic::Status> {
        let pairs: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.provider.client("test").mount(&pairs).await
    }

    async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError> {
        self.store.inject(name, fault);
        Ok(())
    }

    async fn cloud_calls(&self) -> usize {
        self.store.reads()
    }
}

#[tokio::test]
async fn the_test_backend_conforms() -> Result<(), BoxError> {
    let store = Arc::new(TestStore::default());
    let dir = tempfile::tempdir()?;
    let policy = conformance::write_policy(dir.path())?;
    let provider =
        InProcess::start_with(vec![Arc::new(TestBackend::with_store(Arc::clone(&store)))], |options| {
            options.policy_file = Some(policy);
        })
        .await?;
    let fixture = TestFixture { provider, store, counter: AtomicUsize::new(0) };
    conformance::run(&fixture).await?;
    fixture.provider.stop().await?;
    Ok(())
}

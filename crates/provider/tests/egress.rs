//! Egress: every cloud client through the standard proxy variables (CONNECT for HTTPS, absolute
//! form for HTTP, credentials in the URL), `NO_PROXY` honoured, a refusing proxy named in the
//! error; CA certificates from `--extra-ca-file` trusted beside the system's; AWS FIPS endpoints.

use csi_secrets_provider_tests::connect_proxy::ConnectProxy;
use csi_secrets_provider_tests::worlds::BoxError;
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::worlds::AwsWorld;

    fn objects(world: &AwsWorld) -> String {
        format!("- {{objectName: '{}', objectType: secretsmanager, objectAlias: db}}\n", world.name("db"))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn aws_goes_through_the_proxy_with_credentials_and_never_logs_them() -> TestResult {
        let proxy = ConnectProxy::start().await?;
        proxy.require_credentials("egress", "pr0xy-s3cret");
        let url = proxy.url();
        let env = [("HTTPS_PROXY", url.as_str()), ("http_proxy", url.as_str())];
        let world = AwsWorld::start_with_env(BINARY, "egress-aws", &[], &env).await?;
        world.put_secret(&world.name("db"), "through").await?;
        let response = world.mount(&[("objects", &objects(&world)), ("region", "us-east-1")]).await?;
        assert_eq!(file(&response, "db")?, b"through");
        let aws = world.proxy.url().trim_start_matches("http://").to_owned();
        assert!(proxy.count(&aws) >= 2, "STS and Secrets Manager through the proxy: {:?}", proxy.hosts());
        let kube = world.kube.host_port();
        assert!(proxy.count(&kube) >= 1, "the Kubernetes API too (CONNECT): {:?}", proxy.hosts());
        assert!(!world.provider.log_text().contains("pr0xy-s3cret"));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_proxy_bypasses_it_and_a_refusing_proxy_is_named() -> TestResult {
        let proxy = ConnectProxy::start().await?;
        let url = proxy.url();
        let env = [
            ("HTTPS_PROXY", url.as_str()),
            ("HTTP_PROXY", url.as_str()),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ];
        let world = AwsWorld::start_with_env(BINARY, "egress-aws-bypass", &[], &env).await?;
        world.put_secret(&world.name("db"), "direct").await?;
        let response = world.mount(&[("objects", &objects(&world)), ("region", "us-east-1")]).await?;
        assert_eq!(file(&response, "db")?, b"direct");
        assert_eq!(proxy.total(), 0, "NO_PROXY: {:?}", proxy.hosts());

        let refusing = ConnectProxy::start().await?;
        refusing.refuse();
        let url = refusing.url();
        let env = [("HTTPS_PROXY", url.as_str()), ("HTTP_PROXY", url.as_str())];
        let world = AwsWorld::start_with_env(BINARY, "egress-aws-refused", &[], &env).await?;
        let status = world
            .mount(&[("objects", &objects(&world)), ("region", "us-east-1")])
            .await
            .err()
            .ok_or("a refusing proxy must fail the mount")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(status.message().contains(&refusing.address().to_string()), "{}", status.message());
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn azure_goes_through_the_proxy_and_a_refusing_one_is_named() -> TestResult {
        let proxy = ConnectProxy::start().await?;
        proxy.require_credentials("egress", "pr0xy-s3cret");
        let url = proxy.url();
        let world = AzureWorld::start_with_env(BINARY, &[], &[("https_proxy", url.as_str())]).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "through");
        let response = world.mount(&["objectName: db\nobjectType: secret"]).await?;
        assert_eq!(file(&response, "db")?, b"through");
        let hosts = proxy.hosts();
        assert!(hosts.keys().any(|h| h.starts_with(AZURE_VAULT)), "Key Vault through the proxy: {hosts:?}");
        assert!(hosts.keys().any(|h| h.starts_with("login.")), "Azure AD too: {hosts:?}");
        assert!(!world.provider.log_text().contains("pr0xy-s3cret"));

        let refusing = ConnectProxy::start().await?;
        refusing.refuse();
        let url = refusing.url();
        let world = AzureWorld::start_with_env(BINARY, &[], &[("HTTPS_PROXY", url.as_str())]).await?;
        let status = world
            .mount(&["objectName: db\nobjectType: secret"])
            .await
            .err()
            .ok_or("a refusing proxy must fail")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(status.message().contains(&refusing.address().to_string()), "{}", status.message());
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    #[tokio::test(flavor = "multi_thread")]
    async fn gcp_goes_through_the_proxy_and_a_refusing_one_is_named() -> TestResult {
        let proxy = ConnectProxy::start().await?;
        let url = proxy.url();
        // The metadata server is plain HTTP: direct, as `NO_PROXY` keeps it on a real node.
        let env = [("HTTPS_PROXY", url.as_str())];
        let world = GcpWorld::start_with_env(BINARY, &[], &env).await?;
        world.google.add_version(None, "db", b"through");
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/web"));
        let secrets =
            format!("- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n");
        let response = world.mount(&secrets).await?;
        assert_eq!(file(&response, "db")?, b"through");
        let google = world.google.url().trim_start_matches("https://").trim_end_matches('/').to_owned();
        assert!(
            proxy.count(&google) >= 2,
            "the exchange and Secret Manager through the proxy: {:?}",
            proxy.hosts()
        );

        let refusing = ConnectProxy::start().await?;
        refusing.refuse();
        let url = refusing.url();
        let env = [("HTTPS_PROXY", url.as_str())];
        let world = GcpWorld::start_with_env(BINARY, &[], &env).await?;
        let status = world.mount(&secrets).await.err().ok_or("a refusing proxy must fail")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
        assert!(status.message().contains(&refusing.address().to_string()), "{}", status.message());
        Ok(())
    }
}

//! Egress: every cloud client through the standard proxy variables (CONNECT for HTTPS, absolute
//! form for HTTP, credentials in the URL), `NO_PROXY` honoured, a refusing proxy named in the
//! error; CA certificates from `--extra-ca-file` trusted beside the system's; AWS FIPS endpoints.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

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

/// Writes `pem` as `ca.pem` in a directory of its own (what the chart mounts).
fn ca_dir(pem: &str) -> Result<(tempfile::TempDir, String), BoxError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem)?;
    Ok((dir, path.display().to_string()))
}

/// A CA no test peer uses, for `SSL_CERT_FILE`: the system store without the peers' CA.
#[cfg(any(feature = "azure", feature = "gcp"))]
fn unrelated_ca() -> Result<(tempfile::TempDir, String), BoxError> {
    ca_dir(&csi_secrets_provider_tests::tls::TestCa::new(&[])?.ca_pem)
}

#[cfg(feature = "aws")]
mod aws_fips {
    use super::*;
    use csi_secrets_provider_tests::aws::{AwsProxy, moto_endpoint};
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::worlds::AwsWorld;

    const FIPS_HOSTS: [&str; 3] = [
        "sts-fips.us-east-1.amazonaws.com",
        "secretsmanager-fips.us-east-1.amazonaws.com",
        "ssm-fips.us-east-1.amazonaws.com",
    ];

    /// `--aws-use-fips-endpoint`: the SDK dials the `-fips` hosts (seen by the proxy, which
    /// routes them to a TLS peer in front of moto), whose certificate only `--extra-ca-file`
    /// trusts.
    #[tokio::test(flavor = "multi_thread")]
    async fn fips_endpoints_through_the_proxy_with_an_extra_ca() -> TestResult {
        let (peer, ca_pem) = AwsProxy::start_tls(&moto_endpoint(), &FIPS_HOSTS).await?;
        let (_ca, ca_file) = ca_dir(&ca_pem)?;
        let proxy = ConnectProxy::start().await?;
        for host in FIPS_HOSTS {
            proxy.route(host, peer.addr());
        }
        let url = proxy.url();
        // The Kubernetes API (127.0.0.1) stays direct.
        let env = [("HTTPS_PROXY", url.as_str()), ("NO_PROXY", "127.0.0.1"), ("AWS_ENDPOINT_URL", "")];
        let args = ["--aws-use-fips-endpoint", "--extra-ca-file", ca_file.as_str()];
        let world = AwsWorld::start_with_env(BINARY, "egress-fips", &args, &env).await?;
        world.put_secret(&world.name("db"), "fips").await?;
        let objects = format!(
            "- {{objectName: '{}', objectType: secretsmanager, objectAlias: db}}\n",
            world.name("db")
        );
        let response = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await?;
        assert_eq!(file(&response, "db")?, b"fips");
        assert!(proxy.count("sts-fips.us-east-1.amazonaws.com:443") >= 1, "{:?}", proxy.hosts());
        assert!(proxy.count("secretsmanager-fips.us-east-1.amazonaws.com:443") >= 1, "{:?}", proxy.hosts());
        assert!(
            proxy.hosts().keys().all(|host| host.contains("-fips.")),
            "only FIPS hosts: {:?}",
            proxy.hosts()
        );
        assert!(peer.count("GetSecretValue") + peer.count("BatchGetSecretValue") >= 1);

        // Without the extra CA the same peer is refused: an unknown issuer, named.
        let args = ["--aws-use-fips-endpoint"];
        let world = AwsWorld::start_with_env(BINARY, "egress-fips-no-ca", &args, &env).await?;
        let status = world
            .mount(&[("objects", &objects), ("region", "us-east-1")])
            .await
            .err()
            .ok_or("an unknown CA must fail")?;
        assert_eq!(status.code(), Code::Aborted, "{status:?}");
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

        // NO_PROXY: Key Vault and Azure AD (both under .test here) go direct.
        let bypassed = ConnectProxy::start().await?;
        let url = bypassed.url();
        let env = [("HTTPS_PROXY", url.as_str()), ("NO_PROXY", ".test,127.0.0.1")];
        let world = AzureWorld::start_with_env(BINARY, &[], &env).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "direct");
        assert_eq!(file(&world.mount(&["objectName: db\nobjectType: secret"]).await?, "db")?, b"direct");
        assert_eq!(bypassed.total(), 0, "{:?}", bypassed.hosts());

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

        // NO_PROXY: every Google peer listens on localhost.
        let bypassed = ConnectProxy::start().await?;
        let url = bypassed.url();
        let env = [("HTTPS_PROXY", url.as_str()), ("no_proxy", "localhost,127.0.0.1")];
        let world = GcpWorld::start_with_env(BINARY, &[], &env).await?;
        world.google.add_version(None, "db", b"direct");
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/web"));
        assert_eq!(file(&world.mount(&secrets).await?, "db")?, b"direct");
        assert_eq!(bypassed.total(), 0, "{:?}", bypassed.hosts());

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

#[cfg(feature = "azure")]
mod azure_ca {
    use super::*;
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};

    /// Key Vault and Azure AD behind a CA that only `--extra-ca-file` holds (`SSL_CERT_FILE` is
    /// another CA's): mounts; without it, the unknown issuer fails the mount.
    #[tokio::test(flavor = "multi_thread")]
    async fn azure_trusts_the_extra_ca() -> TestResult {
        let (_unrelated, unrelated) = unrelated_ca()?;
        let env = [("SSL_CERT_FILE", unrelated.as_str())];
        let world = AzureWorld::start_with_env(BINARY, &["--extra-ca-file", "{ca}"], &env).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "private");
        let response = world.mount(&["objectName: db\nobjectType: secret"]).await?;
        assert_eq!(file(&response, "db")?, b"private");

        let world = AzureWorld::start_with_env(BINARY, &[], &env).await?;
        world.azure.set_secret(AZURE_VAULT, "db", "private");
        let status = world
            .mount(&["objectName: db\nobjectType: secret"])
            .await
            .err()
            .ok_or("an unknown CA must fail")?;
        assert!(status.message().contains("invalid peer certificate"), "{}", status.message());
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp_ca {
    use super::*;
    use csi_secrets_provider_tests::file_contents as file;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    /// Secret Manager and the token exchange behind a CA that only `--extra-ca-file` holds, with
    /// `SSL_CERT_DIR` naming its directory as the chart does (Google's SDK reads its roots there).
    #[tokio::test(flavor = "multi_thread")]
    async fn gcp_trusts_the_extra_ca() -> TestResult {
        let (_unrelated, unrelated) = unrelated_ca()?;
        let env = [("SSL_CERT_FILE", unrelated.as_str()), ("SSL_CERT_DIR", "{ca_dir}")];
        let world = GcpWorld::start_with_env(BINARY, &["--extra-ca-file", "{ca}"], &env).await?;
        world.google.add_version(None, "db", b"private");
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/web"));
        let secrets =
            format!("- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n");
        let response = world.mount(&secrets).await?;
        assert_eq!(file(&response, "db")?, b"private");
        Ok(())
    }
}

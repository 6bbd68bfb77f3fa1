//! The fault matrix, every cloud, through the real binary and the test peers: a cloud, token
//! service or Kubernetes API that never answers, answers 5xx or 429 in bursts or for good, or
//! answers something that is not JSON. For each: retries stay bounded, the mount answers before
//! the driver's gRPC deadline with an error that names the service and the object in plain
//! words, nothing is returned, and the process keeps serving. A peer that goes away (connections
//! refused, a read cut off mid-request) is covered too.

#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

use std::time::{Duration, Instant};

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::worlds::BoxError;
use csi_secrets_provider_tests::{DriverClient, ProviderProcess};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// The deadline the driver's context gives a Mount in these tests.
const DRIVER_DEADLINE: Duration = Duration::from_secs(6);

/// What a faulty mount must look like.
struct Expected<'a> {
    code: Code,
    /// Words the message must hold: the service, the object, the cause.
    says: &'a [&'a str],
}

fn check(
    case: &str,
    outcome: Result<MountResponse, tonic::Status>,
    started: Instant,
    expected: &Expected<'_>,
) -> TestResult {
    let elapsed = started.elapsed();
    let status = match outcome {
        Ok(response) => return Err(format!("{case}: the mount succeeded: {:?}", response.files).into()),
        Err(status) => status,
    };
    if status.code() != expected.code {
        return Err(format!("{case}: expected {:?}, got {status:?}", expected.code).into());
    }
    for words in expected.says {
        if !status.message().contains(words) {
            return Err(format!("{case}: the message does not say {words:?}: {}", status.message()).into());
        }
    }
    if elapsed >= DRIVER_DEADLINE {
        return Err(format!("{case}: answered after the driver's deadline ({elapsed:?})").into());
    }
    Ok(())
}

/// Waits until `condition` holds (polled), at most 20 s: an event to act on, not a guess of
/// how long it takes on a loaded machine.
#[cfg(any(feature = "aws", feature = "azure"))]
async fn until(what: &str, condition: impl Fn() -> bool) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("never happened: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The process still answers on its socket after the fault.
async fn still_serving(provider: &mut ProviderProcess, backend: &str) -> TestResult {
    if let Some(status) = provider.child.try_wait()? {
        return Err(format!("the provider exited: {status}\n{}", provider.log_text()).into());
    }
    DriverClient::new(&provider.socket(backend)).version().await?;
    Ok(())
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::AwsWorld;

    /// A world with one secret `db` and the driver's deadline set; the mount's parameters.
    async fn world(case: &str) -> Result<(AwsWorld, String), BoxError> {
        let world = AwsWorld::start(BINARY, case, &[]).await?;
        world.set_driver_timeout(Some(DRIVER_DEADLINE));
        let name = world.name("db");
        world.put_secret(&name, "value").await?;
        Ok((world, name))
    }

    fn objects(name: &str) -> String {
        format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: db}}")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn aws_fault_matrix() -> TestResult {
        type Setup = fn(&AwsWorld);
        let cases: [(&str, Setup, Code, &[&str]); 8] = [
            (
                "secretsmanager-never-answers",
                |w| w.proxy.delay("GetSecretValue", Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["Secrets Manager did not answer", "not read:"],
            ),
            (
                "sts-never-answers",
                |w| w.proxy.delay("AssumeRoleWithWebIdentity", Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["STS (AssumeRoleWithWebIdentity)", "did not answer"],
            ),
            (
                "kubernetes-api-never-answers",
                |w| w.kube.set_delay(Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["Kubernetes API", "did not answer"],
            ),
            (
                "secretsmanager-down",
                |w| {
                    w.proxy.inject(
                        "GetSecretValue",
                        1000,
                        503,
                        "ServiceUnavailableException",
                        "Service is unavailable",
                    )
                },
                Code::Aborted,
                &["ServiceUnavailableException", "Failed to fetch secret"],
            ),
            (
                "sts-down",
                |w| {
                    w.proxy.inject(
                        "AssumeRoleWithWebIdentity",
                        1000,
                        503,
                        "ServiceUnavailable",
                        "Service is unavailable",
                    )
                },
                Code::Aborted,
                &["AssumeRoleWithWebIdentity", "ServiceUnavailable"],
            ),
            (
                "kubernetes-api-forbidden",
                |w| w.kube.forbid_all(),
                Code::PermissionDenied,
                &[
                    "failed to get service account shop/web",
                    "forbidden",
                    "ClusterRole needs get on serviceaccounts",
                ],
            ),
            (
                "answer-not-json",
                |w| w.proxy.inject_raw("GetSecretValue", 1000, 200, "<html><body>proxy error</body></html>"),
                Code::Aborted,
                &["Failed to fetch secret", "not an answer the API gives"],
            ),
            (
                "answer-cut-off",
                |w| {
                    w.proxy.inject_raw(
                        "GetSecretValue",
                        1000,
                        200,
                        r#"{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:x","SecretStr"#,
                    )
                },
                Code::Aborted,
                &["Failed to fetch secret", "not an answer the API gives"],
            ),
        ];
        for (case, setup, code, says) in cases {
            let (mut world, name) = world(case).await?;
            setup(&world);
            let started = Instant::now();
            let outcome = world.mount(&[("objects", &objects(&name)), ("region", "us-east-1")]).await;
            let mut says = says.to_vec();
            // A failed token exchange or lookup is about the identity, not one object.
            if case.starts_with("secretsmanager") || case.starts_with("answer") {
                says.push(&name);
            }
            check(case, outcome, started, &Expected { code, says: &says })?;
            still_serving(&mut world.provider, "aws").await?;
        }
        Ok(())
    }

    /// SSM Parameter Store never answers: the batch read ends before the driver's deadline in an
    /// error naming the service and the parameters not read (it used to wait for the driver's
    /// own timeout, naming nothing).
    #[tokio::test(flavor = "multi_thread")]
    async fn ssm_never_answers() -> TestResult {
        let (mut world, _) = world("ssm-never-answers").await?;
        let name = format!("/{}", world.name("param"));
        let body = serde_json::json!({ "Name": name, "Value": "v", "Type": "SecureString" });
        csi_secrets_provider_tests::worlds::moto_call("ssm", "PutParameter", &body).await?;
        world.proxy.delay("GetParameters", Duration::from_secs(60));
        let started = Instant::now();
        let objects = format!("- {{objectName: '{name}', objectType: ssmparameter, objectAlias: p}}");
        let outcome = world.mount(&[("objects", &objects), ("region", "us-east-1")]).await;
        let says = ["SSM Parameter Store did not answer", "not read:", name.as_str()];
        check(
            "ssm-never-answers",
            outcome,
            started,
            &Expected { code: Code::DeadlineExceeded, says: &says },
        )?;
        still_serving(&mut world.provider, "aws").await
    }

    /// STS refuses the pod's token (expired: a driver that did not refresh it; another audience;
    /// not a JWT): a refusal with STS's code and words, not an outage, and no retries.
    #[tokio::test(flavor = "multi_thread")]
    async fn aws_refused_tokens_are_refused_clearly() -> TestResult {
        use csi_secrets_provider_tests::jwt;
        use csi_secrets_provider_tests::worlds::AWS_NAMESPACE;
        let cases = [
            (
                "expired",
                jwt::service_account_token(AWS_NAMESPACE, "web", "sts.amazonaws.com", jwt::EXPIRED_AT),
                ["ExpiredTokenException", "Token expired"],
            ),
            (
                "other-audience",
                jwt::service_account_token(
                    AWS_NAMESPACE,
                    "web",
                    "api://AzureADTokenExchange",
                    jwt::VALID_UNTIL,
                ),
                ["InvalidIdentityToken", "Incorrect token audience"],
            ),
            ("not-a-jwt", "opaque-token".to_owned(), ["InvalidIdentityToken", "not a valid JWT"]),
        ];
        for (case, token, words) in cases {
            let (mut world, name) = world(case).await?;
            let started = Instant::now();
            let outcome = world
                .mount_with_sts_token(
                    &csi_secrets_provider_tests::new_target_path(),
                    "web",
                    &token,
                    &[("objects", &objects(&name)), ("region", "us-east-1")],
                )
                .await;
            let mut says = vec!["AssumeRoleWithWebIdentity"];
            says.extend(words);
            check(case, outcome, started, &Expected { code: Code::PermissionDenied, says: &says })?;
            let exchanges = world.proxy.count("AssumeRoleWithWebIdentity");
            if exchanges != 1 {
                return Err(format!("{case}: a refused token was sent {exchanges} times").into());
            }
            still_serving(&mut world.provider, "aws").await?;
        }
        Ok(())
    }

    /// The endpoint goes away: new connections refused, and a read in progress cut off.
    #[tokio::test(flavor = "multi_thread")]
    async fn aws_connection_refused_and_reset() -> TestResult {
        let (mut gone, name) = world("refused").await?;
        gone.proxy.close();
        let started = Instant::now();
        let outcome = gone.mount(&[("objects", &objects(&name)), ("region", "us-east-1")]).await;
        check(
            "refused",
            outcome,
            started,
            &Expected { code: Code::Aborted, says: &["AssumeRoleWithWebIdentity", "Connection refused"] },
        )?;
        still_serving(&mut gone.provider, "aws").await?;

        let (mut cut, name) = world("reset").await?;
        cut.proxy.delay("GetSecretValue", Duration::from_secs(3));
        let started = Instant::now();
        let parameters = [("objects", objects(&name)), ("region", "us-east-1".to_owned())];
        let parameters: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Cut once the read is in flight (the proxy holds it), so the test sees a reset, not a
        // refusal, however slow the token exchange before it is.
        let (outcome, waited) = tokio::join!(cut.mount(&parameters), async {
            let waited = until("GetSecretValue in flight", || cut.proxy.count("GetSecretValue") > 0).await;
            cut.proxy.close();
            waited
        });
        waited?;
        check(
            "reset",
            outcome,
            started,
            &Expected { code: Code::Aborted, says: &[&name, "Failed to fetch secret"] },
        )?;
        still_serving(&mut cut.provider, "aws").await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn aws_bursts_are_retried_within_bounds() -> TestResult {
        let (world, name) = world("bursts").await?;
        world.proxy.inject("GetSecretValue", 2, 503, "ServiceUnavailableException", "Service is unavailable");
        world.proxy.inject("GetSecretValue", 1, 400, "ThrottlingException", "Rate exceeded");
        let response = world.mount(&[("objects", &objects(&name)), ("region", "us-east-1")]).await;
        // Three failures exhaust the SDK's three attempts: bounded, not endless.
        let status = response.err().ok_or("three failures must exhaust the retries")?;
        assert!(status.message().contains(&name), "{status:?}");
        world.proxy.inject("GetSecretValue", 2, 503, "ServiceUnavailableException", "Service is unavailable");
        let response = world.mount(&[("objects", &objects(&name)), ("region", "us-east-1")]).await?;
        assert_eq!(response.files[0].contents, b"value", "two 5xx then an answer: retried and read");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};

    async fn world() -> Result<AzureWorld, BoxError> {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.set_driver_timeout(Some(DRIVER_DEADLINE));
        world.azure.set_secret(AZURE_VAULT, "db", "value");
        Ok(world)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn azure_fault_matrix() -> TestResult {
        type Setup = fn(&AzureWorld);
        let cases: [(&str, Setup, Code, &[&str]); 6] = [
            (
                "key-vault-never-answers",
                |w| w.azure.set_vault_delay(Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["Key Vault (or Azure AD) did not answer", "not read: db"],
            ),
            (
                "key-vault-down",
                |w| w.azure.fail_requests("/secrets/db", 1000),
                Code::Aborted,
                &["objectName:db", "from Key Vault: ServiceUnavailable"],
            ),
            (
                "key-vault-throttles",
                |w| w.azure.throttle("/secrets/db", 1000, 0),
                Code::ResourceExhausted,
                &["objectName:db", "from Key Vault: Throttled"],
            ),
            (
                "azure-ad-down",
                |w| w.azure.fail_token_requests(1000),
                Code::Aborted,
                &["objectName:db", "Azure AD token", "temporarily unavailable"],
            ),
            (
                "answer-not-json",
                |w| w.azure.garble("/secrets/db", 1000, "<html><body>gateway error</body></html>"),
                Code::Aborted,
                &["objectName:db", "Key Vault's answer was not valid JSON"],
            ),
            (
                "answer-cut-off",
                |w| w.azure.garble("/secrets/db", 1000, r#"{"value":"val"#),
                Code::Aborted,
                &["objectName:db", "Key Vault's answer was not valid JSON"],
            ),
        ];
        for (case, setup, code, says) in cases {
            let mut world = world().await?;
            setup(&world);
            let started = Instant::now();
            let outcome = world.mount(&["objectName: db\nobjectType: secret"]).await;
            check(case, outcome, started, &Expected { code, says })?;
            still_serving(&mut world.provider, "azure").await?;
        }
        Ok(())
    }

    /// The pod's token expired (a driver that did not refresh it) or is not a JWT: Azure AD
    /// refuses it, and the mount says so with Azure AD's code, as a refusal, not an outage.
    #[tokio::test(flavor = "multi_thread")]
    async fn azure_refused_tokens_are_refused_clearly() -> TestResult {
        use csi_secrets_provider_tests::worlds::{AZURE_CLIENT, AZURE_NAMESPACE, AZURE_TENANT};
        let cases = [
            (
                "expired",
                csi_secrets_provider_tests::azure::expired_service_account_token(
                    AZURE_NAMESPACE,
                    "expired-sa",
                ),
                ["AADSTS700024", "valid time range"],
            ),
            ("not-a-jwt", "opaque-token".to_owned(), ["AADSTS50027", "invalid or malformed"]),
        ];
        for (case, token, words) in cases {
            let mut world = world().await?;
            let tokens = serde_json::json!({
                "api://AzureADTokenExchange": { "token": token, "expirationTimestamp": "2001-09-09T01:46:40Z" }
            })
            .to_string();
            world.azure.federate(AZURE_TENANT, AZURE_CLIENT, AZURE_NAMESPACE, "expired-sa");
            let started = Instant::now();
            let outcome = world
                .mount_as(
                    "expired-sa",
                    &["objectName: db\nobjectType: secret"],
                    &[("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str())],
                )
                .await;
            let mut says = vec!["objectName:db"];
            says.extend(words);
            check(case, outcome, started, &Expected { code: Code::PermissionDenied, says: &says })?;
            still_serving(&mut world.provider, "azure").await?;
        }
        Ok(())
    }

    /// Key Vault and Azure AD go away: new connections refused, and a read in progress cut off.
    #[tokio::test(flavor = "multi_thread")]
    async fn azure_connection_refused_and_reset() -> TestResult {
        let mut gone = world().await?;
        gone.azure.close();
        let started = Instant::now();
        let outcome = gone.mount(&["objectName: db\nobjectType: secret"]).await;
        check(
            "refused",
            outcome,
            started,
            &Expected {
                code: Code::Aborted,
                says: &["objectName:db", "failed to reach Key Vault", "Connection refused"],
            },
        )?;
        still_serving(&mut gone.provider, "azure").await?;

        let mut cut = world().await?;
        cut.azure.set_vault_delay(Duration::from_secs(3));
        let started = Instant::now();
        // Cut once the vault read is in flight, after Azure AD answered.
        let (outcome, waited) = tokio::join!(cut.mount(&["objectName: db\nobjectType: secret"]), async {
            let waited = until("the vault read in flight", || !cut.azure.vault_requests().is_empty()).await;
            cut.azure.close();
            waited
        });
        waited?;
        check("reset", outcome, started, &Expected { code: Code::Aborted, says: &["objectName:db"] })?;
        still_serving(&mut cut.provider, "azure").await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn azure_bursts_are_retried_within_bounds() -> TestResult {
        let world = world().await?;
        world.azure.fail_requests("/secrets/db", 2);
        world.azure.throttle("/secrets/db", 1, 1);
        let response = world.mount(&["objectName: db\nobjectType: secret"]).await?;
        assert_eq!(response.files[0].contents, b"value", "503, 503, 429 with Retry-After, then an answer");
        let statuses: Vec<u16> = world
            .azure
            .vault_requests()
            .iter()
            .filter(|r| r.path.contains("/secrets/db"))
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    const SECRET: &str = "projects/shop-prod/secrets/db/versions/latest";

    async fn world() -> Result<GcpWorld, BoxError> {
        let world = GcpWorld::start(BINARY, &[]).await?;
        world.set_driver_timeout(Some(DRIVER_DEADLINE));
        world.google.add_version(None, "db", b"value");
        world.google.grant(None, "db", &format!("ksa:{GCP_NAMESPACE}/web"));
        Ok(world)
    }

    fn secrets() -> String {
        format!("- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn gcp_fault_matrix() -> TestResult {
        type Setup = fn(&GcpWorld);
        let cases: [(&str, Setup, Code, &[&str]); 8] = [
            (
                "google-never-answers",
                |w| w.google.set_delay(Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["did not answer"],
            ),
            (
                // The token exchange answers; Secret Manager alone hangs: the error names it
                // and the secret not read.
                "secret-manager-hangs",
                |w| w.google.delay_path("/secrets/db/", Duration::from_secs(60)),
                Code::DeadlineExceeded,
                &["Secret Manager", "did not answer", SECRET],
            ),
            (
                "secret-manager-down",
                |w| w.google.fail("/secrets/db/", 503, 1000),
                Code::Aborted,
                &[SECRET, "failed to access"],
            ),
            (
                "secret-manager-throttles",
                |w| w.google.fail("/secrets/db/", 429, 1000),
                Code::ResourceExhausted,
                &[SECRET, "failed to access"],
            ),
            (
                "token-exchange-down",
                |w| w.google.fail("/identitybindingtoken", 503, 1000),
                Code::Aborted,
                &["unable to fetch identitybindingtoken", "503"],
            ),
            (
                "token-exchange-refuses",
                |w| w.google.fail("/identitybindingtoken", 403, 1000),
                Code::PermissionDenied,
                &["unable to obtain workload identity auth", "unable to fetch identitybindingtoken"],
            ),
            (
                "answer-not-json",
                |w| w.google.garble("/secrets/db/", 1000, "<html><body>gateway error</body></html>"),
                Code::Aborted,
                &[SECRET],
            ),
            (
                "answer-cut-off",
                |w| {
                    w.google.garble(
                        "/secrets/db/",
                        1000,
                        r#"{"name":"projects/1/secrets/db/versions/1","payload":{"da"#,
                    )
                },
                Code::Aborted,
                &[SECRET],
            ),
        ];
        for (case, setup, code, says) in cases {
            let mut world = world().await?;
            setup(&world);
            let started = Instant::now();
            let outcome = world.mount(&secrets()).await;
            check(case, outcome, started, &Expected { code, says })?;
            still_serving(&mut world.provider, "gcp").await?;
        }
        Ok(())
    }

    /// Google goes away: connections refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn gcp_connection_refused() -> TestResult {
        let mut world = world().await?;
        world.google.close();
        let started = Instant::now();
        let outcome = world.mount(&secrets()).await;
        check(
            "refused",
            outcome,
            started,
            &Expected { code: Code::Aborted, says: &["unable to fetch identitybindingtoken"] },
        )?;
        still_serving(&mut world.provider, "gcp").await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn gcp_bursts_are_retried_within_bounds() -> TestResult {
        let world = world().await?;
        world.google.fail("/secrets/db/", 503, 1);
        world.google.fail("/secrets/db/", 429, 1);
        let response = world.mount(&secrets()).await?;
        assert_eq!(response.files[0].contents, b"value", "503, 429, then an answer");
        let statuses: Vec<u16> = world
            .google
            .calls()
            .iter()
            .filter(|c| c.path.contains("/secrets/db/"))
            .map(|c| c.status)
            .collect();
        assert_eq!(statuses, [503, 429, 200]);
        Ok(())
    }
}

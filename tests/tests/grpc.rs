//! The provider protocol over a real Unix socket, driven by a client generated from the driver's
//! proto, with the test backend.

use std::sync::Arc;
use std::time::Duration;

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::{DriverClient, InProcess, TestBackend, http_get, pod_attributes};
use tonic::Code;

type TestResult = Result<(), Box<dyn std::error::Error>>;
/// SPC parameters and the words the error must contain.
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);

async fn provider() -> Result<InProcess, std::io::Error> {
    InProcess::start(vec![Arc::new(TestBackend::default())]).await
}

fn file<'a>(response: &'a MountResponse, path: &str) -> Option<&'a csi_secrets_provider_server::proto::File> {
    response.files.iter().find(|f| f.path == path)
}

#[tokio::test]
async fn version_answers_runtime_name_and_version() -> TestResult {
    let provider = provider().await?;
    let version = provider.client("test").version().await?;
    assert_eq!(version.version, "v1alpha1");
    assert_eq!(version.runtime_name, "csi-secrets-provider");
    assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn mount_returns_every_file_with_modes_and_versions() -> TestResult {
    let provider = provider().await?;
    let objects = r#"
- objectName: prod/db/password
  value: hunter2
  version: "7"
- objectName: api-key
  objectAlias: keys/api
  filePermission: "0600"
"#;
    let response =
        provider.client("test").mount(&[("objects", objects), ("pathTranslation", "false")]).await?;
    assert_eq!(response.files.len(), 2);
    let password = file(&response, "prod/db/password").ok_or("password file")?;
    assert_eq!(password.contents, b"hunter2");
    assert_eq!(password.mode, 0o644, "the driver's permission 420 is 0644");
    let api = file(&response, "keys/api").ok_or("api file")?;
    assert_eq!(api.contents, b"value-of-api-key");
    assert_eq!(api.mode, 0o600);
    let versions: Vec<(&str, &str)> =
        response.object_version.iter().map(|v| (v.id.as_str(), v.version.as_str())).collect();
    assert_eq!(versions, [("prod/db/password", "7"), ("keys/api", "v1")]);
    assert!(response.error.is_none());

    // Default translation turns '/' into '_'.
    let response = provider.client("test").mount(&[("objects", "- objectName: prod/db/password")]).await?;
    assert!(file(&response, "prod_db_password").is_some(), "{:?}", response.files);
    provider.stop().await?;
    Ok(())
}

/// Each bad input: InvalidArgument, a message naming object and field, and the provider keeps
/// serving. A gRPC error carries no files by construction.
#[tokio::test]
async fn bad_input_is_invalid_argument_naming_object_and_field() -> TestResult {
    let provider = provider().await?;
    let mut client = provider.client("test");
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("objects", "- {objectName: db, filePermission: '0999'}")],
            &["object \"db\"", "field \"filePermission\"", "Invalid File Permission: 0999"],
        ),
        (
            vec![
                (
                    "objects",
                    "- {objectName: a, objectAlias: same}\n- {objectName: b, objectAlias: same/inner}",
                ),
                ("pathTranslation", "false"),
            ],
            &["object \"b\"", "field \"objectAlias\"", "one would be a directory of the other", "\"a\""],
        ),
        (
            vec![("objects", "- {objectName: a, objectAlias: /etc/passwd}"), ("pathTranslation", "false")],
            &["object \"a\"", "field \"objectAlias\"", "absolute"],
        ),
        (
            vec![
                ("objects", "- {objectName: a, objectAlias: ../../etc/cron.d/x}"),
                ("pathTranslation", "false"),
            ],
            &["object \"a\"", "field \"objectAlias\"", "path can not contain ../"],
        ),
        (
            vec![("objects", "- {objectName: a, objectAlias: x/..}"), ("pathTranslation", "false")],
            &["object \"a\"", "path can not contain ../"],
        ),
        (
            vec![
                ("objects", "- {objectName: a, objectAlias: dir}\n- {objectName: b, objectAlias: dir/0}"),
                ("pathTranslation", "false"),
            ],
            &["object \"b\"", "collide"],
        ),
        (vec![("objects", "not: a list")], &["field \"objects\""]),
    ];
    for (parameters, expected) in cases {
        let status =
            client.mount(&parameters).await.err().ok_or_else(|| format!("{parameters:?} must fail"))?;
        assert_eq!(status.code(), Code::InvalidArgument, "{parameters:?}: {status:?}");
        for needle in expected {
            assert!(
                status.message().contains(needle),
                "{parameters:?}: {:?} lacks {needle:?}",
                status.message()
            );
        }
        client.version().await?;
    }
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn malformed_driver_fields_are_invalid_argument() -> TestResult {
    let provider = provider().await?;
    let mut client = provider.client("test");
    let good = pod_attributes(&[("objects", "- objectName: a")]).to_string();
    // The official providers' words are inside ours: troubleshooting guides and alerts match them.
    let cases = [
        ("{\"objects\": ", "null", "420", "attributes", "failed to unmarshal attributes"),
        ("", "null", "420", "attributes", "failed to unmarshal attributes"),
        ("[1, 2]", "null", "420", "attributes", "failed to unmarshal attributes"),
        ("{\"objects\": 5}", "null", "420", "attributes", "failed to unmarshal attributes"),
        (good.as_str(), "{\"clientsecret\": ", "420", "secrets", ""),
        (good.as_str(), "null", "0644", "permission", "failed to unmarshal file permission"),
        (good.as_str(), "null", "999", "permission", "failed to unmarshal file permission"),
        (good.as_str(), "null", "", "permission", "failed to unmarshal file permission"),
    ];
    for (attributes, secrets, permission, field, upstream) in cases {
        let status = client
            .mount_raw(attributes.to_owned(), secrets.to_owned(), permission.to_owned())
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{attributes} {secrets} {permission}");
        assert!(status.message().contains(&format!("field \"{field}\"")), "{}", status.message());
        assert!(status.message().contains(upstream), "{}", status.message());
        client.version().await?;
    }
    // An empty target path is reported first, as upstream does (TestNoPath), before the objects.
    let status = client
        .mount_raw_at(
            "",
            pod_attributes(&[("objects", "not a list")]).to_string(),
            "null".to_owned(),
            "420".to_owned(),
        )
        .await
        .err()
        .ok_or("no target path")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("field \"target_path\": Missing mount path"),
        "{}",
        status.message()
    );
    // The driver's permission decides the default mode.
    let response = client.mount_raw(good, "null".to_owned(), "384".to_owned()).await?;
    assert_eq!(response.files[0].mode, 0o600);
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn backend_errors_map_to_codes_by_meaning() -> TestResult {
    let provider = provider().await?;
    let mut client = provider.client("test");
    let cases = [
        ("notfound", Code::NotFound),
        ("denied", Code::PermissionDenied),
        ("throttled", Code::ResourceExhausted),
        // A cloud our retries gave up on: not UNAVAILABLE, which the driver retries at once.
        ("unavailable", Code::Aborted),
        ("panic", Code::Internal),
    ];
    for (fail, code) in cases {
        let status =
            client.mount(&[("objects", "- objectName: db"), ("fail", fail)]).await.err().ok_or(fail)?;
        assert_eq!(status.code(), code, "{fail}: {status:?}");
        client.version().await?;
    }
    let status =
        client.mount(&[("objects", "- objectName: db"), ("fail", "notfound")]).await.err().ok_or("nf")?;
    assert!(status.message().contains("object \"db\""), "{}", status.message());
    let status =
        client.mount(&[("objects", "- objectName: db"), ("fail", "throttled")]).await.err().ok_or("t")?;
    assert_eq!(status.metadata().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn responses_over_the_driver_limit_are_refused_whole() -> TestResult {
    let provider = provider().await?;
    let mut client = provider.client("test");
    let objects = "- {objectName: small, sizeBytes: '1000'}\n- {objectName: big, sizeBytes: '4194304'}";
    let status = client.mount(&[("objects", objects)]).await.err().ok_or("must fail")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("big (4194304 bytes)"), "{}", status.message());
    assert!(status.message().contains("--max-call-recv-msg-size"), "{}", status.message());
    // Just under the limit passes.
    let response = client.mount(&[("objects", "- {objectName: fits, sizeBytes: '4194000'}")]).await?;
    assert_eq!(response.files[0].contents.len(), 4_194_000);
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn mounts_time_out_at_the_mount_deadline() -> TestResult {
    let provider = InProcess::start_with(vec![Arc::new(TestBackend::default())], |options| {
        options.service.mount_timeout = Duration::from_millis(200);
    })
    .await?;
    let status = provider
        .client("test")
        .mount(&[("objects", "- objectName: slow"), ("delayMs", "5000")])
        .await
        .err()
        .ok_or("must time out")?;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_hundred_concurrent_mounts() -> TestResult {
    let provider = provider().await?;
    let client = provider.client("test");
    let mounts = (0..100).map(|i| {
        let mut client: DriverClient = client.clone();
        async move {
            let objects = format!("- {{objectName: s{i}, value: v{i}}}\n- objectName: shared");
            let response = client.mount(&[("objects", &objects), ("delayMs", "50")]).await?;
            Ok::<_, tonic::Status>((i, response))
        }
    });
    let results = futures::future::join_all(mounts).await;
    for result in results {
        let (i, response) = result?;
        assert_eq!(response.files.len(), 2);
        assert_eq!(
            file(&response, &format!("s{i}")).map(|f| f.contents.clone()),
            Some(format!("v{i}").into_bytes())
        );
    }
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn grpc_health_service_reports_serving() -> TestResult {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let provider = provider().await?;
    let mut health = HealthClient::new(csi_secrets_provider_server::uds::channel(provider.socket("test")));
    for service in ["", "v1alpha1.CSIDriverProvider"] {
        let answer = health.check(HealthCheckRequest { service: service.to_owned() }).await?.into_inner();
        assert_eq!(answer.status, 1, "SERVING for {service:?}");
    }
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_sockets_are_removed_on_stop() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stale = dir.path().join("test.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale)?);
    assert!(stale.exists());
    let volume = dir.path().to_path_buf();
    let provider = InProcess::start_with(vec![Arc::new(TestBackend::default())], |options| {
        options.provider_volume = volume;
    })
    .await?;
    DriverClient::new(&stale).version().await?;
    provider.stop().await?;
    assert!(!stale.exists(), "the socket is removed on stop");
    Ok(())
}

#[tokio::test]
async fn in_flight_mounts_finish_during_drain() -> TestResult {
    let provider = provider().await?;
    let socket = provider.socket("test");
    let started = provider.dir.path().join("started");
    let marker = started.display().to_string();
    let mut client = provider.client("test");
    let slow = tokio::spawn(async move {
        client
            .mount(&[
                ("objects", "- {objectName: slow, value: done}"),
                ("delayMs", "700"),
                ("startedFile", &marker),
            ])
            .await
    });
    csi_secrets_provider_tests::wait_for_file(&started, Duration::from_secs(20)).await?;
    provider.stop().await?;
    let response = slow.await??;
    assert_eq!(response.files[0].contents, b"done");
    assert!(!socket.exists());
    Ok(())
}

#[tokio::test]
async fn http_health_endpoints() -> TestResult {
    // Bound here and handed over: the address is known and nobody can take the port meanwhile.
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let provider = InProcess::start_with(vec![Arc::new(TestBackend::default())], |options| {
        options.health_listener = Some(listener);
    })
    .await?;
    let mut ready = String::new();
    for _ in 0..50 {
        if let Ok(answer) = http_get(addr, "/readyz").await {
            ready = answer;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let healthy = http_get(addr, "/healthz").await?;
    assert!(healthy.starts_with("HTTP/1.1 200") && healthy.ends_with("ok\n"), "{healthy}");
    provider.client("test").mount(&[("objects", "- objectName: counted")]).await?;
    let metrics = http_get(addr, "/metrics").await?;
    assert!(
        metrics.contains(r#"csi_secrets_provider_mounts_total{backend="test",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("counted"), "object names never become labels");
    // A socket that vanished from the host directory fails the probe, so kubelet restarts us.
    std::fs::remove_file(provider.socket("test"))?;
    let broken = http_get(addr, "/healthz").await?;
    assert!(broken.starts_with("HTTP/1.1 503"), "{broken}");
    assert!(broken.contains("test.sock"), "{broken}");
    provider.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_abandoned_mount_leaves_the_in_flight_gauge() -> TestResult {
    // Bound here and handed over: the address is known and nobody can take the port meanwhile.
    let listener = Arc::new(std::net::TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let provider = InProcess::start_with(vec![Arc::new(TestBackend::default())], |options| {
        options.health_listener = Some(listener);
    })
    .await?;
    let started = provider.dir.path().join("started");
    let marker = started.display().to_string();
    let mut client = provider.client("test");
    let call = tokio::spawn(async move {
        client
            .mount(&[("objects", "- objectName: slow"), ("delayMs", "30000"), ("startedFile", &marker)])
            .await
    });
    csi_secrets_provider_tests::wait_for_file(&started, Duration::from_secs(20)).await?;
    let gauge = |n: u8| format!("csi_secrets_provider_mounts_in_flight{{backend=\"test\"}} {n}");
    assert!(http_get(addr, "/metrics").await?.contains(&gauge(1)));
    // The driver gives up: the call is cancelled and the server drops the handler's future.
    call.abort();
    let mut metrics = String::new();
    for _ in 0..250 {
        metrics = http_get(addr, "/metrics").await?;
        if metrics.contains(&gauge(0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics.contains(&gauge(0)), "{metrics}");
    provider.stop().await?;
    Ok(())
}

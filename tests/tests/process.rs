//! The command line as a process: signals, drain, log lines, `mount` and `validate`. The binary
//! is the real CLI with the test backend added (`src/bin/test-provider.rs`).

use std::process::Command;
use std::time::{Duration, Instant};

use csi_secrets_provider_tests::{DriverClient, ProviderProcess, wait_for_file, wait_for_socket};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BINARY: &str = env!("CARGO_BIN_EXE_test-provider");
const SECRET: &str = "s3cr3t-VALUE-never-logged";

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_an_in_flight_mount_and_removes_the_socket() -> TestResult {
    let mut provider = ProviderProcess::serve(BINARY, &["--backend", "test", "--grace-period", "10s"])?;
    let socket = provider.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    let mut client = DriverClient::new(&socket);
    let objects = format!("- {{objectName: db, value: {SECRET}}}");
    let started = provider.dir.path().join("started");
    let marker = started.display().to_string();
    let in_flight = tokio::spawn(async move {
        client.mount(&[("objects", &objects), ("delayMs", "1500"), ("startedFile", &marker)]).await
    });
    wait_for_file(&started, Duration::from_secs(20)).await?;
    provider.signal("TERM")?;
    let response = in_flight.await??;
    assert_eq!(response.files[0].contents, SECRET.as_bytes(), "the in-flight mount completed");
    let status = tokio::task::block_in_place(|| provider.wait(Duration::from_secs(15)))?;
    assert!(status.success(), "{status:?}\n{}", provider.log_text());
    assert!(!socket.exists(), "socket removed");
    let log = provider.log_text();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(!log.contains(SECRET), "a secret value reached the log:\n{log}");
    Ok(())
}

/// `kill -9` (an OOM kill, a node hiccup) in the middle of 100 mounts: the callers get an error,
/// not a hang; a new provider on the same directory takes the stale socket over and serves at
/// once, and nothing but the socket is left in the directory.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_100_mounts_then_restart_serves_at_once() -> TestResult {
    let first = ProviderProcess::serve(BINARY, &["--backend", "test"])?;
    let volume = first.provider_volume.clone();
    let socket = first.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    let mut calls = Vec::new();
    let mut markers = Vec::new();
    for i in 0..100 {
        let mut client = DriverClient::new(&socket);
        let marker = first.dir.path().join(format!("started-{i}"));
        markers.push(marker.clone());
        calls.push(tokio::spawn(async move {
            let objects = format!("- {{objectName: db-{i}, value: v}}");
            let marker = marker.display().to_string();
            client.mount(&[("objects", &objects), ("delayMs", "30000"), ("startedFile", &marker)]).await
        }));
    }
    for marker in &markers {
        wait_for_file(marker, Duration::from_secs(20)).await?; // all 100 are in flight
    }
    let mut first = first;
    first.signal("KILL")?;
    let killed = tokio::task::block_in_place(|| first.wait(Duration::from_secs(10)))?;
    assert!(!killed.success(), "{killed:?}");
    for call in calls {
        let outcome = tokio::time::timeout(Duration::from_secs(10), call).await??;
        assert!(outcome.is_err(), "a mount cut off by the kill returns an error, not files");
    }
    assert!(socket.exists(), "kill -9 leaves the socket file behind");

    let second = ProviderProcess::serve_in(BINARY, Some(&volume), &["--backend", "test"], &[], &[])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match DriverClient::new(&socket).mount(&[("objects", "- {objectName: after, value: fine}")]).await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                return Err(
                    format!("the restarted provider does not serve: {e}\n{}", second.log_text()).into()
                );
            }
        }
    };
    assert_eq!(response.files[0].contents, b"fine");
    let left: Vec<String> = std::fs::read_dir(&volume)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["test.sock"], "no temporary state next to the socket");
    let log = second.log_text();
    assert!(log.contains("serving"), "{log}");
    Ok(())
}

/// A DaemonSet update with `maxSurge`: the new provider starts on the same directory while the
/// old one serves a mount; the old one finishes it on SIGTERM and leaves the new socket alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_surge_update_hands_the_socket_over_without_a_gap() -> TestResult {
    let volume = tempfile::tempdir()?;
    let args = ["--backend", "test", "--grace-period", "10s"];
    let mut old = ProviderProcess::serve_in(BINARY, Some(volume.path()), &args, &[], &[])?;
    let socket = old.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    let started = volume.path().join("started");
    let marker = started.display().to_string();
    // The in-flight mount ends when the test says so (after SIGTERM), not after a guessed delay.
    let release = volume.path().join("release");
    let gate = release.display().to_string();
    let mut client = DriverClient::new(&socket);
    let in_flight = tokio::spawn(async move {
        client
            .mount(&[
                ("objects", "- {objectName: db, value: old}"),
                ("holdUntilFile", &gate),
                ("startedFile", &marker),
            ])
            .await
    });
    wait_for_file(&started, Duration::from_secs(20)).await?;

    let mut new = ProviderProcess::serve_in(BINARY, Some(volume.path()), &args, &[], &[])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !new.log_text().contains("taking over a live socket") {
        assert!(
            Instant::now() < deadline,
            "the new provider did not take the socket over:\n{}",
            new.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    old.signal("TERM")?;
    // The old provider drains: it stopped taking connections and waits for its mount.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !old.log_text().contains("draining") {
        assert!(Instant::now() < deadline, "the old provider did not start draining:\n{}", old.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(old.child.try_wait()?.is_none(), "the old provider exited with a mount in flight");
    std::fs::write(&release, b"")?;
    let response = in_flight.await??;
    assert_eq!(response.files[0].contents, b"old", "the old provider finished its in-flight mount");
    let status = tokio::task::block_in_place(|| old.wait(Duration::from_secs(15)))?;
    assert!(status.success(), "{status:?}\n{}", old.log_text());
    assert!(old.log_text().contains("now belongs to a newer provider"), "{}", old.log_text());

    assert!(socket.exists(), "the old provider left the new provider's socket in place");
    let mounted = DriverClient::new(&socket).mount(&[("objects", "- {objectName: db, value: new}")]).await?;
    assert_eq!(mounted.files[0].contents, b"new", "the new provider serves");
    new.signal("TERM")?;
    let status = tokio::task::block_in_place(|| new.wait(Duration::from_secs(15)))?;
    assert!(status.success());
    assert!(!socket.exists(), "the last provider removes its own socket");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grace_period_bounds_the_drain() -> TestResult {
    let mut provider = ProviderProcess::serve(BINARY, &["--backend", "test", "--grace-period", "500ms"])?;
    let socket = provider.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    let mut client = DriverClient::new(&socket);
    let started = provider.dir.path().join("started");
    let marker = started.display().to_string();
    let stuck = tokio::spawn(async move {
        client.mount(&[("objects", "- objectName: db"), ("delayMs", "30000"), ("startedFile", &marker)]).await
    });
    wait_for_file(&started, Duration::from_secs(20)).await?;
    let signalled = Instant::now();
    provider.signal("INT")?;
    let status = tokio::task::block_in_place(|| provider.wait(Duration::from_secs(10)))?;
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "stopped after {:?}", signalled.elapsed());
    assert!(stuck.await?.is_err(), "the abandoned mount fails rather than hanging");
    assert!(!socket.exists());
    assert!(provider.log_text().contains("abandoning"), "{}", provider.log_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_json_log_line_per_mount_without_secret_values() -> TestResult {
    let mut provider = ProviderProcess::serve(BINARY, &["--backend", "test", "--log-format", "json"])?;
    let socket = provider.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    let mut client = DriverClient::new(&socket);
    let objects = format!("- {{objectName: db, value: {SECRET}}}\n- objectName: other");
    client.mount(&[("objects", &objects)]).await?;
    let bad = format!("- {{objectName: db, value: {SECRET}, filePermission: '9'}}");
    assert!(client.mount(&[("objects", &bad)]).await.is_err());
    provider.signal("TERM")?;
    tokio::task::block_in_place(|| provider.wait(Duration::from_secs(15)))?;
    let log = provider.log_text();
    assert!(!log.contains(SECRET), "a secret value reached the log:\n{log}");
    let mounts: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "mount")
        .collect();
    assert_eq!(mounts.len(), 2, "{log}");
    let ok = &mounts[0];
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["backend"], "test");
    assert_eq!(ok["pod.namespace"], "shop");
    assert_eq!(ok["pod.name"], "web-0");
    assert_eq!(ok["spc"], "test-spc");
    assert_eq!(ok["objects"], 2);
    assert!(ok["duration_ms"].is_u64(), "{ok}");
    let failed = &mounts[1];
    assert_eq!(failed["outcome"], "error");
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("Invalid File Permission")), "{failed}");
    Ok(())
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

const TEST_SPC: &str = r#"
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: test-spc
  namespace: shop
spec:
  provider: test
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - {objectName: db-password, key: password}
  parameters:
    pathTranslation: "false"
    objects: |
      - objectName: db
        objectAlias: db-password
        value: from-the-mount-command
        filePermission: "0640"
      - objectName: nested
        objectAlias: conf/app.env
"#;

#[test]
fn mount_command_writes_files_as_the_driver_would() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let spc = write(dir.path(), "spc.yaml", TEST_SPC)?;
    let target = dir.path().join("out");
    let output =
        Command::new(BINARY).args(["mount", "--spc"]).arg(&spc).arg("--target").arg(&target).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(target.join("db-password"))?, "from-the-mount-command");
    assert_eq!(std::fs::metadata(target.join("db-password"))?.permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::read_to_string(target.join("conf/app.env"))?, "value-of-nested");
    assert_eq!(std::fs::metadata(target.join("conf/app.env"))?.permissions().mode() & 0o777, 0o644);
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.contains("db-password\tv1"), "{stdout}");
    assert!(!stdout.contains("from-the-mount-command"));
    Ok(())
}

#[test]
fn mount_command_writes_nothing_on_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let spc = write(dir.path(), "spc.yaml", &TEST_SPC.replace("\"0640\"", "\"0649\""))?;
    let target = dir.path().join("out");
    let output =
        Command::new(BINARY).args(["mount", "--spc"]).arg(&spc).arg("--target").arg(&target).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("object \"db\", field \"filePermission\""), "{stderr}");
    assert!(!target.exists(), "nothing written");
    Ok(())
}

#[test]
fn validate_reports_every_problem_and_exit_code() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = write(dir.path(), "good.yaml", TEST_SPC)?;
    let output = Command::new(BINARY).arg("validate").arg(&good).output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "SecretProviderClass \"test-spc\" (provider test): ok, 2 file(s): db-password, conf/app.env"
        ),
        "{stdout}"
    );

    let bad_text = TEST_SPC
        .replace("\"0640\"", "\"0649\"")
        .replace("objectName: db-password", "objectName: typo")
        .replace("conf/app.env", "../escape")
        + "---\napiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: other}\nspec:\n  provider: oci\n";
    let bad = write(dir.path(), "bad.yaml", &bad_text)?;
    let output = Command::new(BINARY).arg("validate").arg(&good).arg(&bad).output()?;
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout)?;
    for needle in [
        "good.yaml: SecretProviderClass \"test-spc\" (provider test): ok",
        "bad.yaml: SecretProviderClass \"test-spc\" (provider test): 2 problem(s)",
        "Invalid File Permission: 0649",
        "path can not contain ../",
        "bad.yaml: SecretProviderClass \"other\" (provider oci): 1 problem(s)",
        "unknown backend 'oci'",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }

    // The secretObjects cross-check runs once the objects themselves are valid.
    let typo =
        write(dir.path(), "typo.yaml", &TEST_SPC.replace("objectName: db-password", "objectName: typo"))?;
    let output = Command::new(BINARY).arg("validate").arg(&typo).output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("spec.secretObjects[0].data[0].objectName"), "{stdout}");

    let none = write(dir.path(), "none.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")?;
    let output = Command::new(BINARY).arg("validate").arg(&none).output()?;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stdout)?.contains("no SecretProviderClass found"));
    Ok(())
}

//! `files`, `writeFile`, `expandKeys` and `decode` where a backend's own keys meet them (the
//! conformance suite covers what every backend shares): AWS `jmesPath` entries and SSM
//! parameters, a remount round with files sharing its reads, the metric; Azure `objectEncoding`
//! beside `decode`, a certificate bundle; `validate` without a cloud.
#![cfg(any(feature = "aws", feature = "azure"))]

use csi_secrets_provider_tests::{file_contents as file, file_text as text};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::http_get;
    use csi_secrets_provider_tests::new_target_path;
    use csi_secrets_provider_tests::worlds::{AwsWorld, moto_call};
    use std::time::Duration;
    use tonic::Code;

    /// A Secrets Manager secret read only for a template and a `jmesPath` entry decoded from
    /// base64; an SSM parameter expanded to one file per key and into a dotenv file. Ten pods,
    /// then a remount round: the round costs one read per object, as without `files`; a new
    /// value reaches the rendered files; the metric counts each kind.
    #[tokio::test(flavor = "multi_thread")]
    async fn aws_files_share_remount_reads_and_shape_jmes_and_ssm() -> TestResult {
        let world = AwsWorld::start(BINARY, "files", &["--health-addr", "127.0.0.1:0"]).await?;
        let db = world.name("db");
        world.put_secret(&db, r#"{"username": "app", "password": "pw-1", "keystore": "AAEC/w=="}"#).await?;
        let parameter = format!("/{}", world.name("config"));
        let put = serde_json::json!({
            "Name": parameter, "Type": "SecureString", "Value": r#"{"LOG_LEVEL": "debug", "FEATURE": "on"}"#
        });
        moto_call("ssm", "PutParameter", &put).await?;
        let objects = format!(
            "- objectName: {db}\n  objectType: secretsmanager\n  objectAlias: db-creds\n  writeFile: false\n  \
             jmesPath:\n    - {{path: keystore, objectAlias: keystore.p12, decode: base64}}\n\
             - objectName: {parameter}\n  objectType: ssmparameter\n  objectAlias: config\n  expandKeys: true\n  \
             writeFile: false\n"
        );
        let files = "- path: dsn\n  template: 'postgres://{{ (objects[\"db-creds\"] | fromjson).username }}:{{ (objects[\"db-creds\"] | fromjson).password }}@db/app'\n\
                     - path: app.env\n  format: dotenv\n  from: [config]\n";
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1"), ("files", files)];
        let pods: Vec<String> = (0..10).map(|_| new_target_path()).collect();
        for pod in &pods {
            let response = world.mount_at(pod, "web", &parameters).await?;
            let mut paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
            paths.sort_unstable();
            assert_eq!(paths, ["FEATURE", "LOG_LEVEL", "app.env", "dsn", "keystore.p12"]);
            assert_eq!(file(&response, "keystore.p12")?, [0u8, 1, 2, 255]);
            assert_eq!(text(&response, "dsn")?, "postgres://app:pw-1@db/app");
            assert_eq!(text(&response, "app.env")?, "LOG_LEVEL='debug'\nFEATURE='on'\n");
            assert_eq!(text(&response, "LOG_LEVEL")?, "debug");
            let ids: Vec<&str> = response.object_version.iter().map(|v| v.id.as_str()).collect();
            assert!(ids.contains(&"db-creds") && ids.contains(&"config"), "the objects read: {ids:?}");
        }
        let reads = |world: &AwsWorld| {
            world.proxy.count("GetSecretValue")
                + world.proxy.count("BatchGetSecretValue")
                + world.proxy.count("GetParameter")
                + world.proxy.count("GetParameters")
        };
        let first_round = reads(&world);
        for pod in &pods {
            world.mount_at(pod, "web", &parameters).await?;
        }
        assert_eq!(reads(&world) - first_round, 2, "one read per object for the whole round");

        world.put_secret(&db, r#"{"username": "app", "password": "pw-2", "keystore": "AAEC/w=="}"#).await?;
        let fresh = world.mount(&parameters).await?;
        assert_eq!(text(&fresh, "dsn")?, "postgres://app:pw-2@db/app");
        let remount = world.mount_at(&pods[0], "web", &parameters).await?;
        assert_eq!(
            text(&remount, "dsn")?,
            "postgres://app:pw-2@db/app",
            "the rendered file follows its source"
        );

        let addr = world.provider.health_addr(Duration::from_secs(5)).await?;
        let metrics = http_get(addr, "/metrics").await?;
        for (kind, count) in [("template", 22), ("dotenv", 22), ("expanded_key", 44), ("decoded", 22)] {
            let series = format!(
                r#"csi_secrets_provider_files_rendered_total{{backend="aws",kind="{kind}"}} {count}"#
            );
            assert!(metrics.contains(&series), "{series} in\n{metrics}");
        }
        assert!(!metrics.contains("pw-2") && !metrics.contains("debug"), "no value in metrics");
        let log = world.provider.log_text();
        assert!(!log.contains("pw-1") && !log.contains("pw-2"), "no value in the log");
        Ok(())
    }

    /// A `decode` on a `jmesPath` entry that is not base64 fails naming the object's entry, and a
    /// bad `decode` value is refused before any AWS call.
    #[tokio::test(flavor = "multi_thread")]
    async fn aws_decode_errors_name_the_object() -> TestResult {
        let world = AwsWorld::start(BINARY, "files-bad", &[]).await?;
        let db = world.name("db");
        world.put_secret(&db, r#"{"keystore": "not base64, s3cr3t"}"#).await?;
        let objects = format!(
            "- {{objectName: {db}, objectType: secretsmanager, jmesPath: [{{path: keystore, objectAlias: ks, decode: base64}}]}}\n"
        );
        let status =
            world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("decoded")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(&format!("object \"{db}\", field \"decode\"")),
            "{}",
            status.message()
        );
        assert!(!status.message().contains("s3cr3t"), "{}", status.message());

        let calls = world.proxy.calls().len();
        let objects = format!("- {{objectName: {db}, objectType: secretsmanager, decode: utf-16}}\n");
        let status =
            world.mount(&[("objects", &objects), ("region", "us-east-1")]).await.err().ok_or("accepted")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(r#"decode must be "base64" or "hex""#), "{}", status.message());
        assert_eq!(world.proxy.calls().len(), calls, "no AWS call for a bad SecretProviderClass");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT as VAULT, AzureWorld};
    use tonic::Code;

    /// `objectEncoding` keeps its upstream meaning and `decode` beside it is refused; `decode` on
    /// a `jmesPath` entry; a certificate's PEM read for a template only, bundled with a CA
    /// secret into one file.
    #[tokio::test(flavor = "multi_thread")]
    async fn azure_decode_beside_object_encoding_and_a_bundle_from_a_certificate() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.set_secret(VAULT, "blob", "AP9B");
        world.azure.set_secret(VAULT, "wrapped", r#"{"key": "00ff"}"#);
        world.azure.set_secret(VAULT, "ca", "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
        let status = world
            .mount(&["objectName: blob\nobjectType: secret\nobjectEncoding: base64\ndecode: base64"])
            .await
            .err()
            .ok_or("both decodings were accepted")?;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("objectEncoding and decode both decode the value"),
            "{}",
            status.message()
        );

        let bundle = "- path: bundle.pem\n  template: '{{ objects[\"server\"] }}{{ objects.ca }}'\n";
        let response = world
            .mount_as(
                "workload-sa",
                &[
                    "objectName: blob\nobjectType: secret\ndecode: base64",
                    "objectName: wrapped\nobjectType: secret\njmesPath:\n  - {path: key, objectAlias: key.bin, decode: hex}",
                    "objectName: ca\nobjectType: secret\nwriteFile: false",
                    "objectName: blob\nobjectType: secret\nobjectAlias: server\nwriteFile: false",
                ],
                &[("files", bundle)],
            )
            .await?;
        assert_eq!(file(&response, "blob")?, [0u8, 0xff, b'A']);
        assert_eq!(file(&response, "key.bin")?, [0u8, 0xff]);
        assert_eq!(
            text(&response, "bundle.pem")?,
            "AP9B-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
        );
        assert!(file(&response, "ca").is_err() && file(&response, "server").is_err(), "read, not written");
        Ok(())
    }
}

/// `validate` checks templates without a cloud: the syntax error's line, a name that is no
/// object's file, a variable other than `objects`; a correct template that parses values
/// validates.
#[cfg(feature = "aws")]
#[test]
fn validate_checks_files_without_a_cloud() -> TestResult {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("csi-files-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let spc = |files: &str| {
        format!(
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: app\nspec:\n  \
             provider: aws\n  parameters:\n    objects: |\n      - objectName: db\n        objectType: secretsmanager\n        \
             objectAlias: db-creds\n        writeFile: false\n    files: |\n{}",
            files.lines().map(|l| format!("      {l}\n")).collect::<String>()
        )
    };
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        spc("- path: dsn\n  template: '{{ (objects[\"db-creds\"] | fromjson).password }}'"),
    )?;
    let output = Command::new(BINARY).arg("validate").arg(&good).output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok, 1 file(s): dsn"), "{stdout}");
    assert!(stdout.contains("read for files only (writeFile: false): db-creds"), "{stdout}");

    let bad = dir.join("bad.yaml");
    for (files, expected) in [
        ("- path: dsn\n  template: |\n    ok\n    {{ objects[\"db-creds\" }}", "does not parse at line 2"),
        ("- path: dsn\n  template: '{{ objects[\"db-cred\"] }}'", r#"(did you mean "db-creds"?)"#),
        ("- path: dsn\n  template: '{{ secrets.x }}'", r#"uses the variable "secrets""#),
        ("- path: app.env\n  format: dotenv\n  from: [db]", r#"it reads object "db", which is not a file"#),
    ] {
        std::fs::write(&bad, spc(files))?;
        let output = Command::new(BINARY).arg("validate").arg(&bad).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(!output.status.success(), "{files}: {stdout}");
        assert!(stdout.contains(expected), "{files}: want {expected} in {stdout}");
    }
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

//! The real `csi-secrets-provider` binary, with the backends this build's features select.

use std::process::Command;
use std::time::Duration;

use csi_secrets_provider_tests::{ProviderProcess, wait_for_socket};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// With every backend compiled in (the default build).
#[cfg(all(feature = "aws", feature = "azure"))]
mod all_backends {
    use super::*;
    use csi_secrets_provider_tests::DriverClient;
    use std::path::PathBuf;

    #[test]
    fn every_example_validates() -> TestResult {
        let files = csi_secrets_provider_tests::example_files()?;
        assert!(files.len() >= 4, "{files:?}");
        let output = Command::new(BINARY).arg("validate").args(&files).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(stdout.lines().filter(|l| l.contains(": ok,")).count(), files.len(), "{stdout}");
        // Both seed shapes, with the files they plan.
        assert!(stdout.contains("(provider aws): ok, 2 file(s): db-credentials, api-key"), "{stdout}");
        assert!(
            stdout.contains("(provider azure): ok, 3 file(s): SQL_PASSWORD, signing-key, ingress-tls"),
            "{stdout}"
        );
        // This provider's own keys: optional objects are listed, jmesPath files planned.
        assert!(
            stdout.contains("optional (skipped when the cloud has no such object): prod/app/feature-flags"),
            "{stdout}"
        );
        assert!(
            stdout.contains("ok, 5 file(s): db.json, db-user, db-password, shared-api-key, optional-license"),
            "{stdout}"
        );
        // Folders: where their files go.
        assert!(
            stdout.contains(
                r#"plus one file per secret selected by objectPrefix "team-a/app/" under secrets/"#
            ),
            "{stdout}"
        );
        Ok(())
    }

    /// The fenced YAML blocks of a Markdown page that hold a SecretProviderClass, unindented.
    fn spc_blocks(page: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for line in page.lines() {
            let trimmed = line.trim_start();
            match &mut current {
                None if trimmed == "```yaml" => current = Some((line.len() - trimmed.len(), String::new())),
                Some((_, block)) if trimmed == "```" => {
                    if block.contains("kind: SecretProviderClass") {
                        blocks.push(std::mem::take(block));
                    }
                    current = None;
                }
                Some((indent, block)) => {
                    block.push_str(line.get(*indent..).unwrap_or(""));
                    block.push('\n');
                }
                None => {}
            }
        }
        blocks
    }

    /// Each quickstart's SecretProviderClass validates clean: a newcomer's copy-paste works.
    #[test]
    fn quickstart_manifests_validate() -> TestResult {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let dir = tempfile::tempdir()?;
        for page in ["quickstart-eks.md", "quickstart-aks.md"] {
            let blocks = spc_blocks(&std::fs::read_to_string(docs.join(page))?);
            assert!(!blocks.is_empty(), "{page} has no SecretProviderClass");
            for (i, block) in blocks.iter().enumerate() {
                // The values the page tells the reader to fill in (its `sed` line).
                let block = block
                    .replace("<REGION>", "eu-west-1")
                    .replace("<CLIENT_ID>", "00000000-0000-0000-0000-000000000001")
                    .replace("<VAULT>", "my-vault")
                    .replace("<TENANT_ID>", "00000000-0000-0000-0000-000000000002");
                let file = dir.path().join(format!("{page}-{i}.yaml"));
                std::fs::write(&file, &block)?;
                let output = Command::new(BINARY).arg("validate").arg(&file).output()?;
                let stdout = String::from_utf8(output.stdout)?;
                assert!(output.status.success() && stdout.contains(": ok,"), "{page}:\n{block}\n{stdout}");
                assert!(!stdout.contains("warning"), "{page}: {stdout}");
            }
        }
        Ok(())
    }

    /// What upstream mounts validates, with warnings: a key upstream ignores (with the key it
    /// was probably meant to be) and a file named twice.
    #[test]
    fn validate_warns_about_unknown_keys_and_files_named_twice() -> TestResult {
        let dir = tempfile::tempdir()?;
        let spc = dir.path().join("spc.yaml");
        std::fs::write(
            &spc,
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: typo}\nspec:\n  provider: aws\n  parameters:\n    objects: |\n      - {objectName: db, objectType: secretsmanager, objectAlais: db-file}\n      - {objectName: other, objectType: secretsmanager, objectAlias: db}\n",
        )?;
        let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(output.status.success(), "warnings do not fail validation: {stdout}");
        assert!(stdout.contains("ok, 1 file(s): db"), "{stdout}");
        assert!(
            stdout.contains(r#"warning: object "db", field "objectAlais": unknown key `objectAlais` is ignored (did you mean `objectAlias`?)"#),
            "{stdout}"
        );
        assert!(
            stdout.contains(r#"warning: object "other": file "db" is written more than once"#),
            "{stdout}"
        );
        Ok(())
    }

    /// A folder's files are known once listed: `validate` says where they go, lets `files` and
    /// `secretObjects` name files under its directory, and still refuses a name no object or
    /// folder can have, and a bad entry.
    #[test]
    fn validate_lists_folders_and_checks_what_they_can_name() -> TestResult {
        let dir = tempfile::tempdir()?;
        let spc = dir.path().join("spc.yaml");
        let manifest = |files: &str, extra: &str| {
            format!(
                "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: folder}}\nspec:\n  provider: aws\n  secretObjects:\n    - secretName: app\n      type: Opaque\n      data: [{{objectName: app/db, key: db}}]\n  parameters:\n    objects: |\n      - {{objectPrefix: team-a/app/, objectType: secretsmanager, objectAlias: app{extra}}}\n    files: |\n      - {{path: dsn, template: \"{{{{ objects['{files}'] }}}}\"}}\n"
            )
        };
        std::fs::write(&spc, manifest("app/db", ""))?;
        let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains(r#"plus one file per secret selected by objectPrefix "team-a/app/" under app/, named when the mount lists them"#),
            "{stdout}"
        );
        std::fs::write(&spc, manifest("db", ", maxObjects: 5000, objectVersion: v1"))?;
        let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(!output.status.success(), "{stdout}");
        for words in ["maxObjects must be a whole number from 1 to 1000", "objectVersion names one object"] {
            assert!(stdout.contains(words), "{words}: {stdout}");
        }
        std::fs::write(&spc, manifest("db", ""))?;
        let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(!output.status.success() && stdout.contains(r#"the template reads object "db""#), "{stdout}");
        Ok(())
    }

    /// `validate --policy` says what the admin policy would deny, before any pod starts: per
    /// SecretProviderClass, for the namespace given or its own.
    #[test]
    fn validate_reports_what_a_policy_denies() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "defaultAction: deny\nrules:\n  - namespaces: [app]\n    allow:\n      aws: [\"prod/app/*\"]\n      azure: [\"app-kv/*\"]\n",
        )?;
        let spc = dir.path().join("spc.yaml");
        std::fs::write(
            &spc,
            "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: p, namespace: app}\nspec:\n  provider: aws\n  parameters:\n    objects: |\n      - {objectName: prod/app/db, objectType: secretsmanager}\n      - {objectName: prod/other/db, objectType: secretsmanager}\n",
        )?;
        let run = |extra: &[&str]| -> Result<(bool, String), Box<dyn std::error::Error>> {
            let output = Command::new(BINARY)
                .arg("validate")
                .arg("--policy")
                .arg(&policy)
                .args(extra)
                .arg(&spc)
                .output()?;
            Ok((output.status.success(), String::from_utf8(output.stdout)?))
        };
        let (ok, stdout) = run(&[])?;
        assert!(!ok, "{stdout}");
        assert!(stdout.contains("1 problem(s)"), "{stdout}");
        assert!(
            stdout.contains(r#"denied by policy: namespace "app" (service account "default") may not read "prod/other/db" from aws: rule 1"#),
            "{stdout}"
        );
        let (ok, stdout) = run(&["--namespace", "elsewhere", "--service-account", "web"])?;
        assert!(
            !ok && stdout.contains("2 problem(s)") && stdout.contains("defaultAction is deny"),
            "{stdout}"
        );
        // A policy that does not parse is the command's error.
        std::fs::write(&policy, "rules: [{namespaces: [a], allow: {awss: [x]}}]\n")?;
        let output = Command::new(BINARY).arg("validate").arg("--policy").arg(&policy).arg(&spc).output()?;
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8(output.stderr)?.contains("unknown backend \"awss\""));
        Ok(())
    }

    /// The migration's "check them first" step: `kubectl get … -o yaml` prints a `kind: List`,
    /// piped to `validate -`.
    #[test]
    fn validate_reads_a_kubectl_list_from_standard_input() -> TestResult {
        use std::io::Write;
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {name: one, namespace: app}\n  spec:\n    provider: aws\n    parameters:\n      objects: |\n        - {objectName: prod/db, objectType: secretsmanager}\n- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {name: two, namespace: app}\n  spec:\n    provider: aws\n    parameters:\n      objects: |\n        - {objectName: prod/api, objectType: secretsmanager}\n";
        let mut child = Command::new(BINARY)
            .args(["validate", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().ok_or("no stdin")?.write_all(list.as_bytes())?;
        let output = child.wait_with_output()?;
        let stdout = String::from_utf8(output.stdout)?;
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.contains("\"one\"") && stdout.contains("\"two\""), "{stdout}");
        assert_eq!(stdout.lines().filter(|l| l.contains(": ok,")).count(), 2, "{stdout}");
        Ok(())
    }

    /// `staleIfError` and `refreshInterval` are checked for every provider by `validate`,
    /// before any pod starts.
    #[test]
    fn validate_checks_stale_if_error_and_refresh_interval() -> TestResult {
        let dir = tempfile::tempdir()?;
        let spc = dir.path().join("spc.yaml");
        for key in ["staleIfError", "refreshInterval"] {
            let manifest = |value: &str| {
                format!(
                    "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: stale}}\nspec:\n  provider: aws\n  parameters:\n    {key}: {value}\n    objects: |\n      - {{objectName: db, objectType: secretsmanager}}\n"
                )
            };
            std::fs::write(&spc, manifest("30m"))?;
            let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
            let stdout = String::from_utf8(output.stdout)?;
            assert!(output.status.success() && !stdout.contains("warning"), "{key}: {stdout}");
            std::fs::write(&spc, manifest("soon"))?;
            let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
            let stdout = String::from_utf8(output.stdout)?;
            assert!(!output.status.success(), "{stdout}");
            assert!(
                stdout.contains(&format!("field \"{key}\"")) && stdout.contains("is not a duration"),
                "{key}: {stdout}"
            );
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn serve_opens_a_socket_per_backend_answering_version() -> TestResult {
        let mut provider = ProviderProcess::serve(BINARY, &[])?;
        for backend in ["aws", "azure"] {
            let socket = provider.socket(backend);
            wait_for_socket(&socket, Duration::from_secs(20)).await?;
            let version = DriverClient::new(&socket).version().await?;
            assert_eq!(version.runtime_name, "csi-secrets-provider");
            assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));
        }
        provider.signal("TERM")?;
        let status = tokio::task::block_in_place(|| provider.wait(Duration::from_secs(15)))?;
        assert!(status.success());
        assert!(!provider.socket("aws").exists() && !provider.socket("azure").exists());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_spc_through_a_cloud_socket_is_invalid_argument() -> TestResult {
        let mut provider = ProviderProcess::serve(BINARY, &["--backend", "aws", "--backend", "azure"])?;
        let aws = provider.socket("aws");
        wait_for_socket(&aws, Duration::from_secs(20)).await?;
        let status = DriverClient::new(&aws)
            .mount(&[("objects", "- {objectName: a, objectType: secretsmanager, filePermission: '0999'}")])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("object \"a\", field \"filePermission\": Invalid File Permission: 0999"),
            "{status:?}"
        );
        let azure = provider.socket("azure");
        wait_for_socket(&azure, Duration::from_secs(20)).await?;
        let status = DriverClient::new(&azure)
            .mount(&[("tenantId", "t"), ("objects", "array: []")])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("keyvaultName is not provided"), "{status:?}");
        provider.signal("TERM")?;
        tokio::task::block_in_place(|| provider.wait(Duration::from_secs(15)))?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_one_backend_opens_only_its_socket() -> TestResult {
    // Whatever this build has: one backend served, the other's socket absent; with none, the
    // start is refused and no socket appears.
    let compiled =
        [("aws", cfg!(feature = "aws")), ("azure", cfg!(feature = "azure")), ("gcp", cfg!(feature = "gcp"))];
    let served = compiled.iter().find(|(_, on)| *on).map(|(name, _)| *name);
    let others: Vec<&str> =
        compiled.iter().map(|(name, _)| *name).filter(|name| Some(*name) != served).collect();
    let served = match served {
        Some(served) => served,
        None => {
            let dir = tempfile::tempdir()?;
            let output =
                Command::new(BINARY).args(["serve", "--provider-volume"]).arg(dir.path()).output()?;
            assert_eq!(output.status.code(), Some(2));
            assert!(std::fs::read_dir(dir.path())?.next().is_none(), "no socket without a backend");
            return Ok(());
        }
    };
    let mut provider =
        ProviderProcess::serve(BINARY, &["--backend", served, "--health-addr", "127.0.0.1:0"])?;
    wait_for_socket(&provider.socket(served), Duration::from_secs(20)).await?;
    for other in others {
        assert!(!provider.socket(other).exists(), "{other}.sock");
    }
    // build_info names every compiled-in backend, served or not.
    let addr = provider.health_addr(Duration::from_secs(20)).await?;
    let metrics = csi_secrets_provider_tests::http_get(addr, "/metrics").await?;
    let build_info = format!(
        r#"csi_secrets_provider_build_info{{version="{}",backends="{}"}} 1"#,
        env!("CARGO_PKG_VERSION"),
        compiled_in()
    );
    assert!(metrics.contains(&build_info), "{build_info} missing from\n{metrics}");
    provider.signal("TERM")?;
    tokio::task::block_in_place(|| provider.wait(Duration::from_secs(15)))?;
    Ok(())
}

/// The backends this test build compiled in, as the binary names them.
fn compiled_in() -> String {
    let mut names = Vec::new();
    if cfg!(feature = "aws") {
        names.push("aws");
    }
    if cfg!(feature = "azure") {
        names.push("azure");
    }
    if cfg!(feature = "gcp") {
        names.push("gcp");
    }
    names.join(",")
}

#[test]
fn version_names_the_compiled_in_backends() -> TestResult {
    let output = Command::new(BINARY).arg("--version").output()?;
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(
        stdout.trim_end(),
        format!("csi-secrets-provider {} (backends: {})", env!("CARGO_PKG_VERSION"), compiled_in())
    );
    Ok(())
}

#[test]
fn unknown_or_missing_backends_are_refused_at_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let output = Command::new(BINARY)
        .args(["serve", "--backend", "oci", "--provider-volume"])
        .arg(dir.path())
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("unknown backend 'oci'"), "{stderr}");
    for (backend, compiled) in
        [("aws", cfg!(feature = "aws")), ("azure", cfg!(feature = "azure")), ("gcp", cfg!(feature = "gcp"))]
    {
        if compiled {
            continue;
        }
        let output = Command::new(BINARY)
            .args(["serve", "--backend", backend, "--provider-volume"])
            .arg(dir.path())
            .output()?;
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr)?;
        assert!(
            stderr.contains(&format!(
                "backend '{backend}' is not compiled in; rebuild with --features {backend}"
            )),
            "{stderr}"
        );
    }
    if !cfg!(feature = "aws") && !cfg!(feature = "azure") && !cfg!(feature = "gcp") {
        let output = Command::new(BINARY).args(["serve", "--provider-volume"]).arg(dir.path()).output()?;
        assert!(String::from_utf8(output.stderr)?.contains("no backend is compiled in"));
    }
    Ok(())
}

#[test]
fn validate_names_a_provider_that_is_not_compiled_in() -> TestResult {
    let dir = tempfile::tempdir()?;
    let spc = dir.path().join("spc.yaml");
    std::fs::write(
        &spc,
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: x}\nspec:\n  provider: azure\n  parameters:\n    objects: 'array: []'\n",
    )?;
    let output = Command::new(BINARY).arg("validate").arg(&spc).output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    if cfg!(feature = "azure") {
        assert!(stdout.contains("keyvaultName is not provided"), "{stdout}");
    } else {
        assert!(
            stdout.contains("backend 'azure' is not compiled in; rebuild with --features azure"),
            "{stdout}"
        );
    }
    Ok(())
}

/// `--extra-ca-file` is read at start: a missing file, or one without a PEM certificate, refuses
/// the start with the file's name, rather than failing every mount later.
#[test]
fn a_bad_extra_ca_file_refuses_the_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello")?;
    // A block that says CERTIFICATE but is none, and a key beside a certificate: every TLS
    // client would refuse or ignore them; the start is refused, naming the file.
    let not_a_certificate = dir.path().join("bad.pem");
    std::fs::write(&not_a_certificate, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")?;
    let with_a_key = dir.path().join("key.pem");
    let certificate = csi_secrets_provider_tests::tls::TestCa::new(&[]).map_err(|e| e.to_string())?.ca_pem;
    std::fs::write(
        &with_a_key,
        format!("{certificate}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    )?;
    for (file, words) in [
        (&missing, "cannot read the extra CA file"),
        (&not_pem, "holds no PEM certificate"),
        (&not_a_certificate, "that is not one"),
        (&with_a_key, "PEM blocks that are not certificates"),
    ] {
        let output = Command::new(BINARY)
            .arg("serve")
            .arg("--provider-volume")
            .arg(dir.path())
            .arg("--extra-ca-file")
            .arg(file)
            .env_remove("CSI_PROVIDER_EXTRA_CA_FILE")
            .output()?;
        let stderr = String::from_utf8(output.stderr)?;
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(words) && stderr.contains(&file.display().to_string()), "{stderr}");
    }
    Ok(())
}

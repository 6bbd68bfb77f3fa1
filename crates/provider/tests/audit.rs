//! The audit trail (`serve --audit-log`) end to end: the real binary against the AWS, Azure and
//! GCP test peers, every object kind of each cloud, distinctive values and tokens seeded, and the
//! file read back: one line per object per mount, what each says, and never a value or a token.
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

use std::path::Path;

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::worlds::BoxError;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// The audit file's lines, parsed.
fn lines(path: &Path) -> Result<Vec<serde_json::Value>, BoxError> {
    let text = std::fs::read_to_string(path)?;
    text.lines().map(|line| serde_json::from_str(line).map_err(Into::into)).collect()
}

/// The lines about `object`, in order.
#[cfg(any(feature = "aws", feature = "azure"))]
fn about<'a>(lines: &'a [serde_json::Value], object: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|line| line["object"] == object).collect()
}

/// Fails when the audit text holds any of `secrets`, or any file a mount wrote (as text, and
/// base64 for binary files) of 6 bytes or more, or anything shaped like a JWT.
fn assert_no_secrets(path: &Path, secrets: &[&str], responses: &[MountResponse]) -> TestResult {
    use base64::Engine;
    let text = std::fs::read_to_string(path)?;
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} is in the audit trail:\n{text}");
    }
    for file in responses.iter().flat_map(|r| &r.files).filter(|f| f.contents.len() >= 6) {
        let as_text = String::from_utf8_lossy(&file.contents);
        assert!(!text.contains(as_text.as_ref()), "the contents of {} are in the audit trail", file.path);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&file.contents);
        assert!(!text.contains(&encoded), "the contents of {} (base64) are in the audit trail", file.path);
    }
    assert!(!text.contains("eyJ"), "a JWT is in the audit trail:\n{text}");
    Ok(())
}

/// A trail that was asked for but cannot be written refuses the start, before any socket.
#[test]
fn an_audit_log_that_cannot_be_opened_refuses_the_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let output = std::process::Command::new(BINARY)
        .args(["serve", "--provider-volume"])
        .arg(dir.path())
        .args(["--audit-log", "/nonexistent-dir/audit.log"])
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot open the audit log /nonexistent-dir/audit.log"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "no socket");
    Ok(())
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AwsWorld, moto_call};

    /// Secrets Manager (string with jmesPath, and binary), SSM (String and SecureString), an
    /// optional object that does not exist, a failed mount and a remount, with the policy on.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_aws_object_kind_is_audited_without_its_value() -> TestResult {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.log");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "defaultAction: allow\nrules:\n  - namespaces: [shop]\n    serviceAccounts: [batch]\n    allow: {aws: []}\n",
        )?;
        let (audit_arg, policy_arg) = (audit.display().to_string(), policy.display().to_string());
        let world =
            AwsWorld::start(BINARY, "audit", &["--audit-log", &audit_arg, "--policy", &policy_arg]).await?;
        let json = world.name("db");
        let binary = world.name("blob");
        let (param, secure) = (format!("/{}", world.name("plain")), format!("/{}", world.name("secure")));
        let json_version =
            world.put_secret(&json, r#"{"username":"audit-user-7f3a","password":"audit-pass-9c1e"}"#).await?;
        let created = moto_call(
            "secretsmanager",
            "CreateSecret",
            &serde_json::json!({ "Name": binary, "SecretBinary": "YXVkaXQtYmluYXJ5LTRkMmI=" }),
        )
        .await?;
        assert!(created["ARN"].is_string(), "moto: {created}");
        for (name, value, kind) in
            [(&param, "audit-param-5e6f", "String"), (&secure, "audit-secure-8a0b", "SecureString")]
        {
            let body = serde_json::json!({ "Name": name, "Value": value, "Type": kind, "Overwrite": true });
            assert!(moto_call("ssm", "PutParameter", &body).await?["Version"].is_number());
        }
        let objects = format!(
            "- objectName: {json}\n  objectType: secretsmanager\n  objectAlias: db\n  jmesPath:\n    - {{path: password, objectAlias: password}}\n\
             - {{objectName: {binary}, objectType: secretsmanager, objectAlias: blob}}\n\
             - {{objectName: {param}, objectType: ssmparameter, objectAlias: plain}}\n\
             - {{objectName: {secure}, objectType: ssmparameter, objectAlias: secure}}\n\
             - {{objectName: {missing}, objectType: secretsmanager, optional: true}}\n",
            missing = world.name("missing"),
        );
        let target = csi_secrets_provider_tests::new_target_path();
        let parameters = [("objects", objects.as_str()), ("region", "us-east-1")];
        let first = world.mount_at(&target, "web", &parameters).await?;
        let again = world.mount_at(&target, "web", &parameters).await?;
        let lines = lines(&audit)?;
        assert_eq!(lines.len(), 10, "one line per object per mount: {lines:#?}");

        let db = about(&lines, &json);
        assert_eq!(db.len(), 2);
        for key in ["backend", "outcome", "version", "shared", "remount", "spc", "serviceAccount"] {
            assert!(!db[0][key].is_null(), "{key} in {}", db[0]);
        }
        assert_eq!(db[0]["backend"], "aws");
        assert_eq!(db[0]["pod"]["namespace"], "shop");
        assert_eq!(db[0]["pod"]["name"], "web-0");
        assert_eq!(db[0]["pod"]["uid"], "7d6b1e0c-0000-4000-8000-000000000001");
        assert_eq!(db[0]["serviceAccount"], "web");
        assert_eq!(db[0]["spc"], "test-spc");
        assert_eq!(db[0]["outcome"], "ok");
        assert_eq!(db[0]["version"], json_version.as_str());
        assert!(
            db[0]["resolved"].as_str().is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")),
            "{}",
            db[0]
        );
        assert_eq!((&db[0]["remount"], &db[1]["remount"]), (&false.into(), &true.into()));
        assert!(db[0]["durationMs"].is_u64() && db[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(about(&lines, &param)[0]["version"], "1");
        assert_eq!(about(&lines, &secure)[0]["outcome"], "ok");
        assert_eq!(about(&lines, &world.name("missing"))[0]["outcome"], "skipped_optional");
        assert_eq!(about(&lines, &binary)[0]["outcome"], "ok");

        // A read that fails names the object that failed; the others were not mounted.
        let broken = format!(
            "- {{objectName: {json}, objectType: secretsmanager}}\n- {{objectName: {gone}, objectType: secretsmanager}}\n",
            gone = world.name("gone")
        );
        let failed = world.mount(&[("objects", broken.as_str()), ("region", "us-east-1")]).await;
        assert!(failed.is_err());
        let lines = super::lines(&audit)?;
        let gone = about(&lines, &world.name("gone"));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0]["outcome"], "not_found");
        assert!(
            gone[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("ResourceNotFound") || e.contains("not found")),
            "{}",
            gone[0]
        );
        assert_eq!(about(&lines, &json).last().map(|l| l["outcome"].clone()), Some("not_mounted".into()));

        // The policy denies service account batch everything: denied, no call.
        let calls = world.proxy.calls().len();
        let denied = world.mount_as("batch", &[("objects", broken.as_str()), ("region", "us-east-1")]).await;
        assert!(denied.is_err());
        assert_eq!(world.proxy.calls().len(), calls);
        let lines = super::lines(&audit)?;
        let last = about(&lines, &json);
        assert_eq!(
            last.last().map(|l| (l["outcome"].clone(), l["serviceAccount"].clone())),
            Some(("denied".into(), "batch".into()))
        );

        // Never a value or a credential.
        let keys: Vec<String> = world.proxy.calls().into_iter().map(|call| call.access_key).collect();
        let mut secrets = vec![
            "audit-user-7f3a",
            "audit-pass-9c1e",
            "audit-binary-4d2b",
            "audit-param-5e6f",
            "audit-secure-8a0b",
            "pod-identity-jwt",
        ];
        secrets.extend(keys.iter().map(String::as_str).filter(|k| !k.is_empty()));
        assert_no_secrets(&audit, &secrets, &[first, again])
    }

    /// A line that cannot be written is counted and logged; the mount still succeeds.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_disk_never_fails_a_mount() -> TestResult {
        let world = AwsWorld::start(
            BINARY,
            "auditfull",
            &["--audit-log", "/dev/full", "--health-addr", "127.0.0.1:0"],
        )
        .await?;
        let name = world.name("db");
        world.put_secret(&name, "v").await?;
        let objects = format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: f}}\n");
        let response = world.mount(&[("objects", objects.as_str()), ("region", "us-east-1")]).await?;
        assert_eq!(csi_secrets_provider_tests::file_contents(&response, "f")?, b"v");
        let addr = world.provider.health_addr(std::time::Duration::from_secs(5)).await?;
        let metrics = csi_secrets_provider_tests::http_get(addr, "/metrics").await?;
        assert!(metrics.contains("csi_secrets_provider_audit_write_errors_total 1"), "{metrics}");
        let log = world.provider.log_text();
        assert!(log.contains("cannot write the audit trail"), "{log}");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::azure::{CertificateSecret, TestChain};
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT as VAULT, AzureWorld};

    /// Secrets (with version history), keys and certificates, shared reads on a remount round.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_azure_object_kind_is_audited_without_its_value() -> TestResult {
        use base64::Engine;
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.log");
        let audit_arg = audit.display().to_string();
        let world = AzureWorld::start(BINARY, &["--audit-log", &audit_arg]).await?;
        let version = world.azure.set_secret(VAULT, "db", "audit-kv-secret-3c7d");
        let chain = TestChain::new()?;
        world.azure.import_certificate(
            VAULT,
            "tls",
            &chain.leaf,
            CertificateSecret::Pem(chain.pem([0, 1, 2])),
        );
        let b64url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let point = key.public_key_raw().to_vec();
        world.azure.set_key(
            VAULT,
            "signing",
            serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..]) }),
        );
        let objects = [
            "objectName: db\nobjectType: secret",
            "objectName: db\nobjectType: secret\nobjectAlias: hist\nobjectVersionHistory: 2",
            "objectName: tls\nobjectType: cert",
            "objectName: tls\nobjectType: secret\nobjectAlias: bundle.pem",
            "objectName: signing\nobjectType: key",
        ];
        let target = csi_secrets_provider_tests::new_target_path();
        let first = world.mount_at(&target, "workload-sa", &objects, &[]).await?;
        let again = world.mount_at(&target, "workload-sa", &objects, &[]).await?;
        let lines = lines(&audit)?;
        assert_eq!(lines.len(), 10, "{lines:#?}");
        let db = about(&lines, "db");
        assert_eq!(db[0]["resolved"], format!("{VAULT}/db"));
        assert_eq!(db[0]["version"], version.as_str());
        assert_eq!(db[0]["backend"], "azure");
        assert_eq!(db[0]["outcome"], "ok");
        assert!(lines.iter().all(|line| line["outcome"] == "ok"), "{lines:#?}");
        assert_eq!(about(&lines, "signing").len(), 2);
        assert!(lines.iter().all(|line| line["shared"] == false), "each read its own: {lines:#?}");

        // Two pods of one SecretProviderClass: the first pod's remount takes the read the second
        // pod's first mount made after it (the remount rule); the second pod's remount then reads
        // afresh: that read is not newer than what it holds.
        let (one, other) =
            (csi_secrets_provider_tests::new_target_path(), csi_secrets_provider_tests::new_target_path());
        world.mount_at(&one, "workload-sa", &objects[..1], &[]).await?;
        world.mount_at(&other, "workload-sa", &objects[..1], &[]).await?;
        world.mount_at(&one, "workload-sa", &objects[..1], &[]).await?;
        world.mount_at(&other, "workload-sa", &objects[..1], &[]).await?;
        let lines = super::lines(&audit)?;
        let round: Vec<bool> = lines[10..].iter().map(|line| line["shared"] == true).collect();
        assert_eq!(round, [false, false, true, false], "{:#?}", &lines[10..]);

        let token = csi_secrets_provider_tests::azure::service_account_token(
            csi_secrets_provider_tests::worlds::AZURE_NAMESPACE,
            "workload-sa",
        );
        assert_no_secrets(&audit, &["audit-kv-secret-3c7d", &token], &[first, again])
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::{LOCATION, PROJECT};
    use csi_secrets_provider_tests::worlds::{GCP_NAMESPACE, GcpWorld};

    /// Global and regional secrets, a folder (`resourcePrefix`), an optional secret that does
    /// not exist, a remount, and a mount the admin policy denies: one line per object per
    /// mount, named as the policy names them, never a value or a token.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_gcp_object_kind_is_audited_without_its_value() -> TestResult {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.log");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "defaultAction: allow\nrules:\n  - namespaces: [shop]\n    serviceAccounts: [batch]\n    allow: {gcp: []}\n",
        )?;
        let (audit_arg, policy_arg) = (audit.display().to_string(), policy.display().to_string());
        let world = GcpWorld::start(BINARY, &["--audit-log", &audit_arg, "--policy", &policy_arg]).await?;
        let web = format!("ksa:{GCP_NAMESPACE}/web");
        world.google.add_version(None, "db", b"audit-gcp-global-2b4d");
        world.google.add_version(Some(LOCATION), "api", b"audit-gcp-regional-6f8a");
        world.google.add_version(None, "app-one", b"audit-gcp-folder-1c3e");
        world.google.grant(None, "db", &web);
        world.google.grant(Some(LOCATION), "api", &web);
        world.google.grant(None, "app-one", &web);
        world.google.grant_list(&web);
        let secrets = format!(
            "- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db\n\
             - resourceName: projects/{PROJECT}/locations/{LOCATION}/secrets/api/versions/latest\n  path: api\n\
             - resourcePrefix: projects/{PROJECT}/secrets/app-\n  path: app\n\
             - resourceName: projects/{PROJECT}/secrets/missing/versions/latest\n  path: missing\n  optional: true\n"
        );
        let target = csi_secrets_provider_tests::new_target_path();
        let first = world.mount_at(&target, "web", &secrets, &[]).await?;
        let again = world.mount_at(&target, "web", &secrets, &[]).await?;
        let lines = lines(&audit)?;
        assert_eq!(lines.len(), 8, "one line per object per mount: {lines:#?}");
        assert!(lines.iter().all(|line| line["backend"] == "gcp"), "{lines:#?}");
        let db: Vec<_> =
            lines.iter().filter(|l| l["resolved"] == format!("projects/{PROJECT}/secrets/db")).collect();
        assert_eq!(db.len(), 2, "{lines:#?}");
        assert_eq!(db[0]["outcome"], "ok");
        // The remount rule: a remount takes no read older than its own previous mount.
        assert!(lines.iter().all(|line| line["shared"] == false), "each read its own: {lines:#?}");
        let regional = format!("projects/{PROJECT}/locations/{LOCATION}/secrets/api");
        assert!(lines.iter().any(|l| l["resolved"] == regional.as_str()), "{lines:#?}");
        assert!(
            lines.iter().any(|l| l["resolved"] == format!("projects/{PROJECT}/secrets/app-one")),
            "{lines:#?}"
        );
        let missing: Vec<_> = lines.iter().filter(|l| l["outcome"] != "ok").collect();
        assert_eq!(missing.len(), 2, "the optional secret, skipped on each mount: {lines:#?}");
        assert!(missing.iter().all(|l| l["resolved"] == format!("projects/{PROJECT}/secrets/missing")));

        // Denied by the policy before any call: each object of the SPC is recorded as denied.
        let denied =
            world.mount_at(&csi_secrets_provider_tests::new_target_path(), "batch", &secrets, &[]).await;
        assert!(denied.is_err());
        let lines = super::lines(&audit)?;
        let outcomes: Vec<(String, String)> = lines[8..]
            .iter()
            .map(|l| {
                (
                    l["object"].as_str().unwrap_or_default().to_owned(),
                    l["outcome"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            (format!("projects/{PROJECT}/secrets/db/versions/latest"), "denied"),
            (format!("projects/{PROJECT}/locations/{LOCATION}/secrets/api/versions/latest"), "denied"),
            (format!("projects/{PROJECT}/secrets/missing/versions/latest"), "denied"),
            // The folder was never listed: nothing of it is known, nothing mounted.
            (format!("projects/{PROJECT}/secrets/app-"), "not_mounted"),
        ]
        .into_iter()
        .map(|(object, outcome)| (object, outcome.to_owned()))
        .collect();
        assert_eq!(outcomes, expected);

        let token = csi_secrets_provider_tests::jwt::service_account_token(
            GCP_NAMESPACE,
            "web",
            csi_secrets_provider_tests::gcp::POOL,
            csi_secrets_provider_tests::jwt::VALID_UNTIL,
        );
        assert_no_secrets(
            &audit,
            &["audit-gcp-global-2b4d", "audit-gcp-regional-6f8a", "audit-gcp-folder-1c3e", &token],
            &[first, again],
        )
    }
}

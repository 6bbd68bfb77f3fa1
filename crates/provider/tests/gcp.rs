//! The gcp backend end to end: the real binary over its socket against the Google test peer
//! (Secret Manager, the token exchange, IAM Credentials, the metadata server) and the
//! Kubernetes API test server, driven as the Secrets Store CSI Driver drives a provider.
#![cfg(feature = "gcp")]

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::gcp::{FakeGoogle, LOCATION, PROJECT, PROJECT_NUMBER};
use csi_secrets_provider_tests::worlds::{BoxError, GCP_GSA, GCP_NAMESPACE, GcpWorld};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

fn versions(response: &MountResponse) -> Vec<(String, String)> {
    response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

fn principal(namespace: &str, sa: &str) -> String {
    format!("ksa:{namespace}/{sa}")
}

/// Global and regional secrets by number, `latest` and alias; `path` over `fileName`, nested
/// paths, `mode`; the object versions as the GCP provider reports them (the id as written, the
/// version Secret Manager resolved, with the project number).
#[tokio::test(flavor = "multi_thread")]
async fn global_and_regional_secrets_with_versions_aliases_and_modes() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = principal(GCP_NAMESPACE, "web");
    world.google.add_version(None, "db", b"one");
    world.google.add_version(None, "db", b"two");
    world.google.set_alias(None, "db", "prod", 1);
    world.google.add_version(Some(LOCATION), "api", b"regional");
    for (location, secret) in [(None, "db"), (Some(LOCATION), "api")] {
        world.google.grant(location, secret, &web);
    }
    let secrets = format!(
        "- resourceName: projects/{PROJECT}/secrets/db/versions/latest\n  path: db/latest\n  mode: 0400\n\
         - resourceName: projects/{PROJECT}/secrets/db/versions/prod\n  fileName: prod.txt\n\
         - resourceName: projects/{PROJECT}/secrets/db/versions/1\n  fileName: ignored\n  path: first\n\
         - resourceName: projects/{PROJECT}/locations/{LOCATION}/secrets/api/versions/latest\n  fileName: api\n"
    );
    let response = world.mount(&secrets).await?;
    assert_eq!(file(&response, "db/latest")?, b"two");
    assert_eq!(file(&response, "prod.txt")?, b"one");
    assert_eq!(file(&response, "first")?, b"one");
    assert_eq!(file(&response, "api")?, b"regional");
    let modes: Vec<(String, i32)> = response.files.iter().map(|f| (f.path.clone(), f.mode)).collect();
    assert!(modes.contains(&("db/latest".to_owned(), 0o400)), "{modes:?}");
    assert!(modes.contains(&("prod.txt".to_owned(), 0o644)), "the driver's permission: {modes:?}");
    assert!(versions(&response).contains(&(
        format!("projects/{PROJECT}/secrets/db/versions/latest"),
        format!("projects/{PROJECT_NUMBER}/secrets/db/versions/2")
    )));
    let regional = world
        .google
        .calls()
        .into_iter()
        .find(|c| c.path.contains("/locations/"))
        .ok_or("no regional read")?;
    assert!(
        regional.path.starts_with(&format!("/v1/projects/{PROJECT}/locations/{LOCATION}/")),
        "{regional:?}"
    );
    // One exchange for the pod's identity, whatever the number of secrets.
    assert_eq!(world.google.count("exchange"), 1);
    Ok(())
}

/// Workload identity as the GCP provider does it: the driver's token for the pool exchanged
/// once per identity (cluster facts from the metadata server); a service account annotated
/// with a Google service account reads as that account (`generateAccessToken`), one without
/// as its own principal; each read names the mounting pod in its User-Agent.
#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_principal_and_impersonation() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    world.google.add_version(None, "only-gsa", b"gsa-value");
    world.google.grant(None, "only-gsa", &format!("gsa:{GCP_GSA}"));
    let secrets =
        format!("- {{resourceName: projects/{PROJECT}/secrets/only-gsa/versions/latest, path: s}}\n");
    let response = world.mount_as("impersonating", &secrets).await?;
    assert_eq!(file(&response, "s")?, b"gsa-value");
    assert_eq!((world.google.count("exchange"), world.google.count("generateAccessToken")), (1, 1));
    let read = world.google.calls().into_iter().find(|c| c.api == "access").ok_or("no read")?;
    assert_eq!(read.principal.as_deref(), Some(format!("gsa:{GCP_GSA}").as_str()));
    assert!(
        read.user_agent.contains("csi-secrets-provider/0.") && read.user_agent.contains("csi-shop.web-0"),
        "{}",
        read.user_agent
    );
    // Again as a new pod: no exchange, no IAM call (tokens kept until shortly before expiry).
    world.mount_as("impersonating", &secrets).await?;
    assert_eq!((world.google.count("exchange"), world.google.count("generateAccessToken")), (1, 1));

    // A delegation chain from the delegates annotation reaches IAM Credentials as resource names;
    // a malformed one is refused naming the service account.
    let delegate = format!("mid@{PROJECT}.iam.gserviceaccount.com");
    world.kube.add_annotated_service_account(
        GCP_NAMESPACE,
        "delegating",
        serde_json::json!({
            "iam.gke.io/gcp-service-account": GCP_GSA,
            "iam.gke.io/gcp-service-account-delegates": format!("[\"{delegate}\"]"),
        }),
    );
    world.google.allow_impersonation(GCP_GSA, GCP_NAMESPACE, "delegating");
    world.mount_as("delegating", &secrets).await?;
    let generate =
        world.google.calls().into_iter().rfind(|c| c.api == "generateAccessToken").ok_or("no IAM call")?;
    assert_eq!(generate.delegates, [format!("projects/-/serviceAccounts/{delegate}")]);
    world.kube.add_annotated_service_account(
        GCP_NAMESPACE,
        "bad-delegates",
        serde_json::json!({ "iam.gke.io/gcp-service-account": GCP_GSA, "iam.gke.io/gcp-service-account-delegates": "mid@x" }),
    );
    let bad = world.mount_as("bad-delegates", &secrets).await.err().ok_or("bad delegates accepted")?;
    assert!(
        bad.message().contains("unable to parse delegates annotation on SA shop/bad-delegates"),
        "{}",
        bad.message()
    );

    // Service account web has no annotation: its principal reads, and is refused here.
    let denied = world.mount(&secrets).await.err().ok_or("web may not read only-gsa")?;
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains(&format!("projects/{PROJECT}/secrets/only-gsa/versions/latest")),
        "{}",
        denied.message()
    );
    let metadata: Vec<String> =
        world.google.calls().into_iter().filter(|c| c.api == "metadata").map(|c| c.path).collect();
    assert!(metadata.iter().any(|p| p.ends_with("project/project-id")), "{metadata:?}");
    Ok(())
}

/// Errors by meaning, naming every failing `resourceName`; nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn errors_name_every_failing_secret() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = principal(GCP_NAMESPACE, "web");
    world.google.add_version(None, "ok", b"v");
    world.google.grant(None, "ok", &web);
    let missing = format!(
        "- {{resourceName: projects/{PROJECT}/secrets/ok/versions/latest, path: a}}\n\
         - {{resourceName: projects/{PROJECT}/secrets/gone/versions/latest, path: b}}\n\
         - {{resourceName: projects/{PROJECT}/secrets/ok/versions/9, path: c}}\n"
    );
    let status = world.mount(&missing).await.err().ok_or("missing secrets")?;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    for named in ["secrets/gone/versions/latest", "secrets/ok/versions/9", "2 problems"] {
        assert!(status.message().contains(named), "{named}: {}", status.message());
    }
    // A bad SecretProviderClass: refused before any call, naming the entry.
    let calls = world.google.calls().len();
    let bad = format!(
        "- {{resourceName: projects/{PROJECT}/secrets/ok/versions/1, path: a, extractJSONKey: x, extractYAMLKey: y}}\n"
    );
    let status = world.mount(&bad).await.err().ok_or("both extract keys")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("cannot both be set"), "{}", status.message());
    assert_eq!(world.google.calls().len(), calls, "no call for a bad SecretProviderClass");
    // A corrupted payload fails the secret.
    world.google.corrupt("secrets/ok", 5);
    let one = format!("- {{resourceName: projects/{PROJECT}/secrets/ok/versions/1, path: a}}\n");
    let status = world.mount(&one).await.err().ok_or("corrupted payload")?;
    assert!(status.message().contains("CRC32C"), "{}", status.message());
    Ok(())
}

/// `auth: provider-adc`: the provider's own credentials (here the metadata server's service
/// account) read, with no exchange.
#[tokio::test(flavor = "multi_thread")]
async fn provider_adc_reads_as_the_providers_own_identity() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    world.google.add_version(None, "node-secret", b"node-value");
    world.google.grant(None, "node-secret", &format!("gsa:node@{PROJECT}.iam.gserviceaccount.com"));
    let secrets = format!("- {{resourceName: projects/{PROJECT}/secrets/node-secret/versions/1, path: n}}\n");
    let response = world
        .mount_at(
            &csi_secrets_provider_tests::new_target_path(),
            "web",
            &secrets,
            &[("auth", "provider-adc")],
        )
        .await?;
    assert_eq!(file(&response, "n")?, b"node-value");
    assert_eq!(world.google.count("exchange"), 0);
    Ok(())
}

/// A service account key in the node-publish secret: refused unless
/// `--gcp-allow-node-publish-secret`, then the key's account reads; combined with `auth`,
/// refused in the GCP provider's words. A key file that names the same account and key id with
/// another key (any namespace can write one) is another identity: it gets none of the first
/// key's cached client or reads, and Google refuses it.
#[tokio::test(flavor = "multi_thread")]
async fn node_publish_secret_keys_only_when_allowed() -> TestResult {
    let email = format!("keyuser@{PROJECT}.iam.gserviceaccount.com");
    let node_publish = |key: &str| serde_json::json!({ "key.json": key }).to_string();
    let secrets = format!("- {{resourceName: projects/{PROJECT}/secrets/keyed/versions/latest, path: k}}\n");
    let target = csi_secrets_provider_tests::new_target_path;

    let refusing = GcpWorld::start(BINARY, &[]).await?;
    let any_key = node_publish(&FakeGoogle::forged_key(&email, "0123456789abcdef")?);
    let status =
        refusing.mount_with(&target(), "web", &secrets, &[], true, &any_key).await.err().ok_or("allowed")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("--gcp-allow-node-publish-secret"), "{}", status.message());

    let world = GcpWorld::start(BINARY, &["--gcp-allow-node-publish-secret"]).await?;
    world.google.add_version(None, "keyed", b"from-key");
    world.google.grant(None, "keyed", &format!("gsa:{email}"));
    let issued = node_publish(&world.google.issue_key(&email, "0123456789abcdef")?);
    let response = world.mount_with(&target(), "web", &secrets, &[], true, &issued).await?;
    assert_eq!(file(&response, "k")?, b"from-key");

    let reads = world.google.count("access");
    let forged = node_publish(&FakeGoogle::forged_key(&email, "0123456789abcdef")?);
    let status = world
        .mount_with(&target(), "other", &secrets, &[], true, &forged)
        .await
        .err()
        .ok_or("a forged key file read through the issued key's cached client")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(world.google.count("access"), reads + 1, "the forged key asked Google itself");

    let both = world
        .mount_with(&target(), "web", &secrets, &[("auth", "provider-adc")], true, &issued)
        .await
        .err()
        .ok_or("both")?;
    assert!(
        both.message().contains("attempting to set both nodePublishSecretRef and provider-adc auth"),
        "{}",
        both.message()
    );
    Ok(())
}

/// No token from the driver: a TokenRequest for the pool, bound to the pod; the STS endpoint
/// (`GAIA_TOKEN_EXCHANGE_ENDPOINT`) takes the exchange as GKE's does.
#[tokio::test(flavor = "multi_thread")]
async fn token_request_fallback_and_the_sts_endpoint() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let sts_world = GcpWorld::start(BINARY, &["--gcp-token-exchange-endpoint={google}/v1/token"]).await?;
    for world in [&world, &sts_world] {
        world.google.add_version(None, "db", b"v");
        world.google.grant(None, "db", &principal(GCP_NAMESPACE, "web"));
    }
    let secrets = format!("- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n");
    let response = world
        .mount_with(&csi_secrets_provider_tests::new_target_path(), "web", &secrets, &[], false, "null")
        .await?;
    assert_eq!(file(&response, "db")?, b"v");
    assert!(
        world.kube.requests().iter().any(|p| p.ends_with("/serviceaccounts/web/token")),
        "{:?}",
        world.kube.requests()
    );
    sts_world.mount(&secrets).await?;
    assert_eq!((sts_world.google.count("sts"), sts_world.google.count("exchange")), (1, 0));
    Ok(())
}

/// Beyond the GCP provider: `RESOURCE_EXHAUSTED` retried with backoff; an optional secret that
/// does not exist skipped; `jmesPath` on a JSON secret.
#[tokio::test(flavor = "multi_thread")]
async fn throttling_retried_optional_skipped_and_jmes_path() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    let web = principal(GCP_NAMESPACE, "web");
    world.google.add_version(None, "config", br#"{"db":{"user":"app","password":"p4ss"}}"#);
    world.google.grant(None, "config", &web);
    world.google.fail("/secrets/config/", 429, 2);
    let secrets = format!(
        "- resourceName: projects/{PROJECT}/secrets/config/versions/latest\n  path: config.json\n  jmesPath:\n    - {{path: db.password, objectAlias: password}}\n\
         - {{resourceName: projects/{PROJECT}/secrets/not-yet/versions/latest, path: later, optional: true}}\n"
    );
    let response = world.mount(&secrets).await?;
    assert_eq!(file(&response, "password")?, b"p4ss");
    assert!(file(&response, "later").is_err(), "the optional secret is skipped");
    let reads = world.google.calls().into_iter().filter(|c| c.path.contains("/secrets/config/")).count();
    assert_eq!(reads, 3, "two throttled answers, then the value");
    Ok(())
}

/// A remount round of several pods of one service account costs one read per secret and no
/// exchange: the remount rule of the other backends.
#[tokio::test(flavor = "multi_thread")]
async fn a_remount_round_shares_reads() -> TestResult {
    let world = GcpWorld::start(BINARY, &[]).await?;
    world.google.add_version(None, "shared", b"s");
    world.google.grant(None, "shared", &principal(GCP_NAMESPACE, "web"));
    let secrets = format!("- {{resourceName: projects/{PROJECT}/secrets/shared/versions/latest, path: s}}\n");
    let targets: Vec<String> = (0..5).map(|_| csi_secrets_provider_tests::new_target_path()).collect();
    for target in &targets {
        world.mount_at(target, "web", &secrets, &[]).await?;
    }
    let before = world.google.count("access");
    for target in &targets {
        world.mount_at(target, "web", &secrets, &[]).await?;
    }
    assert_eq!(
        world.google.count("access") - before,
        1,
        "the round's first remount reads, the others share it"
    );
    assert_eq!(world.google.count("exchange"), 1);
    Ok(())
}

/// Off GKE (fleet workload identity, Workload Identity Federation for Kubernetes): no metadata
/// server to ask, the provider's own `external_account` credentials file
/// (`GOOGLE_APPLICATION_CREDENTIALS`) says the federation audience, and the pod's token is
/// exchanged for it, end to end against the peer.
#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_federation_from_the_providers_external_account_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let audience = format!(
        "//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{}/providers/k8s",
        csi_secrets_provider_tests::gcp::POOL
    );
    let credentials = dir.path().join("credentials.json");
    std::fs::write(
        &credentials,
        serde_json::json!({
            "type": "external_account",
            "audience": audience,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": "/var/run/service-account/token"},
        })
        .to_string(),
    )?;
    let credentials = credentials.display().to_string();
    // No metadata server answers: the provider is not on GKE.
    let env =
        [("GCE_METADATA_HOST", "127.0.0.1:9"), ("GOOGLE_APPLICATION_CREDENTIALS", credentials.as_str())];
    let world = GcpWorld::start_with_env(BINARY, &[], &env).await?;
    world.google.set_exchange_audience(&audience);
    world.google.add_version(None, "fleet", b"read through federation");
    world.google.grant(None, "fleet", &principal(GCP_NAMESPACE, "web"));
    let secrets =
        format!("- resourceName: projects/{PROJECT}/secrets/fleet/versions/latest\n  path: fleet\n");
    let response = world.mount(&secrets).await?;
    assert_eq!(file(&response, "fleet")?, b"read through federation");
    let exchanged: Vec<_> =
        world.google.calls().into_iter().filter(|c| c.api == "exchange" || c.api == "sts").collect();
    assert_eq!(exchanged.len(), 1, "{exchanged:?}");
    assert_eq!(exchanged[0].status, 200, "the exchange took the federation audience");
    Ok(())
}

/// A `registry:` entry: a Docker config for Artifact Registry whose password is the access
/// token of the identity reading secrets (what `docker login -u oauth2accesstoken` takes), the
/// version its expiry; remounts within half its lifetime take the kept login (no exchange);
/// the audit trail names the registry, never the token; a bad host is refused naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_entry_is_a_docker_config_with_the_identitys_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.log");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  - namespaces: [registry-denied]\n    allow: {gcp: [\"projects/*\"]}\n",
    )?;
    let args = ["--audit-log", &audit.display().to_string(), "--policy", &policy.display().to_string()];
    let world = GcpWorld::start(BINARY, &args).await?;
    world.google.add_version(None, "db", b"v");
    world.google.grant(None, "db", &principal(GCP_NAMESPACE, "web"));
    let host = format!("{LOCATION}-docker.pkg.dev");
    let secrets = format!(
        "- {{registry: {host}, path: .dockerconfigjson}}\n- {{registry: gcr.io, path: .dockerconfigjson}}\n- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n"
    );
    let target = csi_secrets_provider_tests::new_target_path();
    let first = world.mount_at(&target, "web", &secrets, &[]).await?;
    let config: serde_json::Value = serde_json::from_slice(file(&first, ".dockerconfigjson")?)?;
    let entry = &config["auths"][host.as_str()];
    assert_eq!(entry["username"], "oauth2accesstoken");
    let token = entry["password"].as_str().ok_or("no password")?;
    assert_eq!(
        world.google.principal_of(token),
        Some(principal(GCP_NAMESPACE, "web")),
        "the identity's own token"
    );
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("oauth2accesstoken:{token}"));
    assert_eq!(entry["auth"].as_str(), Some(auth.as_str()));
    // Two registries naming one file share one Docker config.
    assert_eq!(config["auths"]["gcr.io"]["password"].as_str(), Some(token));
    assert_eq!(config["auths"].as_object().map(|auths| auths.len()), Some(2));
    let version = first.object_version.iter().find(|v| v.id == ".dockerconfigjson").ok_or("no version")?;
    let expiry = humantime::parse_rfc3339(&version.version)?;
    let left = expiry.duration_since(std::time::SystemTime::now())?;
    assert!(
        left > std::time::Duration::from_secs(3000),
        "the version is the token's expiry: {}",
        version.version
    );

    let remount = world.mount_at(&target, "web", &secrets, &[]).await?;
    assert_eq!(file(&remount, ".dockerconfigjson")?, file(&first, ".dockerconfigjson")?, "the kept login");
    assert_eq!(world.google.count("exchange"), 1, "no new token");
    let trail = std::fs::read_to_string(&audit)?;
    assert!(trail.contains(&format!("\"object\":\"{host}\"")), "{trail}");
    assert!(trail.contains("\"object\":\"gcr.io\""), "a record per registry: {trail}");
    assert!(!trail.contains(token), "the audit trail holds the token");

    // The admin policy sees a registry by its host: a namespace allowed only secrets is refused.
    let denied = world
        .mount_at(
            &csi_secrets_provider_tests::new_target_path(),
            "web",
            &secrets,
            &[("csi.storage.k8s.io/pod.namespace", "registry-denied")],
        )
        .await
        .err()
        .ok_or("the policy let a registry through")?;
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains(&format!("may not read \"{host}\"")), "{}", denied.message());

    let bad = "- {registry: 'evil.io/x#', path: c}\n";
    let status = world.mount(bad).await.err().ok_or("a bad registry host mounted")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("is not a registry host name") && status.message().contains("registry"),
        "{}",
        status.message()
    );
    Ok(())
}

/// Cluster facts become part of the workload identity provider's URL: a location or cluster
/// name (from the options, or the metadata server) outside Google's grammar fails the mount
/// naming it, before any token exchange.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_facts_are_grammar_checked_before_the_exchange() -> TestResult {
    for (flag, value, says) in [
        ("--gcp-cluster-location", "x@evil.example:443#", "the cluster's location"),
        ("--gcp-cluster-name", "Prod/../x", "the cluster's name"),
    ] {
        let world = GcpWorld::start(BINARY, &[flag, value]).await?;
        world.google.add_version(None, "db", b"v");
        world.google.grant(None, "db", &principal(GCP_NAMESPACE, "web"));
        let secrets =
            format!("- {{resourceName: projects/{PROJECT}/secrets/db/versions/latest, path: db}}\n");
        let status = world.mount(&secrets).await.err().ok_or("a hostile cluster fact was used")?;
        assert!(status.message().contains(says), "{flag}: {}", status.message());
        assert_eq!(world.google.count("exchange") + world.google.count("sts"), 0, "{flag}: no exchange");
    }
    Ok(())
}

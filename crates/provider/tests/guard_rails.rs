//! Guard rails: what an SPC author or a cloud-side name controls cannot send the node's
//! credentials elsewhere, crash or exhaust the provider, or outlive the mount. Each test drives
//! the real binary through its socket with the hostile value and checks that it is refused
//! cleanly (an error naming the entry and the field, nothing written, the process still up, no
//! connection anywhere but the test peers).
#![cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]

#[cfg(feature = "gcp")]
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

/// A TCP listener on loopback that counts the connections it is offered: the host a hostile
/// name tries to send credentials to.
#[cfg(feature = "gcp")]
struct Trap {
    port: u16,
    connections: Arc<AtomicUsize>,
}

#[cfg(feature = "gcp")]
impl Trap {
    async fn start() -> Result<Self, BoxError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Ok(Self { port, connections })
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use super::*;
    use csi_secrets_provider_tests::gcp::PROJECT;
    use csi_secrets_provider_tests::new_target_path;
    use csi_secrets_provider_tests::worlds::GcpWorld;
    use tonic::Code;

    /// The production template of the regional endpoint: a location is pasted into its host.
    const REGIONAL: &str = "--gcp-regional-endpoint=https://secretmanager.{location}.rep.googleapis.com";

    /// A location that would make the regional endpoint `https://secretmanager.x@127.0.0.1:PORT#…`
    /// is refused before any call, with `provider-adc` (the node's own token) and `optional`,
    /// in a prefix and in a resource name; no connection reaches the trap.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_location_cannot_send_the_nodes_token_to_another_host() -> TestResult {
        let trap = Trap::start().await?;
        let world = GcpWorld::start(BINARY, &[REGIONAL]).await?;
        let port = trap.port;
        let hostile = [
            format!(
                "- {{resourcePrefix: 'projects/{PROJECT}/locations/x@127.0.0.1:{port}#/secrets/app-', optional: true}}\n"
            ),
            format!(
                "- {{resourceName: 'projects/{PROJECT}/locations/x@127.0.0.1:{port}#/secrets/s/versions/1', path: s, optional: true}}\n"
            ),
            format!(
                "- {{resourcePrefix: 'projects/{PROJECT}/locations/us-central1.evil/secrets/', path: d}}\n"
            ),
            format!("- {{resourcePrefix: 'projects/{PROJECT}/secrets/a%2F..', path: d}}\n"),
            format!(
                "- {{resourcePrefix: 'projects/{PROJECT}/secrets/app-', path: d, tags: {{team: 'a\\\" OR name:x'}}}}\n"
            ),
            "- {resourceName: 'projects/p?x=1/secrets/s/versions/1', path: s}\n".to_owned(),
            format!("- {{resourceName: 'projects/{PROJECT}/secrets/s/versions/1#x', path: s}}\n"),
            format!("- {{resourceName: 'projects/{PROJECT}/secrets/s%20/versions/1', path: s}}\n"),
        ];
        for secrets in &hostile {
            let status = world
                .mount_at(&new_target_path(), "web", secrets, &[("auth", "provider-adc")])
                .await
                .err()
                .ok_or_else(|| format!("accepted: {secrets}"))?;
            assert_eq!(status.code(), Code::InvalidArgument, "{secrets}: {}", status.message());
            let message = status.message();
            assert!(
                message.contains("field \"resourcePrefix\"")
                    || message.contains("field \"resourceName\"")
                    || message.contains("field \"tags\""),
                "{secrets}: {message}"
            );
        }
        assert_eq!(trap.connections(), 0, "a hostile location reached another host");
        let calls: Vec<_> = world.google.calls().into_iter().filter(|c| c.api != "metadata").collect();
        assert!(calls.is_empty(), "{calls:?}");
        // The process is up and serves a good mount.
        world.google.add_version(None, "ok", b"v");
        world.google.grant(
            None,
            "ok",
            &format!("ksa:{}/web", csi_secrets_provider_tests::worlds::GCP_NAMESPACE),
        );
        world
            .mount(&format!("- {{resourceName: projects/{PROJECT}/secrets/ok/versions/1, path: ok}}\n"))
            .await?;

        // `validate` refuses the same SPC before anything is deployed.
        let dir = tempfile::tempdir()?;
        let spc = dir.path().join("spc.yaml");
        let parameters = serde_json::json!({ "auth": "provider-adc", "secrets": hostile[0] });
        std::fs::write(
            &spc,
            serde_json::json!({
                "apiVersion": "secrets-store.csi.x-k8s.io/v1",
                "kind": "SecretProviderClass",
                "metadata": { "name": "hostile" },
                "spec": { "provider": "gcp", "parameters": parameters },
            })
            .to_string(),
        )?;
        let output = std::process::Command::new(BINARY).arg("validate").arg(&spc).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{stdout}");
        assert!(stdout.contains("is not a Google Cloud location"), "{stdout}");
        Ok(())
    }
}

#[cfg(feature = "azure")]
mod azure {
    use super::*;
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};
    use tonic::Code;

    /// An object name or version becomes a Key Vault URL path segment: `..`, `/`, `\` or `%2e`
    /// would read another secret than the one the admin policy and the audit trail were told
    /// of. An SPC's `cloudEnvFileName` outside the provider's environment file's directory is
    /// refused (it could read `/dev/zero`, block on a FIFO, or pick the endpoints the node's
    /// credentials go to). Each is `InvalidArgument` before any call.
    #[tokio::test(flavor = "multi_thread")]
    async fn names_versions_and_environment_files_cannot_reach_elsewhere() -> TestResult {
        let world = AzureWorld::start(BINARY, &[]).await?;
        world.azure.set_secret(AZURE_VAULT, "app", "app-value");
        world.azure.set_secret(AZURE_VAULT, "admin-password", "hunter2");
        /// The objects, the extra parameters, and the field the refusal names.
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let hostile: [Case<'_>; 9] = [
            (&["objectName: app\nobjectType: secret"], &[("tenantId", "../../evil")], "tenantID"),
            (
                &["objectName: app\nobjectType: secret"],
                &[("csi.storage.k8s.io/pod.namespace", "default/../kube-system")],
                "csi.storage.k8s.io/pod.namespace",
            ),
            (
                &["objectName: app\nobjectType: secret"],
                &[("csi.storage.k8s.io/serviceAccount.name", "workload-sa\r\nx-evil: 1")],
                "csi.storage.k8s.io/serviceAccount.name",
            ),
            (
                &["objectName: app\nobjectType: secret\nobjectVersion: ../admin-password"],
                &[],
                "objectVersion",
            ),
            (&["objectName: app\nobjectType: secret\nobjectVersion: '%2e%2e'"], &[], "objectVersion"),
            (
                &["objectName: app-x/../../secrets/admin-password\nobjectType: secret\nobjectAlias: a"],
                &[],
                "objectName",
            ),
            (
                &["objectName: 'app\\..\\admin-password'\nobjectType: secret\nobjectAlias: a"],
                &[],
                "objectName",
            ),
            (
                &["objectName: app\nobjectType: secret"],
                &[("cloudName", "AzureStackCloud"), ("cloudEnvFileName", "/dev/zero")],
                "cloudEnvFileName",
            ),
            (
                &["objectName: app\nobjectType: secret"],
                &[("cloudName", "AzureStackCloud"), ("cloudEnvFileName", "/proc/self/environ")],
                "cloudEnvFileName",
            ),
        ];
        for (objects, extra, field) in hostile {
            let status = world
                .mount_as("workload-sa", objects, extra)
                .await
                .err()
                .ok_or_else(|| format!("accepted: {objects:?} {extra:?}"))?;
            assert_eq!(status.code(), Code::InvalidArgument, "{objects:?}: {}", status.message());
            assert!(status.message().contains(&format!("field \"{field}\"")), "{}", status.message());
            assert!(!status.message().contains("hunter2"));
        }
        assert_eq!(world.azure.vault_reads(), 0, "{:?}", world.azure.vault_requests());
        // Still up, and the environment file the operator set still serves.
        let response = world.mount(&["objectName: app\nobjectType: secret"]).await?;
        assert_eq!(csi_secrets_provider_tests::file_contents(&response, "app")?, b"app-value");
        Ok(())
    }
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use csi_secrets_provider_tests::worlds::AwsWorld;
    use tonic::Code;

    /// Regions become part of an endpoint's host; role ARNs and external ids go to STS: each is
    /// checked against AWS's grammar and refused naming its field before any call.
    #[tokio::test(flavor = "multi_thread")]
    async fn regions_and_roles_are_checked_before_any_call() -> TestResult {
        let world = AwsWorld::start(BINARY, "guard_rails", &[]).await?;
        let one = "- {objectName: db, objectType: secretsmanager}";
        let hostile: [(&[(&str, &str)], &str); 7] = [
            (&[("region", "s3.us-east-1"), ("objects", one)], "region"),
            (&[("region", "us-east-1@127.0.0.1:9#"), ("objects", one)], "region"),
            (
                &[("region", "us-east-1"), ("failoverRegion", "us-west-2/x"), ("objects", one)],
                "failoverRegion",
            ),
            (&[("objects", "- {objectName: db, objectType: secretsmanager, region: 'eu west 1'}")], "region"),
            (
                &[(
                    "objects",
                    "- {objectName: 'arn:aws:secretsmanager:us.evil:123456789012:secret:db', objectType: secretsmanager}",
                )],
                "objectName",
            ),
            (&[("assumeRoleArn", "arn:awsx:iam::123456789012:role/x"), ("objects", one)], "assumeRoleArn"),
            (
                &[
                    ("assumeRoleArn", "arn:aws:iam::123456789012:role/x"),
                    ("assumeRoleExternalId", "a\nb"),
                    ("objects", one),
                ],
                "assumeRoleExternalId",
            ),
        ];
        for (parameters, field) in hostile {
            let status =
                world.mount(parameters).await.err().ok_or_else(|| format!("accepted: {parameters:?}"))?;
            assert_eq!(status.code(), Code::InvalidArgument, "{parameters:?}: {}", status.message());
            assert!(status.message().contains(&format!("field \"{field}\"")), "{}", status.message());
        }
        assert_eq!(world.service_account_reads(), 0, "a hostile SPC reached the Kubernetes API");
        Ok(())
    }

    /// `assumeRoleArn` is policed: a rule lists the roles its namespaces may assume
    /// (`allow.awsRoles`), and objects read as an assumed role are matched as ARNs in the
    /// role's account, so `team-a/*` does not let a namespace read another account's
    /// `team-a/db`. The server refuses before any call; `validate --policy` agrees.
    #[tokio::test(flavor = "multi_thread")]
    async fn assumed_roles_are_policed_and_name_their_account() -> TestResult {
        let dir = tempfile::tempdir()?;
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "defaultAction: deny\nrules:\n  - namespaces: [shop]\n    allow:\n      aws: ['team-a/*', 'arn:aws:secretsmanager:*:444455556666:secret:team-a/*']\n      awsRoles: ['arn:aws:iam::444455556666:role/team-a-*']\n",
        )?;
        let world =
            AwsWorld::start(BINARY, "guard_rails_roles", &["--policy", &policy.display().to_string()])
                .await?;
        let objects = "- {objectName: team-a/db, objectType: secretsmanager}";
        let cases = [
            ("arn:aws:iam::999999999999:role/cross", "may not assume role"),
            // An allowed role of another account whose objects no pattern names.
            ("arn:aws:iam::444455556666:role/team-b-reader", "may not assume role"),
        ];
        for (role, words) in cases {
            let status = world
                .mount(&[("region", "us-east-1"), ("assumeRoleArn", role), ("objects", objects)])
                .await
                .err()
                .ok_or_else(|| format!("{role} accepted"))?;
            assert_eq!(status.code(), Code::PermissionDenied, "{}", status.message());
            assert!(status.message().contains(words), "{}", status.message());
        }
        assert_eq!(world.proxy.count("AssumeRole"), 0, "refused before any call");

        let spc = dir.path().join("spc.yaml");
        let write = |role: &str, name: &str| {
            std::fs::write(
                &spc,
                format!(
                    "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: p, namespace: shop}}\nspec:\n  provider: aws\n  parameters:\n    region: us-east-1\n    assumeRoleArn: {role}\n    objects: |\n      - {{objectName: {name}, objectType: secretsmanager}}\n"
                ),
            )
        };
        let validate = || -> Result<(bool, String), BoxError> {
            let output = std::process::Command::new(BINARY)
                .arg("validate")
                .arg("--policy")
                .arg(&policy)
                .arg(&spc)
                .output()?;
            Ok((output.status.success(), String::from_utf8(output.stdout)?))
        };
        write("arn:aws:iam::999999999999:role/cross", "team-a/db")?;
        let (ok, stdout) = validate()?;
        assert!(!ok && stdout.contains("may not assume role"), "{stdout}");
        // The allowed role: team-a/db is read as arn:…:444455556666:secret:team-a/db, allowed.
        write("arn:aws:iam::444455556666:role/team-a-reader", "team-a/db")?;
        let (ok, stdout) = validate()?;
        assert!(ok, "{stdout}");
        // An object outside the patterns, named as an ARN of the role's account.
        write("arn:aws:iam::444455556666:role/team-a-reader", "team-b/db")?;
        let (ok, stdout) = validate()?;
        assert!(
            !ok && stdout.contains("arn:aws:secretsmanager:us-east-1:444455556666:secret:team-b/db"),
            "{stdout}"
        );
        Ok(())
    }
}

/// No error carries a value: templates that fail over secrets of every shape (JSON, YAML block
/// and flow, `key=value`, short values, numbers) answer an error, log a line and write an audit
/// record that hold none of the values.
#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn template_errors_hold_no_value_of_any_shape() -> TestResult {
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.log");
    let world = AzureWorld::start(BINARY, &["--audit-log", &audit.display().to_string()]).await?;
    // Distinctive values: a number, a short value, words, a key=value line.
    let values = ["731946", "zq", "qxuser", "8675309", "hunter2x"];
    let shapes = [
        ("json", r#"{"pin": 731946, "user": "qxuser", "tag": "zq"}"#),
        ("yamlblock", "pin: 731946\nuser: qxuser\ntag: zq\n"),
        ("yamlflow", "{pin: 731946, user: qxuser, tag: zq}"),
        ("keyvalue", "PIN=731946\nUSER=qxuser\n"),
        ("short", "zq"),
        ("number", "8675309"),
        ("word", "hunter2x"),
    ];
    for (name, value) in shapes {
        world.azure.set_secret(AZURE_VAULT, name, value);
    }
    // Each template is mounted with only the objects it reads: what one object's value would
    // reveal is not hidden by another object's.
    let failing: [(&str, &[&str]); 13] = [
        ("{{ (objects.yamlflow | fromyaml).pin // 0 }}", &["yamlflow"]),
        ("{{ (objects.yamlblock | fromyaml).pin // 0 }}", &["yamlblock"]),
        ("{{ (objects.json | fromjson).pin // 0 }}", &["json"]),
        ("{{ objects.number | int // 0 }}", &["number"]),
        ("{{ objects.keyvalue + 1 }}", &["keyvalue"]),
        ("{{ objects.short + 1 }}", &["short"]),
        ("{{ objects.word - 1 }}", &["word"]),
        ("{{ objects.number * objects.short * none }}", &["number", "short"]),
        ("{{ (objects.json | fromjson).user.x.y }}", &["json"]),
        ("{{ objects.keyvalue | fromjson }}", &["keyvalue"]),
        ("{{ range(objects.word) }}", &["word"]),
        ("{{ objects.short[5] ~ objects.word | int // 0 }}", &["short", "word"]),
        ("{{ (objects.json | fromjson)[objects.word] }}", &["json", "word"]),
    ];
    for (template, names) in failing {
        let objects: Vec<String> = names
            .iter()
            .map(|name| format!("objectName: {name}\nobjectType: secret\nwriteFile: false"))
            .collect();
        let objects: Vec<&str> = objects.iter().map(String::as_str).collect();
        let files = serde_json::json!([{ "path": "out", "template": template }]).to_string();
        let status = world
            .mount_as("workload-sa", &objects, &[("files", &files)])
            .await
            .err()
            .ok_or_else(|| format!("{template} rendered"))?;
        for value in values {
            assert!(
                !status.message().contains(value),
                "{value} in the error of {template}: {}",
                status.message()
            );
        }
    }
    let log = world.provider.log_text();
    let trail = std::fs::read_to_string(&audit)?;
    assert!(!trail.is_empty() && log.contains("template"), "{log}");
    for value in values {
        assert!(!log.contains(value), "{value} in the log:\n{log}");
        assert!(!trail.contains(value), "{value} in the audit trail:\n{trail}");
    }
    Ok(())
}

/// The provider's peak resident memory (`VmHWM`) and CPU time (user + system ticks).
#[cfg(feature = "azure")]
fn memory_and_cpu(pid: u32) -> Result<(u64, u64), BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .zip(fields.get(12).and_then(|s| s.parse::<u64>().ok()));
    let (user, system) = ticks.ok_or("no CPU ticks")?;
    Ok((peak_kib * 1024, user + system))
}

/// Templates cannot take the provider down, grow it past its bounds, or outlive the mount:
/// a value nested as deep as fuel allows, strings and lists doubled or repeated past the cap,
/// and a thousand heavy `files` entries under a 3 s deadline. The process stays up, memory
/// stays far under the chart's 128 MiB, the heavy mount answers `DeadlineExceeded` in time and
/// stops using CPU, and `/healthz` answers meanwhile.
#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn templates_cannot_crash_exhaust_or_outlive_the_mount() -> TestResult {
    use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AzureWorld};
    use std::time::{Duration, Instant};
    use tonic::Code;

    let world = AzureWorld::start(BINARY, &["--health-addr", "127.0.0.1:0"]).await?;
    world.azure.set_secret(AZURE_VAULT, "s", "v");
    let pid = world.provider.child.id();
    let object = ["objectName: s\nobjectType: secret"];
    // The baseline after a templated mount: the shaping threads are started.
    let warm = serde_json::json!([{ "path": "out", "template": "{{ objects.s ~ '!' }}" }]).to_string();
    world.mount_as("workload-sa", &object, &[("files", &warm)]).await?;
    let (baseline, _) = memory_and_cpu(pid)?;
    let chain = format!("{{{{ 1{} }}}}", " | string".repeat(6000));
    let hostile = [
        // A chain compiled into a tree as deep as it is long (overflowed a 2 MiB stack).
        chain.as_str(),
        // 40,000 levels through a namespace, then deeper with literal nesting.
        "{% set ns = namespace(x=[]) %}{% for i in range(40000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | length }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [[[[[[[[[[[[[[[[[[[[ns.x]]]]]]]]]]]]]]]]]]]] %}{% endfor %}{{ ns.x == ns.x }}",
        // A namespace that holds itself, printed and compared: recursion without end.
        "{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}",
        "{% set a = namespace(x=1) %}{% set b = namespace(x=1) %}{% set a.x = [a] %}{% set b.x = [b] %}{{ a == b }}",
        "{% set a = 'x' * 63000000 %}{{ a | length }}",
        "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
        "{{ ([objects.s * 1000000] * 100) | join }}",
        "{{ ([objects.s * 1000000] * 100) | tojson }}",
        "{% set t %}{% for i in range(90000) %}{{ objects.s * 1000 }}{% endfor %}{% endset %}{{ t | length }}",
        // Shared parts: cheap to build, exponential to print (`upper`) or compare.
        "{% set a=[1]*100 %}{% set b=[a]*100 %}{% set c=[b]*100 %}{% set d=[c]*100 %}{% set e=[d]*100 %}{{ e | upper }}",
        "{% set a=[1,1,1,1,1,1,1,1,1,1] %}{% set b=[a,a,a,a,a,a,a,a,a,a] %}{% set c=[b,b,b,b,b,b,b,b,b,b] %}{% set d=[c,c,c,c,c,c,c,c,c,c] %}{% set e=[d,d,d,d,d,d,d,d,d,d] %}{% set f=[e,e,e,e,e,e,e,e,e,e] %}{{ f == [f] }}",
    ];
    for template in hostile {
        let files = serde_json::json!([{ "path": "out", "template": template }]).to_string();
        let status = world
            .mount_as("workload-sa", &object, &[("files", &files)])
            .await
            .err()
            .ok_or_else(|| format!("{template} rendered"))?;
        assert_eq!(status.code(), Code::InvalidArgument, "{template}: {}", status.message());
        world.mount(&object).await.map_err(|e| format!("after {template}: {e}"))?;
    }
    // Some 5 KB of YAML anchors that expand to 10^8 values (gigabytes), as `files` and as a
    // template's `fromyaml`: refused before they are built.
    let bomb = format!(
        "a: &a [{}]\nb: &b [{}]\nc: [{}]\n",
        vec!["0"; 1000].join(","),
        vec!["*a"; 1000].join(","),
        vec!["*b"; 100].join(",")
    );
    let through_fromyaml =
        serde_json::json!([{ "path": "out", "template": format!("{{{{ {} | fromyaml | length }}}}", serde_json::to_string(&bomb)?) }])
            .to_string();
    for files in [bomb.as_str(), through_fromyaml.as_str()] {
        let status = world
            .mount_as("workload-sa", &object, &[("files", files)])
            .await
            .err()
            .ok_or("a YAML bomb mounted")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains("far more values than it is long"), "{}", status.message());
    }
    let (peak, _) = memory_and_cpu(pid)?;
    assert!(peak < baseline + 48 * 1024 * 1024, "peak RSS {peak} from {baseline}");

    // Three thousand heavy templates: far more work than the 3 s deadline allows.
    let heavy: Vec<serde_json::Value> = (0..3000)
        .map(|i| {
            serde_json::json!({
                "path": format!("f{i}"),
                "template": "{% for i in range(5000) %}{% endfor %}x",
            })
        })
        .collect();
    let files = serde_json::Value::from(heavy).to_string();
    world.set_driver_timeout(Some(Duration::from_secs(3)));
    let health = world.provider.health_addr(Duration::from_secs(5)).await?;
    let started = Instant::now();
    let extra = [("files", files.as_str())];
    let mount = world.mount_as("workload-sa", &object, &extra);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut stream = tokio::net::TcpStream::connect(health).await?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await??;
        Ok::<_, BoxError>(String::from_utf8_lossy(&answer).into_owned())
    };
    let (mounted, healthz) = tokio::join!(mount, probe);
    let status = mounted.err().ok_or("three thousand heavy templates rendered within 3 s")?;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{}", status.message());
    assert!(started.elapsed() < Duration::from_secs(4), "answered after {:?}", started.elapsed());
    let healthz = healthz?;
    assert!(
        healthz.lines().next().is_some_and(|status| status.contains(" 200")),
        "healthz during shaping: {healthz}"
    );
    let (_, cpu_after_answer) = memory_and_cpu(pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, cpu_later) = memory_and_cpu(pid)?;
    // Clock ticks are 10 ms: a render still running would add about 200 in 2 s.
    assert!(
        cpu_later - cpu_after_answer < 50,
        "CPU after the deadline: {} ticks",
        cpu_later - cpu_after_answer
    );
    let log = world.provider.log_text();
    assert!(!log.lines().any(|l| l.contains("outcome=\"ok\"") && l.contains("files=3000")), "{log}");
    Ok(())
}

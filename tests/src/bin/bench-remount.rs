//! Remount benchmark: what a first-mount round and a remount (kubelet republish) round cost in
//! cloud calls, for N pods × M secrets × K service accounts on one node, for each backend,
//! counted by the test peers themselves (the AWS recording proxy in front of moto, the fake
//! Kubernetes API, the Key Vault + Azure AD test server, the Google test peer). Beside each round it prints what the
//! official providers' code does for the same work: every mount reads every object, exchanges
//! a token and (AWS IRSA, GCP) GETs the ServiceAccount.
//!
//! GCP "exchanges" are token exchanges plus `generateAccessToken` calls.
//!
//!   cargo build --release --locked -p csi-secrets-provider -p csi-secrets-provider-tests --bins
//!   scripts/with-moto.sh target/release/bench-remount [--pods 100] [--secrets 2]
//!       [--service-accounts 1] [--concurrency 1] [--window 60s] [--pause 0s] [--binary PATH]
//!       [--aws-identity irsa|pod-identity] [--pod-identity-scope pod|service-account]
//!       [--by name|prefix] [--refresh-interval 1h]
//!
//! AWS "reads" are Secrets Manager calls: `GetSecretValue` and `BatchGetSecretValue` (a mount's
//! secrets of one region are read twenty to a batch call). With `--aws-identity pod-identity`
//! the pods use EKS Pod Identity (a fake agent counts the "exchanges"), each pod with its own
//! UID, and `--pod-identity-scope` is passed to the provider.
//!
//! `--by prefix` mounts the M secrets as one folder (`objectPrefix`, GCP `resourcePrefix`)
//! instead of M named objects: "lists" counts the listing calls (`ListSecrets`, the vault's
//! secret list pages, Secret Manager `ListSecrets` pages). The official providers cannot select
//! by prefix; their column is what naming every secret costs them.
//!
//! `--pause` waits between the rounds, as the driver's rotation poll interval does; a pause
//! longer than the window shows a remount round that finds no recent read.
//!
//! `--refresh-interval` sets the SecretProviderClass's `refreshInterval`: a remount round
//! within it takes every pod's kept reads, lookups and tokens (0 calls).
//!
//! `--binary` defaults to the `csi-secrets-provider` next to this program (what ships).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use csi_secrets_provider_tests::aws::FakePodIdentityAgent;
use csi_secrets_provider_tests::bench::flag_values;
use csi_secrets_provider_tests::worlds::{
    AZURE_CLIENT, AZURE_NAMESPACE, AZURE_TENANT, AZURE_VAULT, AwsWorld, AzureWorld, BoxError, GCP_NAMESPACE,
    GcpWorld,
};
use csi_secrets_provider_tests::{new_target_path, provider_binary};
use futures::StreamExt;

struct Options {
    pods: usize,
    secrets: usize,
    service_accounts: usize,
    concurrency: usize,
    window: String,
    /// Wait between the first-mount and the remount round (the driver's rotation poll interval).
    pause: Duration,
    binary: Option<String>,
    /// `irsa` or `pod-identity`.
    aws_identity: String,
    pod_identity_scope: String,
    /// Mount the secrets as one folder (`--by prefix`) instead of by name.
    by_prefix: bool,
    /// The SPC's `refreshInterval`, if any.
    refresh_interval: Option<String>,
}

impl Options {
    /// The SPC parameters `--refresh-interval` adds.
    fn refresh_parameters(&self) -> Vec<(&str, &str)> {
        self.refresh_interval.as_deref().map(|interval| ("refreshInterval", interval)).into_iter().collect()
    }
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        pods: 100,
        secrets: 2,
        service_accounts: 1,
        concurrency: 1,
        window: "60s".to_owned(),
        pause: Duration::ZERO,
        binary: None,
        aws_identity: "irsa".to_owned(),
        pod_identity_scope: "pod".to_owned(),
        by_prefix: false,
        refresh_interval: None,
    };
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--pods" => options.pods = value.parse()?,
            "--secrets" => options.secrets = value.parse()?,
            "--service-accounts" => options.service_accounts = value.parse::<usize>()?.max(1),
            "--concurrency" => options.concurrency = value.parse::<usize>()?.max(1),
            "--window" => options.window = value,
            "--pause" => options.pause = humantime::parse_duration(&value)?,
            "--binary" => options.binary = Some(value),
            "--aws-identity" if value == "irsa" || value == "pod-identity" => options.aws_identity = value,
            "--pod-identity-scope" => options.pod_identity_scope = value,
            "--by" if value == "name" || value == "prefix" => options.by_prefix = value == "prefix",
            "--refresh-interval" => options.refresh_interval = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

/// What the peers counted during one round.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    reads: usize,
    exchanges: usize,
    kube: usize,
    lists: usize,
}

impl std::ops::Sub for Calls {
    type Output = Calls;
    fn sub(self, before: Calls) -> Calls {
        Calls {
            reads: self.reads - before.reads,
            exchanges: self.exchanges - before.exchanges,
            kube: self.kube - before.kube,
            lists: self.lists - before.lists,
        }
    }
}

/// One pod: its volume's target path and service account.
#[derive(Clone)]
struct Pod {
    target: String,
    service_account: String,
    uid: String,
}

fn pods(options: &Options) -> Vec<Pod> {
    (0..options.pods)
        .map(|i| Pod {
            target: new_target_path(),
            service_account: format!("app-{}", i % options.service_accounts),
            uid: format!("bench-pod-{i}"),
        })
        .collect()
}

fn report(backend: &str, round: &str, options: &Options, calls: Calls, official: Calls, elapsed: Duration) {
    println!(
        "{backend:<6} {round:<8} {pods:>5} {lists:>5} {reads:>7} {exchanges:>10} {kube:>9}   | {o_reads:>7} {o_exchanges:>10} {o_kube:>9}   {ms:>8.1} ms",
        pods = options.pods,
        lists = calls.lists,
        reads = calls.reads,
        exchanges = calls.exchanges,
        kube = calls.kube,
        o_reads = official.reads,
        o_exchanges = official.exchanges,
        o_kube = official.kube,
        ms = elapsed.as_secs_f64() * 1e3,
    );
}

/// Runs the mounts, `concurrency` at a time; fails on the first failed mount.
async fn round<Fut>(mounts: impl Iterator<Item = Fut>, concurrency: usize) -> Result<Duration, BoxError>
where
    Fut: std::future::Future<Output = Result<usize, tonic::Status>>,
{
    let started = Instant::now();
    let mut mounts = futures::stream::iter(mounts).buffer_unordered(concurrency);
    while let Some(result) = mounts.next().await {
        result?;
    }
    Ok(started.elapsed())
}

/// A first-mount round of every pod, then (after `--pause`) a remount round of the same target
/// paths, each reported with what `counted` saw change and what the official code would cost.
async fn rounds<F, Fut>(
    backend: &str,
    options: &Options,
    official: Calls,
    counted: impl Fn() -> Calls,
    mount: F,
) -> Result<(), BoxError>
where
    F: Fn(Pod) -> Fut,
    Fut: std::future::Future<Output = Result<usize, tonic::Status>>,
{
    let pods = pods(options);
    for name in ["first", "remount"] {
        if name == "remount" {
            tokio::time::sleep(options.pause).await;
        }
        let before = counted();
        let elapsed = round(pods.iter().map(|pod| mount(pod.clone())), options.concurrency).await?;
        report(backend, name, options, counted() - before, official, elapsed);
    }
    Ok(())
}

async fn aws(binary: &str, options: &Options) -> Result<(), BoxError> {
    let pod_identity = options.aws_identity == "pod-identity";
    let agent = FakePodIdentityAgent::start("pod-identity-jwt-for-app-", "ASIABENCH").await?;
    let agent_url = agent.url();
    let mut args = vec!["--shared-read-window", options.window.as_str()];
    if pod_identity {
        args.extend([
            "--pod-identity-endpoint-ipv4",
            &agent_url,
            "--pod-identity-scope",
            &options.pod_identity_scope,
        ]);
    }
    let world = AwsWorld::start(binary, "bench", &args).await?;
    for i in 0..options.service_accounts {
        world.kube.add_service_account(
            "shop",
            &format!("app-{i}"),
            Some(&format!("arn:aws:iam::123456789012:role/app-{i}")),
        );
    }
    let mut objects = String::new();
    for i in 0..options.secrets {
        let name = world.name(&format!("folder/secret-{i}"));
        world.put_secret(&name, &format!("value-{i}")).await?;
        objects.push_str(&format!(
            "- {{objectName: {name}, objectType: secretsmanager, objectAlias: secret-{i}}}\n"
        ));
    }
    if options.by_prefix {
        objects = format!("- {{objectPrefix: '{}', objectType: secretsmanager}}\n", world.name("folder/"));
    }
    let mut parameters = vec![("objects", objects.as_str()), ("region", "us-east-1")];
    parameters.extend(options.refresh_parameters());
    if pod_identity {
        parameters.extend([("usePodIdentity", "true"), ("preferredAddressType", "ipv4")]);
    }
    let counted = || Calls {
        reads: world.proxy.count("GetSecretValue") + world.proxy.count("BatchGetSecretValue"),
        exchanges: world.proxy.count("AssumeRoleWithWebIdentity") + agent.calls(),
        kube: world.service_account_reads(),
        lists: world.proxy.count("ListSecrets"),
    };
    let official = Calls {
        reads: options.pods * options.secrets,
        exchanges: options.pods,
        kube: options.pods,
        lists: 0,
    };
    let (world, parameters) = (&world, &parameters);
    rounds("aws", options, official, counted, |pod| async move {
        // Each pod its own UID (Pod Identity credentials are per pod by default).
        let mut parameters = parameters.clone();
        parameters.push(("csi.storage.k8s.io/pod.uid", pod.uid.as_str()));
        world.mount_at(&pod.target, &pod.service_account, &parameters).await.map(|r| r.files.len())
    })
    .await
}

async fn azure(binary: &str, options: &Options) -> Result<(), BoxError> {
    let world = AzureWorld::start(binary, &["--shared-read-window", &options.window]).await?;
    for i in 0..options.service_accounts {
        world.azure.federate(AZURE_TENANT, AZURE_CLIENT, AZURE_NAMESPACE, &format!("app-{i}"));
    }
    let mut objects: Vec<String> = (0..options.secrets)
        .map(|i| {
            world.azure.set_secret(AZURE_VAULT, &format!("secret-{i}"), &format!("value-{i}"));
            format!("objectName: secret-{i}\nobjectType: secret")
        })
        .collect();
    if options.by_prefix {
        objects = vec!["objectPrefix: secret-".to_owned()];
    }
    let objects: Vec<&str> = objects.iter().map(String::as_str).collect();
    let lists = || {
        world
            .azure
            .vault_requests()
            .iter()
            .filter(|r| r.status == 200 && r.path.trim_matches('/') == "secrets")
            .count()
    };
    let counted = || Calls {
        reads: world.azure.vault_reads() - lists(),
        exchanges: world.azure.token_requests().len(),
        kube: 0,
        lists: lists(),
    };
    // Upstream makes a new credential per mount: one token request per mount.
    let official =
        Calls { reads: options.pods * options.secrets, exchanges: options.pods, kube: 0, lists: 0 };
    let extra = options.refresh_parameters();
    let (world, objects, extra) = (&world, &objects, &extra);
    rounds("azure", options, official, counted, |pod| async move {
        world.mount_at(&pod.target, &pod.service_account, objects, extra).await.map(|r| r.files.len())
    })
    .await
}

async fn gcp(binary: &str, options: &Options) -> Result<(), BoxError> {
    let world = GcpWorld::start(binary, &["--shared-read-window", &options.window]).await?;
    let accounts: Vec<String> = (0..options.service_accounts).map(|i| format!("app-{i}")).collect();
    for account in &accounts {
        world.kube.add_service_account(GCP_NAMESPACE, account, None);
    }
    let mut secrets = String::new();
    for i in 0..options.secrets {
        let name = format!("secret-{i}");
        world.google.add_version(None, &name, format!("value-{i}").as_bytes());
        for account in &accounts {
            world.google.grant(None, &name, &format!("ksa:{GCP_NAMESPACE}/{account}"));
        }
        secrets.push_str(&format!(
            "- {{resourceName: projects/{}/secrets/{name}/versions/latest, path: {name}}}\n",
            csi_secrets_provider_tests::gcp::PROJECT
        ));
    }
    if options.by_prefix {
        for account in &accounts {
            world.google.grant_list(&format!("ksa:{GCP_NAMESPACE}/{account}"));
        }
        secrets = format!(
            "- {{resourcePrefix: projects/{}/secrets/secret-}}\n",
            csi_secrets_provider_tests::gcp::PROJECT
        );
    }
    let counted = || Calls {
        reads: world.google.count("access"),
        exchanges: world.google.count("exchange") + world.google.count("generateAccessToken"),
        kube: world.kube.requests().len(),
        lists: world.google.count("list"),
    };
    // The GCP provider exchanges a token and GETs the ServiceAccount on every mount.
    let official = Calls {
        reads: options.pods * options.secrets,
        exchanges: options.pods,
        kube: options.pods,
        lists: 0,
    };
    let extra = options.refresh_parameters();
    let (world, secrets, extra) = (&world, &secrets, &extra);
    rounds("gcp", options, official, counted, |pod| async move {
        world.mount_at(&pod.target, &pod.service_account, secrets, extra).await.map(|r| r.files.len())
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let binary = provider_binary(options.binary.as_deref())?;
    println!(
        "{} pods x {} secrets{} x {} service accounts, one node, {} mount(s) at a time, --shared-read-window {}, {} between rounds{}",
        options.pods,
        options.secrets,
        if options.by_prefix { " (one folder, by prefix)" } else { "" },
        options.service_accounts,
        options.concurrency,
        options.window,
        humantime::format_duration(options.pause),
        options.refresh_interval.as_deref().map(|i| format!(", refreshInterval {i}")).unwrap_or_default()
    );
    println!(
        "{:<6} {:<8} {:>5} {:>5} {:>7} {:>10} {:>9}   | {:>7} {:>10} {:>9}   {:>11}",
        "cloud",
        "round",
        "pods",
        "lists",
        "reads",
        "exchanges",
        "k8s reads",
        "reads",
        "exchanges",
        "k8s reads",
        "round time"
    );
    println!("{:<31}this provider                         | official providers' code", "");
    aws(&binary, &options).await?;
    azure(&binary, &options).await?;
    gcp(&binary, &options).await?;
    Ok(())
}

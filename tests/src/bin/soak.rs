//! Soak: many mounts through the real binary against the test peers, with failures mixed in,
//! printing the provider's resident memory, open file descriptors and threads as it goes. They
//! must stay flat: no leak per mount, per failure, per remembered target path.
//!
//!   soak [--mounts 20000] [--concurrency 16] [--binary PATH]
//!
//! Half the mounts go to each cloud (moto at MOTO_ENDPOINT for AWS; the Key Vault + Azure AD test
//! server for Azure). Of every ten mounts: two are first mounts of a new pod, six are remounts
//! (rotation polls) of pods already mounted, one asks for a secret that does not exist
//! (NotFound) and one has a bad SecretProviderClass (InvalidArgument). `--binary` defaults to
//! the `csi-secrets-provider` next to this program (what ships: build with --release).

use std::time::Instant;

use csi_secrets_provider_tests::bench::{flag_values, process_figures};
use csi_secrets_provider_tests::worlds::{AZURE_VAULT, AwsWorld, AzureWorld, BoxError};
use csi_secrets_provider_tests::{new_target_path, provider_binary};
use futures::StreamExt;

struct Options {
    mounts: usize,
    concurrency: usize,
    binary: Option<String>,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options { mounts: 20_000, concurrency: 16, binary: None };
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--mounts" => options.mounts = value.parse()?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--binary" => options.binary = Some(value),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    Ok(options)
}

/// One mount of the mix: what it is for the `i`-th mount.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    First,
    Remount,
    Missing,
    BadSpc,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        0 | 5 => Kind::First,
        3 => Kind::Missing,
        7 => Kind::BadSpc,
        _ => Kind::Remount,
    }
}

struct Tally {
    ok: usize,
    expected_failures: usize,
    unexpected: usize,
}

async fn run<F, Fut>(
    cloud: &str,
    pid: u32,
    options: &Options,
    mounts: usize,
    mount: F,
) -> Result<(), BoxError>
where
    F: Fn(Kind, String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let pods: Vec<String> = (0..50).map(|_| new_target_path()).collect();
    let started = Instant::now();
    let mut tally = Tally { ok: 0, expected_failures: 0, unexpected: 0 };
    let checkpoint = (mounts / 5).max(1);
    let first = process_figures(pid)?;
    println!(
        "{cloud:<6} {:>6} mounts  RSS {:>6.1} MiB  fds {:>3}  threads {:>2}",
        0,
        first.rss_kib as f64 / 1024.0,
        first.fds,
        first.threads
    );
    for chunk_start in (0..mounts).step_by(checkpoint) {
        let calls = (chunk_start..(chunk_start + checkpoint).min(mounts)).map(|i| {
            let kind = kind(i);
            let target = if kind == Kind::Remount { pods[i % pods.len()].clone() } else { new_target_path() };
            let call = mount(kind, target);
            async move { (kind, call.await) }
        });
        let outcomes: Vec<(Kind, bool)> =
            futures::stream::iter(calls).buffer_unordered(options.concurrency.max(1)).collect().await;
        for (kind, succeeded) in outcomes {
            match (kind, succeeded) {
                (Kind::First | Kind::Remount, true) => tally.ok += 1,
                (Kind::Missing | Kind::BadSpc, false) => tally.expected_failures += 1,
                _ => tally.unexpected += 1,
            }
        }
        let now = process_figures(pid)?;
        let done = (chunk_start + checkpoint).min(mounts);
        println!(
            "{cloud:<6} {done:>6} mounts  RSS {:>6.1} MiB  fds {:>3}  threads {:>2}  ({:.0} mounts/s)",
            now.rss_kib as f64 / 1024.0,
            now.fds,
            now.threads,
            done as f64 / started.elapsed().as_secs_f64()
        );
    }
    println!(
        "{cloud:<6} done: {} ok, {} failed as expected, {} unexpected, {:.1}s",
        tally.ok,
        tally.expected_failures,
        tally.unexpected,
        started.elapsed().as_secs_f64()
    );
    if tally.unexpected > 0 {
        return Err(format!("{cloud}: {} mounts ended unexpectedly", tally.unexpected).into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let binary = provider_binary(options.binary.as_deref())?;
    let per_cloud = options.mounts / 2;
    println!(
        "{} mounts ({per_cloud} per cloud), {} at a time, binary {binary}",
        options.mounts, options.concurrency
    );

    let aws = AwsWorld::start(&binary, "soak", &[]).await?;
    let present = aws.name("present");
    aws.put_secret(&present, "value").await?;
    let good = format!("- {{objectName: {present}, objectType: secretsmanager, objectAlias: a}}");
    let missing =
        format!("- {{objectName: {}, objectType: secretsmanager, objectAlias: a}}", aws.name("absent"));
    let bad = format!("- {{objectName: {present}, objectType: secretsmanager, filePermission: '0999'}}");
    run("aws", aws.provider.child.id(), &options, per_cloud, |kind, target| {
        let objects = match kind {
            Kind::First | Kind::Remount => good.clone(),
            Kind::Missing => missing.clone(),
            Kind::BadSpc => bad.clone(),
        };
        let aws = &aws;
        async move {
            aws.mount_at(&target, "web", &[("objects", objects.as_str()), ("region", "us-east-1")])
                .await
                .is_ok()
        }
    })
    .await?;
    drop(aws);

    let azure = AzureWorld::start(&binary, &[]).await?;
    azure.azure.set_secret(AZURE_VAULT, "present", "value");
    run("azure", azure.provider.child.id(), &options, per_cloud, |kind, target| {
        let object = match kind {
            Kind::First | Kind::Remount => "objectName: present\nobjectType: secret",
            Kind::Missing => "objectName: absent\nobjectType: secret",
            Kind::BadSpc => "objectName: present\nobjectType: secret\nfilePermission: '9'",
        };
        let azure = &azure;
        async move { azure.mount_at(&target, "workload-sa", &[object], &[]).await.is_ok() }
    })
    .await
}

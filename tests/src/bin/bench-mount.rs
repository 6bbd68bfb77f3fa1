//! Mount benchmark: starts a provider process, drives it through its Unix socket with a
//! driver-shaped client, and prints latency, throughput and the provider's memory (RSS from
//! /proc). Run from the workspace root:
//!
//!   cargo build --release -p csi-secrets-provider-tests --bins
//!   target/release/bench-mount [--mounts 5000] [--concurrency 100] [--objects 5] [--bytes 2048]
//!                              [--idle-binary target/release/csi-secrets-provider]
//!                              [--worker-threads N] [--settle 5s] [--files N]
//!                              [--templates shaping|copy]
//!
//! `--files N` makes every object a JSON secret (about `--bytes` long) and, when N > 0, adds N
//! templated `files` reading them (a DSN, a key=value loop, a JSON document, in turn):
//! `--files 0` and `--files 3` are the same mount without and with shaping. `--templates copy`
//! makes each of them only copy an object (`{{ objects["secret-0"] }}`): files of about the same
//! size with no parsing, to tell what the bytes cost from what the templates' work costs.
//!
//! `--worker-threads N` starts the provider with `serve --worker-threads N` (the node's cores no
//! longer decide it); RSS is also sampled `--settle` after the burst, to show what it returns.
//!
//! The provider is `test-provider` (the real CLI and server with the test backend, which serves
//! values without a cloud), so the figures are the provider's own cost, not a cloud's.
//! `--idle-binary` also reports the idle RSS of another provider binary serving its sockets.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use csi_secrets_provider_tests::bench::{cpu_time, flag_values, process_figures};
use csi_secrets_provider_tests::{DriverClient, ProviderProcess, wait_for_socket};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    mounts: usize,
    concurrency: usize,
    objects: usize,
    bytes: usize,
    idle_binary: Option<String>,
    worker_threads: Option<String>,
    settle: Duration,
    files: Option<usize>,
    /// `--templates copy`: templates that only copy an object each.
    copy_templates: bool,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options {
        mounts: 5000,
        concurrency: 100,
        objects: 5,
        bytes: 2048,
        idle_binary: None,
        worker_threads: None,
        settle: Duration::from_secs(5),
        files: None,
        copy_templates: false,
    };
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--mounts" => options.mounts = value.parse()?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--objects" => options.objects = value.parse()?,
            "--bytes" => options.bytes = value.parse()?,
            "--idle-binary" => options.idle_binary = Some(value),
            "--worker-threads" => options.worker_threads = Some(value),
            "--settle" => options.settle = humantime::parse_duration(&value)?,
            "--files" => options.files = Some(value.parse()?),
            "--templates" => {
                options.copy_templates = match value.as_str() {
                    "shaping" => false,
                    "copy" => true,
                    other => return Err(format!("--templates is shaping or copy, not {other}").into()),
                }
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

fn sibling(name: &str) -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().ok_or("no parent directory")?.join(name))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

async fn idle_rss(binary: &str) -> Result<(), BoxError> {
    let mut provider = ProviderProcess::serve(binary, &[])?;
    for backend in ["aws", "azure"] {
        if wait_for_socket(&provider.socket(backend), Duration::from_secs(10)).await.is_err() {
            eprintln!("({binary} does not serve {backend})");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = process_figures(provider.child.id())?.rss_kib;
    println!("idle RSS of {binary} serving its sockets: {:.1} MiB", rss as f64 / 1024.0);
    provider.signal("TERM")?;
    let _ = provider.wait(Duration::from_secs(10));
    Ok(())
}

/// `objects` of JSON secrets (`value`, about `bytes` long) and `files` with `count` templates
/// reading them (with `copy`, each only copies an object).
fn json_objects_and_templates(objects: usize, bytes: usize, count: usize, copy: bool) -> (String, String) {
    let padding = "p".repeat(bytes.saturating_sub(60));
    let objects = (0..objects)
        .map(|i| {
            format!(
                "- objectName: secret-{i}\n  value: '{{\"username\": \"user-{i}\", \"password\": \"{padding}\", \"host\": \"db-{i}\"}}'\n"
            )
        })
        .collect();
    let templates = [
        "{% set db = objects[\"secret-0\"] | fromjson %}postgres://{{ db.username }}:{{ db.password }}@{{ db.host }}/app",
        "{% for key, value in objects[\"secret-1\"] | fromjson | items %}{{ key }}={{ value }}\n{% endfor %}",
        "{{ {\"user\": (objects[\"secret-2\"] | fromjson).username, \"db\": objects[\"secret-0\"] | fromjson} | tojson }}",
    ];
    let copies =
        [r#"{{ objects["secret-0"] }}"#, r#"{{ objects["secret-1"] }}"#, r#"{{ objects["secret-2"] }}"#];
    let templates = if copy { copies } else { templates };
    let files = (0..count)
        .map(|i| format!("- path: built-{i}\n  template: '{}'\n", templates[i % templates.len()]))
        .collect();
    (objects, files)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let binary = sibling("test-provider")?;
    let binary = binary.to_str().ok_or("non-UTF-8 path")?.to_owned();
    if !Path::new(&binary).exists() {
        return Err(format!(
            "{binary} is missing: cargo build --release -p csi-secrets-provider-tests --bins"
        )
        .into());
    }
    let mut args = vec!["--backend", "test", "--log-format", "json"];
    if let Some(workers) = &options.worker_threads {
        args.extend(["--worker-threads", workers.as_str()]);
    }
    let mut provider = ProviderProcess::serve(&binary, &args)?;
    let socket = provider.socket("test");
    wait_for_socket(&socket, Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = provider.child.id();
    let idle = process_figures(pid)?.rss_kib;

    let (objects, files) = match options.files {
        None => (
            (0..options.objects)
                .map(|i| format!("- {{objectName: secret-{i}, sizeBytes: '{}'}}\n", options.bytes))
                .collect::<String>(),
            String::new(),
        ),
        Some(count) => {
            json_objects_and_templates(options.objects, options.bytes, count, options.copy_templates)
        }
    };
    let expected_files = options.objects + options.files.unwrap_or(0);
    let mut parameters = vec![("objects".to_owned(), objects)];
    if !files.is_empty() {
        parameters.push(("files".to_owned(), files));
    }
    let client = DriverClient::new(&socket);
    let pairs = |parameters: &[(String, String)]| -> Vec<(String, String)> { parameters.to_vec() };
    // Warm-up: connections and allocator.
    for _ in 0..20 {
        let borrowed: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = client.clone().mount(&borrowed).await?;
        if response.files.len() != expected_files {
            return Err(
                format!("a mount returned {} files, not {expected_files}", response.files.len()).into()
            );
        }
    }

    let cpu_before = cpu_time(pid)?;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(options.mounts);
    let mut next = 0;
    let mut running = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    while next < options.mounts || !running.is_empty() {
        while next < options.mounts && running.len() < options.concurrency {
            let mut client = client.clone();
            let owned = pairs(&parameters);
            running.push(async move {
                let borrowed: Vec<(&str, &str)> =
                    owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let t = Instant::now();
                let result = client.mount(&borrowed).await;
                (t.elapsed(), result.map(|r| r.files.len()))
            });
            next += 1;
        }
        if let Some((latency, result)) = running.next().await {
            if result? != expected_files {
                return Err("a mount returned the wrong number of files".into());
            }
            latencies.push(latency);
        }
    }
    let elapsed = started.elapsed();
    let provider_cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let after = process_figures(pid)?;
    let (rss, peak) = (after.rss_kib, after.peak_rss_kib);

    let mut version_latencies = Vec::new();
    let mut version_client = client.clone();
    for _ in 0..1000 {
        let t = Instant::now();
        version_client.version().await?;
        version_latencies.push(t.elapsed());
    }
    latencies.sort();
    version_latencies.sort();
    tokio::time::sleep(options.settle).await;
    let settled = process_figures(pid)?.rss_kib;
    provider.signal("TERM")?;
    let _ = provider.wait(Duration::from_secs(10));

    println!(
        "mounts: {} ({} objects of {} bytes each{}), concurrency {}",
        options.mounts,
        options.objects,
        options.bytes,
        options.files.map(|n| format!(", JSON values, {n} templated files")).unwrap_or_default(),
        options.concurrency
    );
    println!(
        "throughput: {:.0} mounts/s over {:.2} s",
        options.mounts as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "provider CPU (user + system): {:.1} us per mount",
        provider_cpu.as_secs_f64() * 1e6 / options.mounts as f64
    );
    println!(
        "mount latency: p50 {:.3} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "version latency (sequential): p50 {:.3} ms, p99 {:.3} ms",
        percentile(&version_latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&version_latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "provider RSS: idle {:.1} MiB, after {:.1} MiB, peak {:.1} MiB, {} after the burst {:.1} MiB",
        idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        humantime::format_duration(options.settle),
        settled as f64 / 1024.0
    );
    println!("provider worker threads: {}", options.worker_threads.as_deref().unwrap_or("the default"));
    if let Some(binary) = options.idle_binary {
        idle_rss(&binary).await?;
    }
    Ok(())
}

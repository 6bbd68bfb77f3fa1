//! The `csi-secrets-provider` command: `serve`, `validate` and `mount`, over the backends chosen
//! by Cargo features (`aws`, `azure`).
#![forbid(unsafe_code)]

pub mod cli;
mod json_log;
pub mod mount;
pub mod prepare_volume;
pub mod registry;
pub mod validate;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use csi_secrets_provider_core::SecretBackend;
use csi_secrets_provider_server::{BuildInfo, ServeOptions, ServiceConfig};

use crate::cli::{Cli, Command, LogFormat, ServeArgs};

/// The allocator of the static images (`--features mimalloc`); declared here so the shipped
/// binary and `test-provider` (which the benchmarks run) get the same one.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub use crate::registry::{KNOWN_BACKENDS, Registry};

/// Threads of the runtime's blocking pool at most.
const MAX_BLOCKING_THREADS: usize = 8;

/// Runs the command line with the compiled-in backends plus `extra` ones (tests add a backend
/// that lives in test code this way).
pub fn main_with<I, T>(args: I, extra: Vec<Arc<dyn SecretBackend>>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging(cli.log_format);
    if let Command::PrepareVolume(args) = &cli.command {
        return prepare_volume::run(&args.provider_volume, args.owner);
    }
    // Only a serving provider sees remounts; a one-off `mount` always reads fresh.
    let sharing = match &cli.command {
        Command::Serve(args) => args.sharing.options(),
        Command::Validate(_) | Command::Mount(_) | Command::PrepareVolume(_) => {
            csi_secrets_provider_core::SharingOptions::disabled()
        }
    };
    let mut registry = match Registry::compiled_in(&cli.backends, sharing) {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for backend in extra {
        registry.register(backend);
    }
    let workers = match &cli.command {
        Command::Serve(args) => usize::from(args.worker_threads),
        Command::Validate(_) | Command::Mount(_) | Command::PrepareVolume(_) => 1,
    };
    // Bounded whatever the node's size: the workers, and the blocking pool (DNS lookups of new
    // connections run there), whose threads would otherwise grow to 512 in a burst of new
    // connections and each keep an allocator heap. The workers' stacks are the shaping threads'
    // (reserved address space, committed only as used): a mount may start its templates on the
    // worker that serves it (`ShapingPool::with_inline`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_stack_size(csi_secrets_provider_core::shaping::bounds::RENDER_STACK_BYTES)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command, registry))
}

async fn run(command: Command, registry: Registry) -> ExitCode {
    match command {
        Command::Serve(args) => serve(args, registry).await,
        Command::Validate(args) => {
            let policy = match &args.policy {
                Some(path) => {
                    match validate::PolicyCheck::load(path, args.namespace.clone(), &args.service_account) {
                        Ok(check) => Some(check),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
                None => None,
            };
            let mut ok = true;
            for file in &args.files {
                let report = validate::validate_file(&registry, file, policy.as_ref());
                print!("{}", report.text);
                ok &= report.ok;
            }
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::PrepareVolume(args) => prepare_volume::run(&args.provider_volume, args.owner),
        Command::Mount(args) => match mount::run(&registry, &args).await {
            Ok(versions) => {
                for version in versions {
                    println!("{}\t{}", version.id, version.version);
                }
                eprintln!("wrote the files to {}", args.target.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(args: ServeArgs, registry: Registry) -> ExitCode {
    let backends = match registry.select(&args.backends) {
        Ok(backends) => backends,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = ServeOptions {
        provider_volume: args.provider_volume,
        health_addr: args.health_addr,
        grace_period: args.grace_period,
        service: ServiceConfig {
            max_response_bytes: args.limits.max_response_bytes,
            mount_timeout: args.limits.mount_timeout,
            // As many shaping threads as async workers: the node's cores are not ours to take.
            // Mounts may start their shaping on all workers but one (the runtime above gives
            // them the stacks templates need).
            shaping: csi_secrets_provider_server::ShapingPool::new(usize::from(args.worker_threads))
                .with_inline(usize::from(args.worker_threads).saturating_sub(1)),
            ..ServiceConfig::default()
        },
        build: BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            backends: cli::COMPILED_IN_BACKENDS.to_owned(),
        },
        policy_file: args.policy,
        audit_log: args.audit_log.as_deref().map(csi_secrets_provider_server::AuditTarget::parse),
        ..ServeOptions::default()
    };
    let shutdown = async {
        match csi_secrets_provider_server::termination_signal().await {
            Ok(signal) => tracing::info!(signal, "stop requested"),
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers; stopping");
            }
        }
    };
    match csi_secrets_provider_server::serve(options, backends, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "serve failed");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal; log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .event_format(json_log::JsonLines::new(tracing_subscriber::fmt::time::SystemTime))
            .try_init(),
    };
    // A second init (embedding, tests) keeps the first subscriber.
    drop(result);
}

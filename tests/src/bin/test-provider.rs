//! The real command line with the test backend added: lets process-level tests (signals, logs,
//! `mount`, `validate`) run without a cloud.
#![forbid(unsafe_code)]

use std::sync::Arc;

fn main() -> std::process::ExitCode {
    csi_secrets_provider::main_with(
        std::env::args_os(),
        vec![Arc::new(csi_secrets_provider_tests::TestBackend::default())],
    )
}

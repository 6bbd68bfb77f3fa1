#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    csi_secrets_provider::main_with(std::env::args_os(), Vec::new())
}

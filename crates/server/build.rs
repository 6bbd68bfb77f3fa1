//! Compiles the vendored driver proto with protox (pure Rust), so a fresh machine needs no
//! `protoc`. Client and server are both generated: the client serves the health probe, `mount`
//! tests and the test harness.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let service = proto_root.join("v1alpha1/service.proto");
    println!("cargo:rerun-if-changed={}", service.display());
    let descriptors = protox::compile([&service], [&proto_root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // File.contents are secret values: lib.rs implements a Debug that prints only the size.
        .skip_debug([".v1alpha1.File"])
        .compile_fds(descriptors)?;
    Ok(())
}

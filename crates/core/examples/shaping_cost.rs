//! What `files` costs a mount in the provider's own CPU, in process (no gRPC): the parse of the
//! `files` parameter (a cache hit after the first mount of a SecretProviderClass) and the
//! shaping of a mount's answer, for bench-mount's three templates and for each alone.
//!
//!   cargo run --release -p csi-secrets-provider-core --example shaping_cost [-- BYTES]
//!
//! BYTES (default 256) is about the size of each of the five JSON objects.

use std::time::Instant;

use csi_secrets_provider_core::shaping::{FilesSpec, shape};
use csi_secrets_provider_core::{FileMode, MountResponse, MountedFile, ObjectVersion};

type BoxError = Box<dyn std::error::Error>;

const ROUNDS: u32 = 5000;

const TEMPLATES: [(&str, &str); 3] = [
    (
        "dsn",
        r#"{% set db = objects["secret-0"] | fromjson %}postgres://{{ db.username }}:{{ db.password }}@{{ db.host }}/app"#,
    ),
    (
        "key=value loop",
        "{% for key, value in objects[\"secret-1\"] | fromjson | items %}{{ key }}={{ value }}\n{% endfor %}",
    ),
    (
        "json document",
        r#"{{ {"user": (objects["secret-2"] | fromjson).username, "db": objects["secret-0"] | fromjson} | tojson }}"#,
    ),
];

fn files_yaml(templates: &[&str]) -> String {
    templates
        .iter()
        .enumerate()
        .map(|(i, t)| format!("- path: built-{i}\n  template: '{}'\n", t.replace('\'', "''")))
        .collect()
}

fn mount(bytes: usize) -> MountResponse {
    let padding = "p".repeat(bytes.saturating_sub(60));
    let value =
        |i: usize| format!(r#"{{"username": "user-{i}", "password": "{padding}", "host": "db-{i}"}}"#);
    MountResponse {
        files: (0..5)
            .map(|i| MountedFile::new(format!("secret-{i}"), FileMode::DEFAULT, value(i).into_bytes()))
            .collect(),
        versions: (0..5).map(|i| ObjectVersion::new(format!("secret-{i}"), "1")).collect(),
        ..MountResponse::default()
    }
}

/// Microseconds per round of `shape` (the answer is built outside the timed part).
fn shaping(spec: &FilesSpec, bytes: usize) -> Result<f64, BoxError> {
    let mut total = std::time::Duration::ZERO;
    for _ in 0..ROUNDS {
        let mut response = mount(bytes);
        let started = Instant::now();
        shape(&mut response, spec, FileMode::DEFAULT, 1 << 22)?;
        total += started.elapsed();
    }
    Ok(total.as_secs_f64() * 1e6 / f64::from(ROUNDS))
}

fn main() -> Result<(), BoxError> {
    let bytes: usize = std::env::args().nth(1).map(|b| b.parse()).transpose()?.unwrap_or(256);
    let all = files_yaml(&TEMPLATES.map(|(_, t)| t));
    let started = Instant::now();
    for _ in 0..ROUNDS {
        FilesSpec::parse(Some(&all)).map_err(|e| format!("{e:?}"))?;
    }
    println!(
        "parse of `files` (3 templates, cached by its text): {:.2} us",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
    );
    let spec = FilesSpec::parse(Some(&all)).map_err(|e| format!("{e:?}"))?;
    println!("shape, 5 objects of ~{bytes} bytes, 3 templates: {:.2} us", shaping(&spec, bytes)?);
    for (label, template) in TEMPLATES {
        let one = FilesSpec::parse(Some(&files_yaml(&[template]))).map_err(|e| format!("{e:?}"))?;
        println!("  {label} alone: {:.2} us", shaping(&one, bytes)?);
    }
    println!("  nothing to shape: {:.2} us", shaping(&FilesSpec::default(), bytes)?);
    Ok(())
}

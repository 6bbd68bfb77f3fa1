//! Property tests of the GCP provider's parameters (`secrets` as a YAML list of `resourceName`,
//! `path`/`fileName`, `mode`, `extractJSONKey`/`extractYAMLKey`, `optional`, `jmesPath`, and
//! `auth`) through the backend's `validate`, as `validate` and every mount call it. Properties:
//! never a panic; every problem is `InvalidConfig` naming its object or field; an accepted
//! SecretProviderClass plans only files the driver can write, each once. `PROPTEST_CASES` sets
//! the number of cases (256 by default).

use csi_secrets_provider_core::{ErrorKind, Parameters, SecretBackend};
use csi_secrets_provider_gcp::{GcpBackend, GcpOptions};
use proptest::prelude::*;
use serde_norway::{Mapping, Value};

/// The driver's own path rules (mirrored from its Go code, `tests/src/driver_paths.rs`): an oracle
/// that shares nothing with the `FilePlan` checks whose output it judges.
#[path = "../../../tests/src/driver_paths.rs"]
mod driver_paths;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./-]{0,16}",
        "[0-9]{1,5}",
        Just("../x".to_owned()),
        Just("/".to_owned()),
        Just(String::new()),
        any::<String>(),
    ]
}

fn resource_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ("[a-z][a-z0-9-]{4,10}", "[a-zA-Z0-9_-]{1,12}", prop_oneof![Just("latest".to_owned()), "[0-9]{1,3}", "[a-z]{1,6}"])
            .prop_map(|(p, s, v)| format!("projects/{p}/secrets/{s}/versions/{v}")),
        2 => ("[a-z][a-z0-9-]{4,10}", "[a-z0-9-]{1,35}", "[a-zA-Z0-9_-]{1,12}")
            .prop_map(|(p, l, s)| format!("projects/{p}/locations/{l}/secrets/{s}/versions/latest")),
        1 => text(),
    ]
}

fn mode() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from("0400")),
        Just(Value::from("0999")),
        (0i64..1200).prop_map(Value::from),
        text().prop_map(Value::from),
        Just(Value::from(true)),
    ]
}

/// An entry as users write them, sometimes with a flaw.
fn plausible_secret() -> impl Strategy<Value = Value> {
    let path = prop::option::of(prop_oneof!["[a-z0-9_.-]{1,10}(/[a-z0-9]{1,4})?", text()]);
    let file_name = prop::option::of(prop_oneof!["[a-z0-9_.-]{1,10}", text()]);
    let extract = (prop::option::of("[a-z]{1,6}"), prop::option::of("[a-z]{1,6}"));
    let extras = (
        prop::option::of(mode()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::collection::vec(("[a-z]{1,6}", "[a-z0-9-]{1,8}"), 0..3)),
        prop::option::of(("[a-zA-Z]{1,12}", "[a-z]{0,6}")),
    );
    (resource_name(), path, file_name, extract, extras).prop_map(
        |(name, path, file_name, (json, yaml), (mode, optional, jmes, unknown))| {
            let mut map = Mapping::new();
            map.insert("resourceName".into(), name.into());
            for (key, value) in
                [("path", path), ("fileName", file_name), ("extractJSONKey", json), ("extractYAMLKey", yaml)]
            {
                if let Some(value) = value {
                    map.insert(key.into(), value.into());
                }
            }
            if let Some(mode) = mode {
                map.insert("mode".into(), mode);
            }
            if let Some(optional) = optional {
                map.insert("optional".into(), optional.into());
            }
            if let Some(entries) = jmes {
                let entries = entries
                    .into_iter()
                    .map(|(path, alias)| {
                        let mut entry = Mapping::new();
                        entry.insert("path".into(), path.into());
                        entry.insert("objectAlias".into(), alias.into());
                        Value::Mapping(entry)
                    })
                    .collect();
                map.insert("jmesPath".into(), Value::Sequence(entries));
            }
            if let Some((key, value)) = unknown {
                map.insert(key.into(), value.into());
            }
            Value::Mapping(map)
        },
    )
}

fn secrets() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(plausible_secret(), 1..5)
            .prop_map(|items| serde_norway::to_string(&Value::Sequence(items)).unwrap_or_default()),
        1 => any::<String>(),
    ]
}

fn parameters() -> impl Strategy<Value = Parameters> {
    let auth = prop::option::of(prop::sample::select(vec!["pod-adc", "provider-adc", "node", ""]));
    (secrets(), auth).prop_map(|(secrets, auth)| {
        let mut parameters = Parameters::default();
        parameters.insert("secrets", secrets);
        if let Some(auth) = auth {
            parameters.insert("auth", auth);
        }
        parameters
    })
}

/// One backend for every case.
static BACKEND: std::sync::LazyLock<Result<GcpBackend, csi_secrets_provider_core::Error>> =
    std::sync::LazyLock::new(|| GcpBackend::new(GcpOptions::default()));

/// The backend with default options (its HTTP client builds, or the test fails saying why).
fn backend() -> Result<&'static GcpBackend, TestCaseError> {
    BACKEND.as_ref().map_err(|e| TestCaseError::fail(e.to_string()))
}

proptest! {
    #[test]
    fn parameters_validate_or_name_each_problem(parameters in parameters()) {
        let validation = backend()?.validate(&parameters);
        for problem in &validation.problems {
            prop_assert_eq!(problem.kind(), ErrorKind::InvalidConfig);
            prop_assert!(problem.object().is_some() || problem.field().is_some(), "{problem} names neither object nor field");
        }
        if validation.problems.is_empty() {
            let mut seen = std::collections::HashSet::new();
            for file in validation.plan.files() {
                let written = driver_paths::driver_accepts(&file.path);
                prop_assert!(written.is_ok(), "{:?} planned but the driver refuses it: {:?}", file.path, written);
                prop_assert!(seen.insert(file.path.clone()), "{:?} planned twice", file.path);
                prop_assert!(file.mode.bits() <= 0o777);
            }
            prop_assert_eq!(validation.objects.len(), validation.reads.len());
        }
    }
}

/// The generator reaches accepted SecretProviderClasses too, so the file property is exercised.
#[test]
fn the_generator_produces_accepted_parameters() -> Result<(), TestCaseError> {
    use proptest::strategy::ValueTree;
    let backend = backend()?;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = parameters();
    let accepted = (0..2000)
        .filter_map(|_| strategy.new_tree(&mut runner).ok())
        .filter(|tree| backend.validate(&tree.current()).problems.is_empty())
        .count();
    assert!(accepted >= 20, "only {accepted} of 2000 generated parameter sets were accepted");
    Ok(())
}

/// Text an attacker puts where a location, project or prefix goes.
fn hostile_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9@#?/%:. \\\\-]{0,12}",
        "[ -~]{0,20}",
        any::<String>(),
        Just("x@127.0.0.1:5443#".to_owned()),
        Just("us-central1".to_owned()),
    ]
}

proptest! {
    /// Whatever is spliced into a resource name or prefix, what is accepted is of Google's
    /// grammar: nothing that could change the regional endpoint's host or another URL path.
    #[test]
    fn accepted_names_are_googles_whatever_is_spliced_in(
        project in hostile_part(),
        location in hostile_part(),
        id in hostile_part(),
    ) {
        let entries = serde_json::json!([
            { "resourcePrefix": format!("projects/{project}/locations/{location}/secrets/{id}"), "path": "d" },
            { "resourceName": format!("projects/{project}/locations/{location}/secrets/{id}/versions/1"), "path": "f" },
        ]);
        let secrets = serde_norway::to_string(&entries).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parameters: Parameters = [("secrets".to_owned(), secrets)].into_iter().collect();
        let validation = backend()?.validate(&parameters);
        if validation.problems.is_empty() {
            let host_safe = |s: &str| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert!(host_safe(&location), "location {location:?} accepted");
            let path_safe = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
            prop_assert!(path_safe(&project) && path_safe(&id), "{project:?} / {id:?} accepted");
        } else {
            for problem in &validation.problems {
                prop_assert_eq!(problem.kind(), ErrorKind::InvalidConfig);
            }
        }
    }
}

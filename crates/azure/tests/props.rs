//! Property tests of the Azure provider's parameters (`objects` as `array:` of YAML strings, the
//! identity switches, `filePermission`, `objectFormat`/`objectEncoding`, the per-object keys)
//! through the backend's `validate`, as `validate` and every mount call it. Properties: never a
//! panic; every problem is `InvalidConfig` naming its object or field; an accepted
//! SecretProviderClass plans only files the driver can write. `PROPTEST_CASES` sets the number
//! of cases (256 by default).

use csi_secrets_provider_azure::{AzureBackend, AzureOptions};
use csi_secrets_provider_core::{ErrorKind, Parameters, SecretBackend};
use proptest::prelude::*;
use serde_norway::{Mapping, Value};

/// The driver's own path rules (mirrored from its Go code, `tests/src/driver_paths.rs`): an oracle
/// that shares nothing with the `FilePlan` checks whose output it judges.
#[path = "../../../tests/src/driver_paths.rs"]
mod driver_paths;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./-]{0,16}",
        "[0-7+]{1,5}",
        Just("../x".to_owned()),
        Just("/".to_owned()),
        Just(String::new()),
        any::<String>(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// An entry as users write them, sometimes with a flaw.
fn plausible_object() -> impl Strategy<Value = Value> {
    let name = prop_oneof![3 => "[a-zA-Z0-9-]{1,12}", 1 => text()];
    let object_type = prop::sample::select(vec!["secret", "key", "cert", "other"]);
    let alias = prop::option::of(prop_oneof!["[a-z0-9_.-]{1,10}", text()]);
    let permission = prop::option::of(prop_oneof![Just("0600".to_owned()), Just("644".to_owned()), text()]);
    let format = prop::option::of(prop::sample::select(vec!["pem", "PFX", "pfx", "der"]));
    let encoding = prop::option::of(prop::sample::select(vec!["utf-8", "hex", "base64", "rot13"]));
    let history = prop::option::of(prop_oneof![0u32..4, Just(40)]);
    let extras = (
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof!["[a-z0-9-]{3,12}", text()]),
        prop::option::of(prop::collection::vec(("[a-z]{1,6}", "[a-z0-9-]{1,8}"), 0..3)),
    );
    (name, object_type, alias, permission, format, encoding, history, extras).prop_map(
        |(name, object_type, alias, permission, format, encoding, history, (optional, vault, jmes))| {
            let mut map = Mapping::new();
            map.insert("objectName".into(), name.into());
            map.insert("objectType".into(), object_type.into());
            let strings = [("objectAlias", alias), ("filePermission", permission), ("keyvaultName", vault)];
            for (key, value) in strings {
                if let Some(value) = value {
                    map.insert(key.into(), value.into());
                }
            }
            for (key, value) in [("objectFormat", format), ("objectEncoding", encoding)] {
                if let Some(value) = value {
                    map.insert(key.into(), value.into());
                }
            }
            if let Some(history) = history {
                map.insert("objectVersionHistory".into(), u64::from(history).into());
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
            Value::Mapping(map)
        },
    )
}

fn random_object() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-zA-Z]{1,14}", scalar()), 0..6)
        .prop_map(|entries| Value::Mapping(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
}

/// `objects`: `array:` of YAML strings (as users write them) or of mappings, or anything.
fn objects() -> impl Strategy<Value = String> {
    let item = prop_oneof![3 => plausible_object(), 1 => random_object()]
        .prop_map(|object| Value::from(serde_norway::to_string(&object).unwrap_or_default()));
    prop_oneof![
        5 => prop::collection::vec(item, 1..5).prop_map(|items| {
            let mut top = Mapping::new();
            top.insert("array".into(), Value::Sequence(items));
            serde_norway::to_string(&Value::Mapping(top)).unwrap_or_default()
        }),
        1 => any::<String>(),
    ]
}

fn parameters() -> impl Strategy<Value = Parameters> {
    let vault = prop_oneof![4 => Just("my-vault".to_owned()), 1 => text()];
    let tenant = prop_oneof![4 => Just("00000000-0000-0000-0000-000000000001".to_owned()), 1 => text()];
    let switches = (
        prop::option::of(text()),
        prop::option::of(prop::sample::select(vec!["true", "false", "maybe"])),
        prop::option::of(prop::sample::select(vec!["true", "false", "1"])),
        prop::option::of(prop::sample::select(vec!["AzurePublicCloud", "AzureStackCloud", "Mars"])),
    );
    (objects(), vault, tenant, switches).prop_map(
        |(objects, vault, tenant, (client_id, pod_identity, vm, cloud))| {
            let mut parameters = Parameters::default();
            parameters.insert("objects", objects);
            parameters.insert("keyvaultName", vault);
            parameters.insert("tenantId", tenant);
            let optional = [
                ("clientID", client_id),
                ("usePodIdentity", pod_identity.map(str::to_owned)),
                ("useVMManagedIdentity", vm.map(str::to_owned)),
                ("cloudName", cloud.map(str::to_owned)),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    parameters.insert(name, value);
                }
            }
            parameters
        },
    )
}

/// One backend for every case: building one loads the system's CA roots, which costs more
/// than a case.
static BACKEND: std::sync::LazyLock<Result<AzureBackend, csi_secrets_provider_core::Error>> =
    std::sync::LazyLock::new(|| AzureBackend::new(AzureOptions::default()));

/// The backend with default options (its HTTP client builds, or the test fails saying why).
fn backend() -> Result<&'static AzureBackend, TestCaseError> {
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
            for file in validation.plan.files() {
                let written = driver_paths::driver_accepts(&file.path);
                prop_assert!(written.is_ok(), "{:?} planned but the driver refuses it: {:?}", file.path, written);
            }
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

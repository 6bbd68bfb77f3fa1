//! Property tests of the AWS provider's parameters (`objects` as a YAML list, `jmesPath`,
//! `failoverObject`, `filePermission`, the per-object keys) through the backend's `validate`, as
//! `validate` and every mount call it. Properties: never a panic; every problem is
//! `InvalidConfig` naming its object or field; an accepted SecretProviderClass plans only files
//! the driver can write. `PROPTEST_CASES` sets the number of cases (256 by default).

use csi_secrets_provider_aws::{AwsBackend, AwsOptions};
use csi_secrets_provider_core::{ErrorKind, Parameters, SecretBackend};
use proptest::prelude::*;
use serde_norway::Value;

/// The driver's own path rules (mirrored from its Go code, `tests/src/driver_paths.rs`): an oracle
/// that shares nothing with the `FilePlan` checks whose output it judges.
#[path = "../../../tests/src/driver_paths.rs"]
mod driver_paths;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./:-]{0,16}",
        "[0-7]{3,5}",
        Just("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".to_owned()),
        Just("arn:aws:ssm:eu-west-1:123456789012:parameter/app/x".to_owned()),
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

fn key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(known).prop_map(str::to_owned),
        1 => prop::sample::select(known).prop_map(str::to_ascii_lowercase),
        1 => "[a-zA-Z]{1,10}",
    ]
}

fn mapping(known: &'static [&'static str], value: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop::collection::vec((key(known), value), 0..7)
        .prop_map(|entries| Value::Mapping(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
}

/// An entry as users write them, sometimes with a flaw.
fn plausible_object() -> impl Strategy<Value = Value> {
    let name = prop_oneof!["[a-zA-Z0-9_-]{1,10}", "[a-z]{1,5}/[a-z0-9]{1,5}", text()];
    let object_type = prop::sample::select(vec!["secretsmanager", "ssmparameter", "ssm", "other"]);
    let alias = prop::option::of(prop_oneof!["[a-z0-9_.-]{1,10}", text()]);
    let permission = prop::option::of(prop_oneof![Just("0600".to_owned()), Just("0644".to_owned()), text()]);
    let jmes = prop::option::of(prop::collection::vec(("[a-z]{1,6}", "[a-z0-9-]{1,8}"), 0..3));
    let optional = prop::option::of(any::<bool>());
    (name, object_type, alias, permission, jmes, optional).prop_map(
        |(name, object_type, alias, permission, jmes, optional)| {
            let mut map = serde_norway::Mapping::new();
            map.insert("objectName".into(), name.into());
            map.insert("objectType".into(), object_type.into());
            if let Some(alias) = alias {
                map.insert("objectAlias".into(), alias.into());
            }
            if let Some(permission) = permission {
                map.insert("filePermission".into(), permission.into());
            }
            if let Some(entries) = jmes {
                let entries: Vec<Value> = entries
                    .into_iter()
                    .map(|(path, alias)| {
                        let mut entry = serde_norway::Mapping::new();
                        entry.insert("path".into(), path.into());
                        entry.insert("objectAlias".into(), alias.into());
                        Value::Mapping(entry)
                    })
                    .collect();
                map.insert("jmesPath".into(), Value::Sequence(entries));
            }
            if let Some(optional) = optional {
                map.insert("optional".into(), optional.into());
            }
            Value::Mapping(map)
        },
    )
}

fn object() -> impl Strategy<Value = Value> {
    prop_oneof![3 => plausible_object(), 1 => random_object()]
}

fn random_object() -> impl Strategy<Value = Value> {
    const OBJECT: &[&str] = &[
        "objectName",
        "objectType",
        "objectAlias",
        "objectVersion",
        "objectVersionLabel",
        "filePermission",
        "jmesPath",
        "failoverObject",
        "optional",
        "region",
    ];
    const JMES: &[&str] = &["path", "objectAlias", "filePermission"];
    const FAILOVER: &[&str] = &["objectName", "objectVersion", "objectVersionLabel"];
    let nested = prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(mapping(JMES, scalar().boxed()), 0..3).prop_map(Value::Sequence),
        1 => mapping(FAILOVER, scalar().boxed()),
    ]
    .boxed();
    mapping(OBJECT, nested)
}

fn parameters() -> impl Strategy<Value = Parameters> {
    let objects = prop_oneof![
        4 => prop::collection::vec(object(), 1..5).prop_map(|items| serde_norway::to_string(&Value::Sequence(items)).unwrap_or_default()),
        1 => any::<String>(),
    ];
    let region = prop::option::of(prop_oneof![Just("us-east-1".to_owned()), text()]);
    (objects, region, prop::option::of(text()), prop::option::of(text()), prop::option::of(text())).prop_map(
        |(objects, region, failover, translation, pod_identity)| {
            let mut parameters = Parameters::default();
            parameters.insert("objects", objects);
            for (name, value) in [
                ("region", region),
                ("failoverRegion", failover),
                ("pathTranslation", translation),
                ("usePodIdentity", pod_identity),
            ] {
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
static BACKEND: std::sync::LazyLock<Result<AwsBackend, csi_secrets_provider_core::Error>> =
    std::sync::LazyLock::new(|| AwsBackend::new(AwsOptions::default()));

/// The backend with default options (its HTTP client builds, or the test fails saying why).
fn backend() -> Result<&'static AwsBackend, TestCaseError> {
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
            prop_assert!(!validation.plan.files().is_empty(), "accepted without a file");
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

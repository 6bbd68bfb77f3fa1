//! Property tests of everything core parses from outside: the driver's attributes, secrets and
//! token JSON, file modes, file paths, and SecretProviderClass manifests. Properties: never a
//! panic; a rejection is `InvalidConfig` and names its field; nothing accepted that the driver
//! cannot write. `PROPTEST_CASES` sets the number of cases (256 by default; the figures in
//! docs/benchmarks.md come from 1,000,000).

use csi_secrets_provider_core::spc::{Document, parse_documents};
use csi_secrets_provider_core::{ErrorKind, FileMode, FilePlan, MountRequest};
use proptest::prelude::*;

/// The driver's own path rules (mirrored from its Go code, `tests/src/driver_paths.rs`): an oracle
/// that shares nothing with the `FilePlan` checks whose output it judges.
#[path = "../../../tests/src/driver_paths.rs"]
mod driver_paths;

/// Text that looks like what the fields hold, with the characters that break parsers.
fn fieldish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./-]{0,12}",
        "[0-9]{0,6}",
        "[ -~]{0,24}",
        any::<String>(),
        Just("../etc/passwd".to_owned()),
        Just("/abs".to_owned()),
        Just("a//b".to_owned()),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        fieldish().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(fieldish(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Attribute maps as the driver sends them, with the keys that matter and random ones.
fn attributes() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("csi.storage.k8s.io/pod.namespace".to_owned()),
        Just("csi.storage.k8s.io/pod.name".to_owned()),
        Just("csi.storage.k8s.io/serviceAccount.name".to_owned()),
        Just("csi.storage.k8s.io/serviceAccount.tokens".to_owned()),
        Just("secretProviderClass".to_owned()),
        fieldish(),
    ];
    prop_oneof![
        prop::collection::btree_map(key, prop_oneof![fieldish(), tokens_json()], 0..6)
            .prop_map(|m| serde_json::to_string(&m).unwrap_or_default()),
        json_value().prop_map(|v| v.to_string()),
        any::<String>(),
    ]
}

fn tokens_json() -> impl Strategy<Value = String> {
    let token = (fieldish(), prop_oneof![fieldish(), Just("2099-01-01T00:00:00Z".to_owned())])
        .prop_map(|(token, expiry)| serde_json::json!({ "token": token, "expirationTimestamp": expiry }));
    prop_oneof![
        prop::collection::btree_map(fieldish(), token, 0..3)
            .prop_map(|m| serde_json::to_string(&m).unwrap_or_default()),
        json_value().prop_map(|v| v.to_string()),
    ]
}

proptest! {
    #[test]
    fn driver_requests_decode_or_fail_as_invalid_config(
        attributes in attributes(),
        secrets in prop_oneof![json_value().prop_map(|v| v.to_string()), Just("null".to_owned()), any::<String>()],
        permission in fieldish(),
        target in fieldish(),
    ) {
        match MountRequest::from_driver(&attributes, &secrets, &target, &permission, Vec::new()) {
            Ok(request) => prop_assert!(request.default_mode.bits() <= 0o777),
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig);
                prop_assert!(e.field().is_some(), "{e} names no field");
            }
        }
    }

    #[test]
    fn file_modes_parse_to_permission_bits_only(value in fieldish()) {
        for parsed in [
            FileMode::parse_four_octal_digits(&value),
            FileMode::parse_go_octal(&value),
            FileMode::from_driver_permission(&value),
        ] {
            match parsed {
                Ok(mode) => prop_assert!(mode.bits() <= 0o777),
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig),
            }
        }
    }

    #[test]
    fn planned_files_are_ones_the_driver_can_write(paths in prop::collection::vec(fieldish(), 1..6)) {
        let mut plan = FilePlan::new();
        for (i, path) in paths.iter().enumerate() {
            if let Err(e) = plan.add(&format!("object-{i}"), path.clone(), FileMode::DEFAULT) {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig);
                prop_assert!(e.object().is_some(), "{e} names no object");
            }
        }
        for file in plan.files() {
            let written = driver_paths::driver_accepts(&file.path);
                prop_assert!(written.is_ok(), "{:?} planned but the driver refuses it: {:?}", file.path, written);
        }
    }

    #[test]
    fn manifests_parse_or_fail_as_invalid_config(
        text in prop_oneof![
            any::<String>(),
            json_value().prop_map(|v| serde_norway::to_string(&v).unwrap_or_default()),
            (fieldish(), fieldish(), json_value()).prop_map(|(name, provider, parameters)| format!(
                "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: {name:?}}}\nspec:\n  provider: {provider:?}\n  parameters: {parameters}\n"
            )),
        ]
    ) {
        match parse_documents(&text) {
            Ok(documents) => {
                for document in documents {
                    if let Document::SecretProviderClass { problems, .. } = document {
                        for problem in problems {
                            prop_assert_eq!(problem.kind(), ErrorKind::InvalidConfig);
                        }
                    }
                }
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig),
        }
    }
}

/// Pieces hostile templates are made of: operators that grow values, loops, namespaces that
/// keep values across iterations, nesting, filters that build text or lists, and values of a
/// secret.
fn template_piece() -> impl Strategy<Value = String> {
    let expression = prop_oneof![
        Just("objects.s".to_owned()),
        Just("ns.x".to_owned()),
        Just("[ns.x]".to_owned()),
        Just("[[[[[[[[ns.x]]]]]]]]".to_owned()),
        Just("{'k': ns.x}".to_owned()),
        "[0-9]{1,12}",
        "'[a-z]{0,4}'",
        Just("range(100000)".to_owned()),
        Just("(objects.s | fromjson)".to_owned()),
        Just("[ns.x, ns.x, ns.x, ns.x, ns.x, ns.x, ns.x, ns.x]".to_owned()),
        Just("(ns.x, ns.x, ns.x, ns.x)".to_owned()),
        Just("{'a': ns.x, 'b': ns.x, 'c': ns.x}".to_owned()),
        Just("dict(a=ns.x, b=ns.x, c=ns.x)".to_owned()),
        Just("namespace(a=ns.x, b=ns.x)".to_owned()),
        // The namespace itself: set into itself, it would hold itself.
        Just("ns".to_owned()),
        Just("[ns, ns.x]".to_owned()),
    ];
    let operator = prop::sample::select(vec![" ~ ", " + ", " * ", " - ", " // ", " ** ", " == ", " in "]);
    let filter = prop::sample::select(vec![
        "",
        "| join",
        "| string",
        "| tojson",
        "| list",
        "| split(',')",
        "| lines",
        "| sum",
        "| length",
        "| join(ns.x)",
        "| replace('a', ns.x)",
        "| upper",
        "| batch(1000)",
        "| unique",
        "| reverse",
    ]);
    let binary = (expression.clone(), operator, expression.clone(), filter)
        .prop_map(|(a, op, b, f)| format!("({a}{op}{b}) {f}"));
    prop_oneof![
        binary.clone().prop_map(|e| format!("{{% set ns.x = {e} %}}")),
        // Any value into the namespace (itself, or a list holding it), then printed or compared.
        expression.clone().prop_map(|e| format!("{{% set ns.x = {e} %}}{{{{ ns }}}}{{{{ ns == ns.x }}}}")),
        binary.clone().prop_map(|e| format!("{{{{ {e} }}}}")),
        (1u32..100_000, binary)
            .prop_map(|(n, e)| format!("{{% for i in range({n}) %}}{{% set ns.x = {e} %}}{{% endfor %}}")),
        expression.prop_map(|e| format!("{{% set t %}}{{{{ {e} }}}}{{% endset %}}{{{{ t ~ t }}}}")),
        "[ -~]{0,16}",
    ]
}

fn hostile_template() -> impl Strategy<Value = String> {
    prop::collection::vec(template_piece(), 1..6)
        .prop_map(|pieces| format!("{{% set ns = namespace(x='ab') %}}{}", pieces.concat()))
}

/// Hostile templates over a secret: compiled and rendered as the server does (on a thread
/// with the shaping pool's stack), they never panic, abort or write past the cap, and every
/// failure is `InvalidConfig` naming the entry. Run on a thread of its own with the shaping
/// threads' stack, as the server runs them.
#[test]
fn hostile_templates_render_within_their_bounds_or_fail_cleanly() -> Result<(), String> {
    use csi_secrets_provider_core::shaping::{FilesSpec, bounds::RENDER_STACK_BYTES, shape};
    use csi_secrets_provider_core::{MountResponse, MountedFile, ObjectVersion};
    // The server's default cap (--max-response-bytes): a smaller one stopped the printing of a
    // namespace that held itself before it went deep enough to abort.
    const CAP: usize = 4 * 1024 * 1024;
    let run = || {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::default());
        runner
            .run(&hostile_template(), |template| {
                let yaml =
                    serde_norway::to_string(&serde_json::json!([{ "path": "out", "template": template }]))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let Ok(files) = FilesSpec::parse(Some(&yaml)) else { return Ok(()) };
                let mut response = MountResponse {
                    files: vec![MountedFile::new(
                        "s",
                        FileMode::DEFAULT,
                        br#"{"a": [1, 2], "b": "xyz"}"#.to_vec(),
                    )],
                    versions: vec![ObjectVersion::new("s", "1")],
                    ..MountResponse::default()
                };
                match shape(&mut response, &files, FileMode::DEFAULT, CAP) {
                    Ok(_) => {
                        for file in &response.files {
                            prop_assert!(file.contents.len() <= CAP, "{} bytes", file.contents.len());
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{}", e);
                        prop_assert!(e.field().is_some(), "{e} names no field");
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    };
    std::thread::Builder::new()
        .stack_size(RENDER_STACK_BYTES)
        .spawn(run)
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "the renders panicked".to_owned())?
}

use super::params::{AddressType, IdentityMode, ObjectType, parse};
use super::*;
use csi_secrets_provider_core::FileMode;

fn params(pairs: &[(&str, &str)]) -> Parameters {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn problems(pairs: &[(&str, &str)]) -> Vec<String> {
    match parse(&params(pairs), FileMode::DEFAULT) {
        Ok(spec) => panic!("expected problems, got {spec:?}"),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

const PULUMI_SEED: &str = r#"
- objectName: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
  objectAlias: "db-password"
- objectName: "arn:aws:ssm:us-east-1:123456789012:parameter/prod/api-key"
  objectAlias: "api-key"
"#;

#[test]
fn seed_shape_arns_and_aliases() -> std::result::Result<(), Vec<Error>> {
    let spec = parse(&params(&[("objects", PULUMI_SEED), ("region", "us-east-1")]), FileMode::DEFAULT)?;
    assert_eq!(spec.objects.len(), 2);
    assert_eq!(spec.objects[0].object_type, ObjectType::SecretsManager);
    assert_eq!(spec.objects[1].object_type, ObjectType::SsmParameter);
    let files: Vec<&str> = spec.plan.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["db-password", "api-key"]);
    assert_eq!(spec.identity, IdentityMode::Irsa);
    Ok(())
}

#[test]
fn names_translate_slashes_and_translation_can_be_off() -> std::result::Result<(), Vec<Error>> {
    let objects = "- objectName: /prod/db/password\n  objectType: ssmparameter\n";
    let spec = parse(&params(&[("objects", objects)]), FileMode::DEFAULT)?;
    assert_eq!(spec.objects[0].file_name, "_prod_db_password");
    let spec = parse(&params(&[("objects", objects), ("pathTranslation", "-")]), FileMode::DEFAULT)?;
    assert_eq!(spec.objects[0].file_name, "-prod-db-password");
    let spec = parse(&params(&[("objects", objects), ("pathTranslation", "False")]), FileMode::DEFAULT)?;
    assert_eq!(spec.objects[0].file_name, "prod/db/password");
    let bad = problems(&[("objects", objects), ("pathTranslation", "__")]);
    assert!(has(&bad, "pathTranslation must be either 'False' or a single character string"), "{bad:?}");
    Ok(())
}

#[test]
fn object_type_rules_keep_upstream_words() {
    let cases = [
        ("- objectName: plain\n", "Must use objectType when a full ARN is not specified: plain"),
        ("- objectName: x\n  objectType: ssm\n", "Invalid objectType: ssm"),
        ("- objectName: arn:aws:s3:us-east-1:1:bucket/x\n", "Invalid service in ARN: s3"),
        (
            "- objectName: arn:aws:ssm:us-east-1:1:parameter/x\n  objectType: secretsmanager\n",
            "objectType does not match ARN",
        ),
        ("- objectName: arn:broken\n", "Invalid ARN format in object name"),
        ("- objectType: secretsmanager\n", "Object name must be specified"),
        (
            "- objectName: x\n  objectType: ssmparameter\n  objectVersion: 2\n  objectVersionLabel: l\n",
            "ssm parameters can not specify both",
        ),
        (
            "- objectName: x\n  objectType: secretsmanager\n  filePermission: \"644\"\n",
            "Invalid File Permission: 644",
        ),
        (
            "- objectName: x\n  objectType: secretsmanager\n  filePermission: \"0999\"\n",
            "Invalid File Permission: 0999",
        ),
    ];
    for (objects, expected) in cases {
        let found = problems(&[("objects", objects)]);
        assert!(has(&found, expected), "{objects:?}: {found:?}");
    }
}

#[test]
fn arn_region_must_match() {
    let objects = "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x\n";
    let found = problems(&[("objects", objects), ("region", "us-east-1")]);
    assert!(has(&found, "ARN region must match region us-east-1"), "{found:?}");
    let found = problems(&[("objects", objects), ("region", "us-west-2"), ("failoverRegion", "us-west-2")]);
    assert!(has(&found, "us-west-2: failover region cannot be the same as the primary region"), "{found:?}");
}

#[test]
fn duplicates_keep_upstream_words_and_name_object_and_field() {
    let objects = "- {objectName: a, objectType: secretsmanager, objectAlias: same}\n- {objectName: b, objectType: secretsmanager, objectAlias: same}\n";
    let found = problems(&[("objects", objects)]);
    assert!(
        has(&found, r#"object "b", field "objectAlias": found duplicate object alias same"#),
        "{found:?}"
    );

    let objects =
        "- {objectName: a, objectType: secretsmanager}\n- {objectName: a, objectType: secretsmanager}\n";
    let found = problems(&[("objects", objects)]);
    assert!(
        has(&found, "found descriptor with duplicate object name a, no object alias, and no version label"),
        "{found:?}"
    );

    // Same name with different labels is fine (current and previous of one secret).
    let objects = "- {objectName: a, objectType: secretsmanager}\n- {objectName: a, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS, objectAlias: a-prev}\n";
    assert!(parse(&params(&[("objects", objects)]), FileMode::DEFAULT).is_ok());

    let objects = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: x\n  jmesPath:\n    - {path: user, objectAlias: x}\n";
    let found = problems(&[("objects", objects)]);
    assert!(
        has(
            &found,
            "Name already in use for objectAlias: found duplicate object alias x in JMES path entry user"
        ),
        "{found:?}"
    );

    // What upstream lets through mounts, the last object winning, with a warning: a derived
    // name equal to another alias, a jmesPath alias equal to its own objectName, names equal
    // after path translation.
    for objects in [
        "- {objectName: a, objectType: secretsmanager, objectAlias: b}\n- {objectName: b, objectType: secretsmanager}\n",
        "- objectName: b\n  objectType: secretsmanager\n  jmesPath:\n    - {path: user, objectAlias: b}\n",
        "- {objectName: x/b, objectType: secretsmanager}\n- {objectName: x_b, objectType: secretsmanager}\n",
    ] {
        let spec = parse(&params(&[("objects", objects)]), FileMode::DEFAULT).map_err(|e| format!("{e:?}"));
        let warnings: Vec<String> =
            spec.iter().flat_map(|s| s.plan.warnings()).map(ToString::to_string).collect();
        assert!(warnings.iter().any(|w| w.contains("the last one wins")), "{objects}: {spec:?}");
    }
}

#[test]
fn object_keys_match_in_any_case_and_unknown_keys_are_named() -> std::result::Result<(), Vec<Error>> {
    let objects = "- objectname: db\n  OBJECTTYPE: secretsmanager\n  objectalias: db-file\n  objectAlais: typo\n  jmespath:\n    - {Path: user, objectalias: user, colour: red}\n";
    let spec = parse(&params(&[("objects", objects)]), FileMode::DEFAULT)?;
    let object = &spec.objects[0];
    assert_eq!((object.name.as_str(), object.file_name.as_str()), ("db", "db-file"));
    assert_eq!(object.jmes.first().map(|j| j.file_name.as_str()), Some("user"));
    let warnings: Vec<String> = spec.plan.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"object "db", field "objectAlais": unknown key `objectAlais` is ignored (did you mean `objectAlias`?)"#,
            r#"object "db", field "jmesPath[0].colour": unknown key `colour` is ignored"#,
        ]
    );
    Ok(())
}

#[test]
fn traversal_is_refused() {
    for objects in [
        "- {objectName: x, objectType: secretsmanager, objectAlias: ../etc/passwd}\n",
        "- {objectName: x, objectType: secretsmanager, objectAlias: ..}\n",
    ] {
        let found = problems(&[("objects", objects), ("pathTranslation", "false")]);
        assert!(has(&found, "path can not contain ../: x"), "{found:?}");
    }
}

#[test]
fn jmes_entries_and_failover() -> std::result::Result<(), Vec<Error>> {
    let objects = r#"
- objectName: db
  objectType: secretsmanager
  objectAlias: db
  filePermission: "0600"
  jmesPath:
    - path: '"user-name"'
      objectAlias: user
    - path: password
      objectAlias: pass
      filePermission: "0400"
  failoverObject:
    objectName: arn:aws:secretsmanager:us-west-2:1:secret:db-x
"#;
    let spec = parse(
        &params(&[("objects", objects), ("region", "us-east-1"), ("failoverRegion", "us-west-2")]),
        FileMode::DEFAULT,
    )?;
    let object = &spec.objects[0];
    assert_eq!(object.jmes.len(), 2);
    assert_eq!(object.jmes[0].mode.bits(), 0o600, "jmes entries inherit the parent's mode");
    assert_eq!(object.jmes[1].mode.bits(), 0o400);
    assert_eq!(object.target(true).name, "arn:aws:secretsmanager:us-west-2:1:secret:db-x");
    assert_eq!(object.target(false).name, "db");
    assert_eq!(spec.plan.len(), 3);

    let found = problems(&[(
        "objects",
        "- objectName: db\n  objectType: secretsmanager\n  failoverObject: {objectName: other}\n",
    )]);
    assert!(has(&found, "object alias must be specified for objects with failover entries: db"), "{found:?}");
    assert!(has(&found, "failover object allowed only when failover region is defined: db"), "{found:?}");
    let found = problems(&[(
        "objects",
        "- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n    - {objectAlias: u}\n    - {path: p}\n",
    )]);
    assert!(has(&found, "Path must be specified for JMES object"), "{found:?}");
    assert!(has(&found, "Object alias must be specified for JMES object"), "{found:?}");
    Ok(())
}

#[test]
fn identity_parameters() -> std::result::Result<(), Vec<Error>> {
    let objects = "- {objectName: a, objectType: secretsmanager}\n";
    let spec = parse(
        &params(&[("objects", objects), ("usePodIdentity", "True"), ("preferredAddressType", "IPv6")]),
        FileMode::DEFAULT,
    )?;
    assert_eq!(spec.identity, IdentityMode::PodIdentity(AddressType::Ipv6));
    let spec = parse(
        &params(&[("objects", objects), ("usePodIdentity", "1"), ("preferredAddressType", "weird")]),
        FileMode::DEFAULT,
    )?;
    assert_eq!(spec.identity, IdentityMode::PodIdentity(AddressType::Auto));
    let found = problems(&[("objects", objects), ("usePodIdentity", "yes")]);
    assert!(has(&found, "failed to parse usePodIdentity value"), "{found:?}");
    Ok(())
}

#[test]
fn objects_must_be_a_yaml_list() {
    assert!(has(&problems(&[]), "objects is not set"));
    assert!(has(&problems(&[("objects", "a: b")]), "must be a YAML list"));
    assert!(has(&problems(&[("objects", "- [")]), "not valid YAML"));
    assert!(has(&problems(&[("objects", "- just-a-string")]), "Empty descriptor entry"));
    // numbers read as strings, as Go's decoder does
    let objects = "- {objectName: a, objectType: ssmparameter, objectVersion: 3}\n";
    let spec = parse(&params(&[("objects", objects)]), FileMode::DEFAULT).ok();
    assert_eq!(spec.and_then(|s| s.objects[0].version.clone()).as_deref(), Some("3"));
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let objects = "- {objectName: a, objectType: bogus}\n- {objectName: b, objectType: secretsmanager, filePermission: '9'}\n";
    let found = problems(&[("objects", objects), ("pathTranslation", "xx")]);
    assert_eq!(found.len(), 3, "{found:?}");
}

/// The policy check's parse is the one the mount reads (`MountRequest::parsed`).
#[test]
fn prepare_keeps_the_parse_in_the_mount_s_type() -> Result<()> {
    let backend = AwsBackend::new(AwsOptions::default())?;
    let prepared =
        backend.prepare(&params(&[("objects", PULUMI_SEED), ("region", "us-east-1")]), FileMode::DEFAULT);
    assert!(prepared.validation.problems.is_empty());
    assert_eq!(prepared.validation.reads.len(), 2);
    assert!(prepared.parsed.as_ref().and_then(|p| p.get::<MountSpec>()).is_some());
    let failed = backend.prepare(&params(&[("objects", "- {}")]), FileMode::DEFAULT);
    assert!(!failed.validation.problems.is_empty());
    assert!(failed.parsed.is_none());
    Ok(())
}

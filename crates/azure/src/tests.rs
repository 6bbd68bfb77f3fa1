use super::params::{IdentityMode, ObjectEncoding, ObjectFormat, ObjectType, parse};
use super::*;
use csi_secrets_provider_core::FileMode;

fn params(pairs: &[(&str, &str)]) -> Parameters {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

const SEED_OBJECTS: &str = "array:\n  - |\n    objectName: sql-password\n    objectType: secret\n    objectVersion: \"\"\n    objectAlias: SQL_PASSWORD\n  - |\n    objectName: tls\n    objectType: cert\n";

fn base(objects: &str) -> Vec<(&str, &str)> {
    vec![("keyvaultName", "kv-prod"), ("tenantId", "tenant"), ("clientID", "client"), ("objects", objects)]
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

#[test]
fn seed_blog_shape() -> std::result::Result<(), Vec<Error>> {
    let spec = parse(&params(&base(SEED_OBJECTS)), FileMode::DEFAULT)?;
    assert_eq!(spec.identity, IdentityMode::Workload { client_id: "client".to_owned() });
    assert_eq!(spec.tenant_id, "tenant");
    let files: Vec<&str> = spec.plan.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["SQL_PASSWORD", "tls"]);
    assert_eq!(spec.objects[0].version, None, "an empty objectVersion means latest");
    assert_eq!(spec.objects[0].version_id(), "secret/sql-password");
    assert_eq!(spec.objects[1].object_type, ObjectType::Cert);
    Ok(())
}

#[test]
fn tenant_id_spellings() -> std::result::Result<(), Vec<Error>> {
    let mut pairs = base(SEED_OBJECTS);
    pairs.push(("tenantID", "preferred"));
    assert_eq!(parse(&params(&pairs), FileMode::DEFAULT)?.tenant_id, "preferred");
    let found = problems(&[("keyvaultName", "kv-prod"), ("objects", SEED_OBJECTS)]);
    assert!(has(&found, "tenantId is not provided"), "{found:?}");
    Ok(())
}

#[test]
fn vault_and_identity_rules() {
    let found = problems(&[("tenantId", "t"), ("objects", SEED_OBJECTS)]);
    assert!(has(&found, "keyvaultName is not provided"), "{found:?}");
    let mut pairs = base(SEED_OBJECTS);
    pairs[0] = ("keyvaultName", "no_underscores");
    assert!(has(&problems(&pairs), "invalid keyvaultName"));
    let mut pairs = base(SEED_OBJECTS);
    pairs.push(("usePodIdentity", "true"));
    let parameters: Parameters = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let accepted = parse(&parameters, FileMode::DEFAULT).map(|spec| spec.identity);
    assert_eq!(accepted.ok(), Some(IdentityMode::Nmi), "AAD pod identity is accepted, as upstream");
    pairs.push(("useVMManagedIdentity", "true"));
    assert!(has(&problems(&pairs), "only one identity mode can be enabled at a time"));
    let mut pairs = base(SEED_OBJECTS);
    pairs.push(("cloudName", "Mars"));
    assert!(has(&problems(&pairs), "unknown cloudName"));
}

#[test]
fn object_rules_keep_upstream_prefix_and_name_object_and_field() {
    let objects = "array:\n  - |\n    objectName: a\n    objectType: Secret\n";
    let found = problems(&base(objects));
    assert!(
        has(
            &found,
            r#"object "a", field "objectType": failed to get objectType:Secret, objectName:a, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert"#
        ),
        "{found:?}"
    );
    let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    filePermission: \"0999\"\n";
    assert!(has(&problems(&base(objects)), "Invalid File Permission: 0999"));
    let objects = "array:\n  - |\n    objectName: a\n    objectType: key\n    objectFormat: pfx\n";
    assert!(has(&problems(&base(objects)), "pfx is only supported for objectType secret"));
    let objects = "array:\n  - |\n    objectName: a\n    objectType: cert\n    objectEncoding: hex\n";
    assert!(has(&problems(&base(objects)), "objectEncoding only supported for objectType secret"));
    let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: x..y\n";
    assert!(has(&problems(&base(objects)), "must not contain \"..\""));
    // One file named twice: upstream mounts it (the last wins), so do we, with a warning; a
    // name that is both a file and a directory stays an error.
    let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: a\n    objectType: key\n";
    let spec = parse(&params(&base(objects)), FileMode::DEFAULT).map_err(|e| format!("{e:?}"));
    let warnings: Vec<String> =
        spec.iter().flat_map(|s| s.plan.warnings()).map(ToString::to_string).collect();
    assert!(warnings.iter().any(|w| w.contains("the last one wins")), "{spec:?}");
    let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectType: secret\n    objectAlias: a/b\n";
    assert!(has(&problems(&base(objects)), "collide"));
}

#[test]
fn other_spellings_of_object_keys_are_ignored_as_upstream_and_named() {
    let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectalias: b\n";
    let spec = parse(&params(&base(objects)), FileMode::DEFAULT).map_err(|e| format!("{e:?}"));
    assert_eq!(
        spec.as_ref().map(|s| s.objects[0].file_name().to_owned()),
        Ok("a".to_owned()),
        "yaml.v3 is exact"
    );
    let warnings: Vec<String> =
        spec.iter().flat_map(|s| s.plan.warnings()).map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"object "a", field "objectalias": unknown key `objectalias` is ignored (did you mean `objectAlias`?)"#
        ]
    );
}

#[test]
fn formats_encodings_and_history() -> std::result::Result<(), Vec<Error>> {
    let objects = "array:\n  - |\n    objectName: cert-secret\n    objectType: secret\n    objectFormat: PFX\n    objectEncoding: Base64\n  - |\n    objectName: rotating\n    objectType: secret\n    objectAlias: dir/rot\n    objectVersionHistory: 3\n    filePermission: \"0600\"\n";
    let spec = parse(&params(&base(objects)), FileMode::DEFAULT)?;
    assert_eq!(spec.objects[0].format, ObjectFormat::Pfx);
    assert_eq!(spec.objects[0].encoding, ObjectEncoding::Base64);
    let files: Vec<&str> = spec.plan.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["cert-secret", "dir/rot/0", "dir/rot/1", "dir/rot/2"]);
    assert_eq!(spec.plan.files()[1].mode.bits(), 0o600);
    Ok(())
}

#[test]
fn identity_modes() -> std::result::Result<(), Vec<Error>> {
    let spec = parse(
        &params(&[
            ("keyvaultName", "kv1"),
            ("tenantId", "t"),
            ("useVMManagedIdentity", "true"),
            ("userAssignedIdentityID", "uai"),
            ("objects", SEED_OBJECTS),
        ]),
        FileMode::DEFAULT,
    )?;
    assert_eq!(spec.identity, IdentityMode::VmManaged { user_assigned_id: Some("uai".to_owned()) });
    let spec = parse(
        &params(&[("keyvaultName", "kv1"), ("tenantId", "t"), ("objects", SEED_OBJECTS)]),
        FileMode::DEFAULT,
    )?;
    assert_eq!(spec.identity, IdentityMode::ServicePrincipal);
    Ok(())
}

#[test]
fn objects_shape() {
    let found = problems(&[("keyvaultName", "kv1"), ("tenantId", "t")]);
    assert!(has(&found, "objects is not set"), "{found:?}");
    assert!(has(&problems(&base("- a\n- b")), "`array:` list"));
    assert!(has(&problems(&base("array:\n  - |\n    objectName: [\n")), "failed to unmarshal object"));
}

#[test]
fn split_certificate_files_are_possible_targets_only_with_the_flag() -> Result<()> {
    let objects = "array:\n  - |\n    objectName: tls\n    objectType: secret\n    objectAlias: bundle.pem\n  - |\n    objectName: k\n    objectType: key\n";
    let parameters = params(&base(objects));
    let plain = AzureBackend::new(AzureOptions::default())?.validate(&parameters);
    assert!(plain.possible_files.is_empty());
    let split = AzureBackend::new(AzureOptions {
        write_cert_and_key_in_separate_files: true,
        ..AzureOptions::default()
    })?
    .validate(&parameters);
    assert_eq!(split.possible_files, ["bundle.pem.crt", "bundle.pem.key"]);
    assert_eq!(split.plan.len(), 2, "the planned files are unchanged");
    Ok(())
}

/// The policy check's parse is the one the mount reads (`MountRequest::parsed`).
#[test]
fn prepare_keeps_the_parse_in_the_mount_s_type() -> Result<()> {
    let objects = "array:\n  - |\n    objectName: tls\n    objectType: secret\n";
    let prepared =
        AzureBackend::new(AzureOptions::default())?.prepare(&params(&base(objects)), FileMode::DEFAULT);
    assert!(prepared.validation.problems.is_empty());
    assert_eq!(prepared.validation.reads.len(), 1);
    assert!(prepared.parsed.as_ref().and_then(|p| p.get::<params::MountSpec>()).is_some());
    Ok(())
}

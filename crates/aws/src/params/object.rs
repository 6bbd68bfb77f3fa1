//! One `objects` entry: its keys, type, file name and mode, and upstream's duplicate rules.

use super::arn::resolve_type;
use super::failover::{PrimaryObject, parse_failover};
use super::keys::{MATCHING, ObjectKey};
use super::{ListContext, ObjectSpec, ObjectType, SeenObject};
use csi_secrets_provider_core::jmes::{self, JmesEntry, JmesRules};
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{Error, Fields, FileMode, FilePlan, translate_slashes};
use serde_norway::Value;

/// The plain string keys of an entry, read at once.
struct ObjectFields {
    name: Option<String>,
    object_type: Option<String>,
    alias: Option<String>,
    version: Option<String>,
    version_label: Option<String>,
    file_permission: Option<String>,
    region: Option<String>,
}

fn read_fields(fields: &Fields<'_, ObjectKey>) -> (ObjectFields, Vec<Error>) {
    let ([name, object_type, alias, version, version_label, file_permission, region], problems) = fields
        .many(
            [
                ObjectKey::ObjectName,
                ObjectKey::ObjectType,
                ObjectKey::ObjectAlias,
                ObjectKey::ObjectVersion,
                ObjectKey::ObjectVersionLabel,
                ObjectKey::FilePermission,
                ObjectKey::Region,
            ],
            Fields::non_empty,
        );
    let region = region.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    (ObjectFields { name, object_type, alias, version, version_label, file_permission, region }, problems)
}

pub(super) fn parse_object(
    index: usize,
    item: &Value,
    context: &mut ListContext,
) -> Result<ObjectSpec, Vec<Error>> {
    let fallback_name = format!("objects[{index}]");
    if !item.is_mapping() {
        return Err(vec![
            Error::invalid_config("Empty descriptor entry in SecretProviderClass (expected a mapping)")
                .with_object(fallback_name),
        ]);
    }
    let fields: Fields<'_, ObjectKey> = Fields::read(item, MATCHING);
    let (read, problems) = read_fields(&fields);
    let object_id = read.name.clone().unwrap_or(fallback_name);
    context.warnings.extend(fields.unknown_keys(&object_id, ""));
    let mut problems: Vec<Error> = problems.into_iter().map(|e| e.or_object(&object_id)).collect();
    let optional = fields.flag(ObjectKey::Optional).unwrap_or_else(|e| {
        problems.push(e.with_object(&object_id));
        false
    });
    let (shape, shape_problems) = FileShape::read(&fields);
    problems.extend(shape_problems.into_iter().map(|e| e.with_object(&object_id)));
    let Some(name) = read.name.clone() else {
        problems.push(
            Error::invalid_config("Object name must be specified")
                .with_object(&object_id)
                .with_field("objectName"),
        );
        return Err(problems);
    };

    let (object_type, arn_region) = match resolve_type(&name, read.object_type.as_deref()) {
        Ok(resolved) => resolved,
        Err(e) => {
            problems.push(e.with_object(&name));
            (ObjectType::SecretsManager, None)
        }
    };
    if object_type == ObjectType::SsmParameter && read.version.is_some() && read.version_label.is_some() {
        problems.push(super::both_versions(&name));
    }
    let mode = file_mode(
        read.file_permission.as_deref(),
        context.default_mode,
        &name,
        "filePermission",
        &mut problems,
    );
    let file_name = file_name(read.alias.as_deref().unwrap_or(&name), context.translation);
    if has_parent_reference(&file_name) {
        problems.push(
            Error::invalid_config(format!("path can not contain ../: {name}"))
                .with_object(&name)
                .with_field(if read.alias.is_some() { "objectAlias" } else { "objectName" }),
        );
    }

    let jmes = parse_jmes(fields.get(ObjectKey::JmesPath), &name, mode, context, &mut problems);
    let primary = PrimaryObject {
        name: &name,
        object_type,
        has_alias: read.alias.is_some(),
        version: read.version.as_deref(),
        own_region: read.region.as_deref(),
    };
    let failover = parse_failover(fields.get(ObjectKey::FailoverObject), &primary, context, &mut problems);
    check_duplicates(&name, &read, &jmes, context, &mut problems);

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ObjectSpec {
        name,
        object_type,
        alias: read.alias,
        version: read.version,
        version_label: read.version_label,
        file_name,
        mode,
        jmes,
        failover: failover.object,
        optional,
        region: read.region,
        shape,
        arn_region,
        failover_arn_region: failover.arn_region,
    })
}

/// `jmesPath` with upstream's rules: keys in any case, aliases translated like file names,
/// four-digit permissions.
pub(super) fn parse_jmes(
    list: Option<&Value>,
    name: &str,
    mode: FileMode,
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) -> Vec<JmesEntry> {
    let translation = context.translation;
    let rules = JmesRules {
        matching: MATCHING,
        file_name: &|alias| file_name(alias, translation),
        mode: &FileMode::parse_four_octal_digits,
    };
    jmes::parse_entries(list, name, mode, &rules, &mut context.warnings, problems)
}

/// `filePermission` must be exactly four octal digits, as upstream requires; the driver keeps
/// the permission bits.
pub(super) fn file_mode(
    value: Option<&str>,
    default: FileMode,
    object: &str,
    field: &str,
    problems: &mut Vec<Error>,
) -> FileMode {
    let Some(value) = value else { return default };
    match FileMode::parse_four_octal_digits(value) {
        Ok(mode) => mode,
        Err(error) => {
            problems.push(error.with_object(object).with_field(field));
            default
        }
    }
}

pub(super) fn file_name(name: &str, translation: Option<char>) -> String {
    match translation {
        Some(replacement) => translate_slashes(name, replacement),
        None => name.trim_start_matches('/').to_owned(),
    }
}

/// Upstream's `/../`, leading `../` and trailing `/..` check, plus a bare `..`, which upstream
/// lets through and the driver then refuses.
pub(super) fn has_parent_reference(path: &str) -> bool {
    path.split('/').any(|element| element == "..")
}

/// Upstream's duplicate rules, in its words.
fn check_duplicates(
    name: &str,
    read: &ObjectFields,
    jmes: &[JmesEntry],
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) {
    let (alias, label) = (read.alias.as_deref(), read.version_label.as_deref());
    let prefix = format!("found descriptor with duplicate object name {name}");
    for seen in context.seen_names.get(name).into_iter().flatten() {
        let message = match (alias, seen.alias.as_deref(), label, seen.version_label.as_deref()) {
            (Some(a), Some(b), None, None) if a == b => {
                Some(format!("{prefix}, duplicate object alias {a}, and no version label"))
            }
            (None, None, Some(l), Some(m)) if l == m => {
                Some(format!("{prefix}, no object alias, and duplicate version label {l}"))
            }
            (Some(a), Some(b), Some(l), Some(m)) if a == b && l == m => {
                Some(format!("{prefix}, duplicate object alias {a}, and duplicate version label {l}"))
            }
            (None, None, None, None) => Some(format!("{prefix}, no object alias, and no version label")),
            _ => None,
        };
        if let Some(message) = message {
            problems.push(Error::invalid_config(message).with_object(name).with_field("objectName"));
            break;
        }
    }
    context
        .seen_names
        .entry(name.to_owned())
        .or_default()
        .push(SeenObject { alias: alias.map(str::to_owned), version_label: label.map(str::to_owned) });
    if let Some(alias) = alias {
        if context.seen_aliases.contains(alias) {
            problems.push(
                Error::invalid_config(format!("found duplicate object alias {alias}"))
                    .with_object(name)
                    .with_field("objectAlias"),
            );
        }
        context.seen_aliases.insert(alias.to_owned());
    }
    for entry in jmes {
        if context.seen_aliases.contains(&entry.alias) {
            problems.push(
                Error::invalid_config(format!(
                    "Name already in use for objectAlias: found duplicate object alias {} in JMES path entry {}",
                    entry.alias, entry.path
                ))
                .with_object(name)
                .with_field("jmesPath"),
            );
        }
        context.seen_aliases.insert(entry.alias.clone());
    }
}

/// Adds the object's files to the plan (catches clashes upstream does not look for, such as a
/// derived name equal to another object's alias).
pub(super) fn add_files(object: &ObjectSpec, plan: &mut FilePlan, problems: &mut Vec<Error>) {
    if let Err(e) = plan.add_shaped(&object.name, object.file_name.clone(), object.mode, object.shape) {
        problems.push(e.with_field(if object.alias.is_some() { "objectAlias" } else { "objectName" }));
    }
    for entry in &object.jmes {
        if let Err(e) = plan.add_shaped(&object.name, entry.file_name.clone(), entry.mode, entry.shape()) {
            problems.push(e.with_field("jmesPath"));
        }
    }
    if object.optional {
        plan.mark_optional(&object.name);
    }
}

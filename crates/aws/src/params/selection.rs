//! An `objectPrefix` entry: every current secret (or parameter) whose name starts with the
//! prefix, one file each, named by the rest of its name (`pathTranslation` applies) under the
//! entry's `objectAlias` as a directory.

use super::keys::ObjectKey;
use super::object::{file_mode, file_name, parse_jmes};
use super::{ListContext, ObjectSpec, ObjectType};
use csi_secrets_provider_core::kit::{PrefixEntry, PrefixKeys, Selected, Selection, selected_path};
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{Error, Fields, FileMode, JmesEntry};

/// One `objectPrefix` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionSpec {
    pub selection: Selection,
    pub object_type: ObjectType,
    /// `objectAlias`: the directory the selected files go in.
    pub directory: Option<String>,
    pub mode: FileMode,
    /// Extracted keys of each selected secret, their aliases relative to its file as a
    /// directory (`<file>/<alias>`; the secret's own file then needs `writeFile: false`).
    pub jmes: Vec<JmesEntry>,
    pub shape: FileShape,
    translation: Option<char>,
}

impl SelectionSpec {
    /// The object a selected secret becomes: read like any other, at its current version.
    pub fn object(&self, selected: &Selected) -> ObjectSpec {
        let file_name =
            selected_path(self.directory.as_deref(), &file_name(&selected.relative, self.translation));
        let jmes = self.jmes.iter().map(|entry| entry.in_directory(&file_name)).collect();
        ObjectSpec {
            name: selected.name.clone(),
            object_type: self.object_type,
            alias: None,
            version: None,
            version_label: None,
            file_name,
            mode: self.mode,
            jmes,
            failover: None,
            optional: false,
            region: None,
            shape: self.shape,
            arn_region: None,
            failover_arn_region: None,
        }
    }
}

/// How an AWS prefix entry is written: the keys every backend's prefix entry shares.
const PREFIX_KEYS: PrefixKeys<ObjectKey> = PrefixKeys {
    prefix: "objectPrefix",
    tags: ObjectKey::Tags,
    max_objects: ObjectKey::MaxObjects,
    optional: ObjectKey::Optional,
    directory: ObjectKey::ObjectAlias,
    // They name one object (or one region of it).
    one_object: &[
        ObjectKey::ObjectName,
        ObjectKey::ObjectVersion,
        ObjectKey::ObjectVersionLabel,
        ObjectKey::FailoverObject,
        ObjectKey::Region,
    ],
    one_object_says: "names one object; an objectPrefix entry selects every current secret under the prefix",
};

/// Parses entry `index` of `objects`, which has `objectPrefix`: the shared parts by the kit,
/// then what AWS adds (`objectType`, the options every selected object is read with).
pub(super) fn parse_selection(
    index: usize,
    fields: &Fields<'_, ObjectKey>,
    context: &mut ListContext,
) -> Result<SelectionSpec, Vec<Error>> {
    let prefix = match fields.non_empty(ObjectKey::ObjectPrefix) {
        Ok(Some(prefix)) => prefix,
        Ok(None) => {
            return Err(vec![
                Error::invalid_config("objectPrefix must not be empty (it would select every secret)")
                    .with_object(format!("objects[{index}]"))
                    .with_field("objectPrefix"),
            ]);
        }
        Err(e) => return Err(vec![e.or_object(format!("objects[{index}]"))]),
    };
    context.warnings.extend(fields.unknown_keys(&prefix, ""));
    let (shape, shape_problems) = FileShape::read(fields);
    let mut problems: Vec<Error> = shape_problems.into_iter().map(|e| e.with_object(&prefix)).collect();
    let label = format!("objectPrefix {prefix:?}");
    let object_type = match fields.non_empty(ObjectKey::ObjectType) {
        Ok(Some(t)) => match ObjectType::from_object_type(&t) {
            Some(t) => t,
            None => {
                problems.push(
                    Error::invalid_config(format!(
                        "objectType {t:?} with objectPrefix must be secretsmanager or ssmparameter"
                    ))
                    .with_object(&prefix)
                    .with_field("objectType"),
                );
                ObjectType::SecretsManager
            }
        },
        Ok(None) => {
            problems.push(
                Error::invalid_config(format!("{label} needs objectType (secretsmanager or ssmparameter)"))
                    .with_object(&prefix)
                    .with_field("objectType"),
            );
            ObjectType::SecretsManager
        }
        Err(e) => {
            problems.push(e.or_object(&prefix));
            ObjectType::SecretsManager
        }
    };
    if prefix.starts_with("arn:") {
        problems.push(
            Error::invalid_config(format!("{label}: a prefix is a name, not an ARN"))
                .with_object(&prefix)
                .with_field("objectPrefix"),
        );
    }
    let directory = fields.non_empty(ObjectKey::ObjectAlias).unwrap_or_else(|e| {
        problems.push(e.or_object(&prefix));
        None
    });
    let permission = fields.non_empty(ObjectKey::FilePermission).unwrap_or_else(|e| {
        problems.push(e.or_object(&prefix));
        None
    });
    let mode =
        file_mode(permission.as_deref(), context.default_mode, &prefix, "filePermission", &mut problems);
    let jmes = parse_jmes(fields.get(ObjectKey::JmesPath), &prefix, mode, context, &mut problems);
    let entry = PrefixEntry::read(&PREFIX_KEYS, fields, prefix, directory, &mut problems);
    match entry {
        Some(PrefixEntry { selection, directory }) if problems.is_empty() => Ok(SelectionSpec {
            selection,
            object_type,
            directory,
            mode,
            jmes,
            shape,
            translation: context.translation,
        }),
        _ => Err(problems),
    }
}

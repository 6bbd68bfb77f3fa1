//! An `objectPrefix` entry: every enabled secret of the vault whose name starts with the prefix
//! (and carries the entry's `tags`), one file each, named by the rest of its name under the
//! entry's `objectAlias` as a directory. The entry's other keys (`objectEncoding`,
//! `filePermission`, `keyvaultName`, `jmesPath`, `writeFile`, `expandKeys`, `decode`) apply to
//! every selected secret.

use csi_secrets_provider_core::kit::{PrefixEntry, PrefixKeys, Selected, Selection, selected_path};
use csi_secrets_provider_core::{ConfigKey, Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use super::ObjectType;
use super::object::{ObjectKey, ObjectSpec, parse_object};

/// One `objectPrefix` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionSpec {
    pub selection: Selection,
    /// What every selected secret is read as: the entry's options, with the prefix as its name.
    template: ObjectSpec,
}

impl SelectionSpec {
    /// The directory the files go in (`objectAlias`).
    pub fn directory(&self) -> Option<&str> {
        self.template.alias.as_deref()
    }

    /// The vault listed: the entry's `keyvaultName`, else the SecretProviderClass's.
    pub fn keyvault_name(&self) -> Option<&str> {
        self.template.keyvault_name.as_deref()
    }

    /// The object a selected secret becomes: read like any other, at its latest version.
    pub fn object(&self, selected: &Selected) -> ObjectSpec {
        let file = selected_path(self.directory(), &selected.relative);
        let jmes = self.template.jmes.iter().map(|entry| entry.in_directory(&file)).collect();
        ObjectSpec {
            name: selected.name.clone(),
            alias: Some(file),
            optional: false,
            jmes,
            ..self.template.clone()
        }
    }
}

/// Keys an `objectPrefix` entry cannot have: they name one object or one version.
const ONE_OBJECT_KEYS: [ObjectKey; 3] =
    [ObjectKey::ObjectName, ObjectKey::ObjectVersion, ObjectKey::ObjectVersionHistory];

/// How an Azure prefix entry is written: the keys every backend's prefix entry shares.
const PREFIX_KEYS: PrefixKeys<ObjectKey> = PrefixKeys {
    prefix: "objectPrefix",
    tags: ObjectKey::Tags,
    max_objects: ObjectKey::MaxObjects,
    optional: ObjectKey::Optional,
    directory: ObjectKey::ObjectAlias,
    one_object: &ONE_OBJECT_KEYS,
    one_object_says: "names one object; an objectPrefix entry selects every enabled secret under the prefix",
};

/// Parses `entry`, which has `objectPrefix`: the shared parts by the kit, then the entry's
/// options parsed as one secret's (named by the prefix, without its directory).
pub(super) fn parse_selection(
    index: usize,
    entry: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<SelectionSpec, Vec<Error>> {
    let fields: Fields<'_, ObjectKey> = Fields::read(entry, KeyMatching::Exact);
    let at = format!("objects.array[{index}]");
    let prefix = match fields.trimmed(ObjectKey::ObjectPrefix) {
        Ok(Some(prefix)) if !prefix.is_empty() => prefix,
        Ok(_) => {
            return Err(vec![
                Error::invalid_config("objectPrefix must not be empty (it would select every secret)")
                    .with_object(at)
                    .with_field("objectPrefix"),
            ]);
        }
        Err(e) => return Err(vec![e.or_object(at)]),
    };
    let label = format!("objectPrefix {prefix:?}");
    let mut problems = Vec::new();
    match fields.trimmed(ObjectKey::ObjectType) {
        Ok(None) => {}
        Ok(Some(t)) if t == ObjectType::Secret.as_str() => {}
        _ => problems.push(
            Error::invalid_config(format!(
                "{label} selects secrets: objectType must be secret (or left out)"
            ))
            .with_object(&prefix)
            .with_field("objectType"),
        ),
    }
    let directory = fields.trimmed(ObjectKey::ObjectAlias).unwrap_or_else(|e| {
        problems.push(e.or_object(&prefix));
        None
    });
    // The entry's options are parsed as one secret's, named by the prefix; its directory and
    // `optional` are the entry's, read by the kit.
    let mut as_object = entry.clone();
    if let Value::Mapping(map) = &mut as_object {
        let entry_keys =
            [ObjectKey::ObjectType, ObjectKey::ObjectPrefix, ObjectKey::ObjectAlias, ObjectKey::Optional];
        for key in ONE_OBJECT_KEYS.iter().chain(&entry_keys) {
            map.remove(key.as_str());
        }
        map.insert(Value::from("objectName"), Value::from(prefix.clone()));
        map.insert(Value::from("objectType"), Value::from(ObjectType::Secret.as_str()));
    }
    let template = parse_object(index, &as_object, default_mode, warnings);
    let entry = PrefixEntry::read(&PREFIX_KEYS, &fields, prefix, directory, &mut problems);
    match (entry, template) {
        (Some(PrefixEntry { selection, directory }), Ok(template)) if problems.is_empty() => {
            Ok(SelectionSpec { selection, template: ObjectSpec { alias: directory, ..template } })
        }
        (_, template) => {
            problems.extend(template.err().unwrap_or_default());
            Err(problems)
        }
    }
}

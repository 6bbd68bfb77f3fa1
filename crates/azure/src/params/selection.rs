//! An `objectPrefix` entry: every enabled secret of the vault whose name starts with the prefix
//! (and carries the entry's `tags`), one file each, named by the rest of its name under the
//! entry's `objectAlias` as a directory. The entry's other keys (`objectEncoding`,
//! `filePermission`, `keyvaultName`, `jmesPath`, `writeFile`, `expandKeys`, `decode`) apply to
//! every selected secret.

use csi_secrets_provider_core::kit::{Selected, Selection, selected_path};
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

/// Parses `entry`, which has `objectPrefix`.
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
    for key in ONE_OBJECT_KEYS {
        if fields.get(key).is_some() {
            problems.push(
                Error::invalid_config(format!(
                    "{} names one object; an objectPrefix entry selects every enabled secret under the prefix",
                    key.as_str()
                ))
                .with_object(&prefix)
                .with_field(key.as_str()),
            );
        }
    }
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
    let selection = Selection::parse(
        "objectPrefix",
        prefix.clone(),
        fields.get(ObjectKey::Tags),
        fields.get(ObjectKey::MaxObjects),
        fields.flag(ObjectKey::Optional).unwrap_or(false),
        &label,
    );
    // The entry's options are parsed as one secret's, named by the prefix.
    let mut as_object = entry.clone();
    if let Value::Mapping(map) = &mut as_object {
        for key in ONE_OBJECT_KEYS.iter().chain(&[ObjectKey::ObjectType, ObjectKey::ObjectPrefix]) {
            map.remove(key.as_str());
        }
        map.insert(Value::from("objectName"), Value::from(prefix));
        map.insert(Value::from("objectType"), Value::from(ObjectType::Secret.as_str()));
    }
    let template = parse_object(index, &as_object, default_mode, warnings);
    match (selection, template) {
        (Ok(selection), Ok(template)) if problems.is_empty() => Ok(SelectionSpec { selection, template }),
        (selection, template) => {
            problems.extend(selection.err().unwrap_or_default());
            problems.extend(template.err().unwrap_or_default());
            Err(problems)
        }
    }
}

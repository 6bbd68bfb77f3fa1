//! `jmesPath` entries: fields of a JSON secret written as their own files.

use super::keys::{JmesKey, MATCHING};
use super::object::{file_mode, file_name};
use super::{JmesEntry, ListContext};
use csi_secrets_provider_core::{ConfigKey, Error, Fields, FileMode};
use serde_norway::Value;

pub(super) fn parse_jmes(
    list: Option<&Value>,
    name: &str,
    parent_mode: FileMode,
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) -> Vec<JmesEntry> {
    let entries = match list {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(entries)) => entries,
        Some(_) => {
            problems.push(
                Error::invalid_config("jmesPath must be a list of {path, objectAlias}")
                    .with_object(name)
                    .with_field("jmesPath"),
            );
            return Vec::new();
        }
    };
    let mut parsed = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = |key: &str| format!("jmesPath[{i}].{key}");
        let fields: Fields<'_, JmesKey> = Fields::read(entry, MATCHING);
        context.warnings.extend(fields.unknown_keys(name, &format!("jmesPath[{i}].")));
        let get = |key: JmesKey| {
            fields.non_empty(key).map_err(|e| e.with_object(name).with_field(field(key.as_str())))
        };
        let (path, alias, permission) =
            match (get(JmesKey::Path), get(JmesKey::ObjectAlias), get(JmesKey::FilePermission)) {
                (Ok(p), Ok(a), Ok(f)) => (p, a, f),
                (p, a, f) => {
                    problems.extend([p.err(), a.err(), f.err()].into_iter().flatten());
                    continue;
                }
            };
        let Some(path) = path else {
            problems.push(
                Error::invalid_config("Path must be specified for JMES object")
                    .with_object(name)
                    .with_field(field("path")),
            );
            continue;
        };
        let Some(alias) = alias else {
            problems.push(
                Error::invalid_config("Object alias must be specified for JMES object")
                    .with_object(name)
                    .with_field(field("objectAlias")),
            );
            continue;
        };
        let mode = file_mode(permission.as_deref(), parent_mode, name, &field("filePermission"), problems);
        parsed.push(JmesEntry { path, file_name: file_name(&alias, context.translation), mode });
    }
    parsed
}

pub(super) fn jmes_aliases(list: Option<&Value>) -> Vec<(String, String)> {
    list.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let fields: Fields<'_, JmesKey> = Fields::read(e, MATCHING);
            let alias = fields.non_empty(JmesKey::ObjectAlias).ok().flatten()?;
            let path = fields.non_empty(JmesKey::Path).ok().flatten().unwrap_or_default();
            Some((alias, path))
        })
        .collect()
}

//! The `objects` parameter as a whole: its `array:` of YAML strings, each entry one object
//! (`object`) or a folder (`objectPrefix`, `selection`), and the planned files of them all.

use csi_secrets_provider_core::{Error, FileMode, FilePlan};
use serde_norway::Value;

use super::OBJECTS;
use super::object::{ObjectSpec, parse_object};
use super::selection::{SelectionSpec, parse_selection};

/// Reads `objects` (`array:` of YAML strings): the objects, their planned files, and every
/// problem in `problems`.
pub(super) fn parse_objects(
    value: Option<&str>,
    default_mode: FileMode,
    problems: &mut Vec<Error>,
) -> (Vec<ObjectSpec>, Vec<SelectionSpec>, FilePlan) {
    let mut objects = Vec::new();
    let mut selections = Vec::new();
    let mut plan = FilePlan::new();
    let Some(items) = object_list(value, problems) else { return (objects, selections, plan) };
    for (index, item) in items.iter().enumerate() {
        let Some(entry) = object_entry(index, item, problems) else { continue };
        let mut warnings = Vec::new();
        if entry.get("objectPrefix").is_some() {
            let parsed = parse_selection(index, &entry, default_mode, &mut warnings);
            for warning in warnings {
                plan.warn(warning);
            }
            match parsed {
                Ok(selection) => selections.push(selection),
                Err(mut errors) => problems.append(&mut errors),
            }
            continue;
        }
        let parsed = parse_object(index, &entry, default_mode, &mut warnings);
        for warning in warnings {
            plan.warn(warning);
        }
        match parsed {
            Ok(object) => match object.add_files(&mut plan) {
                Ok(()) => objects.push(object),
                Err(e) if e.field().is_some() => problems.push(e),
                Err(e) => problems.push(e.with_field(if object.alias.is_some() {
                    "objectAlias"
                } else {
                    "objectName"
                })),
            },
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    (objects, selections, plan)
}

/// The `array:` list of `objects`.
fn object_list(value: Option<&str>, problems: &mut Vec<Error>) -> Option<Vec<Value>> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        problems.push(Error::invalid_config("objects is not set").with_field(OBJECTS));
        return None;
    };
    let value = match serde_norway::from_str::<Value>(text) {
        Ok(value) => value,
        Err(e) => {
            problems
                .push(Error::invalid_config(format!("failed to unmarshal objects: {e}")).with_field(OBJECTS));
            return None;
        }
    };
    match value.get("array") {
        Some(Value::Sequence(items)) => {
            match csi_secrets_provider_core::check_object_count(items.len(), OBJECTS) {
                Ok(()) => Some(items.clone()),
                Err(e) => {
                    problems.push(e);
                    None
                }
            }
        }
        Some(Value::Null) | None if value.is_mapping() => Some(Vec::new()),
        _ => {
            problems.push(
                Error::invalid_config("objects must be a mapping with an `array:` list of object strings")
                    .with_field(OBJECTS),
            );
            None
        }
    }
}

/// One element: itself a YAML document in a string (`- |` blocks); a plain mapping is accepted
/// too.
fn object_entry(index: usize, item: &Value, problems: &mut Vec<Error>) -> Option<Value> {
    let parsed = match item {
        Value::String(s) => serde_norway::from_str::<Value>(s).map_err(|e| e.to_string()),
        Value::Mapping(_) => Ok(item.clone()),
        _ => Err("expected a YAML string describing the object".to_owned()),
    };
    let at = || format!("objects.array[{index}]");
    match parsed {
        Ok(entry) if entry.is_mapping() => Some(entry),
        Ok(_) => {
            problems.push(Error::invalid_config("expected objectName, objectType, ...").with_object(at()));
            None
        }
        Err(e) => {
            problems
                .push(Error::invalid_config(format!("failed to unmarshal object: {e}")).with_object(at()));
            None
        }
    }
}

//! The `objects` parameter as a whole: its `array:` of YAML strings, each entry one object
//! (`object`) or a folder (`objectPrefix`, `selection`), and the planned files of them all.

use csi_secrets_provider_core::{Error, FileMode, FilePlan};
use serde_norway::Value;

use super::OBJECTS;
use super::object::{ObjectSpec, parse_object};
use super::registry::{RegistrySpec, parse_registry};
use super::selection::{SelectionSpec, parse_selection};

/// What the `objects` entries are, and the files they plan.
#[derive(Default)]
pub(super) struct ParsedObjects {
    pub objects: Vec<ObjectSpec>,
    pub selections: Vec<SelectionSpec>,
    pub registries: Vec<RegistrySpec>,
    pub plan: FilePlan,
}

/// Reads `objects` (`array:` of YAML strings): the objects, their planned files, and every
/// problem in `problems`.
pub(super) fn parse_objects(
    value: Option<&str>,
    default_mode: FileMode,
    problems: &mut Vec<Error>,
) -> ParsedObjects {
    let mut parsed = ParsedObjects::default();
    let ParsedObjects { objects, selections, registries, plan } = &mut parsed;
    let Some(items) = object_list(value, problems) else { return parsed };
    for (index, item) in items.iter().enumerate() {
        let Some(entry) = object_entry(index, item, problems) else { continue };
        let mut warnings = Vec::new();
        if entry.get("objectType").and_then(Value::as_str).map(str::trim) == Some("acr") {
            let registry = parse_registry(index, &entry, default_mode, &mut warnings);
            for warning in warnings {
                plan.warn(warning);
            }
            match registry {
                Ok(registry) => {
                    let earlier = registries.iter().find(|r| r.file_name == registry.file_name);
                    let planned =
                        csi_secrets_provider_core::kit::plan_registry_file(plan, earlier, &registry);
                    problems.extend(planned.err().map(|e| e.with_field("objectAlias")));
                    registries.push(registry);
                }
                Err(mut errors) => problems.append(&mut errors),
            }
            continue;
        }
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
            Ok(object) => match object.add_files(plan) {
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
    parsed
}

/// The `array:` list of `objects`.
fn object_list(value: Option<&str>, problems: &mut Vec<Error>) -> Option<Vec<Value>> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        problems.push(Error::invalid_config("objects is not set").with_field(OBJECTS));
        return None;
    };
    let value = match csi_secrets_provider_core::yaml::parse(text) {
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
        Value::String(s) => csi_secrets_provider_core::yaml::parse(s).map_err(|e| e.to_string()),
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

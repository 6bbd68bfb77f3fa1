//! One `objects` entry, read as what it is: an object (`object`), an `objectPrefix` folder
//! (`selection`) or an ECR registry (`registry`).

use csi_secrets_provider_core::{Error, Fields};
use serde_norway::Value;

use super::ListContext;
use super::ObjectSpec;
use super::keys::{MATCHING, ObjectKey};
use super::object::parse_object;
use super::registry::{RegistrySpec, parse_registry};
use super::selection::{SelectionSpec, parse_selection};

/// One `objects` entry: an object, an `objectPrefix` selection, or an `objectType: ecr`
/// registry.
pub(super) enum Entry {
    Object(ObjectSpec),
    Selection(SelectionSpec),
    Registry(RegistrySpec),
}

pub(super) fn parse_entry(
    index: usize,
    item: &Value,
    context: &mut ListContext,
) -> Result<Entry, Vec<Error>> {
    if let Value::Mapping(_) = item {
        let fields: Fields<'_, ObjectKey> = Fields::read(item, MATCHING);
        if fields.get(ObjectKey::ObjectPrefix).is_some() {
            return parse_selection(index, &fields, context).map(Entry::Selection);
        }
        if fields.trimmed(ObjectKey::ObjectType).ok().flatten().as_deref() == Some("ecr") {
            return parse_registry(index, &fields, context).map(Entry::Registry);
        }
    }
    parse_object(index, item, context).map(Entry::Object)
}

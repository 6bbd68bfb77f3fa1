//! One `objects` entry, read as what it is: an object (`object`) or an `objectPrefix` folder
//! (`selection`).

use csi_secrets_provider_core::{Error, Fields};
use serde_norway::Value;

use super::ListContext;
use super::ObjectSpec;
use super::keys::{MATCHING, ObjectKey};
use super::object::parse_object;
use super::selection::{SelectionSpec, parse_selection};

/// One `objects` entry: an object, or an `objectPrefix` selection.
pub(super) enum Entry {
    Object(ObjectSpec),
    Selection(SelectionSpec),
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
    }
    parse_object(index, item, context).map(Entry::Object)
}

//! The `objects` a template sees: each file of the mount by name, its value as text (bytes when
//! it is not UTF-8).
//!
//! The contents are moved out of the mount's files while its `files` are built and moved back
//! after, and a value is made for the templates only when one reads it: a mount of a hundred
//! folder files whose one template reads one of them copies one value, not a hundred.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, Value};

use super::template;
use crate::error::{Error, Result};
use crate::files::SecretBytes;
use crate::response::MountedFile;

/// `Debug` names the files, never their values.
pub(crate) struct ObjectValues {
    by_name: BTreeMap<String, ObjectValue>,
}

struct ObjectValue {
    /// Where the file is in the mount's answer, to move its contents back.
    index: usize,
    contents: SecretBytes,
    /// Made the first time a template (or a format, or an error check) reads it.
    value: OnceLock<Value>,
}

impl ObjectValue {
    fn value(&self) -> Value {
        self.value.get_or_init(|| template::bytes_value(self.contents.expose())).clone()
    }
}

impl ObjectValues {
    /// Moves the contents of `files` in; [`ObjectValues::give_back`] moves them back.
    pub(crate) fn take(files: &mut [MountedFile]) -> Arc<Self> {
        let mut by_name = BTreeMap::new();
        for index in 0..files.len() {
            let file = &mut files[index];
            let contents = std::mem::replace(&mut file.contents, SecretBytes::new(Vec::new()));
            let object = ObjectValue { index, contents, value: OnceLock::new() };
            // Two files of one path (the later is written): the earlier keeps its contents.
            if let Some(earlier) = by_name.insert(file.path.clone(), object) {
                files[earlier.index].contents = earlier.contents;
            }
        }
        Arc::new(Self { by_name })
    }

    /// Moves the contents back into the files they were taken from. The templates hold no
    /// reference once rendered, so this is the last one.
    pub(crate) fn give_back(self: Arc<Self>, files: &mut [MountedFile]) -> Result<()> {
        let this = Arc::into_inner(self)
            .ok_or_else(|| Error::internal("a template kept a reference to the mount's objects"))?;
        for object in this.by_name.into_values() {
            let file = files
                .get_mut(object.index)
                .ok_or_else(|| Error::internal("the mount's files changed while they were shaped"))?;
            file.contents = object.contents;
        }
        Ok(())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// How many bytes the file named `name` holds.
    pub(crate) fn len_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|object| object.contents.len())
    }

    /// The value of the file named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Value> {
        self.by_name.get(name).map(ObjectValue::value)
    }

    /// The name of the file whose value a template read as `value` (the same text or bytes,
    /// not a copy): for errors that name an object without quoting it.
    pub(crate) fn name_of(&self, value: &Value) -> Option<&str> {
        let address = |v: &Value| v.as_str().map(str::as_ptr).or_else(|| v.as_bytes().map(<[u8]>::as_ptr));
        let wanted = address(value)?;
        self.by_name
            .iter()
            .find(|(_, object)| object.value.get().and_then(address) == Some(wanted))
            .map(|(name, _)| name.as_str())
    }
}

impl fmt::Debug for ObjectValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectValues").field("files", &self.by_name.keys().collect::<Vec<_>>()).finish()
    }
}

impl Object for ObjectValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.by_name.keys().map(|k| Value::from(k.as_str())).collect();
        Enumerator::Iter(Box::new(keys.into_iter()))
    }

    /// `objects.get(name, default=none)`, the way to read an optional object, and
    /// `keys()`/`items()` for loops.
    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> std::result::Result<Value, minijinja::Error> {
        match method {
            "get" => {
                let (name, default): (&str, Option<Value>) = minijinja::value::from_args(args)?;
                Ok(self.get(name).or(default).unwrap_or_else(|| Value::from(())))
            }
            "keys" => Ok(Value::from_iter(self.by_name.keys().map(|k| Value::from(k.as_str())))),
            "items" => Ok(Value::from_iter(
                self.by_name.iter().map(|(k, v)| Value::from(vec![Value::from(k.as_str()), v.value()])),
            )),
            _ => Err(minijinja::Error::new(
                minijinja::ErrorKind::UnknownMethod,
                format!("objects has no method {method:?} (it has get, keys and items)"),
            )),
        }
    }
}

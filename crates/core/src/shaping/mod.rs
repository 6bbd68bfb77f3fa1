//! Files as the application wants them, for every backend alike: per object `decode`,
//! `expandKeys` and `writeFile`, and the `files` parameter (templates and fixed formats built
//! from the mount's objects).
//!
//! A backend parses the per-object keys with [`FileShape::read`] and tags each file it renders
//! with its object's shape ([`crate::MountedFile::shaped`]); the server runs [`shape`] on the
//! backend's answer, after every read and before anything is answered. An error anywhere fails
//! the whole mount and nothing is written.

mod formats;
mod json_text;
mod spec;
mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};

pub use crate::shape::{Decoding, FileShape, ShapeKeys};
pub use spec::{FILES, FileEntry, FileFormat, FilesKey, FilesSpec};

use crate::error::{Error, Result};
use crate::files::{SecretBytes, check_file_path, is_parent};
use crate::mode::FileMode;
use crate::response::{MountResponse, MountedFile};
use spec::Source;

/// What [`shape`] made, one kind per file, for the `files_rendered_total` metric: `template`,
/// `dotenv`, `properties`, `json`, `yaml`, `expanded_key`, `decoded`.
pub type ShapedKinds = Vec<&'static str>;

/// Decodes, expands and renders the files of `response` as its files' shapes and `files` say,
/// then drops the files not to be written. `default_mode` is the driver's permission for a
/// `files` entry without its own; `cap` bounds each file built here.
pub fn shape(
    response: &mut MountResponse,
    files: &FilesSpec,
    default_mode: FileMode,
    cap: usize,
) -> Result<ShapedKinds> {
    let mut kinds = ShapedKinds::new();
    if files.is_empty() && response.files.iter().all(|f| f.shape.is_plain()) {
        return Ok(kinds);
    }
    for file in &mut response.files {
        if let Some(decoding) = file.shape.decode {
            let decoded = decoding.decode(file.contents.expose()).map_err(|why| {
                Error::invalid_config(why).with_object(file.object_name()).with_field(Decoding::KEY)
            })?;
            file.contents = SecretBytes::new(decoded);
            kinds.push("decoded");
        }
    }
    let mut made: Vec<BuiltFile> = Vec::new();
    for file in response.files.iter().filter(|f| f.shape.expand_keys) {
        for (key, contents) in expand_keys(file)? {
            made.push(BuiltFile {
                label: format!("key {key:?} of object {:?} (expandKeys)", file.object_name()),
                field: "expandKeys".to_owned(),
                file: MountedFile::new(key, file.mode, contents),
            });
            kinds.push("expanded_key");
        }
    }
    if !files.is_empty() {
        let objects = ObjectValues::of(&response.files);
        let _memo = template::JsonMemo::scope();
        for entry in files.entries() {
            let contents = build(entry, files, &objects, cap)?;
            let mode = entry.mode.unwrap_or(default_mode);
            made.push(BuiltFile {
                file: MountedFile::new(entry.path.clone(), mode, contents),
                label: entry.field(None),
                field: entry.field(Some(FilesKey::Path)),
            });
            kinds.push(entry.kind());
        }
    }
    response.files.retain(|f| f.shape.write_file);
    check_collisions(&response.files, &made)?;
    response.files.extend(made.into_iter().map(|built| built.file));
    Ok(kinds)
}

/// One file per top-level key of the file's JSON object: strings as they are, other values as
/// JSON text.
fn expand_keys(file: &MountedFile) -> Result<Vec<(String, SecretBytes)>> {
    let object = file.object_name();
    let fail = |message: String| Error::invalid_config(message).with_object(object).with_field("expandKeys");
    let text = std::str::from_utf8(file.contents.expose())
        .map_err(|_| fail("the value is binary, not a JSON object".to_owned()))?;
    let value = template::parse_json(text).map_err(fail)?;
    let entries = formats::merge(&[(object, value)]).map_err(fail)?;
    entries
        .into_iter()
        .map(|entry| {
            check_file_path(&entry.key)
                .map_err(|e| fail(format!("key {:?} cannot be a file name: {}", entry.key, e.message())))?;
            let contents = formats::scalar_text(&entry.value)
                .map_err(|what| fail(format!("key {:?} holds {what}", entry.key)))?;
            Ok((entry.key, SecretBytes::new(contents.as_bytes().to_vec())))
        })
        .collect()
}

/// The contents of one `files` entry.
fn build(
    entry: &FileEntry,
    files: &FilesSpec,
    objects: &Arc<ObjectValues>,
    cap: usize,
) -> Result<SecretBytes> {
    match &entry.source {
        Source::Template(references) => {
            let env = files.templates().ok_or_else(|| {
                Error::internal(format!("the template of {:?} was not compiled", entry.path))
            })?;
            let redact = |detail: &str| objects.quotes_a_value(detail);
            let rendered =
                template::render(env, &entry.label, Value::from_dyn_object(objects.clone()), cap, &redact)
                    .map_err(|failure| {
                        let line = failure.line.map(|l| format!(", line {l}")).unwrap_or_default();
                        let missing: Vec<&str> = references
                            .objects
                            .iter()
                            .map(String::as_str)
                            .filter(|name| !objects.values.contains_key(*name))
                            .collect();
                        let hint = if missing.is_empty() {
                            String::new()
                        } else {
                            format!(" (this mount has no object file named {})", quoted_list(&missing))
                        };
                        Error::invalid_config(format!(
                            "the template of {:?} failed{line}: {}{hint}",
                            entry.path, failure.message
                        ))
                        .with_field(entry.field(Some(FilesKey::Template)))
                    })?;
            Ok(into_secret(rendered))
        }
        Source::Format { format, from } => {
            let fail = |message: String| {
                Error::invalid_config(format!("{} file {:?}: {message}", format.as_str(), entry.path))
                    .with_field(entry.field(Some(FilesKey::From)))
            };
            let mut sources: Vec<(&str, Value)> = Vec::with_capacity(from.len());
            for name in from {
                let value = objects.values.get(name).ok_or_else(|| {
                    fail(format!(
                        "this mount has no object file named {name:?} (a skipped optional object, or a typo)"
                    ))
                })?;
                let text = value
                    .as_str()
                    .ok_or_else(|| fail(format!("object {name:?} is binary, not a JSON object")))?;
                let parsed =
                    template::parse_json(text).map_err(|why| fail(format!("object {name:?}: {why}")))?;
                sources.push((name, parsed));
            }
            let entries = formats::merge(&sources).map_err(fail)?;
            let bytes = formats::write(*format, &entries).map_err(fail)?;
            if bytes.len() > cap {
                return Err(fail(format!("the file is larger than {cap} bytes")));
            }
            Ok(into_secret(bytes))
        }
    }
}

/// The bytes as a file's contents, moved (not copied) out of their zeroizing buffer.
fn into_secret(mut bytes: zeroize::Zeroizing<Vec<u8>>) -> SecretBytes {
    SecretBytes::new(std::mem::take(&mut *bytes))
}

/// A file `shape` makes, and how errors name it.
struct BuiltFile {
    file: MountedFile,
    /// `files[0]`, `key "x" of object "y" (expandKeys)`.
    label: String,
    /// The field an error about it names.
    field: String,
}

/// A file built here must not be another file, nor a directory of one (or the reverse).
fn check_collisions(kept: &[MountedFile], made: &[BuiltFile]) -> Result<()> {
    let clash = |a: &str, b: &str| a == b || is_parent(a, b) || is_parent(b, a);
    for (i, built) in made.iter().enumerate() {
        let path = &built.file.path;
        let with_kept = kept
            .iter()
            .find(|other| clash(path, &other.path))
            .map(|other| format!("file {:?} of object {:?}", other.path, other.object_name()));
        let with_made = made[..i]
            .iter()
            .find(|other| clash(path, &other.file.path))
            .map(|other| format!("file {:?} of {}", other.file.path, other.label));
        if let Some(other) = with_kept.or(with_made) {
            return Err(Error::invalid_config(format!(
                "file {path:?} of {} collides with {other}; give one of them another name",
                built.label
            ))
            .with_field(&built.field));
        }
    }
    Ok(())
}

fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

/// The `objects` a template sees: each file of the mount by name, its value as text (bytes
/// when it is not UTF-8). `Debug` names the files, never their values.
struct ObjectValues {
    values: BTreeMap<String, Value>,
}

impl ObjectValues {
    fn of(files: &[MountedFile]) -> Arc<Self> {
        let values =
            files.iter().map(|f| (f.path.clone(), template::bytes_value(f.contents.expose()))).collect();
        Arc::new(Self { values })
    }

    /// Whether `text` (an error's detail) quotes any value of the mount, or any string in a JSON
    /// value, or a word of one: checked on the error path only.
    fn quotes_a_value(&self, text: &str) -> bool {
        fn leaves(value: &Value, out: &mut Vec<String>) {
            if let Some(s) = value.as_str() {
                out.push(s.to_owned());
                out.extend(s.split_whitespace().filter(|w| w.len() >= 4).map(str::to_owned));
            } else if let Ok(items) = value.try_iter() {
                for item in items {
                    let inner = value.get_item(&item).ok().filter(|v| !v.is_undefined()).unwrap_or(item);
                    leaves(&inner, out);
                }
            } else if !value.is_none() && !value.is_undefined() {
                out.push(value.to_string());
            }
        }
        let mut secrets = Vec::new();
        for value in self.values.values() {
            leaves(value, &mut secrets);
            if let Some(parsed) = value.as_str().and_then(|text| template::parse_json(text).ok()) {
                leaves(&parsed, &mut secrets);
            }
        }
        secrets.iter().filter(|s| s.len() >= 3).any(|s| text.contains(s.as_str()))
    }
}

impl fmt::Debug for ObjectValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectValues").field("files", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

impl Object for ObjectValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.values.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.values.keys().map(|k| Value::from(k.as_str())).collect();
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
                Ok(self.values.get(name).cloned().or(default).unwrap_or_else(|| Value::from(())))
            }
            "keys" => Ok(Value::from_iter(self.values.keys().map(|k| Value::from(k.as_str())))),
            "items" => Ok(Value::from_iter(
                self.values.iter().map(|(k, v)| Value::from(vec![Value::from(k.as_str()), v.clone()])),
            )),
            _ => Err(minijinja::Error::new(
                minijinja::ErrorKind::UnknownMethod,
                format!("objects has no method {method:?} (it has get, keys and items)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;

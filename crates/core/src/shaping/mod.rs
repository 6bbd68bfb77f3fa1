//! Files as the application wants them, for every backend alike: per object `decode`,
//! `expandKeys` and `writeFile`, and the `files` parameter (templates and fixed formats built
//! from the mount's objects).
//!
//! A backend parses the per-object keys with [`FileShape::read`] and tags each file it renders
//! with its object's shape ([`crate::MountedFile::shaped`]); the server runs [`shape`] on the
//! backend's answer, after every read and before anything is answered. An error anywhere fails
//! the whole mount and nothing is written.

pub mod bounds;
mod cert_filters;
mod formats;
mod json_text;
mod objects;
mod own_errors;
mod rewrite;
mod spec;
mod template;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use minijinja::value::Value;

pub use crate::shape::{Decoding, FileShape, ShapeKeys};
pub use spec::{FILES, FileEntry, FileFormat, FilesKey, FilesSpec, SLOW_AFTER};

use crate::error::{Error, Result};
use crate::files::{MAX_FILES_PER_MOUNT, SecretBytes, check_file_path};
use crate::mode::FileMode;
use crate::response::{MountResponse, MountedFile};
use objects::ObjectValues;
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
    shape_until(response, files, default_mode, cap, &AtomicBool::new(false))
}

/// Whether [`shape`] has anything to do for `response`: a mount of plain files does not need a
/// shaping thread.
pub fn needs_shaping(response: &MountResponse, files: &FilesSpec) -> bool {
    !files.is_empty() || response.files.iter().any(|f| !f.shape.is_plain())
}

/// [`shape`], stopping with `DeadlineExceeded` before its next file once `stop` is set (the
/// server's shaping pool sets it when the mount's deadline passes): each template is bounded by
/// its fuel, so the work ends within one template of the deadline.
pub fn shape_until(
    response: &mut MountResponse,
    files: &FilesSpec,
    default_mode: FileMode,
    cap: usize,
    stop: &AtomicBool,
) -> Result<ShapedKinds> {
    let go_on = || {
        if stop.load(Ordering::Relaxed) {
            Err(Error::deadline_exceeded(
                "shaping the files did not finish before the driver's deadline for this mount; stopped",
            ))
        } else {
            Ok(())
        }
    };
    shape_while(response, files, default_mode, cap, &go_on)
}

/// Decodes the files whose object says `decode` (each at most the response cap: linear work,
/// like encoding the answer), once: a decoded file's shape forgets its decoding, so shaping the
/// response again, or after [`shape_while`] stopped, does not decode it twice. Returns how many
/// were decoded.
pub fn decode_files(response: &mut MountResponse) -> Result<usize> {
    let mut decoded_files = 0;
    for file in &mut response.files {
        if let Some(decoding) = file.shape.decode.take() {
            let decoded = decoding.decode(file.contents.expose()).map_err(|why| {
                Error::invalid_config(why).with_object(file.object_name()).with_field(Decoding::KEY)
            })?;
            file.contents = SecretBytes::new(decoded);
            decoded_files += 1;
        }
    }
    Ok(decoded_files)
}

/// [`shape`], asking `go_on` before each object it expands and each `files` entry it builds;
/// an error from `go_on` ends the shaping with that error. What it leaves in `response` then is
/// the files decoded and nothing else changed, so the caller may shape the response again
/// (elsewhere) from there.
pub fn shape_while(
    response: &mut MountResponse,
    files: &FilesSpec,
    default_mode: FileMode,
    cap: usize,
    go_on: &dyn Fn() -> Result<()>,
) -> Result<ShapedKinds> {
    let mut kinds = ShapedKinds::new();
    if !needs_shaping(response, files) {
        return Ok(kinds);
    }
    kinds.extend(std::iter::repeat_n("decoded", decode_files(response)?));
    let mut made: Vec<BuiltFile> = Vec::new();
    let written = response.files.iter().filter(|f| f.shape.write_file).count();
    for file in response.files.iter().filter(|f| f.shape.expand_keys) {
        go_on()?;
        let keys = expand_keys(file)?;
        if written + made.len() + keys.len() > MAX_FILES_PER_MOUNT {
            return Err(Error::invalid_config(format!(
                "expandKeys of object {:?} makes more than {MAX_FILES_PER_MOUNT} files in one mount (the most one mount may write)",
                file.object_name()
            ))
            .with_object(file.object_name())
            .with_field("expandKeys"));
        }
        for (key, contents) in keys {
            made.push(BuiltFile {
                file: MountedFile::new(key, file.mode, contents),
                origin: Origin::ExpandedKey { object: file.object_name().to_owned() },
            });
            kinds.push("expanded_key");
        }
    }
    if !files.is_empty() {
        let objects = ObjectValues::take(&mut response.files);
        let built = {
            let _memo = template::JsonMemo::scope();
            let _named = cert_filters::ObjectsInScope::enter(&objects);
            files
                .entries()
                .iter()
                .map(|entry| go_on().and_then(|()| build(entry, files, &objects, cap)))
                .collect::<Result<Vec<_>>>()
        };
        objects.give_back(&mut response.files)?;
        for (entry, contents) in files.entries().iter().zip(built?) {
            let mode = entry.mode.unwrap_or(default_mode);
            made.push(BuiltFile {
                file: MountedFile::new(entry.path.clone(), mode, contents),
                origin: Origin::Files(entry),
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
            let named: usize = references.objects.iter().filter_map(|name| objects.len_of(name)).sum();
            let objects_value = Value::from_dyn_object(objects.clone());
            let rendered =
                template::render(env, &entry.label, objects_value, named, cap).map_err(|failure| {
                    let line = failure.line.map(|l| format!(", line {l}")).unwrap_or_default();
                    let missing: Vec<&str> = references
                        .objects
                        .iter()
                        .map(String::as_str)
                        .filter(|name| !objects.has(name))
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
                let value = objects.get(name).ok_or_else(|| {
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

/// A file `shape` makes, and where from (for errors only).
struct BuiltFile<'spec> {
    file: MountedFile,
    origin: Origin<'spec>,
}

enum Origin<'spec> {
    /// A key of the object's JSON value; the file is named by the key.
    ExpandedKey {
        object: String,
    },
    Files(&'spec FileEntry),
}

impl BuiltFile<'_> {
    /// `files[0]`, `key "x" of object "y" (expandKeys)`.
    fn label(&self) -> String {
        match &self.origin {
            Origin::ExpandedKey { object } => {
                format!("key {:?} of object {object:?} (expandKeys)", self.file.path)
            }
            Origin::Files(entry) => entry.field(None),
        }
    }

    /// The field an error about it names.
    fn field(&self) -> String {
        match &self.origin {
            Origin::ExpandedKey { .. } => "expandKeys".to_owned(),
            Origin::Files(entry) => entry.field(Some(FilesKey::Path)),
        }
    }
}

/// A file built here must not be another file, nor a directory of one (or the reverse); the
/// kept files were checked against each other when they were planned.
fn check_collisions(kept: &[MountedFile], made: &[BuiltFile<'_>]) -> Result<()> {
    let paths: Vec<&str> =
        kept.iter().map(|f| f.path.as_str()).chain(made.iter().map(|b| b.file.path.as_str())).collect();
    let Some(clash) = crate::path_clash::first_clash(&paths, kept.len(), true) else { return Ok(()) };
    let built = &made[clash.later - kept.len()];
    let other = match clash.earlier.checked_sub(kept.len()) {
        None => {
            let other = &kept[clash.earlier];
            format!("file {:?} of object {:?}", other.path, other.object_name())
        }
        Some(at) => format!("file {:?} of {}", made[at].file.path, made[at].label()),
    };
    Err(Error::invalid_config(format!(
        "file {:?} of {} collides with {other}; give one of them another name",
        built.file.path,
        built.label()
    ))
    .with_field(built.field()))
}

fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;

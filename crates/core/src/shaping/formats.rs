//! The fixed formats of `files`: every top-level key of JSON objects as dotenv, Java
//! properties, JSON or YAML.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use zeroize::Zeroizing;

use super::json_text::{self, Layout};
use super::spec::FileFormat;

/// One key of the merged object and the object (file name) it came from.
pub(crate) struct Entry {
    pub key: String,
    pub value: Value,
    pub object: String,
}

/// Every top-level key of each source, sources in order and keys in each source's order; a
/// key in two sources, or a source that is not a JSON object, is an error naming the objects.
pub(crate) fn merge(sources: &[(&str, Value)]) -> Result<Vec<Entry>, String> {
    let mut merged: Vec<Entry> = Vec::new();
    for (object, value) in sources {
        if value.kind() != ValueKind::Map {
            return Err(format!("object {object:?} is not a JSON object (its value is a {})", value.kind()));
        }
        let keys =
            value.try_iter().map_err(|_| format!("object {object:?} cannot be read as a JSON object"))?;
        for key in keys {
            let Some(name) = key.as_str() else {
                return Err(format!("object {object:?} has a key that is not a string"));
            };
            if let Some(earlier) = merged.iter().find(|e| e.key == name) {
                return Err(format!(
                    "key {name:?} is in both object {:?} and object {object:?}; keys must be unique across from",
                    earlier.object
                ));
            }
            let value = value.get_item(&key).unwrap_or_default();
            merged.push(Entry { key: name.to_owned(), value, object: (*object).to_owned() });
        }
    }
    Ok(merged)
}

/// The file of `format` holding `entries`.
pub(crate) fn write(format: FileFormat, entries: &[Entry]) -> Result<Zeroizing<Vec<u8>>, String> {
    match format {
        FileFormat::Dotenv => dotenv(entries),
        FileFormat::Properties => properties(entries),
        FileFormat::Json => {
            let object = Value::from_pairs(entries.iter().map(|e| (e.key.clone(), e.value.clone())));
            let mut text = Zeroizing::new(Vec::new());
            json_text::write(&object, Layout::Indented(b"  "), &mut text)
                .map_err(|_| "the keys cannot be written as JSON".to_owned())?;
            text.push(b'\n');
            Ok(text)
        }
        FileFormat::Yaml => {
            let object = Value::from_pairs(entries.iter().map(|e| (e.key.clone(), e.value.clone())));
            serde_norway::to_string(&object)
                .map(|text| Zeroizing::new(text.into_bytes()))
                .map_err(|_| "the keys cannot be written as YAML".to_owned())
        }
    }
}

/// A value as one line's text: strings as they are, anything else as JSON text.
pub(crate) fn scalar_text(value: &Value) -> Result<Zeroizing<String>, String> {
    if let Some(text) = value.as_str() {
        return Ok(Zeroizing::new(text.to_owned()));
    }
    if let Some(bytes) = value.as_bytes() {
        return std::str::from_utf8(bytes)
            .map(|text| Zeroizing::new(text.to_owned()))
            .map_err(|_| "a binary value".to_owned());
    }
    let mut text = Vec::new();
    json_text::write(value, Layout::Compact, &mut text)
        .ok()
        .and_then(|()| String::from_utf8(text).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| "a value that cannot be JSON".to_owned())
}

/// Is `key` a name `source`, `docker compose --env-file` and python-dotenv all take?
pub(crate) fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `KEY='value'`, or `KEY="value"` with `\` and `"` escaped when the value has a quote or a
/// backslash. Every line reads back to the same value with bash's `source`,
/// `docker compose --env-file` and python-dotenv; a value that no quoting makes all three read
/// alike is an error naming the key (see [`dotenv_problem`]).
pub(crate) fn dotenv(entries: &[Entry]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(String::new());
    for entry in entries {
        if !is_env_name(&entry.key) {
            return Err(format!(
                "key {:?} of object {:?} is not an environment variable name (letters, digits and _, not starting with a digit)",
                entry.key, entry.object
            ));
        }
        let value = scalar_text(&entry.value)
            .map_err(|what| format!("key {:?} of object {:?} holds {what}", entry.key, entry.object))?;
        let line = dotenv_line(&entry.key, &value)
            .map_err(|why| format!("the value of key {:?} of object {:?} {why}", entry.key, entry.object))?;
        out.push_str(&line);
    }
    Ok(Zeroizing::new(std::mem::take(&mut *out).into_bytes()))
}

/// One `KEY=...` line with its newline, or why the value cannot be written.
pub(crate) fn dotenv_line(key: &str, value: &str) -> Result<Zeroizing<String>, &'static str> {
    if let Some(problem) = dotenv_problem(value) {
        return Err(problem);
    }
    let mut line = Zeroizing::new(String::with_capacity(key.len() + value.len() + 4));
    if !value.contains(['\'', '\\']) {
        let _ = write!(line, "{key}='{value}'");
    } else {
        line.push_str(key);
        line.push_str("=\"");
        for c in value.chars() {
            if matches!(c, '\\' | '"') {
                line.push('\\');
            }
            line.push(c);
        }
        line.push('"');
    }
    line.push('\n');
    Ok(line)
}

/// Values the three readers cannot all read back alike: NUL (no environment variable holds
/// it), carriage returns (python-dotenv reads them as newlines), `${...}` (python-dotenv
/// expands it inside any quotes), and a quote or backslash together with `$` or a backtick
/// (single quotes cannot hold the quote; double quotes expand `$` and backticks in bash).
pub(crate) fn dotenv_problem(value: &str) -> Option<&'static str> {
    if value.contains('\0') {
        return Some("contains a NUL character, which no environment variable can hold");
    }
    if value.contains('\r') {
        return Some("contains a carriage return, which python-dotenv reads as a newline");
    }
    if let Some(start) = value.find("${")
        && value[start..].contains('}')
    {
        return Some("contains ${...}, which python-dotenv expands inside any quotes");
    }
    if value.contains(['\'', '\\']) && value.contains(['$', '`']) {
        return Some(
            "contains a single quote or backslash together with $ or a backtick: no quoting reads back alike in \
             bash, docker compose and python-dotenv",
        );
    }
    None
}

/// Java `Properties.store` escaping, which `Properties.load` (stream or reader) reads back:
/// `\`, `=`, `:`, `#`, `!` and control characters escaped, every space of a key and a value's
/// leading space escaped, anything outside printable ASCII as `\uXXXX`.
pub(crate) fn properties(entries: &[Entry]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut out = Zeroizing::new(String::new());
    for entry in entries {
        let value = scalar_text(&entry.value)
            .map_err(|what| format!("key {:?} of object {:?} holds {what}", entry.key, entry.object))?;
        escape_properties(&mut out, &entry.key, true);
        out.push('=');
        escape_properties(&mut out, &value, false);
        out.push('\n');
    }
    Ok(Zeroizing::new(std::mem::take(&mut *out).into_bytes()))
}

/// Appends `text` escaped as `Properties.saveConvert` does with `escUnicode` on.
pub(crate) fn escape_properties(out: &mut String, text: &str, is_key: bool) {
    for (i, c) in text.chars().enumerate() {
        match c {
            ' ' if i == 0 || is_key => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            other => {
                let mut units = [0u16; 2];
                for unit in other.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
        }
    }
}

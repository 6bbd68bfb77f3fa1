//! `jmesPath`: fields of a JSON secret written as files of their own, with the AWS provider's
//! syntax, rules and error words. The AWS backend has it as upstream does; the Azure backend
//! offers the same on secrets (the official Azure provider has no such key).

use serde_norway::Value;

use crate::error::Error;
use crate::files::SecretBytes;
use crate::keys::{ConfigKey, Fields, KeyMatching};
use crate::mode::FileMode;
use crate::shape::{Decoding, FileShape};
use crate::warning::Warning;

crate::config_keys! {
    /// Keys of a `jmesPath` entry.
    pub enum JmesKey {
        Path => "path",
        ObjectAlias => "objectAlias",
        FilePermission => "filePermission",
        Decode => "decode",
    }
}

/// One `jmesPath` entry: the field at `path`, written as `file_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmesEntry {
    pub path: String,
    /// `objectAlias` as written in the SecretProviderClass.
    pub alias: String,
    /// The file written: the alias after the backend's path rules.
    pub file_name: String,
    pub mode: FileMode,
    /// `decode`: the file holds the field's decoded bytes.
    pub decode: Option<Decoding>,
}

impl JmesEntry {
    /// How the entry's file is shaped (decoded, when it says so).
    pub fn shape(&self) -> FileShape {
        FileShape::decoded(self.decode)
    }

    /// The entry with its file under `directory`: a folder's selected secret writes its
    /// extracted keys as `<its file>/<alias>`.
    pub fn in_directory(&self, directory: &str) -> Self {
        Self { file_name: format!("{directory}/{}", self.file_name), ..self.clone() }
    }
}

/// How a backend reads the entries: key matching, file names and permissions follow the
/// backend's own rules for objects.
pub struct JmesRules<'a> {
    pub matching: KeyMatching,
    /// The file name for an alias (path translation and the like).
    pub file_name: &'a dyn Fn(&str) -> String,
    /// Parses a `filePermission` value.
    pub mode: &'a dyn Fn(&str) -> Result<FileMode, Error>,
}

impl std::fmt::Debug for JmesRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JmesRules").field("matching", &self.matching).finish_non_exhaustive()
    }
}

/// Parses the `jmesPath` list of `object`; entries without a problem, every problem in
/// `problems`, unknown keys in `warnings`. Entries inherit `parent_mode` unless they set their
/// own `filePermission`.
pub fn parse_entries(
    list: Option<&Value>,
    object: &str,
    parent_mode: FileMode,
    rules: &JmesRules<'_>,
    warnings: &mut Vec<Warning>,
    problems: &mut Vec<Error>,
) -> Vec<JmesEntry> {
    let entries = match list {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(entries)) => entries,
        Some(_) => {
            problems.push(
                Error::invalid_config("jmesPath must be a list of {path, objectAlias}")
                    .with_object(object)
                    .with_field("jmesPath"),
            );
            return Vec::new();
        }
    };
    let mut parsed = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = |key: &str| format!("jmesPath[{i}].{key}");
        let fields: Fields<'_, JmesKey> = Fields::read(entry, rules.matching);
        warnings.extend(fields.unknown_keys(object, &format!("jmesPath[{i}].")));
        let get = |key: JmesKey| {
            fields.non_empty(key).map_err(|e| e.with_object(object).with_field(field(key.as_str())))
        };
        let (path, alias, permission, decode) = match (
            get(JmesKey::Path),
            get(JmesKey::ObjectAlias),
            get(JmesKey::FilePermission),
            get(JmesKey::Decode),
        ) {
            (Ok(p), Ok(a), Ok(f), Ok(d)) => (p, a, f, d),
            (p, a, f, d) => {
                problems.extend([p.err(), a.err(), f.err(), d.err()].into_iter().flatten());
                continue;
            }
        };
        let decode = match decode.as_deref().map(Decoding::parse) {
            None => None,
            Some(Ok(decode)) => Some(decode),
            Some(Err(e)) => {
                problems.push(e.with_object(object).with_field(field(JmesKey::Decode.as_str())));
                continue;
            }
        };
        let Some(path) = path else {
            problems.push(
                Error::invalid_config("Path must be specified for JMES object")
                    .with_object(object)
                    .with_field(field(JmesKey::Path.as_str())),
            );
            continue;
        };
        let Some(alias) = alias else {
            problems.push(
                Error::invalid_config("Object alias must be specified for JMES object")
                    .with_object(object)
                    .with_field(field(JmesKey::ObjectAlias.as_str())),
            );
            continue;
        };
        let mode = match permission.as_deref().map(rules.mode) {
            None => parent_mode,
            Some(Ok(mode)) => mode,
            Some(Err(e)) => {
                problems.push(e.with_object(object).with_field(field(JmesKey::FilePermission.as_str())));
                continue;
            }
        };
        parsed.push(JmesEntry { file_name: (rules.file_name)(&alias), path, alias, mode, decode });
    }
    parsed
}

/// The value of each entry in `secret` (a JSON document), in order. Only strings can be
/// written; a path that finds nothing, another type, or a secret that is not JSON is an error
/// naming the object and the entry.
pub fn extract(object: &str, secret: &SecretBytes, entries: &[JmesEntry]) -> Result<Vec<SecretBytes>, Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let invalid_json = || {
        Error::invalid_config(format!("Invalid JSON used with jmesPath in secret: {object}."))
            .with_object(object)
            .with_field("jmesPath")
    };
    let text = std::str::from_utf8(secret.expose()).map_err(|_| invalid_json())?;
    let document = jmespath::Variable::from_json(text).map_err(|_| invalid_json())?;
    entries.iter().map(|entry| extract_one(object, &document, entry)).collect()
}

fn extract_one(object: &str, document: &jmespath::Variable, entry: &JmesEntry) -> Result<SecretBytes, Error> {
    let field = format!("jmesPath[{}]", entry.path);
    let fail = |message: String| Error::invalid_config(message).with_object(object).with_field(&field);
    let expression = jmespath::compile(&entry.path).map_err(|e| {
        fail(format!("Invalid JMES Path: {}. {e} (quote keys with dashes: '\"db-password\"')", entry.path))
    })?;
    let result =
        expression.search(document).map_err(|e| fail(format!("Invalid JMES Path: {}. {e}", entry.path)))?;
    match result.as_ref() {
        jmespath::Variable::String(text) => Ok(SecretBytes::new(text.clone().into_bytes())),
        jmespath::Variable::Null => Err(fail(format!(
            "JMES Path - {} for object alias - {} does not point to a valid object.",
            entry.path, entry.file_name
        ))),
        other => Err(fail(format!(
            "Invalid JMES search result type for path:{}. Only string is allowed (got {}).",
            entry.path,
            other.get_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> (Vec<JmesEntry>, Vec<Error>, Vec<Warning>) {
        let value: Value = serde_norway::from_str(yaml).unwrap_or(Value::Null);
        let rules = JmesRules {
            matching: KeyMatching::Exact,
            file_name: &|alias| alias.replace('/', "_"),
            mode: &FileMode::parse_four_octal_digits,
        };
        let (mut warnings, mut problems) = (Vec::new(), Vec::new());
        let parsed =
            parse_entries(Some(&value), "db", FileMode::DEFAULT, &rules, &mut warnings, &mut problems);
        (parsed, problems, warnings)
    }

    #[test]
    fn entries_inherit_the_mode_and_follow_the_backend_file_names() {
        let (parsed, problems, warnings) = entries(
            "- {path: a, objectAlias: x/a}\n- {path: b, objectAlias: b, filePermission: '0600', extra: 1}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(parsed[0].file_name, "x_a");
        assert_eq!(parsed[0].alias, "x/a");
        assert_eq!(parsed[0].mode, FileMode::DEFAULT);
        assert_eq!(parsed[1].mode.bits(), 0o600);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn bad_entries_name_the_object_and_field() {
        let (parsed, problems, _) =
            entries("- {objectAlias: a}\n- {path: b}\n- {path: c, objectAlias: c, filePermission: '999'}");
        assert!(parsed.is_empty());
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[0].contains(r#"object "db", field "jmesPath[0].path""#), "{text:?}");
        assert!(text[1].contains(r#"field "jmesPath[1].objectAlias""#), "{text:?}");
        assert!(text[2].contains(r#"field "jmesPath[2].filePermission""#), "{text:?}");
        let (_, problems, _) = entries("path: a");
        assert!(problems[0].to_string().contains("jmesPath must be a list"), "{problems:?}");
    }

    #[test]
    fn extraction_writes_strings_only() {
        let (parsed, _, _) =
            entries("- {path: user, objectAlias: u}\n- {path: '\"db-pass\"', objectAlias: p}");
        let secret = SecretBytes::new(br#"{"user":"app","db-pass":"s3cret","n":1}"#.to_vec());
        let values = extract("db", &secret, &parsed).unwrap_or_default();
        assert_eq!(
            values.iter().map(SecretBytes::expose).collect::<Vec<_>>(),
            [b"app".as_slice(), b"s3cret"]
        );
        let (number, _, _) = entries("- {path: n, objectAlias: n}");
        let error = extract("db", &secret, &number).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("Only string is allowed (got number)"), "{error}");
        let (missing, _, _) = entries("- {path: nope, objectAlias: n}");
        let error = extract("db", &secret, &missing).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("does not point to a valid object"), "{error}");
        let error = extract("db", &SecretBytes::new(b"not json".to_vec()), &parsed)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains(r#"object "db""#) && error.contains("Invalid JSON used with jmesPath"),
            "{error}"
        );
    }
}

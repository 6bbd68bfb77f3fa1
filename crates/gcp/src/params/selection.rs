//! A `resourcePrefix` entry: every secret of the project (or location) whose name starts with
//! the prefix (and carries the entry's labels, `tags`), read at `latest`, one file each named by
//! the rest of its name under the entry's `path` as a directory.

use csi_secrets_provider_core::kit::{PrefixEntry, PrefixKeys, Selected, Selection, selected_path};
use csi_secrets_provider_core::{ConfigKey, Error, Fields, FileMode, KeyMatching, Warning};
use serde_norway::Value;

use csi_secrets_provider_core::grammar;

use super::names::{self, Location};
use super::{ResourceName, SecretKey, SecretSpec, parse_secret};

/// The name the entry's options are parsed under (as one secret's); never shown.
const PLACEHOLDER: &str = "projects/p/secrets/selected/versions/latest";

/// One `resourcePrefix` entry.
#[derive(Debug, Clone)]
pub struct SelectionSpec {
    /// The prefix is the whole `resourcePrefix` as written (`projects/P/secrets/app-`).
    pub selection: Selection,
    /// `projects/P` or `projects/P/locations/L`, as written.
    pub parent: String,
    pub location: Option<Location>,
    pub project: String,
    /// `path`: the directory the files go in.
    pub directory: Option<String>,
    /// What every selected secret is read as: the entry's options.
    template: SecretSpec,
}

impl SelectionSpec {
    /// The secret a listed one becomes: `latest`, under the directory.
    pub fn secret(&self, selected: &Selected) -> SecretSpec {
        let id = selected.name.rsplit('/').next().unwrap_or(&selected.name).to_owned();
        let resource = ResourceName {
            project: self.project.clone(),
            location: self.location.clone(),
            secret: id,
            version: "latest".to_owned(),
        };
        let file_name = selected_path(self.directory.as_deref(), &selected.relative);
        let jmes = self.template.jmes.iter().map(|entry| entry.in_directory(&file_name)).collect();
        SecretSpec {
            resource_name: resource.api_name(),
            resource,
            file_name,
            optional: true,
            selected: true,
            jmes,
            ..self.template.clone()
        }
    }

    /// The secret name (`<parent>/secrets/<id>`) a listed secret id is selected as.
    pub fn listed_name(&self, id: &str) -> String {
        format!("{}/secrets/{id}", self.parent)
    }
}

/// How a GCP prefix entry is written: the keys every backend's prefix entry shares.
const PREFIX_KEYS: PrefixKeys<SecretKey> = PrefixKeys {
    prefix: "resourcePrefix",
    tags: SecretKey::Tags,
    max_objects: SecretKey::MaxObjects,
    optional: SecretKey::Optional,
    directory: SecretKey::Path,
    one_object: &[SecretKey::ResourceName, SecretKey::FileName],
    one_object_says: "names one secret; a resourcePrefix entry selects every secret under the prefix (its `path` is their directory)",
};

/// Parses `item`, which has `resourcePrefix`: the prefix checked against Google's grammar, the
/// shared parts by the kit, then the entry's options parsed as one secret's.
pub(crate) fn parse_selection(
    index: usize,
    item: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<SelectionSpec, Vec<Error>> {
    let fields: Fields<'_, SecretKey> = Fields::read(item, KeyMatching::Exact);
    let at = format!("secrets[{index}]");
    let prefix = match fields.trimmed(SecretKey::ResourcePrefix) {
        Ok(Some(prefix)) => prefix,
        Ok(None) => String::new(),
        Err(e) => return Err(vec![e.or_object(at)]),
    };
    let mut problems = Vec::new();
    let Some((parent, name_prefix)) = prefix.split_once("/secrets/") else {
        return Err(vec![
            Error::invalid_config(format!(
                "resourcePrefix {prefix:?} must be projects/<project>/secrets/<prefix> or projects/<project>/locations/<location>/secrets/<prefix>"
            ))
            .with_object(if prefix.is_empty() { at } else { prefix.clone() })
            .with_field("resourcePrefix"),
        ]);
    };
    let (project, location) = match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", project] => (*project, None),
        ["projects", project, "locations", location] => (*project, Some(*location)),
        _ => {
            problems.push(
                Error::invalid_config(format!(
                    "resourcePrefix {} must start with projects/<project>/secrets/ or projects/<project>/locations/<location>/secrets/",
                    grammar::shown(&prefix)
                ))
                .with_object(&prefix)
                .with_field("resourcePrefix"),
            );
            ("", None)
        }
    };
    // Each part is checked against Google's grammar: the location becomes part of a host name.
    let mut checked = |result: Result<(), Error>| {
        if let Err(e) = result {
            problems.push(e.prefixed("resourcePrefix").with_object(&prefix).with_field("resourcePrefix"));
        }
    };
    if parent.starts_with("projects/") {
        checked(names::check_project(project));
    }
    let location = location.and_then(|location| match Location::parse(location) {
        Ok(location) => Some(location),
        Err(e) => {
            checked(Err(e));
            None
        }
    });
    if name_prefix.contains('/') {
        checked(Err(Error::invalid_config(format!(
            "{}: a secret name prefix has no '/' (nor a version)",
            grammar::shown(&prefix)
        ))));
    } else {
        checked(names::SECRET_PREFIX.check(name_prefix));
    }
    let project = project.to_owned();
    let directory = fields.trimmed(SecretKey::Path).ok().flatten().filter(|d| !d.is_empty());
    // The entry's options are parsed as one secret's: a placeholder name, its directory as path;
    // `optional` is the entry's, read by the kit.
    let mut as_secret = item.clone();
    if let Value::Mapping(map) = &mut as_secret {
        for key in
            [SecretKey::ResourcePrefix, SecretKey::ResourceName, SecretKey::FileName, SecretKey::Optional]
        {
            map.remove(key.as_str());
        }
        map.insert(Value::from("resourceName"), Value::from(PLACEHOLDER));
        map.insert(
            Value::from("path"),
            Value::from(directory.clone().unwrap_or_else(|| "selected".to_owned())),
        );
    }
    let template = parse_secret(index, &as_secret, default_mode, warnings);
    let entry = PrefixEntry::read(&PREFIX_KEYS, &fields, prefix.clone(), directory, &mut problems);
    // Labels go into the listing's filter as quoted strings: Google's grammar has no quote or
    // backslash that could end one.
    if let Some(entry) = &entry {
        for (key, value) in &entry.selection.tags {
            for problem in [names::LABEL_KEY.check(key).err(), names::LABEL_VALUE.check(value).err()] {
                problems.extend(problem.map(|e| e.with_object(&prefix).with_field("tags")));
            }
        }
    }
    match (entry, template) {
        (Some(PrefixEntry { selection, directory }), Ok(template)) if problems.is_empty() => {
            Ok(SelectionSpec { selection, parent: parent.to_owned(), location, project, directory, template })
        }
        (_, template) => {
            problems.extend(template.err().unwrap_or_default().into_iter().map(|e| {
                // The placeholder is no name of the user's: say the entry instead.
                let error =
                    Error::new(e.kind(), e.message().replace(PLACEHOLDER, &prefix)).with_object(&prefix);
                match e.field() {
                    Some(field) => error.with_field(field),
                    None => error,
                }
            }));
            Err(problems)
        }
    }
}

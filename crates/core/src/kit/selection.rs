//! Whole folders of secrets: an `objectPrefix` (AWS, Azure) or `resourcePrefix` (GCP) entry
//! selects every current secret whose name starts with the prefix and carries the entry's tags.
//!
//! The backend lists (one shared, single-flight listing per identity and query, under the same
//! remount rule as reads: [`Listing`] is what a [`crate::SharedReads`] keeps), and core decides
//! what the listing selects ([`Selection::select`]): the prefix and every tag pair must match,
//! the count stays within `maxObjects`, and an empty selection is an error unless the entry is
//! optional. Each selected secret then becomes an ordinary object of the mount, named by the
//! rest of its name after the prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_norway::Value;

use crate::error::{Error, Result};
use crate::outcome::SkippedObject;
use crate::request::MountRequest;
use crate::sharing::HeldBytes;

/// `maxObjects` when the entry does not say.
pub const DEFAULT_MAX_OBJECTS: usize = 100;
/// The most `maxObjects` may be: a mount is one gRPC answer, and a folder of thousands of
/// secrets in one volume is a mistake rather than a plan.
pub const MAX_OBJECTS_LIMIT: usize = 1_000;

/// What one prefix entry selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selection {
    /// The key the entry was written with (`objectPrefix`, `resourcePrefix`), for messages.
    pub key: &'static str,
    pub prefix: String,
    /// Every pair must be on the secret (AWS tags, Azure tags, GCP labels).
    pub tags: BTreeMap<String, String>,
    pub max_objects: usize,
    /// An empty selection mounts no file instead of failing.
    pub optional: bool,
}

/// One secret a listing found: its full name and its tags. Backends leave out what is not
/// current (disabled, deleted, scheduled for deletion) before it gets here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl Listed {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), tags: BTreeMap::new() }
    }

    pub fn with_tags(mut self, tags: impl IntoIterator<Item = (String, String)>) -> Self {
        self.tags.extend(tags);
        self
    }
}

/// What one listing call (all its pages) answered: names and tags, no values. Kept and shared
/// like a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing(pub Arc<Vec<Listed>>);

impl Listing {
    pub fn new(entries: Vec<Listed>) -> Self {
        Self(Arc::new(entries))
    }

    pub fn entries(&self) -> &[Listed] {
        &self.0
    }
}

impl HeldBytes for Listing {
    fn held_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|listed| {
                listed.name.len() + listed.tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            })
            .sum()
    }
}

/// One selected secret: its full name and the rest of it after the prefix (what its file is
/// named by, before the backend's path rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub name: String,
    pub relative: String,
}

impl Selection {
    /// Reads `tags` and `maxObjects` of an entry whose prefix is `prefix` (given with `key`).
    /// Problems are `InvalidConfig` naming `object` and the field.
    pub fn parse(
        key: &'static str,
        prefix: String,
        tags: Option<&Value>,
        max_objects: Option<&Value>,
        optional: bool,
        object: &str,
    ) -> std::result::Result<Self, Vec<Error>> {
        let mut problems = Vec::new();
        let tags = match tags.map(parse_tags) {
            None => BTreeMap::new(),
            Some(Ok(tags)) => tags,
            Some(Err(e)) => {
                problems.push(e.with_object(object).with_field("tags"));
                BTreeMap::new()
            }
        };
        let max_objects = match max_objects.map(parse_max_objects) {
            None => DEFAULT_MAX_OBJECTS,
            Some(Ok(max)) => max,
            Some(Err(e)) => {
                problems.push(e.with_object(object).with_field("maxObjects"));
                DEFAULT_MAX_OBJECTS
            }
        };
        if problems.is_empty() {
            Ok(Self { key, prefix, tags, max_objects, optional })
        } else {
            Err(problems)
        }
    }

    /// How the entry is named in messages: `objectPrefix "team-a/app/"`.
    pub fn label(&self) -> String {
        format!("{} {:?}", self.key, self.prefix)
    }

    /// Whether `listed` is one of this entry's secrets.
    pub fn matches(&self, listed: &Listed) -> bool {
        listed.name.starts_with(&self.prefix)
            && self.tags.iter().all(|(key, value)| listed.tags.get(key) == Some(value))
    }

    /// The secrets of `listing` this entry selects, in name order. More than `maxObjects` is
    /// an error naming the entry and the count (never a silent cut); none is an error unless
    /// the entry is optional (then an empty list).
    pub fn select(&self, listing: &Listing) -> Result<Vec<Selected>> {
        self.select_admitted(listing, |_| true)
    }

    /// [`Self::select`] of only the secrets `admitted` lets through (the admin policy): the
    /// others are left out before the cap and the empty check, so no count or message says
    /// that they exist.
    pub fn select_admitted(
        &self,
        listing: &Listing,
        admitted: impl Fn(&Selected) -> bool,
    ) -> Result<Vec<Selected>> {
        let mut selected: Vec<Selected> = listing
            .entries()
            .iter()
            .filter(|listed| self.matches(listed))
            .map(|listed| Selected { name: listed.name.clone(), relative: self.relative_name(&listed.name) })
            .filter(|selected| admitted(selected))
            .collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name));
        selected.dedup_by(|a, b| a.name == b.name);
        if selected.len() > self.max_objects {
            return Err(Error::invalid_config(format!(
                "{} selects {} secrets, more than maxObjects ({}); narrow the prefix or the tags, or raise maxObjects (at most {MAX_OBJECTS_LIMIT})",
                self.label(),
                selected.len(),
                self.max_objects
            ))
            .with_object(&self.prefix)
            .with_field("maxObjects"));
        }
        if selected.is_empty() && !self.optional {
            return Err(Error::not_found(format!(
                "{} selects no secret{}; set optional: true to mount none",
                self.label(),
                self.tags_clause()
            ))
            .with_object(&self.prefix));
        }
        Ok(selected)
    }

    /// Why an optional entry mounted nothing, for the skipped record.
    pub fn empty_reason(&self) -> String {
        format!("{} selects no secret{}", self.label(), self.tags_clause())
    }

    fn tags_clause(&self) -> String {
        if self.tags.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" with tags {}", pairs.join(", "))
        }
    }

    /// The rest of `name` after the prefix, without a leading `/` (prefix `/team-a/app` and
    /// parameter `/team-a/app/db` give `db`); a secret named exactly the prefix is named by
    /// its last path element.
    pub fn relative_name(&self, name: &str) -> String {
        let rest = name.strip_prefix(&self.prefix).unwrap_or(name).trim_start_matches('/');
        if rest.is_empty() {
            name.trim_end_matches('/').rsplit('/').next().unwrap_or(name).to_owned()
        } else {
            rest.to_owned()
        }
    }
}

/// `tags`: a map of strings (numbers and booleans are taken as their text, as YAML users
/// write `version: 2`).
fn parse_tags(value: &Value) -> Result<BTreeMap<String, String>> {
    let Value::Mapping(map) = value else {
        return Err(Error::invalid_config("tags must be a map of tag names to values ({env: prod})"));
    };
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    map.iter()
        .map(|(key, value)| match (text(key), text(value)) {
            (Some(key), Some(value)) if !key.is_empty() => Ok((key, value)),
            _ => Err(Error::invalid_config("tags must be a map of tag names to values ({env: prod})")),
        })
        .collect()
}

/// `maxObjects`: a whole number from 1 to [`MAX_OBJECTS_LIMIT`], as a number or a string.
fn parse_max_objects(value: &Value) -> Result<usize> {
    let parsed = match value {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<usize>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if (1..=MAX_OBJECTS_LIMIT).contains(&n) => Ok(n),
        _ => Err(Error::invalid_config(format!(
            "maxObjects must be a whole number from 1 to {MAX_OBJECTS_LIMIT}"
        ))),
    }
}

/// Adds a selected secret's file to the mount's `plan`: a path another object already writes
/// is an error naming both (a folder must not silently replace a named object's file, nor the
/// reverse), as is a path that would be a directory of another.
pub fn plan_selected(
    plan: &mut crate::files::FilePlan,
    selection: &Selection,
    selected: &str,
    path: &str,
    mode: crate::mode::FileMode,
    shape: crate::shape::FileShape,
) -> Result<()> {
    if let Some(existing) = plan.files().iter().find(|file| file.path == path) {
        return Err(Error::invalid_config(format!(
            "file {path:?} of secret {selected:?} (selected by {}) is also written by object {:?}",
            selection.label(),
            existing.object
        ))
        .with_object(selected));
    }
    plan.add_shaped(selected, path, mode, shape).map_err(|e| {
        Error::invalid_config(format!("{} (selected by {})", e.message(), selection.label()))
            .with_object(selected)
    })
}

/// What the folder entries of a mount selected: one object per selected secret, read like the
/// named ones, and the optional entries that selected nothing (skipped, with a version saying
/// so).
#[derive(Debug)]
pub struct Selections<O> {
    pub objects: Vec<O>,
    /// `object` is the entry's prefix.
    pub empty: Vec<SkippedObject>,
}

impl<O> Default for Selections<O> {
    fn default() -> Self {
        Self { objects: Vec::new(), empty: Vec::new() }
    }
}

/// How a backend's object is checked once selected: its name, the name the admin policy knows it
/// by, and the files it writes (its own, and its `jmesPath` entries').
#[derive(Debug)]
pub struct SelectedFiles<'a> {
    pub name: &'a str,
    pub resolved: String,
    /// Its own file: the path, permission and shape.
    pub file: &'a str,
    pub mode: crate::mode::FileMode,
    pub shape: crate::shape::FileShape,
    pub jmes: &'a [crate::jmes::JmesEntry],
}

/// Turns each entry's listing into objects: the admin policy on every listed secret
/// ([`MountRequest::allows`]: a folder selects only what the pod may read, and nothing said
/// to the pod names or counts the rest), [`Selection::select_admitted`] (the cap, empty and
/// optional), and their files planned against the mount's `plan` ([`plan_selected`]).
pub fn expand<E, O>(
    entries: &[E],
    listings: &[Listing],
    plan: &crate::files::FilePlan,
    request: &MountRequest,
    selection: impl Fn(&E) -> &Selection,
    object: impl Fn(&E, &Selected) -> O,
    describe: impl for<'o> Fn(&'o O) -> SelectedFiles<'o>,
) -> Result<Selections<O>> {
    let mut selections = Selections::default();
    let mut plan = plan.clone();
    for (entry, listing) in entries.iter().zip(listings) {
        let entry_selection = selection(entry);
        let admitted = |secret: &Selected| request.allows(&describe(&object(entry, secret)).resolved);
        let selected = entry_selection.select_admitted(listing, admitted)?;
        if selected.is_empty() {
            let (object, reason) = (entry_selection.prefix.clone(), entry_selection.empty_reason());
            selections.empty.push(SkippedObject { object, reason });
            continue;
        }
        let objects: Vec<O> = selected.iter().map(|secret| object(entry, secret)).collect();
        let described: Vec<SelectedFiles<'_>> = objects.iter().map(&describe).collect();
        for selected_object in &described {
            let SelectedFiles { name, file, mode, shape, jmes, .. } = selected_object;
            plan_selected(&mut plan, entry_selection, name, file, *mode, *shape)?;
            for entry in *jmes {
                plan_selected(&mut plan, entry_selection, name, &entry.file_name, entry.mode, entry.shape())?;
            }
        }
        selections.objects.extend(objects);
    }
    Ok(selections)
}

/// The file of a selected secret: `relative` under `directory` when the entry gives one.
pub fn selected_path(directory: Option<&str>, relative: &str) -> String {
    match directory.map(|d| d.trim_end_matches('/')).filter(|d| !d.is_empty()) {
        Some(directory) => format!("{directory}/{relative}"),
        None => relative.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn selection(prefix: &str, tags: &[(&str, &str)], max: usize, optional: bool) -> Selection {
        Selection {
            key: "objectPrefix",
            prefix: prefix.to_owned(),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            max_objects: max,
            optional,
        }
    }

    fn listing() -> Listing {
        let tagged =
            |name: &str, env: &str| Listed::new(name).with_tags([("env".to_owned(), env.to_owned())]);
        Listing::new(vec![
            tagged("team-a/app/db", "prod"),
            tagged("team-a/app/api/key", "dev"),
            Listed::new("team-a/app"),
            tagged("team-a/other", "prod"),
            tagged("team-b/app/db", "prod"),
        ])
    }

    #[test]
    fn prefix_and_every_tag_pair_select_in_name_order() -> Result<()> {
        let all = selection("team-a/app", &[], 100, false).select(&listing())?;
        let names: Vec<(&str, &str)> = all.iter().map(|s| (s.name.as_str(), s.relative.as_str())).collect();
        assert_eq!(
            names,
            [("team-a/app", "app"), ("team-a/app/api/key", "api/key"), ("team-a/app/db", "db")]
        );
        let prod = selection("team-a/", &[("env", "prod")], 100, false).select(&listing())?;
        let names: Vec<&str> = prod.iter().map(|s| s.relative.as_str()).collect();
        assert_eq!(names, ["app/db", "other"]);
        let none = selection("team-a/", &[("env", "prod"), ("tier", "1")], 100, true).select(&listing())?;
        assert!(none.is_empty(), "every pair must match");
        Ok(())
    }

    #[test]
    fn too_many_and_none_are_errors_naming_the_entry() {
        let error = selection("team-a/", &[], 2, false).select(&listing()).err();
        assert!(
            error
                .as_ref()
                .is_some_and(|e| e.message().contains("selects 4 secrets, more than maxObjects (2)")
                    && e.message().contains("objectPrefix \"team-a/\"")),
            "{error:?}"
        );
        let error = selection("team-c/", &[("env", "prod")], 10, false).select(&listing()).err();
        assert!(
            error.as_ref().is_some_and(|e| e.kind() == ErrorKind::NotFound
                && e.message().contains("objectPrefix \"team-c/\" selects no secret with tags env=prod")),
            "{error:?}"
        );
    }

    #[test]
    fn tags_and_max_objects_parse_or_name_the_field() {
        let tags: Value = serde_norway::from_str("{env: prod, version: 2}").unwrap_or(Value::Null);
        let parsed =
            Selection::parse("objectPrefix", "p/".into(), Some(&tags), Some(&Value::from(5)), false, "p/");
        assert!(
            parsed
                .as_ref()
                .is_ok_and(|s| s.max_objects == 5 && s.tags.get("version").map(String::as_str) == Some("2")),
            "{parsed:?}"
        );
        let parsed = Selection::parse(
            "objectPrefix",
            "p/".into(),
            Some(&Value::from("env")),
            Some(&Value::from(1001)),
            false,
            "p/",
        );
        let fields: Vec<Option<String>> =
            parsed.err().unwrap_or_default().iter().map(|e| e.field().map(str::to_owned)).collect();
        assert_eq!(fields, [Some("tags".to_owned()), Some("maxObjects".to_owned())]);
        assert_eq!(selected_path(Some("app/"), "db"), "app/db");
        assert_eq!(selected_path(None, "db"), "db");
    }
}

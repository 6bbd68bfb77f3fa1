//! The parts of a prefix entry (`objectPrefix`, `resourcePrefix`) every backend reads alike:
//! the keys that name one object refused, `tags`, `maxObjects` and `optional` read, the
//! directory its files go in checked. What differs per backend (how the prefix itself is
//! written and checked, and the options each selected secret is read with) stays the backend's
//! hook around [`PrefixEntry::read`].

use crate::error::Error;
use crate::keys::{ConfigKey, Fields};

use super::selection::Selection;

/// One backend's spelling of a prefix entry's keys.
#[derive(Debug, Clone, Copy)]
pub struct PrefixKeys<K: 'static> {
    /// The key holding the prefix (`objectPrefix`), for messages and [`Selection::key`].
    pub prefix: &'static str,
    pub tags: K,
    pub max_objects: K,
    pub optional: K,
    /// The key naming the directory of the entry's files (`objectAlias`, `path`).
    pub directory: K,
    /// Keys naming one object or version: refused, since the entry selects many.
    pub one_object: &'static [K],
    /// What is said after such a key's name: `names one object; an objectPrefix entry selects
    /// every current secret under the prefix`.
    pub one_object_says: &'static str,
}

/// What every backend reads of a prefix entry the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixEntry {
    pub selection: Selection,
    /// The directory the selected files go in, checked relative and without `..`.
    pub directory: Option<String>,
}

impl PrefixEntry {
    /// Reads the entry whose prefix is `prefix` and directory `directory` (each read as the
    /// backend's upstream decoder reads strings). Every problem goes to `problems`, naming the
    /// prefix and the field; `None` when the selection itself could not be read.
    pub fn read<K: ConfigKey>(
        keys: &PrefixKeys<K>,
        fields: &Fields<'_, K>,
        prefix: String,
        directory: Option<String>,
        problems: &mut Vec<Error>,
    ) -> Option<Self> {
        for &key in keys.one_object {
            if fields.get(key).is_some() {
                problems.push(
                    Error::invalid_config(format!("{} {}", key.as_str(), keys.one_object_says))
                        .with_object(&prefix)
                        .with_field(key.as_str()),
                );
            }
        }
        if let Some(directory) = &directory
            && !is_relative_directory(directory)
        {
            problems.push(
                Error::invalid_config(format!(
                    "{} {directory:?} must be a relative directory without ..",
                    keys.directory.as_str()
                ))
                .with_object(&prefix)
                .with_field(keys.directory.as_str()),
            );
        }
        let optional = fields.flag(keys.optional).unwrap_or_else(|e| {
            problems.push(e.with_object(&prefix));
            false
        });
        let label = format!("{} {prefix:?}", keys.prefix);
        let selection = Selection::parse(
            keys.prefix,
            prefix,
            fields.get(keys.tags),
            fields.get(keys.max_objects),
            optional,
            &label,
        );
        match selection {
            Ok(selection) => Some(Self { selection, directory }),
            Err(mut errors) => {
                problems.append(&mut errors);
                None
            }
        }
    }
}

/// A directory below the mount: not absolute, no `..` element, no empty element (`a//b`); one
/// trailing `/` is allowed.
fn is_relative_directory(directory: &str) -> bool {
    let trimmed = directory.strip_suffix('/').unwrap_or(directory);
    !directory.starts_with('/') && trimmed.split('/').all(|element| !element.is_empty() && element != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config_keys! {
        enum Key {
            Prefix => "objectPrefix",
            Name => "objectName",
            Alias => "objectAlias",
            Tags => "tags",
            Max => "maxObjects",
            Optional => "optional",
        }
    }

    const KEYS: PrefixKeys<Key> = PrefixKeys {
        prefix: "objectPrefix",
        tags: Key::Tags,
        max_objects: Key::Max,
        optional: Key::Optional,
        directory: Key::Alias,
        one_object: &[Key::Name],
        one_object_says: "names one object; an objectPrefix entry selects every current secret under the prefix",
    };

    fn read(yaml: &str, directory: Option<&str>) -> (Option<PrefixEntry>, Vec<String>) {
        let value: serde_norway::Value = serde_norway::from_str(yaml).unwrap_or_default();
        let fields = Fields::read(&value, crate::KeyMatching::Exact);
        let mut problems = Vec::new();
        let entry =
            PrefixEntry::read(&KEYS, &fields, "app/".into(), directory.map(str::to_owned), &mut problems);
        (entry, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn reads_the_shared_keys_and_names_each_problem() -> Result<(), String> {
        let (entry, problems) =
            read("{objectPrefix: app/, tags: {team: a}, maxObjects: 3, optional: true}", Some("dir/"));
        assert!(problems.is_empty(), "{problems:?}");
        let entry = entry.ok_or("a good entry is read")?;
        assert_eq!(entry.selection.tags.get("team").map(String::as_str), Some("a"));
        assert_eq!((entry.selection.max_objects, entry.selection.optional), (3, true));
        assert_eq!(entry.directory.as_deref(), Some("dir/"));

        let (entry, problems) =
            read("{objectPrefix: app/, objectName: one, optional: maybe, maxObjects: -1}", Some("../up"));
        assert!(entry.is_none());
        let all = problems.join("\n");
        for words in [
            "objectName names one object",
            "objectAlias \"../up\" must be a relative directory",
            "optional must be true or false",
            "maxObjects",
        ] {
            assert!(all.contains(words), "{words}: {all}");
        }
        Ok(())
    }

    #[test]
    fn directories_are_relative_without_parent_or_empty_elements() {
        for good in ["a", "a/b", "a/", "a.b/..c"] {
            assert!(is_relative_directory(good), "{good}");
        }
        for bad in ["/a", "..", "a/../b", "a//b", "", "/", "a/.."] {
            assert!(!is_relative_directory(bad), "{bad}");
        }
    }
}

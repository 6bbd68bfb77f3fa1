//! Typed configuration keys: each backend names its SecretProviderClass keys in one enum with
//! the canonical spelling, and reads an object's YAML mapping through [`Fields`], which matches
//! keys the way that backend's upstream decoder does and reports keys it does not know (with the
//! nearest known one) instead of silently ignoring a typo.

use std::fmt;

use serde_norway::Value;

use crate::error::Error;
use crate::warning::Warning;
use crate::yaml;

/// A known key of a SecretProviderClass parameter or object.
pub trait ConfigKey: Copy + Eq + fmt::Debug + 'static {
    /// Every key, for matching and suggestions.
    const ALL: &'static [Self];
    /// The canonical spelling (`objectAlias`).
    fn as_str(self) -> &'static str;
}

/// Declares a key enum from `Variant => "spelling"` pairs and implements [`ConfigKey`] for it, so
/// a backend's keys read as one list.
#[macro_export]
macro_rules! config_keys {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($variant:ident => $spelling:expr),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($variant),+
        }

        impl $crate::ConfigKey for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $spelling),+
                }
            }
        }
    };
}

/// How an upstream decoder matches keys to fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatching {
    /// `gopkg.in/yaml.v3` (the Azure provider): exact spelling only.
    Exact,
    /// `sigs.k8s.io/yaml` → `encoding/json` (the AWS provider): the exact spelling wins, else any
    /// ASCII case (`objectname`, `ObjectAlias`).
    IgnoreAsciiCase,
}

/// The entries of one YAML mapping, by known key; unknown keys kept for warnings.
#[derive(Debug)]
pub struct Fields<'a, K: ConfigKey> {
    known: Vec<(K, &'a Value)>,
    unknown: Vec<String>,
}

impl<'a, K: ConfigKey> Fields<'a, K> {
    /// Reads `map` (a YAML mapping; anything else has no fields).
    pub fn read(map: &'a Value, matching: KeyMatching) -> Self {
        let mut known: Vec<(K, &'a Value)> = Vec::new();
        let mut unknown = Vec::new();
        // The JSON decoder assigns fields in key order, so among spellings of one key that differ
        // only in case the last (byte-wise sorted) wins; the exact spelling wins over all.
        let mut entries: Vec<(String, &'a Value)> =
            map.as_mapping().into_iter().flatten().map(|(key, value)| (yaml_key(key), value)).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in entries {
            let exact = K::ALL.iter().copied().find(|k| k.as_str() == key);
            let folded = match matching {
                KeyMatching::IgnoreAsciiCase => {
                    K::ALL.iter().copied().find(|k| k.as_str().eq_ignore_ascii_case(&key))
                }
                KeyMatching::Exact => None,
            };
            match (exact, folded) {
                (Some(k), _) => {
                    known.retain(|(seen, _)| *seen != k);
                    known.push((k, value));
                }
                (None, Some(k)) => {
                    let exact_seen = map.get(k.as_str()).is_some();
                    if !exact_seen {
                        known.retain(|(seen, _)| *seen != k);
                        known.push((k, value));
                    }
                }
                (None, None) => unknown.push(key),
            }
        }
        Self { known, unknown }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: K) -> Option<&'a Value> {
        self.known.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// `key` as a string, blank as absent, not trimmed (Go's decoder keeps spaces).
    pub fn non_empty(&self, key: K) -> Result<Option<String>, Error> {
        yaml::non_empty_value(self.get(key), key.as_str())
    }

    /// `key` as a trimmed string, blank as absent.
    pub fn trimmed(&self, key: K) -> Result<Option<String>, Error> {
        yaml::trimmed_value(self.get(key), key.as_str())
    }

    /// `key` as a boolean: a YAML bool or a string Go's `strconv.ParseBool` takes (`"true"`,
    /// `"1"`, `"False"`, ...); absent or blank is `false`.
    pub fn flag(&self, key: K) -> Result<bool, Error> {
        match self.trimmed(key)? {
            None => Ok(false),
            Some(value) => crate::parameters::parse_go_bool(&value).ok_or_else(|| {
                Error::invalid_config(format!("{} must be true or false, got {value:?}", key.as_str()))
                    .with_field(key.as_str())
            }),
        }
    }

    /// Reads several keys, collecting errors instead of stopping at the first.
    pub fn many<const N: usize>(
        &self,
        keys: [K; N],
        read: fn(&Self, K) -> Result<Option<String>, Error>,
    ) -> ([Option<String>; N], Vec<Error>) {
        let mut problems = Vec::new();
        let values = keys.map(|key| {
            read(self, key).unwrap_or_else(|e| {
                problems.push(e);
                None
            })
        });
        (values, problems)
    }

    /// One warning per key this backend does not know, naming the nearest known key; `prefix`
    /// places nested keys (`jmesPath[0].`).
    pub fn unknown_keys(&self, object: &str, prefix: &str) -> Vec<Warning> {
        self.unknown
            .iter()
            .map(|key| {
                let hint = nearest::<K>(key)
                    .map(|k| format!(" (did you mean `{}`?)", k.as_str()))
                    .unwrap_or_default();
                Warning::new(format!("unknown key `{key}` is ignored{hint}"))
                    .with_object(object)
                    .with_field(format!("{prefix}{key}"))
            })
            .collect()
    }
}

/// One warning per SecretProviderClass parameter this backend does not know, naming the nearest
/// known one. Upstream reads parameters from a map by exact name, so the match is exact. Keys the
/// driver and kubelet add to the volume context (`secretProviderClass`, `csi.storage.k8s.io/…`)
/// are not parameters.
pub fn unknown_parameters<K: ConfigKey>(parameters: &crate::parameters::Parameters) -> Vec<Warning> {
    parameters
        .iter()
        .map(|(key, _)| key)
        .filter(|key| *key != crate::parameters::attr::SPC_NAME && !key.starts_with("csi.storage.k8s.io/"))
        .filter(|key| !K::ALL.iter().any(|k| k.as_str() == *key))
        .filter(|key| !crate::parameters::COMMON.contains(key))
        .map(|key| {
            let hint =
                nearest::<K>(key).map(|k| format!(" (did you mean `{}`?)", k.as_str())).unwrap_or_default();
            Warning::new(format!("unknown parameter `{key}` is ignored{hint}")).with_field(key)
        })
        .collect()
}

fn yaml_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).map(|s| s.trim().to_owned()).unwrap_or_default(),
    }
}

/// The known key closest to `typed`: same letters in another case, or at most two edits away.
pub fn nearest<K: ConfigKey>(typed: &str) -> Option<K> {
    let name = nearest_name(typed, K::ALL.iter().map(|k| k.as_str()))?;
    K::ALL.iter().copied().find(|k| k.as_str() == name)
}

/// The candidate closest to `typed`, by the rule of [`nearest`].
pub(crate) fn nearest_name<'a>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = typed.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (candidate, edit_distance(&lower, &candidate.to_ascii_lowercase())))
        .filter(|(_, distance)| *distance <= 2)
        .min_by_key(|(_, distance)| *distance)
        .map(|(candidate, _)| candidate)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config_keys! {
        enum Key {
            ObjectName => "objectName",
            ObjectAlias => "objectAlias",
        }
    }

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap_or(Value::Null)
    }

    #[test]
    fn case_insensitive_matching_prefers_the_exact_spelling() -> Result<(), Error> {
        let map = yaml("objectname: a\nObjectAlias: b\nobjectalias: c\n");
        let fields: Fields<'_, Key> = Fields::read(&map, KeyMatching::IgnoreAsciiCase);
        assert_eq!(fields.non_empty(Key::ObjectName)?, Some("a".to_owned()));
        assert_eq!(fields.non_empty(Key::ObjectAlias)?, Some("c".to_owned()), "the last in sorted order");
        assert!(fields.unknown_keys("a", "").is_empty());
        let map = yaml("objectname: a\nobjectName: exact\n");
        let fields: Fields<'_, Key> = Fields::read(&map, KeyMatching::IgnoreAsciiCase);
        assert_eq!(fields.non_empty(Key::ObjectName)?, Some("exact".to_owned()));
        Ok(())
    }

    #[test]
    fn exact_matching_reports_other_spellings_with_a_suggestion() -> Result<(), Error> {
        let map = yaml("objectName: a\nobjectalias: b\nobjectAlais: c\ncolour: red\n");
        let fields: Fields<'_, Key> = Fields::read(&map, KeyMatching::Exact);
        assert_eq!(fields.non_empty(Key::ObjectAlias)?, None);
        let warnings: Vec<String> = fields.unknown_keys("a", "").iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                r#"object "a", field "colour": unknown key `colour` is ignored"#,
                r#"object "a", field "objectAlais": unknown key `objectAlais` is ignored (did you mean `objectAlias`?)"#,
                r#"object "a", field "objectalias": unknown key `objectalias` is ignored (did you mean `objectAlias`?)"#,
            ]
        );
        Ok(())
    }

    #[test]
    fn unknown_parameters_are_named_but_the_volume_context_is_not() {
        let parameters: crate::parameters::Parameters = [
            ("objectName", "x"),
            ("objectNmae", "x"),
            ("secretProviderClass", "spc"),
            ("csi.storage.k8s.io/pod.name", "p"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let warnings: Vec<String> =
            unknown_parameters::<Key>(&parameters).iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [r#"field "objectNmae": unknown parameter `objectNmae` is ignored (did you mean `objectName`?)"#]
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("objectalias", "objectalias"), 0);
        assert_eq!(edit_distance("objectalais", "objectalias"), 2);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(nearest::<Key>("objectNme"), Some(Key::ObjectName));
        assert_eq!(nearest::<Key>("path"), None);
    }
}

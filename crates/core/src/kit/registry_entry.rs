//! The keys of a registry entry every backend reads alike (the host, the file, `optional`, the
//! shape keys, the keys that do not apply); what differs per backend (the host's own grammar,
//! how a file mode is written) stays the backend's hook around [`RegistryKeys::read`].

use crate::error::Error;
use crate::keys::{ConfigKey, Fields};
use crate::shape::{FileShape, ShapeKeys};

use super::registry::check_registry_host;

/// One backend's spelling of a registry entry's keys.
#[derive(Debug, Clone, Copy)]
pub struct RegistryKeys<K: 'static> {
    /// The key holding the registry host (`objectName`, GCP `registry`).
    pub host: K,
    /// The key naming the file (`objectAlias`, GCP `path`); absent, the host.
    pub file: K,
    pub optional: K,
    /// Keys that do not apply to a registry.
    pub not_for_registries: &'static [K],
    /// What is said after such a key's name: `does not apply to an ecr object (…)`.
    pub not_for_registries_says: &'static str,
    /// The error when the host is missing: `an ecr object needs objectName: …`.
    pub host_missing: &'static str,
}

/// What every backend reads of a registry entry the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryFields {
    pub host: String,
    pub file_name: String,
    pub optional: bool,
    pub shape: FileShape,
}

impl<K: ConfigKey + ShapeKeys> RegistryKeys<K> {
    /// Reads the entry (`at` names it until its host is known: `objects[3]`); every problem goes
    /// to `problems`, naming the host and the field. `None` when it has no host at all.
    pub fn read(
        &self,
        fields: &Fields<'_, K>,
        at: &str,
        problems: &mut Vec<Error>,
    ) -> Option<RegistryFields> {
        let host = match fields.trimmed(self.host) {
            Ok(Some(host)) if !host.is_empty() => host,
            Ok(_) => {
                problems.push(
                    Error::invalid_config(self.host_missing).with_object(at).with_field(self.host.as_str()),
                );
                return None;
            }
            Err(e) => {
                problems.push(e.or_object(at));
                return None;
            }
        };
        if let Err(why) = check_registry_host(&host) {
            problems.push(Error::invalid_config(why).with_object(&host).with_field(self.host.as_str()));
        }
        for &key in self.not_for_registries {
            if fields.get(key).is_some() {
                problems.push(
                    Error::invalid_config(format!("{} {}", key.as_str(), self.not_for_registries_says))
                        .with_object(&host)
                        .with_field(key.as_str()),
                );
            }
        }
        let file_name = match fields.trimmed(self.file) {
            Ok(Some(file)) if !file.is_empty() => file,
            Ok(_) => host.clone(),
            Err(e) => {
                problems.push(e.or_object(&host));
                host.clone()
            }
        };
        let optional = fields.flag(self.optional).unwrap_or_else(|e| {
            problems.push(e.with_object(&host));
            false
        });
        let (shape, shape_problems) = FileShape::read(fields);
        problems.extend(shape_problems.into_iter().map(|e| e.with_object(&host)));
        Some(RegistryFields { host, file_name, optional, shape })
    }
}

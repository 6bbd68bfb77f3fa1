//! A mount's answer, object by object.

use crate::audit::ObjectRecord;
use crate::outcome::SkippedObject;
use crate::response::{MountResponse, MountedFile, ObjectVersion};
use crate::sharing::Served;
use crate::warning::Warning;

/// How the SecretProviderClass names an object and what it resolved to (see
/// [`ObjectRecord`]).
#[derive(Debug, Clone, Copy)]
pub struct ObjectNames<'a> {
    /// As written: `objectName`, `resourceName`.
    pub object: &'a str,
    /// As the admin policy and the audit trail name it (an ARN, `vault/objectName`, a resource
    /// name without its version).
    pub resolved: &'a str,
}

/// The files one object renders to, with the versions the driver records for them.
#[derive(Debug, Default)]
pub struct Rendered {
    pub files: Vec<MountedFile>,
    pub versions: Vec<ObjectVersion>,
}

impl Rendered {
    /// One file with one version entry, the common case.
    pub fn file(file: MountedFile, version: ObjectVersion) -> Self {
        Self { files: vec![file], versions: vec![version] }
    }

    pub fn push(&mut self, file: MountedFile, version: ObjectVersion) {
        self.files.push(file);
        self.versions.push(version);
    }
}

/// How an object that took several reads (a version listing, then each version) was served:
/// stale if any read was (the oldest value), shared if every read was.
#[derive(Debug, Default)]
pub struct Provenance {
    stale: Option<(std::time::Duration, crate::error::Error)>,
    shared: bool,
    reads: usize,
}

impl Provenance {
    /// The value of one more read of the object.
    pub fn take<V>(&mut self, served: Served<V>) -> V {
        if let Some((age, error)) = served.stale
            && self.stale.as_ref().is_none_or(|(seen, _)| *seen < age)
        {
            self.stale = Some((age, error));
        }
        self.shared = served.shared && (self.reads == 0 || self.shared);
        self.reads += 1;
        served.value
    }

    /// All the reads as one, for [`MountAssembly::served`].
    pub fn served(&self) -> Served<()> {
        Served { value: (), stale: self.stale.clone(), shared: self.shared }
    }
}

/// Collects a mount's objects into its [`MountResponse`]: files and versions for the driver,
/// and for the server's log, metrics and audit trail what was stale, skipped, and how each
/// object was served.
#[derive(Debug, Default)]
pub struct MountAssembly {
    response: MountResponse,
    /// Versions of skipped objects, added at the end where no file's version has their id.
    skipped_versions: Vec<ObjectVersion>,
}

/// The version reported for an object that was skipped (optional and absent).
pub const SKIPPED_VERSION: &str = "skipped: optional and absent";

impl MountAssembly {
    /// A mount that goes on with `warnings` (unknown keys, a file written twice).
    pub fn new(warnings: Vec<Warning>) -> Self {
        Self {
            response: MountResponse { warnings, ..MountResponse::default() },
            skipped_versions: Vec::new(),
        }
    }

    /// An object served as `served` says (fresh, shared or stale) at `version`, rendered to
    /// `rendered`.
    pub fn served<V>(
        &mut self,
        names: ObjectNames<'_>,
        version: &str,
        served: &Served<V>,
        rendered: Rendered,
    ) {
        self.response.stale.extend(served.stale_object(names.object));
        self.response.records.push(ObjectRecord::served(names.object, names.resolved, version, served));
        self.response.files.extend(rendered.files);
        self.response.versions.extend(rendered.versions);
    }

    /// An optional object the cloud does not have (or an optional prefix entry that selects
    /// nothing): no file, and a version entry that says so. The driver and the Sync Controller
    /// refuse an answer without any version ("missing object versions"), so a mount whose
    /// every object was skipped still answers; and when the object appears, its version
    /// changes, which the driver's rotation sees.
    pub fn skipped(&mut self, names: ObjectNames<'_>, skipped: SkippedObject) {
        self.response.records.push(ObjectRecord::skipped(names.object, names.resolved));
        self.skipped_versions.push(ObjectVersion::new(names.object, SKIPPED_VERSION));
        self.response.skipped.push(skipped);
    }

    /// [`Self::served`] or [`Self::skipped`], as the read ended; `render` runs only for a value.
    pub fn add<V, E>(
        &mut self,
        names: ObjectNames<'_>,
        outcome: std::result::Result<Served<V>, SkippedObject>,
        render: impl FnOnce(&V) -> std::result::Result<(String, Rendered), E>,
    ) -> std::result::Result<(), E> {
        match outcome {
            Ok(served) => {
                let (version, rendered) = render(&served.value)?;
                self.served(names, &version, &served, rendered);
            }
            Err(skipped) => self.skipped(names, skipped),
        }
        Ok(())
    }

    pub fn finish(mut self) -> MountResponse {
        for version in self.skipped_versions {
            if !self.response.versions.iter().any(|v| v.id == version.id) {
                self.response.versions.push(version);
            }
        }
        self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::mode::FileMode;
    use std::time::Duration;

    #[test]
    fn each_object_is_recorded_as_it_was_served() -> Result<(), Error> {
        let names = |object| ObjectNames { object, resolved: object };
        let mut mount = MountAssembly::new(vec![Warning::new("unknown key")]);
        let file = |path: &str| MountedFile::new(path, FileMode::DEFAULT, b"v".to_vec());
        mount.add(names("fresh"), Ok(Served::fresh(())), |()| {
            Ok::<_, Error>(("1".to_owned(), Rendered::file(file("fresh"), ObjectVersion::new("fresh", "1"))))
        })?;
        let stale = Served {
            value: (),
            stale: Some((Duration::from_secs(9), Error::unavailable("503"))),
            shared: false,
        };
        mount.served(
            names("stale"),
            "2",
            &stale,
            Rendered::file(file("stale"), ObjectVersion::new("stale", "2")),
        );
        mount.skipped(names("gone"), SkippedObject { object: "gone".into(), reason: "not found".into() });
        let mut provenance = Provenance::default();
        provenance.take(Served::shared(()));
        provenance.take(Served {
            value: (),
            stale: Some((Duration::from_secs(3), Error::unavailable("503"))),
            shared: true,
        });
        provenance.take(stale.clone());
        assert!(!provenance.served().shared, "one read of its own");
        assert_eq!(provenance.served().stale.map(|(age, _)| age), Some(Duration::from_secs(9)), "the oldest");
        let response = mount.finish();
        assert_eq!(response.files.len(), 2);
        assert_eq!(response.versions.len(), 3, "the skipped object has a version saying so");
        assert_eq!(response.versions[2], ObjectVersion::new("gone", SKIPPED_VERSION));
        assert_eq!(response.warnings.len(), 1);
        assert_eq!(response.stale.len(), 1);
        assert_eq!(response.skipped.len(), 1);
        let outcomes: Vec<&str> = response.records.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["ok", "stale", "skipped_optional"]);
        Ok(())
    }
}

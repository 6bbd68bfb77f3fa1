//! What a mount did with each object, for the audit trail (`serve --audit-log`): which object,
//! as written and as the cloud resolved it, which version was served, and how. Never a value.

use crate::error::{Error, ErrorKind};
use crate::sharing::Served;

/// How a mount ended for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// Read (or taken from a shared read) and written.
    Ok,
    /// The cloud was out and the last good value was served (`staleIfError`).
    Stale,
    /// An optional object the cloud does not have: no file.
    SkippedOptional,
    /// The admin policy denied it: no call was made.
    Denied,
    /// Its read failed with this kind of error: the mount wrote nothing.
    Failed(ErrorKind),
    /// Its own read did not fail, but the mount did (another object, the identity, the
    /// deadline), so nothing was written for it either.
    NotMounted,
}

impl ObjectOutcome {
    /// Whether this object is why the mount failed (its read failed, or the policy denied it).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed(_) | Self::Denied)
    }

    /// A stable name for the audit line (`ok`, `stale`, `skipped_optional`, `denied`,
    /// `not_mounted`, or the error kind: `not_found`, `permission_denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Stale => "stale",
            Self::SkippedOptional => "skipped_optional",
            Self::Denied => "denied",
            Self::Failed(kind) => kind.as_str(),
            Self::NotMounted => "not_mounted",
        }
    }
}

/// One object of one mount, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The object as the SecretProviderClass names it (`objectName`, `resourceName`).
    pub object: String,
    /// The object as resolved: what the admin policy matches (AWS: the name or ARN, SSM
    /// parameter name; Azure: `vault/objectName`), or, once read, what the cloud called it.
    pub resolved: String,
    /// The version served, when one was.
    pub version: Option<String>,
    pub outcome: ObjectOutcome,
    /// Whether the value came from a read another mount made (see [`Served::shared`]).
    pub shared: bool,
}

impl ObjectRecord {
    /// An object a mount is about to read: not mounted until the backend says otherwise.
    pub fn planned(object: impl Into<String>, resolved: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            resolved: resolved.into(),
            version: None,
            outcome: ObjectOutcome::NotMounted,
            shared: false,
        }
    }

    /// An object served `version` as `served` says (fresh, shared or stale).
    pub fn served<V>(
        object: impl Into<String>,
        resolved: impl Into<String>,
        version: impl Into<String>,
        served: &Served<V>,
    ) -> Self {
        let outcome = if served.stale.is_some() { ObjectOutcome::Stale } else { ObjectOutcome::Ok };
        Self {
            object: object.into(),
            resolved: resolved.into(),
            version: Some(version.into()).filter(|v: &String| !v.is_empty()),
            outcome,
            shared: served.shared,
        }
    }

    /// An optional object the cloud does not have.
    pub fn skipped(object: impl Into<String>, resolved: impl Into<String>) -> Self {
        Self { outcome: ObjectOutcome::SkippedOptional, ..Self::planned(object, resolved) }
    }
}

/// The records of a mount that failed with `error`, from the objects it planned to read: the
/// object the error names failed with its kind; when the error names none (the identity, the
/// Kubernetes API), every object did; the others were not mounted.
pub fn failed_mount(planned: &[ObjectRecord], error: &Error) -> Vec<ObjectRecord> {
    planned
        .iter()
        .map(|record| {
            let named = error.object().is_none_or(|object| object == record.object);
            let outcome = if named { ObjectOutcome::Failed(error.kind()) } else { ObjectOutcome::NotMounted };
            ObjectRecord { outcome, version: None, shared: false, ..record.clone() }
        })
        .collect()
}

/// The records of a mount the admin policy refused: the objects in `denied` (by their resolved
/// name) denied, the others not mounted.
pub fn denied_mount(planned: &[ObjectRecord], denied: &[String]) -> Vec<ObjectRecord> {
    planned
        .iter()
        .map(|record| {
            let outcome = if denied.contains(&record.resolved) {
                ObjectOutcome::Denied
            } else {
                ObjectOutcome::NotMounted
            };
            ObjectRecord { outcome, ..record.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned() -> Vec<ObjectRecord> {
        vec![ObjectRecord::planned("db", "kv/db"), ObjectRecord::planned("api", "kv/api")]
    }

    #[test]
    fn a_failed_mount_blames_the_object_its_error_names() {
        let error = Error::not_found("gone").with_object("api");
        let outcomes: Vec<&str> =
            failed_mount(&planned(), &error).iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["not_mounted", "not_found"]);
        let identity = Error::permission_denied("AADSTS700016");
        let outcomes: Vec<&str> =
            failed_mount(&planned(), &identity).iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["permission_denied", "permission_denied"]);
    }

    #[test]
    fn a_denied_mount_names_the_denied_objects() {
        let records = denied_mount(&planned(), &["kv/db".to_owned()]);
        let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["denied", "not_mounted"]);
    }

    #[test]
    fn served_records_say_how() {
        let shared = Served::shared(());
        let record = ObjectRecord::served("db", "kv/db", "v7", &shared);
        assert_eq!(
            (record.outcome, record.shared, record.version.as_deref()),
            (ObjectOutcome::Ok, true, Some("v7"))
        );
        let stale = Served {
            value: (),
            stale: Some((std::time::Duration::from_secs(5), Error::unavailable("503"))),
            shared: false,
        };
        assert_eq!(ObjectRecord::served("db", "kv/db", "", &stale).outcome.as_str(), "stale");
        assert_eq!(ObjectRecord::served("db", "kv/db", "", &stale).version, None);
        assert_eq!(ObjectRecord::skipped("db", "kv/db").outcome.as_str(), "skipped_optional");
    }
}

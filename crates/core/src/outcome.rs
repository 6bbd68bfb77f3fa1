//! What happened to one object that a mount did not read fresh: skipped (optional and absent)
//! or served stale (the cloud out, `staleIfError`). Reported by the server; never sent to the
//! driver.

use crate::error::{Error, ErrorKind};

/// An object whose read failed with an outage and that was served the last good value the same
/// identity read, `age` old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleObject {
    pub object: String,
    pub age: std::time::Duration,
    /// Why the fresh read failed (the error's text; never a value).
    pub reason: String,
}

/// An optional object that was not mounted, and why (the cloud's not-found answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedObject {
    pub object: String,
    pub reason: String,
}

impl SkippedObject {
    /// Skips `object` when it is optional and `error` says it does not exist; any other error
    /// (denied, throttled, unreachable) is handed back, since skipping those would hide faults.
    pub fn from_error(object: &str, optional: bool, error: Error) -> Result<Self, Error> {
        if optional && error.kind() == ErrorKind::NotFound {
            Ok(Self { object: object.to_owned(), reason: error.message().to_owned() })
        } else {
            Err(error)
        }
    }
}

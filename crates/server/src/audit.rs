//! The audit trail (`serve --audit-log PATH`, `-` for stdout): one JSON line per object per
//! mount, saying which pod read which object, which version it was served and how, written
//! before the Mount answers. Never a value or a token: a line is built only from the request's
//! pod attributes and the backend's [`ObjectRecord`]s, which hold names and versions.
//!
//! A line that cannot be written (disk full, file removed and not re-creatable) is counted and
//! logged, and the mount goes on: the audit trail reports, it does not gate. A file moved or
//! removed (log rotation) is re-created at the next mount.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use csi_secrets_provider_core::{Error, MountRequest, ObjectRecord};
use prometheus_client::metrics::counter::Counter;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    File(PathBuf),
}

impl AuditTarget {
    /// `-` is standard output; anything else a file, appended to.
    pub fn parse(value: &Path) -> Self {
        if value == Path::new("-") { Self::Stdout } else { Self::File(value.to_owned()) }
    }
}

/// The open audit trail; shared by every socket's service.
#[derive(Debug)]
pub struct AuditLog {
    target: AuditTarget,
    state: Mutex<WriterState>,
    errors: Counter,
}

#[derive(Debug, Default)]
struct WriterState {
    file: Option<OpenFile>,
    /// Whether the last write failed: the log says when writing fails and when it recovers,
    /// not once per mount.
    failing: bool,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    /// Device and inode when opened: a different one at the path means the file was rotated.
    identity: (u64, u64),
}

/// What the audit line says of the mount as a whole.
#[derive(Debug, Clone, Copy)]
pub struct MountFacts<'a> {
    pub backend: &'a str,
    pub request: Option<&'a MountRequest>,
    pub duration: Duration,
}

impl AuditLog {
    /// Opens (creates) the file now, so a path that cannot be written refuses the start.
    pub fn open(target: AuditTarget, errors: Counter) -> io::Result<Self> {
        let mut state = WriterState::default();
        if let AuditTarget::File(path) = &target {
            state.file = Some(open_file(path)?);
        }
        Ok(Self { target, state: Mutex::new(state), errors })
    }

    /// The counter of lines that could not be written (the metric, shared with `/metrics`).
    pub fn set_error_counter(&mut self, errors: Counter) {
        self.errors = errors;
    }

    /// Writes one line per record (or, for a mount refused before its objects were known, one
    /// line with no object and `error` as outcome), in one write.
    pub fn record(&self, facts: MountFacts<'_>, records: &[ObjectRecord], error: Option<&Error>) {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut text = String::new();
        if records.is_empty() {
            text.push_str(&line(&time, facts, None, error));
        }
        for record in records.iter().take(MAX_LINES_PER_MOUNT) {
            text.push_str(&line(&time, facts, Some(record), error));
        }
        if let Some(rest) = records.get(MAX_LINES_PER_MOUNT..).filter(|rest| !rest.is_empty()) {
            text.push_str(&summary_line(&time, facts, rest));
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let result = self.write(&mut state, text.as_bytes());
        match result {
            Ok(()) if state.failing => {
                state.failing = false;
                tracing::info!(target = ?self.target, "audit trail written again");
            }
            Ok(()) => {}
            Err(e) => {
                self.errors.inc();
                if !state.failing {
                    state.failing = true;
                    tracing::error!(target = ?self.target, error = %e, "cannot write the audit trail; mounts go on, lines are lost until it can be written (csi_secrets_provider_audit_write_errors_total)");
                }
            }
        }
    }

    fn write(&self, state: &mut WriterState, bytes: &[u8]) -> io::Result<()> {
        match &self.target {
            AuditTarget::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout.write_all(bytes)?;
                stdout.flush()
            }
            AuditTarget::File(path) => {
                let rotated = match (std::fs::metadata(path), &state.file) {
                    (Ok(meta), Some(open)) => (meta.dev(), meta.ino()) != open.identity,
                    _ => true,
                };
                if rotated {
                    state.file = None;
                    state.file = Some(open_file(path)?);
                }
                match &mut state.file {
                    Some(open) => open.file.write_all(bytes),
                    None => Err(io::Error::other("the audit file is not open")),
                }
            }
        }
    }
}

fn open_file(path: &Path) -> io::Result<OpenFile> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let meta = file.metadata()?;
    Ok(OpenFile { file, identity: (meta.dev(), meta.ino()) })
}

/// One JSON line.
/// Most object lines one mount writes; the objects past it are counted in one summary line
/// (by outcome), so a mount of thousands of objects cannot flood the trail or its disk.
pub const MAX_LINES_PER_MOUNT: usize = 1_000;

/// The line for the objects of a mount past [`MAX_LINES_PER_MOUNT`]: how many, by outcome.
fn summary_line(time: &str, facts: MountFacts<'_>, rest: &[ObjectRecord]) -> String {
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for record in rest {
        *outcomes.entry(record.outcome.as_str()).or_default() += 1;
    }
    let value = serde_json::json!({
        "time": time,
        "backend": facts.backend,
        "pod": pod_of(facts),
        "spc": facts.request.and_then(|r| r.spc_name.as_deref()),
        "object": null,
        "moreObjects": rest.len(),
        "outcomes": outcomes,
    });
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// The `pod` field of a line: namespace, name and UID.
fn pod_of(facts: MountFacts<'_>) -> serde_json::Value {
    let pod = facts.request.map(|r| &r.pod);
    serde_json::json!({
        "namespace": pod.and_then(|p| p.namespace.as_deref()),
        "name": pod.and_then(|p| p.name.as_deref()),
        "uid": pod.and_then(|p| p.uid.as_deref()),
    })
}

fn line(time: &str, facts: MountFacts<'_>, record: Option<&ObjectRecord>, error: Option<&Error>) -> String {
    let request = facts.request;
    let pod = request.map(|r| &r.pod);
    let outcome = match (record, error) {
        (Some(record), _) => record.outcome.as_str(),
        (None, Some(error)) => error.kind().as_str(),
        (None, None) => "ok",
    };
    // The error's text only on the line of the object it is about (or the mount's only line):
    // an object that was merely not mounted says so by its outcome.
    let error_text = match (record, error) {
        (Some(record), Some(error)) if record.outcome.is_failure() => Some(error.to_string()),
        (None, Some(error)) => Some(error.to_string()),
        _ => None,
    };
    let value = serde_json::json!({
        "time": time,
        "backend": facts.backend,
        "pod": pod_of(facts),
        "serviceAccount": pod.and_then(|p| p.service_account.as_deref()),
        "spc": request.and_then(|r| r.spc_name.as_deref()),
        "remount": request.is_some_and(|r| r.kind.is_remount()),
        "object": record.map(|r| r.object.as_str()),
        "resolved": record.map(|r| r.resolved.as_str()),
        "version": record.and_then(|r| r.version.as_deref()),
        "outcome": outcome,
        "shared": record.is_some_and(|r| r.shared),
        "error": error_text,
        "durationMs": u64::try_from(facts.duration.as_millis()).unwrap_or(u64::MAX),
    });
    let mut text = value.to_string();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_secrets_provider_core::ObjectOutcome;

    fn facts() -> MountFacts<'static> {
        MountFacts { backend: "aws", request: None, duration: Duration::from_millis(12) }
    }

    #[test]
    fn a_rotated_file_is_recreated_and_a_failing_one_counted() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(AuditTarget::File(path.clone()), Counter::default())?;
        let record = ObjectRecord { outcome: ObjectOutcome::Ok, ..ObjectRecord::planned("db", "arn:db") };
        log.record(facts(), std::slice::from_ref(&record), None);
        std::fs::rename(&path, dir.path().join("audit.log.1"))?;
        log.record(facts(), std::slice::from_ref(&record), None);
        let lines = std::fs::read_to_string(&path)?;
        assert_eq!(lines.lines().count(), 1, "the second line went to a new file: {lines}");
        let parsed: serde_json::Value = serde_json::from_str(lines.trim()).map_err(io::Error::other)?;
        assert_eq!(parsed["object"], "db");
        assert_eq!(parsed["resolved"], "arn:db");
        assert_eq!(parsed["outcome"], "ok");
        assert_eq!(parsed["durationMs"], 12);

        // The directory gone: the line is lost, counted, and nothing panics.
        let errors = log.errors.clone();
        drop(dir);
        log.record(facts(), &[record], None);
        assert_eq!(errors.get(), 1);
        Ok(())
    }

    #[test]
    fn objects_past_the_cap_are_one_summary_line() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(AuditTarget::File(path.clone()), Counter::default())?;
        let record = ObjectRecord { outcome: ObjectOutcome::Ok, ..ObjectRecord::planned("db", "arn:db") };
        log.record(facts(), &vec![record; MAX_LINES_PER_MOUNT + 500], None);
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.lines().count(), MAX_LINES_PER_MOUNT + 1);
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap_or_default()).map_err(io::Error::other)?;
        assert_eq!(last["moreObjects"], 500);
        assert_eq!(last["outcomes"]["ok"], 500);
        Ok(())
    }

    #[test]
    fn a_mount_refused_before_its_objects_were_known_gets_one_line() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(AuditTarget::File(path.clone()), Counter::default())?;
        let error = Error::invalid_config("failed to unmarshal attributes");
        log.record(facts(), &[], Some(&error));
        let parsed: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&path)?.trim()).map_err(io::Error::other)?;
        assert_eq!(parsed["outcome"], "invalid_config");
        assert_eq!(parsed["object"], serde_json::Value::Null);
        assert!(parsed["error"].as_str().is_some_and(|e| e.contains("unmarshal")));
        Ok(())
    }
}

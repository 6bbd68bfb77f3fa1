//! One error type, classified by meaning. Transport codes (gRPC status) are chosen only at the
//! server edge, from [`ErrorKind`].

use std::fmt;
use std::time::Duration;

/// What went wrong, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The SecretProviderClass, the volume attributes or the request are wrong; retrying the same
    /// request cannot succeed.
    InvalidConfig,
    /// An object named by the SecretProviderClass does not exist.
    NotFound,
    /// The identity was refused (missing role, AAD error, access denied).
    PermissionDenied,
    /// The cloud asked us to slow down.
    Throttled,
    /// A transient failure (network, 5xx); a retry may succeed.
    Unavailable,
    /// The mount did not finish within its deadline.
    DeadlineExceeded,
    /// A bug or an unexpected answer.
    Internal,
}

impl ErrorKind {
    /// A stable snake_case name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::NotFound => "not_found",
            Self::PermissionDenied => "permission_denied",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Internal => "internal",
        }
    }
}

/// An error with the object and the field it concerns, so a user can find the line to fix.
///
/// The message never contains a secret value: constructors take text written by this project or
/// by a cloud's error body, never secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    object: Option<String>,
    field: Option<String>,
    message: String,
    retry_after: Option<Duration>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, object: None, field: None, message: message.into(), retry_after: None }
    }

    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        let mut error = Self::new(ErrorKind::Throttled, message);
        error.retry_after = retry_after;
        error
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DeadlineExceeded, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Names the SecretProviderClass object (objectName or alias) this error is about.
    #[must_use]
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Names the parameter or object key this error is about.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Puts `context` before the message (`<context>: <message>`), keeping kind, object, field
    /// and retry hint: for wording users' alerts search for.
    #[must_use]
    pub fn prefixed(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Sets the object only when none is set yet (inner code knows better).
    #[must_use]
    pub fn or_object(self, object: impl Into<String>) -> Self {
        if self.object.is_some() { self } else { self.with_object(object) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the same call may succeed when repeated later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Unavailable)
    }

    /// Whether the cloud failed to answer (unreachable, 5xx, throttled, out of time), as
    /// opposed to answering no: only such failures may be served a last good value
    /// (`staleIfError`).
    pub fn is_outage(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::DeadlineExceeded)
    }

    /// [`Self::combine`] for a list known to be non-empty (a validation that failed).
    pub fn from_problems(problems: Vec<Error>) -> Error {
        Self::combine(problems).unwrap_or_else(|| Error::internal("validation failed without a problem"))
    }

    /// Folds several problems into one error. The kind is that of the first problem; the
    /// message lists every problem, so a user sees all of them in one `kubectl describe`.
    pub fn combine(mut problems: Vec<Error>) -> Option<Error> {
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            n => {
                let kind = problems[0].kind;
                let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                Some(Error::new(kind, format!("{n} problems: {}", listed.join("; "))))
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, self.object.as_deref(), self.field.as_deref(), &self.message)
    }
}

/// `object "<o>", field "<f>": <message>`, the form errors and warnings share so a user can find
/// the line to fix.
pub(crate) fn write_located(
    f: &mut fmt::Formatter<'_>,
    object: Option<&str>,
    field: Option<&str>,
    message: &str,
) -> fmt::Result {
    match (object, field) {
        (Some(object), Some(field)) => write!(f, "object {object:?}, field {field:?}: ")?,
        (Some(object), None) => write!(f, "object {object:?}: ")?,
        (None, Some(field)) => write!(f, "field {field:?}: ")?,
        (None, None) => {}
    }
    f.write_str(message)
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_object_and_field() {
        let error = Error::invalid_config("Invalid File Permission: 0999")
            .with_object("db-password")
            .with_field("filePermission");
        assert_eq!(
            error.to_string(),
            r#"object "db-password", field "filePermission": Invalid File Permission: 0999"#
        );
        assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    }

    #[test]
    fn or_object_keeps_the_inner_object() {
        let error = Error::not_found("gone").with_object("inner").or_object("outer");
        assert_eq!(error.object(), Some("inner"));
        let error = Error::not_found("gone").or_object("outer");
        assert_eq!(error.object(), Some("outer"));
    }

    #[test]
    fn prefixed_keeps_everything_but_the_message() {
        let error =
            Error::throttled("slow down", Some(Duration::from_secs(2))).with_object("db").prefixed("reading");
        assert_eq!(error.to_string(), r#"object "db": reading: slow down"#);
        assert_eq!((error.kind(), error.retry_after()), (ErrorKind::Throttled, Some(Duration::from_secs(2))));
    }

    #[test]
    fn combine_lists_every_problem() {
        assert_eq!(Error::combine(vec![]), None);
        let one = Error::invalid_config("a").with_field("x");
        assert_eq!(Error::combine(vec![one.clone()]), Some(one.clone()));
        let both = Error::combine(vec![one, Error::not_found("b")]).map(|e| e.to_string());
        assert_eq!(both.as_deref(), Some(r#"2 problems: field "x": a; b"#));
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        assert!(Error::throttled("slow down", Some(Duration::from_secs(2))).is_retryable());
        assert!(Error::unavailable("503").is_retryable());
        assert!(!Error::not_found("x").is_retryable());
        assert!(!Error::permission_denied("x").is_retryable());
    }
}

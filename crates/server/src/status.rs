//! The only place where an error's meaning becomes a gRPC status.

use csi_secrets_provider_core::{Error, ErrorKind};
use tonic::{Code, Status};

/// Metadata key carrying a throttling hint, in whole seconds.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidConfig => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        // Not UNAVAILABLE: the driver's service config retries that at once, three times,
        // which is the opposite of what throttling asks for.
        ErrorKind::Throttled => Code::ResourceExhausted,
        // Not UNAVAILABLE either: that code is the driver's cue to retry at once (three attempts,
        // no backoff), right for "this instance cannot take the call" (the transport answers it
        // while a provider is starting or draining) but wrong for a cloud our own retries
        // already gave up on. ABORTED fails the mount; kubelet retries it with backoff.
        ErrorKind::Unavailable => Code::Aborted,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Internal => Code::Internal,
    }
}

pub fn to_status(error: &Error) -> Status {
    let mut status = Status::new(code_for(error.kind()), error.to_string());
    if let Some(retry_after) = error.retry_after()
        && let Ok(value) = retry_after.as_secs().max(1).to_string().parse()
    {
        status.metadata_mut().insert(RETRY_AFTER_METADATA, value);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kinds_map_to_codes() {
        let cases = [
            (Error::invalid_config("x"), Code::InvalidArgument),
            (Error::not_found("x"), Code::NotFound),
            (Error::permission_denied("x"), Code::PermissionDenied),
            (Error::throttled("x", None), Code::ResourceExhausted),
            (Error::unavailable("x"), Code::Aborted),
            (Error::deadline_exceeded("x"), Code::DeadlineExceeded),
            (Error::internal("x"), Code::Internal),
        ];
        for (error, code) in cases {
            assert_eq!(to_status(&error).code(), code, "{error:?}");
        }
    }

    #[test]
    fn status_message_names_object_and_field_and_carries_retry_after() {
        let error = Error::throttled("slow down", Some(Duration::from_millis(2500))).with_object("db");
        let status = to_status(&error);
        assert_eq!(status.message(), "object \"db\": slow down");
        assert_eq!(status.metadata().get(RETRY_AFTER_METADATA).and_then(|v| v.to_str().ok()), Some("2"));
    }
}

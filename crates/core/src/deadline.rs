//! Reads that end before the caller stops waiting. The driver gives every Mount a deadline; a
//! cloud that never answers must not run the mount into it, or the driver reports a bare
//! `DeadlineExceeded` naming neither the object nor the service. Each read is bounded by the
//! mount's deadline less a margin for the answer to travel back.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Kept back from the caller's deadline so that an error about a late answer still reaches it.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// Runs `read`, a call to `service` for `objects` (empty when the call is not about an object,
/// such as a token exchange), so that it ends [`ANSWER_MARGIN`] before `deadline`; when it
/// would not, fails with an error naming the service and the objects.
pub async fn before_deadline<T>(
    deadline: Option<Instant>,
    service: &str,
    objects: &[&str],
    read: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(deadline) = deadline else { return read.await };
    let started = Instant::now();
    let budget = deadline.saturating_duration_since(started).saturating_sub(ANSWER_MARGIN);
    match tokio::time::timeout(budget, read).await {
        Ok(result) => result,
        Err(_) => {
            let waited = humantime::format_duration(Duration::from_millis(
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ));
            let what = if objects.is_empty() {
                String::new()
            } else {
                format!("; not read: {}", objects.join(", "))
            };
            let error = Error::deadline_exceeded(format!(
                "{service} did not answer within {waited}, the time left before the driver's deadline for this mount{what}"
            ));
            Err(match objects.first() {
                Some(first) => error.with_object(*first),
                None => error,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_read_that_never_ends_fails_before_the_deadline_naming_service_and_object() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let result: Result<()> =
            before_deadline(Some(deadline), "Key Vault", &["db"], std::future::pending()).await;
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(r#"object "db""#), "{error}");
        assert!(error.contains("Key Vault did not answer within"), "{error}");
        assert!(error.contains("not read: db"), "{error}");
    }

    #[tokio::test]
    async fn reads_in_time_and_without_a_deadline_pass_through() {
        let value = before_deadline(None, "STS", &[], async { Ok(7) }).await;
        assert_eq!(value, Ok(7));
        let soon = Some(Instant::now() + Duration::from_secs(60));
        assert_eq!(before_deadline(soon, "STS", &[], async { Ok(8) }).await, Ok(8));
    }
}

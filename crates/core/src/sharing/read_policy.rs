//! How one mount reads: whether it is a remount (and of which previous mount), whether it
//! accepts a last good value during an outage, and what it got.

use std::time::Duration;

// tokio's clock, like the reads these instants are compared with.
use tokio::time::Instant;

use crate::error::Error;
use crate::outcome::StaleObject;

/// Whether the driver served this target path before: a kubelet republish (rotation) or a
/// pod's first mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MountKind {
    /// A target path this provider has not served since it started.
    #[default]
    First,
    /// A target path this provider mounted successfully before; `previous` is when that mount
    /// answered (tokio's clock, like the reads it is compared with).
    Remount { previous: Instant },
}

impl MountKind {
    pub fn is_remount(self) -> bool {
        matches!(self, Self::Remount { .. })
    }

    /// Whether a read that finished at `read_at` may serve this mount: only a remount, and only
    /// a read newer than what the target already holds. Every read the previous mount used
    /// finished before that mount answered, so a read finished after it is at least as new;
    /// the driver's republish interval, not our window, then bounds how stale a rotation gets.
    pub(super) fn may_reuse(self, read_at: Instant) -> bool {
        match self {
            Self::First => false,
            Self::Remount { previous } => read_at > previous,
        }
    }
}

/// How a mount reads: whether it may reuse a finished read, how old a read its SPC accepts
/// on a remount (`refreshInterval`), and how old a last good value it accepts when the cloud
/// is out (`staleIfError`; `None` = never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPolicy {
    pub kind: MountKind,
    pub stale_if_error: Option<Duration>,
    /// `refreshInterval`: a remount takes any read of its identity younger than this, in place
    /// of the remount rule; `None`: the remount rule and the window.
    pub refresh_interval: Option<Duration>,
}

impl From<MountKind> for ReadPolicy {
    fn from(kind: MountKind) -> Self {
        Self { kind, stale_if_error: None, refresh_interval: None }
    }
}

impl ReadPolicy {
    /// Whether a read that finished at `read_at` may serve this mount, sharing reads for
    /// `window`: never a first mount; a remount of an SPC with `refreshInterval`, any read
    /// younger than it; otherwise the remount rule ([`MountKind::may_reuse`]) within the window.
    pub(super) fn may_reuse(self, read_at: Instant, window: Duration) -> bool {
        match (self.kind, self.refresh_interval) {
            (MountKind::First, _) => false,
            (MountKind::Remount { .. }, Some(interval)) => read_at.elapsed() < interval,
            (kind, None) => kind.may_reuse(read_at) && read_at.elapsed() < window,
        }
    }

    /// How long past the window a value read under this policy is held: for `staleIfError`
    /// and for `refreshInterval`.
    pub(super) fn retention(self) -> Duration {
        self.stale_if_error.unwrap_or_default().max(self.refresh_interval.unwrap_or_default())
    }
}

/// A value as a mount got it: read for it, taken from a read another mount made (shared), or
/// the last good value served in place of a failed read (stale).
#[derive(Debug, Clone)]
pub struct Served<V> {
    pub value: V,
    /// Set when the value was served instead of a failed read: its age and that failure.
    pub stale: Option<(Duration, Error)>,
    /// Whether the value came from a read another mount made (a remount's reuse or a read
    /// joined in flight) rather than a call made for this mount: for the audit trail.
    pub shared: bool,
}

impl<V> Served<V> {
    /// A value read for this mount.
    pub fn fresh(value: V) -> Self {
        Self { value, stale: None, shared: false }
    }

    /// A value taken from a read another mount made.
    pub fn shared(value: V) -> Self {
        Self { value, stale: None, shared: true }
    }

    /// The same provenance, another value (a listing narrowed, a batch's answer unpacked).
    pub fn map<W>(self, f: impl FnOnce(V) -> W) -> Served<W> {
        Served { value: f(self.value), stale: self.stale, shared: self.shared }
    }

    /// What the server reports (a warning and a metric) when `object` was served stale.
    pub fn stale_object(&self, object: &str) -> Option<StaleObject> {
        self.stale.as_ref().map(|(age, error)| StaleObject {
            object: object.to_owned(),
            age: *age,
            reason: error.to_string(),
        })
    }
}

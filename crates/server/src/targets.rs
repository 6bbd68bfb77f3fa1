//! Remount recognition: the target paths this provider mounted successfully. Since driver v1.6
//! a kubelet republish reaches us as a Mount for a path we already served; knowing that lets a
//! backend reuse a recent read (see `csi_secrets_provider_core::sharing`). A restart forgets
//! everything, which is safe: every mount is then a first mount and reads fresh.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use csi_secrets_provider_core::MountKind;
// tokio's clock: the shared reads compare their read times with a remount's previous mount.
use tokio::time::Instant;

/// How many target paths are remembered and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetMemory {
    /// The most paths held; past it the least recently mounted are forgotten. A node runs at most
    /// a few hundred pods, each with a few CSI volumes.
    pub capacity: usize,
    /// A path not mounted for this long is forgotten (its pod is gone, or rotation is off).
    pub forget_after: Duration,
}

impl Default for TargetMemory {
    fn default() -> Self {
        Self { capacity: 16_384, forget_after: Duration::from_secs(24 * 60 * 60) }
    }
}

/// When a path was last mounted, and its place in the mount order.
#[derive(Debug, Clone, Copy)]
struct LastMount {
    at: Instant,
    sequence: u64,
}

/// The remembered paths, and the same paths in the order they were last mounted, so the
/// oldest is found without scanning all of them (a full memory evicts on every first mount).
#[derive(Debug, Default)]
struct Remembered {
    by_path: HashMap<String, LastMount>,
    by_age: BTreeMap<u64, String>,
    next: u64,
}

impl Remembered {
    fn forget_oldest(&mut self) {
        if let Some((_, path)) = self.by_age.pop_first() {
            self.by_path.remove(&path);
        }
    }
}

/// The target paths mounted successfully, with when they last were.
#[derive(Debug)]
pub struct MountedTargets {
    memory: TargetMemory,
    remembered: Mutex<Remembered>,
}

impl MountedTargets {
    pub fn new(memory: TargetMemory) -> Self {
        Self { memory, remembered: Mutex::new(Remembered::default()) }
    }

    /// Whether a mount of `target_path` is a remount, and when its previous mount answered.
    pub fn kind_of(&self, target_path: &str) -> MountKind {
        match self.lock().by_path.get(target_path) {
            Some(mounted) if mounted.at.elapsed() < self.memory.forget_after => {
                MountKind::Remount { previous: mounted.at }
            }
            _ => MountKind::First,
        }
    }

    /// Remembers a successful mount of `target_path`, as answered now: called once the mount's
    /// reads have all finished, so a later remount knows which reads are newer than its files.
    pub fn remember(&self, target_path: &str) {
        if target_path.is_empty() || self.memory.capacity == 0 {
            return;
        }
        let mut remembered = self.lock();
        let remembered = &mut *remembered;
        // Paths not mounted for `forget_after` go first, then the least recently mounted while
        // the memory is full.
        while let Some((_, oldest)) = remembered.by_age.first_key_value() {
            let expired = remembered
                .by_path
                .get(oldest)
                .is_none_or(|mounted| mounted.at.elapsed() >= self.memory.forget_after);
            if !expired {
                break;
            }
            remembered.forget_oldest();
        }
        match remembered.by_path.get(target_path).copied() {
            Some(previous) => {
                remembered.by_age.remove(&previous.sequence);
            }
            None => {
                while remembered.by_path.len() >= self.memory.capacity {
                    remembered.forget_oldest();
                }
            }
        }
        let sequence = remembered.next;
        remembered.next += 1;
        remembered.by_age.insert(sequence, target_path.to_owned());
        remembered.by_path.insert(target_path.to_owned(), LastMount { at: Instant::now(), sequence });
    }

    pub fn len(&self) -> usize {
        self.lock().by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_remembered_path_is_a_remount_of_its_last_mount() {
        let targets = MountedTargets::new(TargetMemory::default());
        assert_eq!(targets.kind_of("/pods/a/mount"), MountKind::First);
        let first = Instant::now();
        targets.remember("/pods/a/mount");
        assert_eq!(targets.kind_of("/pods/a/mount"), MountKind::Remount { previous: first });
        tokio::time::advance(Duration::from_secs(10)).await;
        targets.remember("/pods/a/mount");
        assert_eq!(
            targets.kind_of("/pods/a/mount"),
            MountKind::Remount { previous: first + Duration::from_secs(10) },
            "the last mount counts"
        );
        assert_eq!(targets.kind_of("/pods/b/mount"), MountKind::First);
        targets.remember("");
        assert_eq!(targets.kind_of(""), MountKind::First, "an empty path is never a remount");
    }

    #[tokio::test]
    async fn bounded_by_capacity_and_age() {
        let targets =
            MountedTargets::new(TargetMemory { capacity: 2, forget_after: Duration::from_secs(60) });
        targets.remember("a");
        targets.remember("b");
        targets.remember("c");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets.kind_of("a"), MountKind::First, "the least recently mounted went");
        assert!(targets.kind_of("c").is_remount());

        // A remount refreshes a path's place: "c" mounted again outlives "d".
        targets.remember("d");
        targets.remember("c");
        targets.remember("e");
        assert!(targets.kind_of("c").is_remount());
        assert_eq!(targets.kind_of("d"), MountKind::First);
        assert_eq!(targets.len(), 2);

        let forgetful = MountedTargets::new(TargetMemory { capacity: 8, forget_after: Duration::ZERO });
        forgetful.remember("a");
        assert_eq!(forgetful.kind_of("a"), MountKind::First, "forgotten after forget_after");
        forgetful.remember("b");
        assert_eq!(forgetful.len(), 1, "expired paths are dropped, not kept until the memory is full");
    }
}

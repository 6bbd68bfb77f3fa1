//! Remount recognition: the target paths this provider mounted successfully. Since driver v1.6
//! a kubelet republish reaches us as a Mount for a path we already served; knowing that lets a
//! backend reuse a recent read (see `csi_secrets_provider_core::sharing`). A restart forgets
//! everything, which is safe: every mount is then a first mount and reads fresh.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use csi_secrets_provider_core::MountKind;

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

/// The target paths mounted successfully, with when they last were.
#[derive(Debug)]
pub struct MountedTargets {
    memory: TargetMemory,
    last_mounted: Mutex<HashMap<String, Instant>>,
}

impl MountedTargets {
    pub fn new(memory: TargetMemory) -> Self {
        Self { memory, last_mounted: Mutex::new(HashMap::new()) }
    }

    /// Whether a mount of `target_path` is a remount.
    pub fn kind_of(&self, target_path: &str) -> MountKind {
        let known =
            self.lock().get(target_path).is_some_and(|mounted| mounted.elapsed() < self.memory.forget_after);
        if known { MountKind::Remount } else { MountKind::First }
    }

    /// Remembers a successful mount of `target_path`.
    pub fn remember(&self, target_path: &str) {
        if target_path.is_empty() || self.memory.capacity == 0 {
            return;
        }
        let mut paths = self.lock();
        if !paths.contains_key(target_path) && paths.len() >= self.memory.capacity {
            let forget_after = self.memory.forget_after;
            paths.retain(|_, mounted| mounted.elapsed() < forget_after);
            if paths.len() >= self.memory.capacity
                && let Some(oldest) = paths.iter().min_by_key(|(_, m)| **m).map(|(p, _)| p.clone())
            {
                paths.remove(&oldest);
            }
        }
        paths.insert(target_path.to_owned(), Instant::now());
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last_mounted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_path_is_a_remount() {
        let targets = MountedTargets::new(TargetMemory::default());
        assert_eq!(targets.kind_of("/pods/a/mount"), MountKind::First);
        targets.remember("/pods/a/mount");
        assert_eq!(targets.kind_of("/pods/a/mount"), MountKind::Remount);
        assert_eq!(targets.kind_of("/pods/b/mount"), MountKind::First);
        targets.remember("");
        assert_eq!(targets.kind_of(""), MountKind::First, "an empty path is never a remount");
    }

    #[test]
    fn bounded_by_capacity_and_age() {
        let targets =
            MountedTargets::new(TargetMemory { capacity: 2, forget_after: Duration::from_secs(60) });
        targets.remember("a");
        targets.remember("b");
        targets.remember("c");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets.kind_of("a"), MountKind::First, "the least recently mounted went");
        assert_eq!(targets.kind_of("c"), MountKind::Remount);

        let forgetful = MountedTargets::new(TargetMemory { capacity: 8, forget_after: Duration::ZERO });
        forgetful.remember("a");
        assert_eq!(forgetful.kind_of("a"), MountKind::First, "forgotten after forget_after");
    }
}

//! The sharing rules, with tokio's paused clock for the windows.

use super::*;
use crate::error::Error;
use std::sync::atomic::AtomicUsize;

fn cache(window: Duration, max_bytes: usize) -> SharedReads<&'static str, SecretBytes> {
    SharedReads::new(SharingOptions { window, max_bytes }, Arc::default())
}

fn value(text: &str) -> SecretBytes {
    SecretBytes::new(text.as_bytes().to_vec())
}

/// A remount whose previous mount answered before this call returned: every read finished
/// after it is newer than the target's files.
async fn remount() -> MountKind {
    let previous = Instant::now();
    tokio::time::sleep(Duration::from_millis(1)).await;
    MountKind::Remount { previous }
}

/// A fetch that counts its calls and answers `text`.
async fn counted(calls: &AtomicUsize, text: &str) -> Result<SecretBytes> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(value(text))
}

#[tokio::test]
async fn remounts_reuse_a_read_within_the_window_and_first_mounts_read_fresh() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    let earlier_pod = remount().await;
    reads.read("a", MountKind::First, || counted(&calls, "v1")).await?;
    let remount = reads.read("a", earlier_pod, || counted(&calls, "v2")).await?;
    assert_eq!(remount.value.expose(), b"v1", "the remount took the kept read");
    assert!(remount.shared, "a kept read is reported shared (audit trail)");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let first = reads.read("a", MountKind::First, || counted(&calls, "v2")).await?;
    assert_eq!(first.value.expose(), b"v2", "a first mount reads fresh");
    assert!(!first.shared, "its own read");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let remount = reads.read("a", earlier_pod, || counted(&calls, "v3")).await?;
    assert_eq!(remount.value.expose(), b"v2", "the fresh read replaced the old one");
    reads.read("b", earlier_pod, || counted(&calls, "b")).await?;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "another key is another read");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_window_ends_and_the_value_is_dropped() -> Result<()> {
    let stats = Arc::new(SharingStats::default());
    let reads: SharedReads<&str, SecretBytes> =
        SharedReads::new(SharingOptions { window: Duration::from_secs(60), max_bytes: 1024 }, stats.clone());
    let calls = AtomicUsize::new(0);
    let earlier_pod = remount().await;
    reads.read("a", MountKind::First, || counted(&calls, "v1")).await?;
    assert_eq!(stats.bytes_held(), 2);
    tokio::time::sleep(Duration::from_secs(59)).await;
    reads.read("a", earlier_pod, || counted(&calls, "v2")).await?;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(reads.is_empty(), "dropped when the window ended, without another access");
    assert_eq!(stats.bytes_held(), 0);
    let after = reads.read("a", earlier_pod, || counted(&calls, "v2")).await?;
    assert_eq!(after.value.expose(), b"v2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(stats.remount_hits(), 1);
    Ok(())
}

#[tokio::test]
async fn window_zero_shares_nothing() -> Result<()> {
    let reads = cache(Duration::ZERO, 1024);
    let calls = AtomicUsize::new(0);
    let earlier_pod = remount().await;
    for _ in 0..3 {
        reads.read("a", earlier_pod, || counted(&calls, "v")).await?;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(reads.is_empty());
    Ok(())
}

#[tokio::test]
async fn concurrent_first_mounts_share_one_read() -> Result<()> {
    let stats = Arc::new(SharingStats::default());
    let reads: SharedReads<&str, SecretBytes> = SharedReads::new(SharingOptions::default(), stats.clone());
    let calls = AtomicUsize::new(0);
    let (release, released) = tokio::sync::watch::channel(false);
    let calls = &calls;
    let mounts = (0..20).map(|_| {
        let mut released = released.clone();
        reads.read("a", MountKind::First, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = released.wait_for(|r| *r).await;
            Ok(value("v"))
        })
    });
    let all = futures::future::join_all(mounts);
    let opener = async {
        tokio::task::yield_now().await;
        let _ = release.send(true);
    };
    let (results, ()) = tokio::join!(all, opener);
    let mut shared = 0;
    for result in results {
        let served = result?;
        assert_eq!(served.value.expose(), b"v");
        shared += usize::from(served.shared);
    }
    assert_eq!(shared, 19, "every mount but the one that read is reported shared");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(stats.in_flight_joins(), 19);
    Ok(())
}

#[tokio::test]
async fn single_flight_keeps_nothing_but_keep_does() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    let earlier_pod = remount().await;
    reads.single_flight("batch", || counted(&calls, "ab")).await?;
    assert!(reads.is_empty());
    reads.keep("a", value("a"), MountKind::First.into());
    assert_eq!(reads.recent(&"a", earlier_pod).map(|v| v.value.expose().to_vec()), Some(b"a".to_vec()));
    assert_eq!(reads.recent(&"b", earlier_pod).map(|v| v.value.expose().to_vec()), None);
    assert!(reads.recent(&"a", MountKind::First).is_none(), "a first mount reads fresh");
    assert!(reads.recent(&"a", remount().await).is_none(), "a target mounted after the read reads fresh");
    Ok(())
}

#[tokio::test]
async fn failures_are_shared_in_flight_but_never_kept() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    let failed = reads
        .read("a", MountKind::First, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::permission_denied("no"))
        })
        .await;
    assert!(failed.is_err());
    let retried = reads.read("a", remount().await, || counted(&calls, "v")).await?;
    assert_eq!(retried.value.expose(), b"v");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_leader_lets_the_followers_read() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    let leader = reads.read("a", MountKind::First, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(value("never"))
    });
    // The leader starts, the follower joins, then the leader's caller gives up (a timeout
    // drops its future).
    let leader = tokio::time::timeout(Duration::from_secs(1), leader);
    let follower = async {
        tokio::task::yield_now().await;
        reads.read("a", MountKind::First, || counted(&calls, "v")).await
    };
    let (abandoned, followed) = tokio::join!(leader, follower);
    assert!(abandoned.is_err(), "the leader timed out");
    assert_eq!(followed?.value.expose(), b"v");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn the_byte_cap_evicts_the_oldest_and_skips_values_larger_than_it() -> Result<()> {
    let stats = Arc::new(SharingStats::default());
    let reads: SharedReads<&str, SecretBytes> =
        SharedReads::new(SharingOptions { window: Duration::from_secs(60), max_bytes: 10 }, stats.clone());
    let calls = AtomicUsize::new(0);
    let earlier_pod = remount().await;
    reads.read("a", MountKind::First, || counted(&calls, "aaaa")).await?;
    reads.read("b", MountKind::First, || counted(&calls, "bbbb")).await?;
    assert_eq!(reads.bytes(), 8);
    reads.read("c", MountKind::First, || counted(&calls, "cccc")).await?;
    assert_eq!(reads.bytes(), 8, "a was evicted to make room");
    assert_eq!(stats.bytes_held(), 8);
    reads.read("a", earlier_pod, || counted(&calls, "aaaa")).await?;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "the evicted value was read again");
    reads.read("big", MountKind::First, || counted(&calls, "0123456789a")).await?;
    reads.read("big", earlier_pod, || counted(&calls, "0123456789a")).await?;
    assert_eq!(calls.load(Ordering::SeqCst), 6, "a value over the cap is never kept");
    assert!(reads.bytes() <= 10);
    Ok(())
}

/// The remount rule: one pod that remounts right after a change gets the change, while the pods
/// of one identity remounting in a round share the read the first of them made.
#[tokio::test(start_paused = true)]
async fn a_remount_never_takes_a_read_older_than_its_previous_mount() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    // Pods b and c mounted first; pod a's first mount read v1, and it answered after that read.
    let pod_b = remount().await;
    let pod_c = remount().await;
    reads.read("s", MountKind::First, || counted(&calls, "v1")).await?;
    let pod_a = remount().await;

    // The secret changes; a's republish a few seconds later must not get its own old read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a = reads.read("s", pod_a, || counted(&calls, "v2")).await?;
    assert_eq!(a.value.expose(), b"v2", "a's remount read afresh: the kept read was its own");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // b and c remount in the same round: a's read is newer than their files, so they share it.
    for pod in [pod_b, pod_c] {
        assert_eq!(reads.read("s", pod, || counted(&calls, "v3")).await?.value.expose(), b"v2");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the round cost one read");

    // Still bounded by the window: past it even a target mounted long before reads again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(reads.read("s", pod_b, || counted(&calls, "v3")).await?.value.expose(), b"v3");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    Ok(())
}

fn stale_policy(kind: MountKind, max_age: Duration) -> ReadPolicy {
    ReadPolicy { stale_if_error: Some(max_age), ..kind.into() }
}

async fn outage() -> Result<SecretBytes> {
    Err(Error::unavailable("Secrets Manager answered 503"))
}

/// `staleIfError`: an outage is served the last good value of the same key while it is younger
/// than the mount's `staleIfError`; a refusal, another key, or an older value is the error.
#[tokio::test(start_paused = true)]
async fn an_outage_is_served_the_last_good_value_within_stale_if_error() -> Result<()> {
    let reads = cache(Duration::from_secs(60), 1024);
    let calls = AtomicUsize::new(0);
    let hour = Duration::from_secs(3600);
    let policy = stale_policy(MountKind::First, hour);
    reads.read("a", policy, || counted(&calls, "good")).await?;

    // Kept past the 60 s window because it was read for a 1 h staleIfError.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let failed = reads.read("a", policy, outage).await;
    let served = reads.or_stale(&"a", failed, policy)?;
    assert_eq!(served.value.expose(), b"good");
    let stale = served.stale_object("db").ok_or_else(|| Error::internal("not served stale"))?;
    assert_eq!(stale.age, Duration::from_secs(600));
    assert!(stale.reason.contains("503"), "{}", stale.reason);
    assert!(!stale.reason.contains("good"), "no value in the reason");

    // A shorter staleIfError of another mount does not accept a value that old.
    let short = stale_policy(MountKind::First, Duration::from_secs(300));
    assert!(reads.or_stale(&"a", reads.read("a", short, outage).await, short).is_err());
    // Without staleIfError, the error.
    assert!(
        reads
            .or_stale(&"a", reads.read("a", MountKind::First, outage).await, MountKind::First.into())
            .is_err()
    );
    // Another key (another identity) has nothing to serve.
    assert!(reads.or_stale(&"b", reads.read("b", policy, outage).await, policy).is_err());
    // A refusal or a not-found is never served stale.
    for refusal in [Error::permission_denied("AccessDenied"), Error::not_found("gone")] {
        let kind = refusal.kind();
        let result = reads.or_stale(&"a", Err(refusal), policy);
        assert_eq!(result.err().map(|e| e.kind()), Some(kind));
    }
    // Past its staleIfError the value is dropped, and the outage is the error.
    tokio::time::sleep(hour).await;
    assert!(reads.is_empty(), "dropped when its staleIfError lapsed");
    assert!(reads.or_stale(&"a", reads.read("a", policy, outage).await, policy).is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn stale_values_are_kept_with_sharing_off_and_under_the_byte_cap() -> Result<()> {
    let reads = cache(Duration::ZERO, 8);
    let calls = AtomicUsize::new(0);
    let policy = stale_policy(MountKind::First, Duration::from_secs(3600));
    reads.read("a", policy, || counted(&calls, "aaaa")).await?;
    reads.read("a", remount().await, || counted(&calls, "aaaa")).await?;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "window 0: no remount shares a read");
    assert_eq!(reads.or_stale(&"a", outage().await.map(Served::fresh), policy)?.value.expose(), b"aaaa");
    // One after the other (the paused clock would give them one instant: no oldest).
    tokio::time::sleep(Duration::from_millis(1)).await;
    reads.read("b", policy, || counted(&calls, "bbbb")).await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    reads.read("c", policy, || counted(&calls, "cccc")).await?;
    assert!(
        reads.or_stale(&"a", outage().await.map(Served::fresh), policy).is_err(),
        "the oldest went to make room"
    );
    assert!(reads.or_stale(&"c", outage().await.map(Served::fresh), policy).is_ok());
    Ok(())
}

/// `refreshInterval`: a remount takes a read younger than the interval even when the read is
/// older than its own previous mount (the remount rule would read afresh) and past the window;
/// once the interval passed it reads afresh; a first mount always reads; the value is held as
/// long as the interval, also with sharing off.
#[tokio::test(start_paused = true)]
async fn refresh_interval_replaces_the_remount_rule_until_it_passes() -> Result<()> {
    for window in [Duration::from_secs(60), Duration::ZERO] {
        let reads = cache(window, 1024);
        let calls = AtomicUsize::new(0);
        let hour =
            ReadPolicy { refresh_interval: Some(Duration::from_secs(3600)), ..MountKind::First.into() };
        reads.read("a", hour, || counted(&calls, "v1")).await?;
        tokio::time::sleep(Duration::from_secs(1800)).await;
        // This target mounted after the read: the remount rule alone would read afresh.
        let after_the_read = ReadPolicy { kind: remount().await, ..hour };
        let reused = reads.read("a", after_the_read, || counted(&calls, "v2")).await?;
        assert_eq!((reused.value.expose(), reused.shared), (&b"v1"[..], true), "{window:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no call within the interval ({window:?})");
        let rule = ReadPolicy { refresh_interval: None, ..after_the_read };
        reads.read("a", rule, || counted(&calls, "v2")).await?;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "without the interval, the rule ({window:?})");
        tokio::time::sleep(Duration::from_secs(3601)).await;
        let later = ReadPolicy { kind: remount().await, ..hour };
        let past = reads.read("a", later, || counted(&calls, "v3")).await?;
        assert_eq!(past.value.expose(), b"v3", "the interval passed ({window:?})");
        let first = reads.read("a", hour, || counted(&calls, "v4")).await?;
        assert_eq!(first.value.expose(), b"v4", "a first mount reads ({window:?})");
    }
    Ok(())
}

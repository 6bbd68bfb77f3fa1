//! Conformance behaviours about what a mount leaves behind and what a remount may reuse: the
//! audit record of each object, a remount's freshness, isolation between identities, and the
//! admin policy seeing every way an SPC can name an object.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::conformance::{BoxError, Capabilities, Fixture, ObjectRef, PATTERNED_NAMESPACE, contents, ensure};

/// The audit file's lines about objects whose name holds `name`, parsed; waited for (at most
/// 10 s) until there are at least `at_least`.
async fn audited(
    fixture: &dyn Fixture,
    name: &str,
    at_least: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(fixture.audit_log()).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["object"].as_str().is_some_and(|object| object.contains(name)))
            .collect();
        if lines.len() >= at_least || Instant::now() > deadline {
            return Ok(lines);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every object of a mount gets one audit line per mount, saying what happened to it (its
/// version when read, `skipped_optional` when absent) and never its value.
pub async fn each_object_is_audited_without_its_value(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (read, absent) = (fixture.unique("conf-audit"), fixture.unique("conf-gone"));
    let value = format!("audit-value-{read}");
    fixture.put(&read, &value).await?;
    let objects =
        [ObjectRef::new(&read, "read.txt"), ObjectRef::new(&absent, "absent.txt").with("optional", "true")];
    let response = fixture.mount(&fixture.parameters(&objects)).await?;
    let read_lines = audited(fixture, &read, 1).await?;
    ensure(read_lines.len() == 1, || format!("one line for the object read: {read_lines:#?}"))?;
    ensure(read_lines[0]["outcome"] == "ok", || format!("{:#?}", read_lines[0]))?;
    let version = read_lines[0]["version"].as_str().unwrap_or_default();
    ensure(!version.is_empty() && response.object_version.iter().any(|v| v.version == version), || {
        format!("the audited version {version:?} is one answered: {:?}", response.object_version)
    })?;
    let absent_lines = audited(fixture, &absent, 1).await?;
    ensure(absent_lines.len() == 1 && absent_lines[0]["outcome"] == "skipped_optional", || {
        format!("the absent optional object is audited as skipped: {absent_lines:#?}")
    })?;
    ensure(contents(&response, "read.txt")? == value.as_bytes(), || "the value was mounted".into())?;
    let text = std::fs::read_to_string(fixture.audit_log())?;
    ensure(!text.contains(&value), || "the value is in the audit trail".into())
}

/// The remount rule (docs/architecture.md, "The staleness bound"): a remount may take a read
/// another pod of its identity made since its own previous mount, so a change reaches a pod by
/// its second remount at the latest, and never goes back to the old value after that.
pub async fn a_change_reaches_a_pod_by_its_second_remount(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-fresh");
    fixture.put(&name, "first").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&name, "value")]);
    let target = crate::new_target_path();
    let first = fixture.mount_at(&target, &parameters).await?;
    // Another pod of the identity reads the first value after it: a read the first remount
    // may reuse.
    fixture.mount(&parameters).await?;
    fixture.put(&name, "second").await?;
    let remount = fixture.mount_at(&target, &parameters).await?;
    let value = contents(&remount, "value")?;
    ensure(value == b"first" || value == b"second", || format!("{:?}", String::from_utf8_lossy(value)))?;
    for round in ["second", "third"] {
        let later = fixture.mount_at(&target, &parameters).await?;
        ensure(contents(&later, "value")? == b"second", || format!("the {round} remount has the change"))?;
        ensure(first.object_version != later.object_version, || {
            format!("the version changed with the value: {:?}", later.object_version)
        })?;
    }
    Ok(())
}

/// A pod of another identity whose SecretProviderClass names an object only the first identity
/// may read never gets it from the first identity's shared read: its remount asks the cloud as
/// itself and is refused. A backend without identities (nothing shared per identity) says so.
pub async fn a_remount_never_gets_another_identitys_value(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    if !capabilities.shared_identity_exchange {
        return Ok(());
    }
    let (theirs, own) = (fixture.unique("conf-first-only"), fixture.unique("conf-second-own"));
    let secret_value = format!("only-the-first-{theirs}");
    fixture.put(&theirs, &secret_value).await?;
    fixture.put(&own, "the second's own").await?;
    // The second identity's pod mounts its own object: its target is now a remount's.
    let pod = crate::new_target_path();
    fixture.mount_as_second(&pod, &fixture.parameters(&[ObjectRef::new(&own, "value")])).await?;
    // The first identity reads the object, which its remounts may now reuse.
    let parameters = fixture.parameters(&[ObjectRef::new(&theirs, "value")]);
    let first = fixture.mount(&parameters).await?;
    ensure(contents(&first, "value")? == secret_value.as_bytes(), || "the first identity reads it".into())?;
    fixture.restrict_to_first(&theirs).await?;
    let status = match fixture.mount_as_second(&pod, &parameters).await {
        Ok(response) => {
            return Err(format!("the second identity got the object: {:?}", response.files).into());
        }
        Err(status) => status,
    };
    ensure(status.code() == Code::PermissionDenied, || format!("PermissionDenied expected: {status:?}"))?;
    ensure(!status.message().contains(&secret_value), || "the refusal quotes the value".into())
}

/// Under a rule allowing only `*conf-allowed*`, every way the backend's SPCs may name a
/// forbidden object is denied before any cloud call, naming it.
pub async fn a_policy_pattern_sees_every_object_form(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-forbidden");
    fixture.put(&name, "not for that namespace").await?;
    for (form, mut parameters) in fixture.object_forms(&name) {
        parameters.push(("csi.storage.k8s.io/pod.namespace".to_owned(), PATTERNED_NAMESPACE.to_owned()));
        let before = fixture.cloud_calls().await;
        let status = match fixture.mount(&parameters).await {
            Ok(response) => {
                return Err(format!("{form}: the policy let it through: {:?}", response.files).into());
            }
            Err(status) => status,
        };
        ensure(status.code() == Code::PermissionDenied, || format!("{form}: {status:?}"))?;
        ensure(status.message().contains("denied by policy") && status.message().contains(&name), || {
            format!("{form}: names the policy and the object: {}", status.message())
        })?;
        let after = fixture.cloud_calls().await;
        ensure(after == before, || format!("{form}: {} cloud call(s) for a denied mount", after - before))?;
    }
    Ok(())
}

/// How long the SPC in the `refreshInterval` behaviour lets a read serve its remounts.
const REFRESH_INTERVAL: Duration = Duration::from_secs(3);

/// `refreshInterval`: a remount within the interval takes the identity's kept read, however the
/// object changed, with no call to the cloud (nor to the lookups and exchanges on the way);
/// once the interval passed, it reads again and gets the change. A backend that keeps no reads
/// says so.
pub async fn refresh_interval_serves_the_kept_read_until_it_passes(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    if !capabilities.kept_reads {
        return Ok(());
    }
    let name = fixture.unique("conf-refresh");
    fixture.put(&name, "first").await?;
    let mut parameters = fixture.parameters(&[ObjectRef::new(&name, "value")]);
    parameters.push(("refreshInterval".to_owned(), humantime::format_duration(REFRESH_INTERVAL).to_string()));
    let target = crate::new_target_path();
    // The read finished between these two instants.
    let read_at = Instant::now();
    fixture.mount_at(&target, &parameters).await?;
    let read_by = Instant::now();
    fixture.put(&name, "second").await?;
    let calls = fixture.cloud_calls().await;
    for _ in 0..3 {
        let remount = fixture.mount_at(&target, &parameters).await?;
        if read_at.elapsed() >= REFRESH_INTERVAL {
            return Err("the remounts took longer than the interval: nothing was shown".into());
        }
        ensure(contents(&remount, "value")? == b"first", || {
            "a remount within the interval keeps the read".into()
        })?;
    }
    let during = fixture.cloud_calls().await - calls;
    ensure(during == 0, || format!("{during} call(s) for remounts within the interval"))?;
    tokio::time::sleep(REFRESH_INTERVAL.saturating_sub(read_by.elapsed())).await;
    let after = fixture.mount_at(&target, &parameters).await?;
    ensure(contents(&after, "value")? == b"second", || {
        "once the interval passed, the remount reads again".into()
    })
}

/// `refreshInterval` is parsed in core for every backend: a bad one fails before any call,
/// naming the parameter.
pub async fn a_bad_refresh_interval_is_invalid_argument(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-bad-refresh");
    fixture.put(&name, "v").await?;
    for bad in ["hourly", "2d"] {
        let mut parameters = fixture.parameters(&[ObjectRef::new(&name, "value")]);
        parameters.push(("refreshInterval".to_owned(), bad.to_owned()));
        let before = fixture.cloud_calls().await;
        let status = fixture.mount(&parameters).await.err().ok_or("a bad refreshInterval mounted")?;
        ensure(status.code() == Code::InvalidArgument, || format!("{bad}: {status:?}"))?;
        ensure(status.message().contains("refreshInterval"), || {
            format!("{bad}: names it: {}", status.message())
        })?;
        let after = fixture.cloud_calls().await;
        ensure(after == before, || format!("{bad}: {} cloud call(s)", after - before))?;
    }
    Ok(())
}

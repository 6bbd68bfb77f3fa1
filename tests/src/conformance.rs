//! Behaviour every backend must show, whatever its cloud: one suite, run against each backend
//! through its real socket (as object_store's `integration.rs` is run against every store).
//!
//! A backend's test provides a [`Fixture`]: how to store a value in its cloud (or emulator), and
//! how to write SecretProviderClass parameters naming objects.

use async_trait::async_trait;
use csi_secrets_provider_server::proto::MountResponse;
use tonic::Code;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One object to mount: its name in the store, the file name, an optional `filePermission`,
/// and keys every backend accepts on an object (`writeFile`, `expandKeys`, `decode`,
/// `optional`).
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub name: String,
    pub file: String,
    pub file_permission: Option<String>,
    pub keys: Vec<(String, String)>,
}

impl ObjectRef {
    pub fn new(name: &str, file: &str) -> Self {
        Self { name: name.to_owned(), file: file.to_owned(), file_permission: None, keys: Vec::new() }
    }

    pub fn with_permission(mut self, permission: &str) -> Self {
        self.file_permission = Some(permission.to_owned());
        self
    }

    /// Adds `key: value` to the object's entry.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.keys.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The extra keys as flow-mapping entries: `, key: value` each.
    pub fn flow_keys(&self) -> String {
        self.keys.iter().map(|(k, v)| format!(", {k}: {v}")).collect()
    }

    /// The extra keys as block-mapping lines: `\nkey: value` each.
    pub fn block_keys(&self) -> String {
        self.keys.iter().map(|(k, v)| format!("\n{k}: {v}")).collect()
    }
}

/// `objects` as a YAML list of flow mappings (the AWS shape), with `extra` keys (for example
/// `objectType: secretsmanager, `) in each.
pub fn yaml_object_list(objects: &[ObjectRef], extra: &str) -> String {
    objects
        .iter()
        .map(|o| {
            let permission =
                o.file_permission.as_ref().map(|p| format!(", filePermission: '{p}'")).unwrap_or_default();
            format!(
                "- {{objectName: {}, {extra}objectAlias: {}{permission}{}}}\n",
                o.name,
                o.file,
                o.flow_keys()
            )
        })
        .collect()
}

/// A fault a fixture makes its store answer for every read of one object, beyond the
/// backend's own retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The identity may not read the object (IAM `AccessDeniedException`, Key Vault 403).
    Denied,
    /// Every read is throttled (`ThrottlingException`, 429 with `Retry-After`).
    Throttled,
    /// The service fails every read (HTTP 503).
    Unavailable,
    /// The service never answers reads of the object (within any mount's deadline).
    Hang,
}

#[async_trait]
pub trait Fixture: Send + Sync {
    /// A name unique to this run for `base`, valid in the backend's store.
    fn unique(&self, base: &str) -> String;
    /// Creates the object, or stores `value` as its new version.
    async fn put(&self, name: &str, value: &str) -> Result<(), BoxError>;
    /// SPC parameters mounting `objects`.
    fn parameters(&self, objects: &[ObjectRef]) -> Vec<(String, String)>;
    /// Mounts at a new target path through the backend's socket as the driver would, with
    /// whatever identity attributes the backend needs.
    async fn mount(&self, parameters: &[(String, String)]) -> Result<MountResponse, tonic::Status> {
        self.mount_at(&crate::new_target_path(), parameters).await
    }
    /// [`Self::mount`] at `target` (a remount when the provider served that target before).
    async fn mount_at(
        &self,
        target: &str,
        parameters: &[(String, String)],
    ) -> Result<MountResponse, tonic::Status>;
    /// [`Self::mount_at`] as the fixture's second identity (another service account with its
    /// own cloud principal), which may read what [`Self::put`] stores.
    async fn mount_as_second(
        &self,
        target: &str,
        parameters: &[(String, String)],
    ) -> Result<MountResponse, tonic::Status>;
    /// Lets only the first identity read `name` from now on (called right after a mount of the
    /// first identity read it).
    async fn restrict_to_first(&self, name: &str) -> Result<(), BoxError>;
    /// The audit trail the provider writes (`serve --audit-log`).
    fn audit_log(&self) -> &std::path::Path;
    /// Every way an SPC of this backend may name the object `name` (as written, as an ARN, as a
    /// failover object, by type, by location...), each as the parameters of a mount: the admin
    /// policy must see the object in each.
    fn object_forms(&self, name: &str) -> Vec<(&'static str, Vec<(String, String)>)> {
        vec![("as named", self.parameters(&[ObjectRef::new(name, "object")]))]
    }
    /// Sets the gRPC deadline the driver sends with every later mount (none by default).
    fn set_driver_deadline(&self, deadline: Option<std::time::Duration>);
    /// Makes the store answer every read of `name` (created with [`Self::put`]) with `fault`.
    async fn inject(&self, name: &str, fault: Fault) -> Result<(), BoxError>;
    /// Calls the store (and the identity services around it) has seen so far.
    async fn cloud_calls(&self) -> usize;
    /// SPC parameters mounting every secret whose name starts with `prefix` (names made with
    /// [`Self::unique`] and more after it), under `directory` if any, with `extra` keys
    /// (`maxObjects: 2`, `optional: true`) in the entry; `None` when the backend has no folders
    /// (its [`Capabilities::folders`] says so too).
    fn folder(&self, prefix: &str, directory: Option<&str>, extra: &str) -> Option<Vec<(String, String)>>;
    /// Token exchanges for cloud credentials (STS, Azure AD, Google's) the peers have answered.
    async fn identity_exchanges(&self) -> usize;
    /// The SecretProviderClass key of a file's permission (`filePermission`; GCP: `mode`).
    fn permission_key(&self) -> &'static str {
        "filePermission"
    }
}

/// The admin policy every conformance provider runs with (`serve --policy`): everything allowed,
/// except to pods of [`DENIED_NAMESPACE`] (nothing) and [`PATTERNED_NAMESPACE`] (only objects
/// whose name holds `conf-allowed`).
pub const POLICY: &str = "defaultAction: allow\nrules:\n  - namespaces: [\"policy-denied\"]\n    allow: {}\n  - namespaces: [\"policy-patterned\"]\n    allow: {aws: [\"*conf-allowed*\"], azure: [\"*conf-allowed*\"], gcp: [\"*conf-allowed*\"]}\n";
pub const DENIED_NAMESPACE: &str = "policy-denied";
pub const PATTERNED_NAMESPACE: &str = "policy-patterned";

/// Writes [`POLICY`] into `dir`; the path to give `serve --policy`.
pub fn write_policy(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join("conformance-policy.yaml");
    std::fs::write(&path, POLICY)?;
    Ok(path)
}

/// What a backend can do beyond what every backend must. Each backend's test declares its own
/// ([`conformance_tests!`]); a behaviour that needs a capability the backend lacks checks that the
/// backend says so (its fixture has no parameters for it) instead, and the table
/// ([`capability_table`]) is printed by the suite and kept in docs/architecture.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whole folders: `objectPrefix` (AWS, Azure), `resourcePrefix` (GCP).
    pub folders: bool,
    /// `staleIfError` serves the identity's last good value while the cloud is out.
    pub stale_on_outage: bool,
    /// Mounts of one identity share one exchange of its token for cloud credentials.
    pub shared_identity_exchange: bool,
    /// Remounts reuse kept reads: under the remount rule, or for as long as the SPC's
    /// `refreshInterval` says.
    pub kept_reads: bool,
}

/// The capability table: one row per backend, as docs/architecture.md shows it.
pub fn capability_table(rows: &[(&str, Capabilities)]) -> String {
    let mark = |has: bool| if has { "yes" } else { "no" };
    let mut table = String::from(
        "| backend | folders | stale on outage | one token exchange per identity | kept reads (`refreshInterval`) |\n|---|---|---|---|---|\n",
    );
    for (backend, caps) in rows {
        table.push_str(&format!(
            "| {backend} | {} | {} | {} | {} |\n",
            mark(caps.folders),
            mark(caps.stale_on_outage),
            mark(caps.shared_identity_exchange),
            mark(caps.kept_reads)
        ));
    }
    table
}

/// One `#[tokio::test]` per behaviour of the suite, in the calling module: `$fixture` is an
/// async function making a fresh fixture (its own provider and test peers), `$capabilities` the
/// backend's [`Capabilities`]. A failing behaviour fails its own test and hides no other.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path, $capabilities:expr) => {
        $crate::conformance_tests!(@each $fixture, $capabilities;
            mounts_every_object_with_modes_and_versions,
            rotation_changes_content_and_version,
            a_missing_object_fails_the_whole_mount_naming_it,
            bad_file_permission_is_invalid_argument,
            a_bad_stale_if_error_is_invalid_argument,
            a_policy_denial_comes_before_any_cloud_call,
            a_file_named_twice_is_refused_or_written_once,
            concurrent_mounts_agree,
            a_denied_read_is_permission_denied,
            a_throttled_read_is_resource_exhausted,
            an_outage_is_aborted,
            a_hang_ends_before_the_drivers_deadline_naming_the_object,
            templates_and_formats_build_files_from_objects_and_rotate,
            expand_keys_and_decode,
            a_skipped_optional_object_is_tested_for,
            bad_files_fail_the_mount_and_write_nothing,
            a_folder_mounts_every_secret_under_its_prefix,
            folder_bounds_are_the_same_everywhere,
            an_outage_serves_the_identitys_last_good_value,
            mounts_of_one_identity_share_one_exchange,
            each_object_is_audited_without_its_value,
            a_change_reaches_a_pod_by_its_second_remount,
            a_remount_never_gets_another_identitys_value,
            a_policy_pattern_sees_every_object_form,
            refresh_interval_serves_the_kept_read_until_it_passes,
            a_bad_refresh_interval_is_invalid_argument,
            certificate_filters_make_tls_files_from_a_bundle_and_a_pfx,
        );
    };
    (@each $fixture:path, $capabilities:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $behaviour() -> ::std::result::Result<(), $crate::conformance::BoxError> {
                let fixture = $fixture().await?;
                $crate::conformance::$behaviour(&fixture, &$capabilities)
                    .await
                    .map_err(|e| format!("{}: {e}", stringify!($behaviour)).into())
            }
        )*
    };
}

/// Every backend maps the same fault to the same gRPC code, names the object, writes nothing,
/// and answers within the mount timeout; the other objects of the SPC are not enough to succeed.
async fn a_fault_fails_the_mount_with_its_class(
    fixture: &dyn Fixture,
    fault: Fault,
    code: tonic::Code,
) -> Result<(), BoxError> {
    let (good, bad) = (fixture.unique("conf-fine"), fixture.unique("conf-fault"));
    fixture.put(&good, "fine").await?;
    fixture.put(&bad, "unreadable").await?;
    fixture.inject(&bad, fault).await?;
    let objects = [ObjectRef::new(&good, "fine.txt"), ObjectRef::new(&bad, "fault.txt")];
    let started = std::time::Instant::now();
    let status = match fixture.mount(&fixture.parameters(&objects)).await {
        Ok(response) => return Err(format!("the mount succeeded: {:?}", response.files).into()),
        Err(status) => status,
    };
    ensure(status.code() == code, || format!("expected {code:?}, got {status:?}"))?;
    ensure(status.message().contains(&bad), || format!("the error names the object: {status:?}"))?;
    ensure(started.elapsed() < std::time::Duration::from_secs(60), || {
        "answered within the mount timeout".into()
    })
}

/// The identity may not read the object: `PermissionDenied`, naming it.
pub async fn a_denied_read_is_permission_denied(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    a_fault_fails_the_mount_with_its_class(fixture, Fault::Denied, Code::PermissionDenied).await
}

/// Every read throttled beyond the backend's retries: `ResourceExhausted`, naming the object.
pub async fn a_throttled_read_is_resource_exhausted(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    a_fault_fails_the_mount_with_its_class(fixture, Fault::Throttled, Code::ResourceExhausted).await
}

/// The service fails every read: `Aborted` (kubelet retries), naming the object.
pub async fn an_outage_is_aborted(fixture: &dyn Fixture, _: &Capabilities) -> Result<(), BoxError> {
    a_fault_fails_the_mount_with_its_class(fixture, Fault::Unavailable, Code::Aborted).await
}

/// The driver's deadline for a mount (the gRPC timeout it sends) in the hang behaviour.
const HANG_DEADLINE: std::time::Duration = std::time::Duration::from_secs(4);

/// The store never answers reads of one object: the mount ends before the driver's deadline
/// with `DeadlineExceeded`, saying who did not answer and naming the object not read, instead
/// of the driver giving up on a mount that names nothing.
pub async fn a_hang_ends_before_the_drivers_deadline_naming_the_object(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-hang");
    fixture.put(&name, "never read").await?;
    fixture.inject(&name, Fault::Hang).await?;
    fixture.set_driver_deadline(Some(HANG_DEADLINE));
    let started = std::time::Instant::now();
    let status = match fixture.mount(&fixture.parameters(&[ObjectRef::new(&name, "hung.txt")])).await {
        Ok(response) => return Err(format!("the mount succeeded: {:?}", response.files).into()),
        Err(status) => status,
    };
    let elapsed = started.elapsed();
    ensure(status.code() == Code::DeadlineExceeded, || format!("expected DeadlineExceeded, got {status:?}"))?;
    ensure(status.message().contains("did not answer") && status.message().contains(&name), || {
        format!("the error says who did not answer and names the object: {status:?}")
    })?;
    ensure(elapsed < HANG_DEADLINE, || format!("answered after the driver's deadline: {elapsed:?}"))
}

/// With `staleIfError`, a pod mounting while the store fails every read gets the last value its
/// identity read (within the age the SPC allows); without it, the outage. A backend without the
/// capability refuses nothing here but says so in its declaration.
pub async fn an_outage_serves_the_identitys_last_good_value(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    if !capabilities.stale_on_outage {
        return Ok(());
    }
    let name = fixture.unique("conf-stale");
    fixture.put(&name, "before the outage").await?;
    let mut parameters = fixture.parameters(&[ObjectRef::new(&name, "value")]);
    let plain = parameters.clone();
    parameters.push(("staleIfError".to_owned(), "1h".to_owned()));
    fixture.mount(&parameters).await?;
    fixture.inject(&name, Fault::Unavailable).await?;
    let stale = fixture.mount(&parameters).await?;
    ensure(contents(&stale, "value")? == b"before the outage", || "the last good value".into())?;
    let status = fixture.mount(&plain).await.err().ok_or("without staleIfError the outage is the answer")?;
    ensure(status.code() == Code::Aborted, || format!("{status:?}"))
}

/// Several mounts of one identity exchange its token once (the credentials are kept until
/// shortly before they expire).
pub async fn mounts_of_one_identity_share_one_exchange(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-exchange");
    fixture.put(&name, "v").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&name, "value")]);
    for _ in 0..3 {
        fixture.mount(&parameters).await?;
    }
    let exchanges = fixture.identity_exchanges().await;
    if capabilities.shared_identity_exchange {
        ensure(exchanges == 1, || format!("one exchange for three mounts, saw {exchanges}"))
    } else {
        ensure(exchanges == 0, || format!("a backend without token exchanges made {exchanges}"))
    }
}

pub use crate::conformance_certs::certificate_filters_make_tls_files_from_a_bundle_and_a_pfx;
pub use crate::conformance_files::{
    a_skipped_optional_object_is_tested_for, bad_files_fail_the_mount_and_write_nothing,
    expand_keys_and_decode, templates_and_formats_build_files_from_objects_and_rotate,
};
pub use crate::conformance_folders::{
    a_folder_mounts_every_secret_under_its_prefix, folder_bounds_are_the_same_everywhere,
};
pub use crate::conformance_trail::{
    a_bad_refresh_interval_is_invalid_argument, a_change_reaches_a_pod_by_its_second_remount,
    a_policy_pattern_sees_every_object_form, a_remount_never_gets_another_identitys_value,
    each_object_is_audited_without_its_value, refresh_interval_serves_the_kept_read_until_it_passes,
};

pub(crate) fn contents<'a>(response: &'a MountResponse, file: &str) -> Result<&'a [u8], BoxError> {
    crate::client::file_contents(response, file).map_err(Into::into)
}

fn mode(response: &MountResponse, file: &str) -> Option<i32> {
    response.files.iter().find(|f| f.path == file).map(|f| f.mode)
}

pub(crate) fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), BoxError> {
    if condition { Ok(()) } else { Err(what().into()) }
}

pub async fn mounts_every_object_with_modes_and_versions(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (a, b) = (fixture.unique("conf-a"), fixture.unique("conf-b"));
    fixture.put(&a, "alpha").await?;
    fixture.put(&b, "beta").await?;
    let objects = [ObjectRef::new(&a, "a.txt"), ObjectRef::new(&b, "b.txt").with_permission("0600")];
    let response = fixture.mount(&fixture.parameters(&objects)).await?;
    ensure(response.files.len() == 2, || format!("two files expected: {:?}", response.files))?;
    ensure(contents(&response, "a.txt")? == b"alpha", || "a.txt content".into())?;
    ensure(contents(&response, "b.txt")? == b"beta", || "b.txt content".into())?;
    ensure(mode(&response, "a.txt") == Some(0o644), || "default mode is the driver's 0644".into())?;
    ensure(mode(&response, "b.txt") == Some(0o600), || "filePermission 0600 applies".into())?;
    ensure(response.object_version.len() >= 2, || {
        format!("a version per object: {:?}", response.object_version)
    })?;
    ensure(response.object_version.iter().all(|v| !v.version.is_empty()), || "versions are set".into())?;
    // The driver takes the answer as its own code does, and the pod sees the files and modes.
    let pod = crate::driver::TargetDir::new()?;
    pod.apply(&response).map_err(|e| format!("the driver refuses the answer: {e}"))?;
    let seen = pod.files()?;
    ensure(seen.get("a.txt") == Some(&(b"alpha".to_vec(), 0o644)), || format!("the pod sees {seen:?}"))?;
    ensure(seen.get("b.txt") == Some(&(b"beta".to_vec(), 0o600)), || format!("the pod sees {seen:?}"))?;
    // Idempotent: the same mount again gives the same answer.
    let again = fixture.mount(&fixture.parameters(&objects)).await?;
    ensure(again.object_version == response.object_version, || {
        "a second mount reports the same versions".into()
    })?;
    Ok(())
}

pub async fn rotation_changes_content_and_version(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-rotate");
    fixture.put(&name, "before").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&name, "rotating")]);
    let first = fixture.mount(&parameters).await?;
    fixture.put(&name, "after").await?;
    let second = fixture.mount(&parameters).await?;
    ensure(contents(&first, "rotating")? == b"before", || "first content".into())?;
    ensure(contents(&second, "rotating")? == b"after", || "rotated content".into())?;
    // Version ids differ by backend (file name for AWS, `secret/<name>` for Azure): compare the
    // reported versions as a whole.
    let (v1, v2) = (&first.object_version, &second.object_version);
    ensure(!v1.is_empty() && v1 != v2, || format!("the version changes with the content: {v1:?} -> {v2:?}"))?;
    Ok(())
}

pub async fn a_missing_object_fails_the_whole_mount_naming_it(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (present, missing) = (fixture.unique("conf-present"), fixture.unique("conf-missing"));
    fixture.put(&present, "here").await?;
    let parameters =
        fixture.parameters(&[ObjectRef::new(&present, "present"), ObjectRef::new(&missing, "missing")]);
    match fixture.mount(&parameters).await {
        Ok(response) => Err(format!("a mount with a missing object succeeded: {:?}", response.files).into()),
        Err(status) => {
            ensure(status.code() == Code::NotFound, || format!("NotFound expected: {status:?}"))?;
            ensure(status.message().contains(&missing), || {
                format!("the message names {missing}: {}", status.message())
            })
        }
    }
}

pub async fn bad_file_permission_is_invalid_argument(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-perm");
    fixture.put(&name, "x").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&name, "perm").with_permission("0999")]);
    let status = fixture.mount(&parameters).await.err().ok_or("filePermission 0999 was accepted")?;
    ensure(status.code() == Code::InvalidArgument, || format!("InvalidArgument expected: {status:?}"))?;
    let key = fixture.permission_key();
    ensure(status.message().contains(key), || format!("names the field {key}: {}", status.message()))?;
    ensure(status.message().contains(&name), || format!("names the object: {}", status.message()))
}

/// The admin policy is core's and the server's: a denied object is `PermissionDenied` naming the
/// object, the namespace and the policy, and nothing reaches the store.
pub async fn a_policy_denial_comes_before_any_cloud_call(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-policy");
    fixture.put(&name, "not for that namespace").await?;
    let mut parameters = fixture.parameters(&[ObjectRef::new(&name, "policy")]);
    parameters.push(("csi.storage.k8s.io/pod.namespace".to_owned(), DENIED_NAMESPACE.to_owned()));
    let before = fixture.cloud_calls().await;
    let status = fixture.mount(&parameters).await.err().ok_or("the policy let the mount through")?;
    ensure(status.code() == Code::PermissionDenied, || format!("PermissionDenied expected: {status:?}"))?;
    let message = status.message();
    ensure(message.contains("denied by policy") && message.contains(DENIED_NAMESPACE), || {
        format!("names the policy and the namespace: {message}")
    })?;
    ensure(message.contains(&name), || format!("names the object: {message}"))?;
    let after = fixture.cloud_calls().await;
    ensure(after == before, || format!("{} cloud call(s) for a denied mount", after - before))
}

/// `staleIfError` is parsed in core for every backend: a bad duration fails before any read.
pub async fn a_bad_stale_if_error_is_invalid_argument(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let name = fixture.unique("conf-stale");
    fixture.put(&name, "x").await?;
    let mut parameters = fixture.parameters(&[ObjectRef::new(&name, "stale")]);
    parameters.push(("staleIfError".to_owned(), "a while".to_owned()));
    let status = fixture.mount(&parameters).await.err().ok_or("staleIfError \"a while\" was accepted")?;
    ensure(status.code() == Code::InvalidArgument, || format!("InvalidArgument expected: {status:?}"))?;
    ensure(status.message().contains("staleIfError"), || format!("names the field: {}", status.message()))
}

/// Two objects writing one file: each backend does what its upstream does (the AWS provider
/// refuses a repeated alias, the Azure provider writes the last object), but a response never
/// carries one path twice.
pub async fn a_file_named_twice_is_refused_or_written_once(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (a, b) = (fixture.unique("conf-dup-a"), fixture.unique("conf-dup-b"));
    fixture.put(&a, "a").await?;
    fixture.put(&b, "b").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&a, "same"), ObjectRef::new(&b, "same")]);
    match fixture.mount(&parameters).await {
        Err(status) => {
            ensure(status.code() == Code::InvalidArgument, || {
                format!("InvalidArgument expected: {status:?}")
            })?;
            ensure(status.message().contains("same"), || format!("names the file: {}", status.message()))
        }
        Ok(response) => {
            let written = response.files.iter().filter(|f| f.path == "same").count();
            ensure(written == 1, || format!("one file \"same\" expected: {:?}", response.files))?;
            ensure(contents(&response, "same")? == b"b", || "the last object wins".into())
        }
    }
}

pub async fn concurrent_mounts_agree(fixture: &dyn Fixture, _: &Capabilities) -> Result<(), BoxError> {
    let name = fixture.unique("conf-concurrent");
    fixture.put(&name, "shared").await?;
    let parameters = fixture.parameters(&[ObjectRef::new(&name, "shared")]);
    let mounts = (0..16).map(|_| fixture.mount(&parameters));
    for result in futures::future::join_all(mounts).await {
        let response = result?;
        ensure(contents(&response, "shared")? == b"shared", || {
            "every concurrent mount sees the value".into()
        })?;
    }
    Ok(())
}

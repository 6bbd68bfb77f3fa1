//! The one trait every cloud backend implements.

use std::fmt;

use async_trait::async_trait;

use crate::audit::ObjectRecord;
use crate::error::{Error, Result};
use crate::files::FilePlan;
use crate::mode::FileMode;
use crate::parameters::Parameters;
use crate::policy::{Policy, Requester};
use crate::request::{MountRequest, ParsedSpc};
use crate::response::MountResponse;
use crate::stats::BackendStats;
use crate::warning::Warning;

/// A secret store the provider can mount from. Object-safe: the server holds
/// `Arc<dyn SecretBackend>`, one per socket.
#[async_trait]
pub trait SecretBackend: Send + Sync + fmt::Debug {
    /// The provider name: the SPC's `spec.provider` and the socket's file name (`aws.sock`).
    fn name(&self) -> &'static str;

    /// Checks SPC parameters without calling any cloud: every problem found, and the files a
    /// mount would write. Used by `validate`; needs no pod attributes.
    fn validate(&self, parameters: &Parameters) -> Validation;

    /// Parses the parameters of a mount once: the [`Validation`] the admin policy and the
    /// audit trail read, and the backend's own parsed form, which the server hands back to
    /// [`Self::mount`] in [`MountRequest::parsed`] so the SecretProviderClass is not parsed
    /// twice. The default parses nothing for the mount.
    fn prepare(&self, parameters: &Parameters, default_mode: FileMode) -> Prepared {
        let _ = default_mode;
        Prepared { validation: self.validate(parameters), parsed: None }
    }

    /// Fetches every object and returns all files, or an error and nothing.
    async fn mount(&self, request: &MountRequest) -> Result<MountResponse>;

    /// Cloud calls and sharing figures for `/metrics`; `None` for a backend that counts none.
    fn stats(&self) -> Option<&BackendStats> {
        None
    }
}

/// A SecretProviderClass checked for one mount: what [`SecretBackend::prepare`] answers.
#[derive(Debug)]
pub struct Prepared {
    pub validation: Validation,
    /// The backend's parsed form, when the parameters parsed.
    pub parsed: Option<ParsedSpc>,
}

/// What an offline check found.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// The files a mount would write, as far as they are known without fetching.
    pub plan: FilePlan,
    /// Files a mount may add depending on what the cloud returns (for example a certificate's
    /// `.crt`/`.key` split); valid targets for `secretObjects`, but not listed as planned.
    pub possible_files: Vec<String>,
    pub problems: Vec<Error>,
    /// What the mount goes on with but the user should fix (unknown keys, a file written twice).
    pub warnings: Vec<Warning>,
    /// The objects a mount would read, as the admin policy names them (AWS: the name or ARN
    /// as written, SSM parameter names, failover objects too; Azure: `vault/objectName`).
    pub reads: Vec<String>,
    /// Each object of the SecretProviderClass, as written and as resolved, once: what the
    /// audit trail records for a mount that fails or is denied before the backend answers.
    pub objects: Vec<ObjectRecord>,
    /// Prefix entries (`objectPrefix`, `resourcePrefix`): their files are known once listed.
    pub selections: Vec<PlannedSelection>,
    /// The IAM roles a mount would assume (AWS `assumeRoleArn`), for the admin policy's
    /// `awsRoles`.
    pub roles: Vec<String>,
}

/// A prefix entry as `validate` sees it: what it selects and where its files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSelection {
    /// `objectPrefix "team-a/app/"`, with its tags.
    pub label: String,
    /// The directory its files go in (`objectAlias`, `path`), if any.
    pub directory: Option<String>,
    pub optional: bool,
}

impl PlannedSelection {
    pub fn new(selection: &crate::kit::Selection, directory: Option<&str>) -> Self {
        let tags: Vec<String> = selection.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let label = if tags.is_empty() {
            selection.label()
        } else {
            format!("{} with tags {}", selection.label(), tags.join(", "))
        };
        Self {
            label,
            directory: directory.map(|d| d.trim_end_matches('/').to_owned()),
            optional: selection.optional,
        }
    }

    /// Whether a selected secret's file may be named `path`.
    pub fn could_name(&self, path: &str) -> bool {
        match &self.directory {
            Some(directory) => crate::path_clash::is_parent(directory, path),
            None => true,
        }
    }
}

impl Validation {
    /// The validation of a parsed SecretProviderClass, built up by its objects ([`Self::object`])
    /// and prefix entries ([`Self::selection`]) the same way in every backend.
    pub fn planned(plan: &FilePlan) -> Self {
        Ok(plan.clone()).into()
    }

    /// An object: `written` as the SPC names it and `resolved` as the audit trail and the admin
    /// policy name it (`vault/objectName`, `projects/p/secrets/s`).
    pub fn object(mut self, written: &str, resolved: impl Into<String>) -> Self {
        let resolved = resolved.into();
        self.reads.push(resolved.clone());
        self.objects.push(ObjectRecord::planned(written, resolved));
        self
    }

    /// A prefix entry whose files go under `directory`; `resolved` names its prefix for the audit
    /// trail (each secret it selects is checked against the policy once listed).
    pub fn selection(
        mut self,
        selection: &crate::kit::Selection,
        directory: Option<&str>,
        resolved: impl Into<String>,
    ) -> Self {
        self.objects.push(ObjectRecord::planned(&selection.prefix, resolved));
        self.selections.push(PlannedSelection::new(selection, directory));
        self
    }

    /// The reads the policy checks, when they are not one per object as [`Self::object`] says
    /// (AWS: failover objects too, by type and region).
    pub fn with_reads(mut self, reads: Vec<String>) -> Self {
        self.reads = reads;
        self
    }

    /// A validation that failed with these problems.
    pub fn failed(problems: Vec<Error>) -> Self {
        Self {
            plan: FilePlan::new(),
            possible_files: Vec::new(),
            problems,
            warnings: Vec::new(),
            reads: Vec::new(),
            objects: Vec::new(),
            selections: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// What the admin policy refuses of this SPC for `requester`: each object it may not read
    /// and each role it may not assume, one `PermissionDenied` each. The server (before the
    /// backend is called) and `validate --policy` both ask this.
    pub fn denials(&self, policy: &Policy, backend: &str, requester: Requester<'_>) -> Vec<Error> {
        let mut denied = policy.denials(backend, requester, &self.reads);
        denied.extend(policy.role_denials(requester, &self.roles));
        denied
    }

    /// The plan, or every problem folded into one error.
    ///
    /// Backends parse once and turn the outcome into a [`Validation`] with `From`.
    pub fn into_result(self) -> Result<FilePlan> {
        match Error::combine(self.problems) {
            Some(error) => Err(error),
            None => Ok(self.plan),
        }
    }
}

impl From<std::result::Result<FilePlan, Vec<Error>>> for Validation {
    fn from(parsed: std::result::Result<FilePlan, Vec<Error>>) -> Self {
        match parsed {
            Ok(plan) => {
                let warnings = plan.warnings().to_vec();
                Self {
                    plan,
                    possible_files: Vec::new(),
                    problems: Vec::new(),
                    warnings,
                    reads: Vec::new(),
                    objects: Vec::new(),
                    selections: Vec::new(),
                    roles: Vec::new(),
                }
            }
            Err(problems) => Self::failed(problems),
        }
    }
}

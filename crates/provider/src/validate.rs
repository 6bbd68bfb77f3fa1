//! `validate`: every problem of every SecretProviderClass in the given files, without a cloud.

use std::fmt::Write as _;
use std::path::Path;

use csi_secrets_provider_core::spc::{Document, SecretProviderClass, parse_documents};
use csi_secrets_provider_core::{Error, FilePlan, PlannedSelection, Policy, Requester, Warning};

use crate::registry::Registry;

/// The report for one file, and whether it found no problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub text: String,
    pub ok: bool,
}

/// `validate --policy`: the policy, and who the mounting pods are.
#[derive(Debug)]
pub struct PolicyCheck {
    policy: Policy,
    /// `None`: each SecretProviderClass's own namespace (else `default`).
    namespace: Option<String>,
    service_account: String,
}

impl PolicyCheck {
    pub fn load(path: &Path, namespace: Option<String>, service_account: &str) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_config(format!("cannot read the policy file {}: {e}", path.display()))
        })?;
        let policy =
            Policy::parse(&text).map_err(|e| e.prefixed(format!("policy file {}", path.display())))?;
        Ok(Self { policy, namespace, service_account: service_account.to_owned() })
    }
}

pub fn validate_file(registry: &Registry, path: &Path, policy: Option<&PolicyCheck>) -> FileReport {
    let shown = path.display();
    // `-` is standard input: `kubectl get secretproviderclasses -A -o yaml | … validate -`.
    let read = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin().lock())
    } else {
        std::fs::read_to_string(path)
    };
    let content = match read {
        Ok(content) => content,
        Err(e) => return FileReport { text: format!("{shown}: cannot read: {e}\n"), ok: false },
    };
    let documents = match parse_documents(&content) {
        Ok(documents) => documents,
        Err(e) => return FileReport { text: format!("{shown}: {e}\n"), ok: false },
    };
    let mut text = String::new();
    let mut ok = true;
    let mut found = 0;
    for (index, document) in documents.iter().enumerate() {
        let Document::SecretProviderClass { spc, problems } = document else { continue };
        found += 1;
        let mut problems = problems.clone();
        let mut warnings = Vec::new();
        let (plan, selections) = check_spc(registry, spc, policy, &mut problems, &mut warnings);
        let name =
            if spc.name.is_empty() { format!("document {}", index + 1) } else { format!("{:?}", spc.name) };
        let provider = if spc.provider.is_empty() { "?" } else { &spc.provider };
        if problems.is_empty() {
            let files: Vec<&str> =
                plan.files().iter().filter(|f| f.shape.write_file).map(|f| f.path.as_str()).collect();
            let _ = writeln!(
                text,
                "{shown}: SecretProviderClass {name} (provider {provider}): ok, {} file(s): {}",
                files.len(),
                files.join(", ")
            );
            let read_only: Vec<&str> =
                plan.files().iter().filter(|f| !f.shape.write_file).map(|f| f.path.as_str()).collect();
            if !read_only.is_empty() {
                let _ = writeln!(text, "  read for files only (writeFile: false): {}", read_only.join(", "));
            }
            let expanded: Vec<&str> =
                plan.files().iter().filter(|f| f.shape.expand_keys).map(|f| f.object.as_str()).collect();
            if !expanded.is_empty() {
                let _ = writeln!(text, "  plus one file per key of (expandKeys): {}", expanded.join(", "));
            }
            for selection in &selections {
                let place =
                    selection.directory.as_deref().map(|d| format!(" under {d}/")).unwrap_or_default();
                let optional = if selection.optional { " (optional: none is no error)" } else { "" };
                let _ = writeln!(
                    text,
                    "  plus one file per secret selected by {}{place}, named when the mount lists them{optional}",
                    selection.label
                );
            }
            if !plan.optional_objects().is_empty() {
                let _ = writeln!(
                    text,
                    "  optional (skipped when the cloud has no such object): {}",
                    plan.optional_objects().join(", ")
                );
            }
        } else {
            ok = false;
            let _ = writeln!(
                text,
                "{shown}: SecretProviderClass {name} (provider {provider}): {} problem(s)",
                problems.len()
            );
            for problem in &problems {
                let _ = writeln!(text, "  - {problem}");
            }
        }
        // Warnings do not fail validation: the official providers mount these SPCs too.
        for warning in &warnings {
            let _ = writeln!(text, "  warning: {warning}");
        }
    }
    if found == 0 {
        ok = false;
        let _ = writeln!(text, "{shown}: no SecretProviderClass found");
    }
    FileReport { text, ok }
}

/// Checks the provider and its parameters; returns the planned files and the prefix entries.
fn check_spc(
    registry: &Registry,
    spc: &SecretProviderClass,
    policy: Option<&PolicyCheck>,
    problems: &mut Vec<Error>,
    warnings: &mut Vec<Warning>,
) -> (FilePlan, Vec<PlannedSelection>) {
    if spc.provider.is_empty() {
        return (FilePlan::new(), Vec::new());
    }
    let backend = match registry.get(&spc.provider) {
        Ok(backend) => backend,
        Err(e) => {
            problems.push(e.with_field("spec.provider"));
            return (FilePlan::new(), Vec::new());
        }
    };
    let validation = backend.validate(&spc.parameters);
    let built = match csi_secrets_provider_core::CommonParameters::parse(&spc.parameters) {
        Ok(common) => {
            // `files` reads objects by their file names: every name it reads must be one.
            let known: Vec<&str> = validation
                .plan
                .files()
                .iter()
                .map(|f| f.path.as_str())
                .chain(validation.possible_files.iter().map(String::as_str))
                .collect();
            if validation.problems.is_empty() {
                let selected = |name: &str| validation.selections.iter().any(|s| s.could_name(name));
                problems.extend(common.files.check_names(&known, &selected));
            }
            common.files.entries().iter().map(|entry| entry.path.clone()).collect()
        }
        Err(common) => {
            problems.extend(common);
            Vec::new()
        }
    };
    // What every mount of it would answer (the driver refuses an answer without objects).
    if validation.problems.is_empty()
        && validation.plan.is_empty()
        && validation.possible_files.is_empty()
        && validation.selections.is_empty()
    {
        problems.push(csi_secrets_provider_core::MountResponse::no_objects());
    }
    if let Some(check) = policy {
        let namespace = check.namespace.as_deref().or(spc.namespace.as_deref()).unwrap_or("default");
        let requester = Requester { namespace, service_account: &check.service_account };
        problems.extend(validation.denials(&check.policy, backend.name(), requester));
    }
    problems.extend(validation.problems);
    warnings.extend(validation.warnings);
    let mut plan = validation.plan;
    let possible = validation.possible_files;
    let selections = validation.selections;
    let expands = plan.files().iter().any(|f| f.shape.expand_keys);
    for path in built {
        plan.built(path);
    }
    // secretObjects name mounted files; a typo there makes the driver's Secret sync fail late.
    // (The files of `expandKeys` are named by the value's keys: unknown without the cloud.)
    if !plan.is_empty() && !expands {
        for (i, object) in spc.secret_objects.iter().enumerate() {
            for (j, (object_name, _key)) in object.data.iter().enumerate() {
                let written = plan.files().iter().any(|f| &f.path == object_name && f.shape.write_file);
                let selected = selections.iter().any(|s| s.could_name(object_name));
                if !written && !possible.contains(object_name) && !selected {
                    problems.push(
                        Error::invalid_config(format!(
                            "objectName {object_name:?} is not a file this SecretProviderClass mounts"
                        ))
                        .with_field(format!("spec.secretObjects[{i}].data[{j}].objectName")),
                    );
                }
            }
        }
    }
    (plan, selections)
}

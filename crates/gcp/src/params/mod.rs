//! The GCP provider's SecretProviderClass: `auth` and a `secrets` list of `resourceName`,
//! `fileName`/`path`, `mode`, `extractJSONKey`/`extractYAMLKey`, plus this provider's
//! `optional` and `jmesPath`. Parsed as the GCP provider's yaml.v3 decoder reads it (exact key
//! spelling, unknown keys ignored, here with a warning), with what it lets through but breaks
//! pods refused before any call.

use csi_secrets_provider_core::grammar;
use csi_secrets_provider_core::jmes::{self, JmesEntry, JmesRules};
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{
    Error, Fields, FileMode, FilePlan, KeyMatching, Parameters, Warning, unknown_parameters,
};
use serde_norway::Value;

pub mod names;
mod registry;
mod selection;
pub use names::Location;
pub use registry::RegistrySpec;
pub use selection::SelectionSpec;

csi_secrets_provider_core::config_keys! {
    /// Top-level parameters.
    pub enum ParameterKey {
        Secrets => "secrets",
        Auth => "auth",
    }
}

csi_secrets_provider_core::config_keys! {
    /// Keys of one `secrets` entry.
    pub enum SecretKey {
        ResourceName => "resourceName",
        FileName => "fileName",
        Path => "path",
        Mode => "mode",
        ExtractJsonKey => "extractJSONKey",
        ExtractYamlKey => "extractYAMLKey",
        Optional => "optional",
        JmesPath => "jmesPath",
        WriteFile => "writeFile",
        ExpandKeys => "expandKeys",
        Decode => "decode",
        ResourcePrefix => "resourcePrefix",
        Tags => "tags",
        MaxObjects => "maxObjects",
        Registry => "registry",
    }
}

csi_secrets_provider_core::shape_keys!(SecretKey);

/// How the pod's identity is found (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The pod's Kubernetes service account through workload identity (default).
    PodAdc,
    /// The provider's own credentials (node or DaemonSet identity).
    ProviderAdc,
}

/// Where a secret lives: `projects/P/secrets/S/versions/V` or
/// `projects/P/locations/L/secrets/S/versions/V`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceName {
    pub project: String,
    pub location: Option<Location>,
    pub secret: String,
    /// A number, `latest` or an alias.
    pub version: String,
}

impl ResourceName {
    /// The name as Secret Manager's API takes it (the form as written, normalised).
    pub fn api_name(&self) -> String {
        match &self.location {
            Some(location) => format!(
                "projects/{}/locations/{location}/secrets/{}/versions/{}",
                self.project, self.secret, self.version
            ),
            None => format!("projects/{}/secrets/{}/versions/{}", self.project, self.secret, self.version),
        }
    }

    /// The secret without its version: what the admin policy and the audit trail name.
    pub fn secret_name(&self) -> String {
        match &self.location {
            Some(location) => {
                format!("projects/{}/locations/{location}/secrets/{}", self.project, self.secret)
            }
            None => format!("projects/{}/secrets/{}", self.project, self.secret),
        }
    }
}

/// What to write from a secret's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    Whole,
    JsonKey(String),
    YamlKey(String),
}

/// One `secrets` entry.
#[derive(Debug, Clone)]
pub struct SecretSpec {
    /// `resourceName` as written: the object version's id, errors' and logs' name.
    pub resource_name: String,
    pub resource: ResourceName,
    pub file_name: String,
    pub mode: FileMode,
    pub extract: Extract,
    pub optional: bool,
    pub jmes: Vec<JmesEntry>,
    /// `writeFile`, `expandKeys`, `decode`: what the server makes of the secret's file.
    pub shape: FileShape,
    /// Selected by a `resourcePrefix` entry: a `latest` version that is disabled or destroyed
    /// means the secret has no current value, and it is skipped like an absent optional one.
    pub selected: bool,
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub auth: Auth,
    pub secrets: Vec<SecretSpec>,
    /// `registry:` entries: a Docker config with the identity's access token each.
    pub registries: Vec<RegistrySpec>,
    /// `resourcePrefix` entries: listed at mount time, each selected secret then read as a
    /// secret of its own.
    pub selections: Vec<SelectionSpec>,
    pub plan: FilePlan,
}

/// Parses the parameters: every problem found, or the spec.
pub fn parse(parameters: &Parameters, default_mode: FileMode) -> Result<MountSpec, Vec<Error>> {
    let mut problems = Vec::new();
    let mut plan = FilePlan::new();
    for warning in unknown_parameters::<ParameterKey>(parameters) {
        plan.warn(warning);
    }
    let auth = match parameters.get_trimmed("auth") {
        None | Some("pod-adc") => Auth::PodAdc,
        Some("provider-adc") => Auth::ProviderAdc,
        Some(other) => {
            problems.push(
                Error::invalid_config(format!("unknown auth configuration: {other:?}")).with_field("auth"),
            );
            Auth::PodAdc
        }
    };
    let Some(text) = parameters.get("secrets").filter(|t| !t.trim().is_empty()) else {
        problems.push(Error::invalid_config("missing required 'secrets' attribute").with_field("secrets"));
        return Err(problems);
    };
    let items = match csi_secrets_provider_core::yaml::parse(text) {
        Ok(Value::Sequence(items)) => {
            if let Err(e) = csi_secrets_provider_core::check_object_count(items.len(), "secrets") {
                problems.push(e);
                return Err(problems);
            }
            items
        }
        Ok(Value::Null) => Vec::new(),
        Ok(_) => {
            problems.push(
                Error::invalid_config("failed to unmarshal secrets attribute: expected a list of secrets")
                    .with_field("secrets"),
            );
            return Err(problems);
        }
        Err(e) => {
            problems.push(
                Error::invalid_config(format!("failed to unmarshal secrets attribute: {e}"))
                    .with_field("secrets"),
            );
            return Err(problems);
        }
    };
    let mut secrets = Vec::new();
    let mut selections = Vec::new();
    let mut registries = Vec::new();
    let mut warnings = Vec::new();
    let mut paths: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (index, item) in items.iter().enumerate() {
        if item.get("resourcePrefix").is_some() {
            match selection::parse_selection(index, item, default_mode, &mut warnings) {
                Ok(selection) => selections.push(selection),
                Err(mut errors) => problems.append(&mut errors),
            }
            continue;
        }
        if item.get("registry").is_some() {
            match registry::parse_registry(index, item, default_mode, &mut warnings) {
                Ok(registry) => {
                    let earlier =
                        registries.iter().find(|r: &&RegistrySpec| r.file_name == registry.file_name);
                    let planned =
                        csi_secrets_provider_core::kit::plan_registry_file(&mut plan, earlier, &registry);
                    problems.extend(planned.err().map(|e| e.with_field("path")));
                    registries.push(registry);
                }
                Err(mut errors) => problems.append(&mut errors),
            }
            continue;
        }
        match parse_secret(index, item, default_mode, &mut warnings) {
            Ok(secret) => {
                // The driver writes one of two files of the same path; the GCP provider lets
                // that through and a pod then gets either: refused here, naming both.
                let mut files = vec![secret.file_name.clone()];
                files.extend(secret.jmes.iter().map(|entry| entry.file_name.clone()));
                for file in files {
                    if let Some(earlier) = paths.get(&file) {
                        problems.push(
                            Error::invalid_config(format!(
                                "path {file:?} is also written by {earlier:?}: each secret needs its own path"
                            ))
                            .with_object(&secret.resource_name)
                            .with_field("path"),
                        );
                        continue;
                    }
                    paths.insert(file, secret.resource_name.clone());
                }
                if let Err(e) = plan.add_shaped(
                    &secret.resource_name,
                    secret.file_name.clone(),
                    secret.mode,
                    secret.shape,
                ) {
                    problems.push(e.with_field("path"));
                }
                for entry in &secret.jmes {
                    if let Err(e) = plan.add_shaped(
                        &secret.resource_name,
                        entry.file_name.clone(),
                        entry.mode,
                        entry.shape(),
                    ) {
                        problems.push(e.with_field("jmesPath"));
                    }
                }
                if secret.optional {
                    plan.mark_optional(&secret.resource_name);
                }
                secrets.push(secret);
            }
            Err(mut errors) => problems.append(&mut errors),
        }
    }
    for warning in warnings {
        plan.warn(warning);
    }
    if problems.is_empty() {
        Ok(MountSpec { auth, secrets, registries, selections, plan })
    } else {
        Err(problems)
    }
}

pub(crate) fn parse_secret(
    index: usize,
    item: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<SecretSpec, Vec<Error>> {
    let fallback = format!("secrets[{index}]");
    if !item.is_mapping() {
        return Err(vec![
            Error::invalid_config("each secret must be a mapping with a resourceName").with_object(fallback),
        ]);
    }
    let fields: Fields<'_, SecretKey> = Fields::read(item, KeyMatching::Exact);
    let ([resource_name, file_name, path, json_key, yaml_key], mut problems) = fields.many(
        [
            SecretKey::ResourceName,
            SecretKey::FileName,
            SecretKey::Path,
            SecretKey::ExtractJsonKey,
            SecretKey::ExtractYamlKey,
        ],
        Fields::trimmed,
    );
    let object = resource_name.clone().unwrap_or(fallback);
    warnings.extend(fields.unknown_keys(&object, ""));
    problems = problems.into_iter().map(|e| e.or_object(&object)).collect();
    let optional = fields.flag(SecretKey::Optional).unwrap_or_else(|e| {
        problems.push(e.with_object(&object));
        false
    });
    let (shape, shape_problems) = FileShape::read(&fields);
    problems.extend(shape_problems.into_iter().map(|e| e.with_object(&object)));
    let resource = match &resource_name {
        None => {
            problems.push(
                Error::invalid_config("resourceName must be set")
                    .with_object(&object)
                    .with_field("resourceName"),
            );
            None
        }
        Some(name) => match parse_resource_name(name) {
            Ok(resource) => Some(resource),
            Err(e) => {
                problems.push(e.with_object(&object).with_field("resourceName"));
                None
            }
        },
    };
    // `path` wins over `fileName`, as in the GCP provider.
    let file_name = match path.or(file_name) {
        Some(file) => file,
        None => {
            problems.push(
                Error::invalid_config("path (or fileName) must be set: the file to write the secret to")
                    .with_object(&object)
                    .with_field("path"),
            );
            String::new()
        }
    };
    let mode = match mode_of(fields.get(SecretKey::Mode)) {
        Ok(mode) => mode.unwrap_or(default_mode),
        Err(e) => {
            problems.push(e.with_object(&object).with_field("mode"));
            default_mode
        }
    };
    let extract = match (json_key, yaml_key) {
        (Some(_), Some(_)) => {
            problems.push(
                Error::invalid_config("extractJSONKey and extractYAMLKey cannot both be set")
                    .with_object(&object)
                    .with_field("extractJSONKey"),
            );
            Extract::Whole
        }
        (Some(key), None) => Extract::JsonKey(key),
        (None, Some(key)) => Extract::YamlKey(key),
        (None, None) => Extract::Whole,
    };
    // jmesPath entries write `objectAlias` as the file, like `path`; `filePermission` as the
    // other backends read it (an octal string).
    let jmes_file = |alias: &str| alias.to_owned();
    let entry_mode = |value: &str| FileMode::parse_go_octal(value);
    let rules = JmesRules { matching: KeyMatching::Exact, file_name: &jmes_file, mode: &entry_mode };
    let jmes =
        jmes::parse_entries(fields.get(SecretKey::JmesPath), &object, mode, &rules, warnings, &mut problems);
    if !jmes.is_empty() && extract != Extract::Whole {
        problems.push(
            Error::invalid_config("jmesPath cannot be combined with extractJSONKey or extractYAMLKey")
                .with_object(&object)
                .with_field("jmesPath"),
        );
    }
    match resource {
        Some(resource) if problems.is_empty() => Ok(SecretSpec {
            resource_name: object,
            resource,
            file_name,
            mode,
            extract,
            optional,
            jmes,
            shape,
            selected: false,
        }),
        _ => Err(problems),
    }
}

/// `projects/P/secrets/S/versions/V` or `projects/P/locations/L/secrets/S/versions/V`, each
/// part checked against Google's grammar (`names`) before it reaches a URL or a host.
pub fn parse_resource_name(name: &str) -> Result<ResourceName, Error> {
    let parts: Vec<&str> = name.trim().split('/').collect();
    let (project, location, secret, version) = match parts.as_slice() {
        ["projects", project, "secrets", secret, "versions", version] => (project, None, secret, version),
        ["projects", project, "locations", location, "secrets", secret, "versions", version] => {
            (project, Some(location), secret, version)
        }
        _ => {
            return Err(Error::invalid_config(format!(
                "unknown resource type: {} (expected projects/<project>/secrets/<secret>/versions/<version> \
                 or projects/<project>/locations/<location>/secrets/<secret>/versions/<version>)",
                grammar::shown(name)
            )));
        }
    };
    let location = location.map(|l| Location::parse(l)).transpose()?;
    names::check_project(project)?;
    names::SECRET_ID.check(secret)?;
    names::VERSION.check(version)?;
    Ok(ResourceName {
        project: (*project).to_owned(),
        location,
        secret: (*secret).to_owned(),
        version: (*version).to_owned(),
    })
}

/// `mode` as the GCP provider's yaml.v3 reads it: `0400` (octal, leading zero), `256`
/// (decimal) or `0o400`; refused outside 0–0777, which the driver would otherwise write as
/// something else.
fn mode_of(value: Option<&Value>) -> Result<Option<FileMode>, Error> {
    let bits = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            let s = s.trim();
            let octal = s.strip_prefix("0o").or_else(|| s.strip_prefix('0').filter(|rest| !rest.is_empty()));
            match octal {
                Some(digits) => Some(i64::from_str_radix(digits, 8).map_err(|_| {
                    Error::invalid_config(format!(
                        "mode {s} is not an octal number (after a leading 0, digits 0 to 7)"
                    ))
                })?),
                None if s == "0" => Some(0),
                None => s.parse::<i64>().ok(),
            }
        }
        Some(_) => None,
    };
    match bits {
        Some(bits) if (0..=0o777).contains(&bits) => {
            let bits = u32::try_from(bits).map_err(|_| Error::invalid_config("mode is out of range"))?;
            FileMode::new(bits).map(Some).ok_or_else(|| Error::invalid_config("mode is out of range"))
        }
        Some(bits) => Err(Error::invalid_config(format!(
            "mode {bits:#o} is outside 0 to 0777 (write it in octal with a leading zero, like 0400)"
        ))),
        None => Err(Error::invalid_config(format!(
            "mode must be a number, like 0400 (octal) or 256 (decimal), got {}",
            serde_norway::to_string(value.unwrap_or(&Value::Null)).unwrap_or_default().trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(pairs: &[(&str, &str)]) -> Parameters {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn parse_secrets(text: &str) -> Result<MountSpec, Vec<Error>> {
        parse(&parameters(&[("secrets", text)]), FileMode::DEFAULT)
    }

    fn messages(result: Result<MountSpec, Vec<Error>>) -> Vec<String> {
        result.err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn global_and_regional_secrets_with_modes_and_paths() -> Result<(), Vec<Error>> {
        let spec = parse_secrets(
            "- resourceName: projects/p1/secrets/db/versions/latest\n  path: db.txt\n  mode: 0400\n\
             - resourceName: projects/p1/locations/us-central1/secrets/api/versions/3\n  fileName: nested/api\n  mode: 256\n\
             - resourceName: projects/p1/secrets/cfg/versions/prod\n  fileName: ignored\n  path: cfg.json\n  extractJSONKey: url\n",
        )?;
        assert_eq!(spec.auth, Auth::PodAdc);
        let files: Vec<(&str, u32)> =
            spec.secrets.iter().map(|s| (s.file_name.as_str(), s.mode.bits())).collect();
        assert_eq!(files, [("db.txt", 0o400), ("nested/api", 0o400), ("cfg.json", 0o644)]);
        assert_eq!(spec.secrets[1].resource.location.as_ref().map(Location::as_str), Some("us-central1"));
        assert_eq!(spec.secrets[1].resource.secret_name(), "projects/p1/locations/us-central1/secrets/api");
        assert_eq!(spec.secrets[2].extract, Extract::JsonKey("url".to_owned()));
        Ok(())
    }

    #[test]
    fn what_breaks_pods_is_refused_naming_the_entry() {
        let both = messages(parse_secrets(
            "- resourceName: projects/p/secrets/a/versions/1\n  path: a\n  extractJSONKey: x\n  extractYAMLKey: y\n",
        ));
        assert!(
            both.iter().any(|m| m.contains("projects/p/secrets/a/versions/1") && m.contains("cannot both")),
            "{both:?}"
        );
        let twice = messages(parse_secrets(
            "- {resourceName: projects/p/secrets/a/versions/1, path: same}\n- {resourceName: projects/p/secrets/b/versions/1, path: same}\n",
        ));
        assert!(twice.iter().any(|m| m.contains("also written by")), "{twice:?}");
        let traversal =
            messages(parse_secrets("- {resourceName: projects/p/secrets/a/versions/1, path: ../etc/x}\n"));
        assert!(!traversal.is_empty());
        let empty = messages(parse_secrets("- {resourceName: projects/p/secrets/a/versions/1, path: ''}\n"));
        assert!(empty.iter().any(|m| m.contains("path")), "{empty:?}");
        let mode = messages(parse_secrets(
            "- {resourceName: projects/p/secrets/a/versions/1, path: a, mode: 01000}\n",
        ));
        assert!(mode.iter().any(|m| m.contains("outside 0 to 0777")), "{mode:?}");
        let name = messages(parse_secrets("- {resourceName: projects/p/secret/a, path: a}\n"));
        assert!(name.iter().any(|m| m.contains("unknown resource type")), "{name:?}");
        let long = format!(
            "- {{resourceName: projects/p/locations/{}/secrets/a/versions/1, path: a}}\n",
            "l".repeat(31)
        );
        assert!(messages(parse_secrets(&long)).iter().any(|m| m.contains("location length exceeds limit")));
        let auth = messages(parse(
            &parameters(&[
                ("auth", "node"),
                ("secrets", "- {resourceName: projects/p/secrets/a/versions/1, path: a}"),
            ]),
            FileMode::DEFAULT,
        ));
        assert!(auth.iter().any(|m| m.contains("unknown auth configuration: \"node\"")), "{auth:?}");
        let missing = messages(parse(&parameters(&[]), FileMode::DEFAULT));
        assert!(missing.iter().any(|m| m.contains("missing required 'secrets' attribute")), "{missing:?}");
    }

    #[test]
    fn unknown_keys_are_warned_with_a_suggestion() -> Result<(), Vec<Error>> {
        let spec = parse(
            &parameters(&[
                ("secrets", "- {resourceName: projects/p/secrets/a/versions/1, fileNmae: a, path: a}"),
                ("auht", "pod-adc"),
            ]),
            FileMode::DEFAULT,
        )?;
        let warnings: Vec<String> = spec.plan.warnings().iter().map(ToString::to_string).collect();
        assert!(warnings.iter().any(|w| w.contains("fileNmae") && w.contains("fileName")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("auht") && w.contains("auth")), "{warnings:?}");
        Ok(())
    }
}

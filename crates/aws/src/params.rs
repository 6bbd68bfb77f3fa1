//! SecretProviderClass parameters of the AWS provider, parsed and checked before any AWS call.
//! Rules and error words follow aws/secrets-store-csi-driver-provider-aws v3 (see
//! docs/aws.md); where upstream stops at the first error we report every one.

use csi_secrets_provider_core::{
    ConfigKey, Error, Fields, FileMode, FilePlan, KeyMatching, Parameters, Warning, parse_go_bool,
    translate_slashes,
};
use serde_norway::Value;

pub const OBJECTS: &str = "objects";
pub const REGION: &str = "region";
pub const FAILOVER_REGION: &str = "failoverRegion";
pub const PATH_TRANSLATION: &str = "pathTranslation";
pub const USE_POD_IDENTITY: &str = "usePodIdentity";
pub const PREFERRED_ADDRESS_TYPE: &str = "preferredAddressType";

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    SecretsManager,
    SsmParameter,
}

impl ObjectType {
    /// `objectType` values; `ssm` is only valid as an ARN service.
    fn from_object_type(value: &str) -> Option<Self> {
        match value {
            "secretsmanager" => Some(Self::SecretsManager),
            "ssmparameter" => Some(Self::SsmParameter),
            _ => None,
        }
    }

    fn from_arn_service(value: &str) -> Option<Self> {
        match value {
            "secretsmanager" => Some(Self::SecretsManager),
            "ssm" | "ssmparameter" => Some(Self::SsmParameter),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsManager => "secretsmanager",
            Self::SsmParameter => "ssmparameter",
        }
    }
}

/// Keys of an `objects` entry. Upstream decodes them through JSON, which matches field names in
/// any ASCII case (`objectname`), so they are read with [`KeyMatching::IgnoreAsciiCase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKey {
    ObjectName,
    ObjectType,
    ObjectAlias,
    ObjectVersion,
    ObjectVersionLabel,
    FilePermission,
    JmesPath,
    FailoverObject,
}

impl ConfigKey for ObjectKey {
    const ALL: &'static [Self] = &[
        Self::ObjectName,
        Self::ObjectType,
        Self::ObjectAlias,
        Self::ObjectVersion,
        Self::ObjectVersionLabel,
        Self::FilePermission,
        Self::JmesPath,
        Self::FailoverObject,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::ObjectName => "objectName",
            Self::ObjectType => "objectType",
            Self::ObjectAlias => "objectAlias",
            Self::ObjectVersion => "objectVersion",
            Self::ObjectVersionLabel => "objectVersionLabel",
            Self::FilePermission => "filePermission",
            Self::JmesPath => "jmesPath",
            Self::FailoverObject => "failoverObject",
        }
    }
}

/// Keys of a `jmesPath` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JmesKey {
    Path,
    ObjectAlias,
    FilePermission,
}

impl ConfigKey for JmesKey {
    const ALL: &'static [Self] = &[Self::Path, Self::ObjectAlias, Self::FilePermission];

    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::ObjectAlias => "objectAlias",
            Self::FilePermission => "filePermission",
        }
    }
}

/// Keys of a `failoverObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverKey {
    ObjectName,
    ObjectVersion,
    ObjectVersionLabel,
}

impl ConfigKey for FailoverKey {
    const ALL: &'static [Self] = &[Self::ObjectName, Self::ObjectVersion, Self::ObjectVersionLabel];

    fn as_str(self) -> &'static str {
        match self {
            Self::ObjectName => "objectName",
            Self::ObjectVersion => "objectVersion",
            Self::ObjectVersionLabel => "objectVersionLabel",
        }
    }
}

/// How upstream's decoder matches every key of an object.
const MATCHING: KeyMatching = KeyMatching::IgnoreAsciiCase;

/// How the pod's identity becomes AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// IAM Roles for Service Accounts: role from the SA annotation, STS web identity.
    Irsa,
    /// EKS Pod Identity agent.
    PodIdentity(AddressType),
}

/// Which Pod Identity agent address to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Auto,
    Ipv4,
    Ipv6,
}

/// A `jmesPath` entry: one field of a JSON secret written as its own file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmesEntry {
    pub path: String,
    pub file_name: String,
    pub mode: FileMode,
}

/// `failoverObject`: what to fetch in the failover region instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverObject {
    /// The object to read there; `None` reads the primary's name (with this entry's version or
    /// label), as upstream does for an entry that only names a version or label.
    pub name: Option<String>,
    pub version: Option<String>,
    pub version_label: Option<String>,
}

/// One entry of `objects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub object_type: ObjectType,
    pub alias: Option<String>,
    pub version: Option<String>,
    pub version_label: Option<String>,
    /// The file written: alias or name, `/` translated.
    pub file_name: String,
    pub mode: FileMode,
    pub jmes: Vec<JmesEntry>,
    pub failover: Option<FailoverObject>,
    /// Region named by the objectName ARN, if any.
    arn_region: Option<String>,
    failover_arn_region: Option<String>,
}

impl ObjectSpec {
    /// Name, version and label to use in the primary (`failover = false`) or failover region.
    pub fn target(&self, failover: bool) -> Target<'_> {
        match (&self.failover, failover) {
            (Some(f), true) => Target {
                name: f.name.as_deref().unwrap_or(&self.name),
                version: f.version.as_deref().or(self.version.as_deref()),
                label: f.version_label.as_deref().or(self.version_label.as_deref()),
            },
            _ => Target {
                name: &self.name,
                version: self.version.as_deref(),
                label: self.version_label.as_deref(),
            },
        }
    }
}

/// What is asked of one region for an object: the name (or ARN), and the version id or label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Everything a mount needs from the parameters.
#[derive(Debug, Clone)]
pub struct MountSpec {
    /// The `region` parameter (the provider may fall back to AWS_REGION or the node label).
    pub region: Option<String>,
    pub failover_region: Option<String>,
    pub identity: Identity,
    pub objects: Vec<ObjectSpec>,
    pub plan: FilePlan,
}

impl MountSpec {
    /// Checks that ARNs name the regions they are fetched from, once the primary region is known.
    pub fn check_regions(&self, primary: &str) -> Vec<Error> {
        let mut problems = Vec::new();
        if self.failover_region.as_deref() == Some(primary) {
            problems.push(
                Error::invalid_config(format!(
                    "{primary}: failover region cannot be the same as the primary region"
                ))
                .with_field(FAILOVER_REGION),
            );
        }
        for object in &self.objects {
            if let Some(arn_region) = &object.arn_region
                && arn_region != primary
            {
                problems.push(
                    Error::invalid_config(format!("ARN region must match region {primary}: {}", object.name))
                        .with_object(&object.name)
                        .with_field("objectName"),
                );
            }
            if let (Some(arn_region), Some(failover_region)) =
                (&object.failover_arn_region, &self.failover_region)
                && arn_region != failover_region
            {
                let name = object.failover.as_ref().and_then(|f| f.name.as_deref()).unwrap_or_default();
                problems.push(
                    Error::invalid_config(format!("ARN region must match region {failover_region}: {name}"))
                        .with_object(&object.name)
                        .with_field("failoverObject.objectName"),
                );
            }
        }
        problems
    }
}

/// Parses the parameters; every problem found, or the spec.
pub fn parse(parameters: &Parameters, default_mode: FileMode) -> Result<MountSpec, Vec<Error>> {
    let mut problems = Vec::new();
    let region = parameters.get_trimmed(REGION).map(str::to_owned);
    let failover_region = parameters.get_trimmed(FAILOVER_REGION).map(str::to_owned);

    let translation = match parameters.get(PATH_TRANSLATION).unwrap_or_default() {
        "" => Some('_'),
        off if off.eq_ignore_ascii_case("false") => None,
        one if one.chars().count() == 1 => one.chars().next(),
        _ => {
            problems.push(
                Error::invalid_config("pathTranslation must be either 'False' or a single character string")
                    .with_field(PATH_TRANSLATION),
            );
            Some('_')
        }
    };

    let identity = match parameters.get(USE_POD_IDENTITY).map(str::trim).filter(|v| !v.is_empty()) {
        None => Identity::Irsa,
        Some(value) => match parse_go_bool(value) {
            Some(true) => Identity::PodIdentity(address_type(parameters.get(PREFERRED_ADDRESS_TYPE))),
            Some(false) => Identity::Irsa,
            None => {
                problems.push(
                    Error::invalid_config(format!(
                        "failed to parse usePodIdentity value {value:?} (expected true or false)"
                    ))
                    .with_field(USE_POD_IDENTITY),
                );
                Identity::Irsa
            }
        },
    };

    let mut objects = Vec::new();
    let mut plan = FilePlan::new();
    match parameters.get(OBJECTS).map(serde_norway::from_str::<Value>) {
        None => problems.push(Error::invalid_config("objects is not set").with_field(OBJECTS)),
        Some(Err(e)) => problems.push(
            Error::invalid_config(format!(
                "Failed to load SecretProviderClass: objects is not valid YAML: {e}"
            ))
            .with_field(OBJECTS),
        ),
        Some(Ok(Value::Sequence(items))) => {
            let mut context = ListContext {
                translation,
                default_mode,
                failover_region: failover_region.is_some(),
                ..Default::default()
            };
            for (index, item) in items.iter().enumerate() {
                match parse_object(index, item, &mut context) {
                    Ok(object) => {
                        add_files(&object, &mut plan, &mut problems);
                        objects.push(object);
                    }
                    Err(mut errors) => problems.append(&mut errors),
                }
            }
            if items.is_empty() {
                problems.push(Error::invalid_config("objects is an empty list").with_field(OBJECTS));
            }
            for warning in context.warnings {
                plan.warn(warning);
            }
        }
        Some(Ok(Value::Null)) => problems.push(Error::invalid_config("objects is empty").with_field(OBJECTS)),
        Some(Ok(_)) => problems.push(
            Error::invalid_config(
                "Failed to load SecretProviderClass: objects must be a YAML list of objects",
            )
            .with_field(OBJECTS),
        ),
    }

    let spec = MountSpec { region, failover_region, identity, objects, plan };
    if let Some(primary) = &spec.region {
        problems.extend(spec.check_regions(primary));
    }
    if problems.is_empty() { Ok(spec) } else { Err(problems) }
}

fn address_type(value: Option<&str>) -> AddressType {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("ipv4") => AddressType::Ipv4,
        Some("ipv6") => AddressType::Ipv6,
        // Upstream: empty or unknown means auto, without an error.
        _ => AddressType::Auto,
    }
}

#[derive(Default)]
struct ListContext {
    translation: Option<char>,
    default_mode: FileMode,
    failover_region: bool,
    /// objectName -> (alias, version label) of earlier entries, for upstream's duplicate rules.
    seen_names: Vec<(String, Option<String>, Option<String>)>,
    seen_aliases: Vec<String>,
    /// Unknown keys and the like: the mount goes on.
    warnings: Vec<Warning>,
}

fn parse_object(index: usize, item: &Value, context: &mut ListContext) -> Result<ObjectSpec, Vec<Error>> {
    let fallback_name = format!("objects[{index}]");
    if !item.is_mapping() {
        return Err(vec![
            Error::invalid_config("Empty descriptor entry in SecretProviderClass (expected a mapping)")
                .with_object(fallback_name),
        ]);
    }
    let fields: Fields<'_, ObjectKey> = Fields::read(item, MATCHING);
    let ([name, object_type, alias, version, version_label, file_permission], problems) = fields.many(
        [
            ObjectKey::ObjectName,
            ObjectKey::ObjectType,
            ObjectKey::ObjectAlias,
            ObjectKey::ObjectVersion,
            ObjectKey::ObjectVersionLabel,
            ObjectKey::FilePermission,
        ],
        Fields::non_empty,
    );
    let object_id = name.clone().unwrap_or(fallback_name);
    context.warnings.extend(fields.unknown_keys(&object_id, ""));
    let mut problems: Vec<Error> = problems.into_iter().map(|e| e.or_object(&object_id)).collect();
    let Some(name) = name else {
        problems.push(
            Error::invalid_config("Object name must be specified")
                .with_object(&object_id)
                .with_field("objectName"),
        );
        return Err(problems);
    };

    let (object_type, arn_region) = match resolve_type(&name, object_type.as_deref()) {
        Ok(resolved) => resolved,
        Err(e) => {
            problems.push(e.with_object(&name));
            (ObjectType::SecretsManager, None)
        }
    };
    if object_type == ObjectType::SsmParameter && version.is_some() && version_label.is_some() {
        problems.push(both_versions(&name));
    }
    let mode =
        file_mode(file_permission.as_deref(), context.default_mode, &name, "filePermission", &mut problems);

    let file_name = file_name(alias.as_deref().unwrap_or(&name), context.translation);
    if has_parent_reference(&file_name) {
        problems.push(
            Error::invalid_config(format!("path can not contain ../: {name}"))
                .with_object(&name)
                .with_field(if alias.is_some() { "objectAlias" } else { "objectName" }),
        );
    }

    let jmes = parse_jmes(fields.get(ObjectKey::JmesPath), &name, mode, context, &mut problems);
    let (failover, failover_arn_region) = parse_failover(
        fields.get(ObjectKey::FailoverObject),
        &name,
        object_type,
        alias.is_some(),
        version.as_deref(),
        context.failover_region,
        &mut problems,
        &mut context.warnings,
    );

    check_duplicates(
        &name,
        alias.as_deref(),
        version_label.as_deref(),
        &jmes_aliases(fields.get(ObjectKey::JmesPath)),
        context,
        &mut problems,
    );

    if problems.is_empty() {
        Ok(ObjectSpec {
            name,
            object_type,
            alias,
            version,
            version_label,
            file_name,
            mode,
            jmes,
            failover,
            arn_region,
            failover_arn_region,
        })
    } else {
        Err(problems)
    }
}

/// The object type from `objectType` and/or the ARN, and the ARN's region.
fn resolve_type(name: &str, object_type: Option<&str>) -> Result<(ObjectType, Option<String>), Error> {
    let arn = if name.starts_with("arn:") {
        let parts: Vec<&str> = name.splitn(6, ':').collect();
        if parts.len() < 6 || parts[1].is_empty() || parts[2].is_empty() {
            return Err(Error::invalid_config(format!("Invalid ARN format in object name: {name}"))
                .with_field("objectName"));
        }
        Some((parts[2], parts[3].to_owned()))
    } else {
        None
    };
    let declared = match object_type {
        None => None,
        Some(value) => Some(ObjectType::from_object_type(value).ok_or_else(|| {
            Error::invalid_config(format!(
                "Invalid objectType: {value} (expected secretsmanager or ssmparameter)"
            ))
            .with_field("objectType")
        })?),
    };
    match (declared, arn) {
        (None, None) => Err(Error::invalid_config(format!(
            "Must use objectType when a full ARN is not specified: {name}"
        ))
        .with_field("objectType")),
        (Some(declared), None) => Ok((declared, None)),
        (declared, Some((service, region))) => {
            let from_arn = ObjectType::from_arn_service(service);
            match (declared, from_arn) {
                (None, None) => Err(Error::invalid_config(format!("Invalid service in ARN: {service}"))
                    .with_field("objectName")),
                (Some(declared), Some(from_arn)) if declared != from_arn => {
                    Err(Error::invalid_config(format!("objectType does not match ARN: {name}"))
                        .with_field("objectType"))
                }
                (Some(declared), _) => Ok((declared, Some(region))),
                (None, Some(from_arn)) => Ok((from_arn, Some(region))),
            }
        }
    }
}

fn both_versions(name: &str) -> Error {
    Error::invalid_config(format!(
        "ssm parameters can not specify both objectVersion and objectVersionLabel: {name}"
    ))
    .with_object(name)
    .with_field("objectVersionLabel")
}

/// `filePermission` must be exactly four octal digits, as upstream requires; the driver keeps
/// the permission bits.
fn file_mode(
    value: Option<&str>,
    default: FileMode,
    object: &str,
    field: &str,
    problems: &mut Vec<Error>,
) -> FileMode {
    let Some(value) = value else { return default };
    match FileMode::parse_four_octal_digits(value) {
        Ok(mode) => mode,
        Err(error) => {
            problems.push(error.with_object(object).with_field(field));
            default
        }
    }
}

fn file_name(name: &str, translation: Option<char>) -> String {
    match translation {
        Some(replacement) => translate_slashes(name, replacement),
        None => name.trim_start_matches('/').to_owned(),
    }
}

/// Upstream's `/../`, leading `../` and trailing `/..` check, plus a bare `..`, which upstream
/// lets through and the driver then refuses.
fn has_parent_reference(path: &str) -> bool {
    path.split('/').any(|element| element == "..")
}

fn parse_jmes(
    list: Option<&Value>,
    name: &str,
    parent_mode: FileMode,
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) -> Vec<JmesEntry> {
    let entries = match list {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(entries)) => entries,
        Some(_) => {
            problems.push(
                Error::invalid_config("jmesPath must be a list of {path, objectAlias}")
                    .with_object(name)
                    .with_field("jmesPath"),
            );
            return Vec::new();
        }
    };
    let mut parsed = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = |key: &str| format!("jmesPath[{i}].{key}");
        let fields: Fields<'_, JmesKey> = Fields::read(entry, MATCHING);
        context.warnings.extend(fields.unknown_keys(name, &format!("jmesPath[{i}].")));
        let get = |key: JmesKey| {
            fields.non_empty(key).map_err(|e| e.with_object(name).with_field(field(key.as_str())))
        };
        let (path, alias, permission) =
            match (get(JmesKey::Path), get(JmesKey::ObjectAlias), get(JmesKey::FilePermission)) {
                (Ok(p), Ok(a), Ok(f)) => (p, a, f),
                (p, a, f) => {
                    problems.extend([p.err(), a.err(), f.err()].into_iter().flatten());
                    continue;
                }
            };
        let Some(path) = path else {
            problems.push(
                Error::invalid_config("Path must be specified for JMES object")
                    .with_object(name)
                    .with_field(field("path")),
            );
            continue;
        };
        let Some(alias) = alias else {
            problems.push(
                Error::invalid_config("Object alias must be specified for JMES object")
                    .with_object(name)
                    .with_field(field("objectAlias")),
            );
            continue;
        };
        let mode = file_mode(permission.as_deref(), parent_mode, name, &field("filePermission"), problems);
        parsed.push(JmesEntry { path, file_name: file_name(&alias, context.translation), mode });
    }
    parsed
}

fn jmes_aliases(list: Option<&Value>) -> Vec<(String, String)> {
    list.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let fields: Fields<'_, JmesKey> = Fields::read(e, MATCHING);
            let alias = fields.non_empty(JmesKey::ObjectAlias).ok().flatten()?;
            let path = fields.non_empty(JmesKey::Path).ok().flatten().unwrap_or_default();
            Some((alias, path))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn parse_failover(
    entry: Option<&Value>,
    name: &str,
    object_type: ObjectType,
    has_alias: bool,
    primary_version: Option<&str>,
    failover_region: bool,
    problems: &mut Vec<Error>,
    warnings: &mut Vec<Warning>,
) -> (Option<FailoverObject>, Option<String>) {
    let Some(entry) = entry.filter(|v| !v.is_null()) else { return (None, None) };
    let fields: Fields<'_, FailoverKey> = Fields::read(entry, MATCHING);
    warnings.extend(fields.unknown_keys(name, "failoverObject."));
    let get = |key: FailoverKey| fields.non_empty(key).ok().flatten();
    let version = get(FailoverKey::ObjectVersion);
    let version_label = get(FailoverKey::ObjectVersionLabel);
    let Some(failover_name) = get(FailoverKey::ObjectName) else {
        // Upstream checks a failover entry only when it names an object, and still asks the
        // failover region for its version or label (of the primary's name).
        let failover = (version.is_some() || version_label.is_some()).then_some(FailoverObject {
            name: None,
            version,
            version_label,
        });
        return (failover, None);
    };
    let field = "failoverObject";
    if !has_alias {
        problems.push(
            Error::invalid_config(format!(
                "object alias must be specified for objects with failover entries: {name}"
            ))
            .with_object(name)
            .with_field("objectAlias"),
        );
    }
    if !failover_region {
        problems.push(
            Error::invalid_config(format!(
                "failover object allowed only when failover region is defined: {name}"
            ))
            .with_object(name)
            .with_field(FAILOVER_REGION),
        );
    }
    let mut arn_region = None;
    if failover_name.starts_with("arn:") {
        match resolve_type(&failover_name, Some(object_type.as_str())) {
            Ok((_, region)) => arn_region = region,
            Err(e) => problems.push(e.with_object(name).with_field(format!("{field}.objectName"))),
        }
    }
    if object_type == ObjectType::SsmParameter && version.is_some() && version_label.is_some() {
        problems.push(both_versions(name).with_field(format!("{field}.objectVersionLabel")));
    }
    if version.as_deref() != primary_version {
        problems.push(
            Error::invalid_config(format!(
                "object versions must match between primary and failover regions: {name}"
            ))
            .with_object(name)
            .with_field(format!("{field}.objectVersion")),
        );
    }
    (Some(FailoverObject { name: Some(failover_name), version, version_label }), arn_region)
}

/// Upstream's duplicate rules, in its words.
fn check_duplicates(
    name: &str,
    alias: Option<&str>,
    label: Option<&str>,
    jmes: &[(String, String)],
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) {
    let prefix = format!("found descriptor with duplicate object name {name}");
    for (seen_name, seen_alias, seen_label) in &context.seen_names {
        if seen_name != name {
            continue;
        }
        let message = match (alias, seen_alias.as_deref(), label, seen_label.as_deref()) {
            (Some(a), Some(b), None, None) if a == b => {
                Some(format!("{prefix}, duplicate object alias {a}, and no version label"))
            }
            (None, None, Some(l), Some(m)) if l == m => {
                Some(format!("{prefix}, no object alias, and duplicate version label {l}"))
            }
            (Some(a), Some(b), Some(l), Some(m)) if a == b && l == m => {
                Some(format!("{prefix}, duplicate object alias {a}, and duplicate version label {l}"))
            }
            (None, None, None, None) => Some(format!("{prefix}, no object alias, and no version label")),
            _ => None,
        };
        if let Some(message) = message {
            problems.push(Error::invalid_config(message).with_object(name).with_field("objectName"));
            break;
        }
    }
    context.seen_names.push((name.to_owned(), alias.map(str::to_owned), label.map(str::to_owned)));
    if let Some(alias) = alias {
        if context.seen_aliases.iter().any(|a| a == alias) {
            problems.push(
                Error::invalid_config(format!("found duplicate object alias {alias}"))
                    .with_object(name)
                    .with_field("objectAlias"),
            );
        }
        context.seen_aliases.push(alias.to_owned());
    }
    for (jmes_alias, path) in jmes {
        if context.seen_aliases.iter().any(|a| a == jmes_alias) {
            problems.push(
                Error::invalid_config(format!(
                    "Name already in use for objectAlias: found duplicate object alias {jmes_alias} in JMES path entry {path}"
                ))
                .with_object(name)
                .with_field("jmesPath"),
            );
        }
        context.seen_aliases.push(jmes_alias.clone());
    }
}

/// Adds the object's files to the plan (catches clashes upstream does not look for, such as a
/// derived name equal to another object's alias).
fn add_files(object: &ObjectSpec, plan: &mut FilePlan, problems: &mut Vec<Error>) {
    if let Err(e) = plan.add(&object.name, object.file_name.clone(), object.mode) {
        problems.push(e.with_field(if object.alias.is_some() { "objectAlias" } else { "objectName" }));
    }
    for entry in &object.jmes {
        if let Err(e) = plan.add(&object.name, entry.file_name.clone(), entry.mode) {
            problems.push(e.with_field("jmesPath"));
        }
    }
}

//! SecretProviderClass parameters of the AWS provider, parsed and checked before any AWS call.
//! Rules and error words follow aws/secrets-store-csi-driver-provider-aws v3 (see
//! docs/aws.md); where upstream stops at the first error we report every one.

mod arn;
mod entries;
mod failover;
mod keys;
pub mod names;
mod object;
mod registry;
mod selection;

use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{Error, FileMode, FilePlan, JmesEntry, Parameters, Warning, parse_go_bool};
use serde_norway::Value;

use entries::{Entry, parse_entry};
use keys::ParameterKey;
use object::add_files;
pub use registry::RegistrySpec;
pub use selection::SelectionSpec;

pub const OBJECTS: &str = "objects";
pub const REGION: &str = "region";
pub const FAILOVER_REGION: &str = "failoverRegion";
pub const PATH_TRANSLATION: &str = "pathTranslation";
pub const USE_POD_IDENTITY: &str = "usePodIdentity";
pub const PREFERRED_ADDRESS_TYPE: &str = "preferredAddressType";
pub const ASSUME_ROLE_ARN: &str = "assumeRoleArn";
pub const ASSUME_ROLE_EXTERNAL_ID: &str = "assumeRoleExternalId";
pub const ASSUME_ROLE_DURATION_SECONDS: &str = "assumeRoleDurationSeconds";

/// A role to assume after the pod's own identity (`assumeRoleArn`): another account's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    /// `assumeRoleDurationSeconds`, 900–43200; STS's default (3600) when unset.
    pub duration_seconds: Option<i32>,
}

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

/// How the pod's identity becomes AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
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
    /// `optional: true`: a missing object is skipped instead of failing the mount.
    pub optional: bool,
    /// The object's own `region`: read there only (no failover), instead of the SPC's region.
    pub region: Option<String>,
    /// `writeFile`, `expandKeys`, `decode`: what the server makes of the object's file.
    pub shape: FileShape,
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
    pub identity: IdentityMode,
    /// `assumeRoleArn`: read as this role, assumed with the pod's credentials.
    pub assume_role: Option<AssumeRole>,
    pub objects: Vec<ObjectSpec>,
    /// `objectPrefix` entries: listed at mount time, each selected secret then read as an
    /// object of its own.
    pub selections: Vec<SelectionSpec>,
    /// `objectType: ecr` entries: a Docker login each.
    pub registries: Vec<RegistrySpec>,
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
            let region = object.region.as_deref().unwrap_or(primary);
            if let Some(arn_region) = &object.arn_region
                && arn_region != region
            {
                problems.push(
                    Error::invalid_config(format!("ARN region must match region {region}: {}", object.name))
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

impl MountSpec {
    /// How the admin policy names object `name` of `object_type` read in `region` (`*` when
    /// only the mount knows it): as written, or, when the SPC assumes a role, as the object's
    /// ARN in the role's account, so that a name pattern written for the node's own account
    /// (`team-a/*`) does not let a namespace read another account's `team-a/db`.
    pub fn policy_name(&self, name: &str, object_type: ObjectType, region: &str) -> String {
        let Some(role) = &self.assume_role else { return name.to_owned() };
        if name.starts_with("arn:") {
            return name.to_owned();
        }
        // arn:<partition>:iam::<account>:role/<name>, checked when parsed.
        let parts: Vec<&str> = role.role_arn.splitn(6, ':').collect();
        let (partition, account) = (parts.get(1).unwrap_or(&"aws"), parts.get(4).unwrap_or(&""));
        match object_type {
            ObjectType::SecretsManager => {
                format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{name}")
            }
            ObjectType::SsmParameter => {
                format!("arn:{partition}:ssm:{region}:{account}:parameter/{}", name.trim_start_matches('/'))
            }
        }
    }

    /// The objects a mount reads, as the admin policy names them ([`Self::policy_name`]):
    /// every object and its failover object.
    pub fn policy_reads(&self) -> Vec<String> {
        let primary = self.region.as_deref().unwrap_or("*");
        let failover = self.failover_region.as_deref().unwrap_or("*");
        self.objects
            .iter()
            .flat_map(|object| {
                let region = object.region.as_deref().unwrap_or(primary);
                std::iter::once(self.policy_name(&object.name, object.object_type, region)).chain(
                    object
                        .failover
                        .as_ref()
                        .and_then(|f| f.name.as_deref())
                        .map(|name| self.policy_name(name, object.object_type, failover)),
                )
            })
            .collect()
    }
}

/// Parses the parameters; every problem found, or the spec.
pub fn parse(parameters: &Parameters, default_mode: FileMode) -> Result<MountSpec, Vec<Error>> {
    let mut problems = Vec::new();
    let region = parameters.get_trimmed(REGION).map(str::to_owned);
    let failover_region = parameters.get_trimmed(FAILOVER_REGION).map(str::to_owned);
    let translation = path_translation(parameters, &mut problems);
    let identity = identity_mode(parameters, &mut problems);
    let assume_role = assume_role(parameters, &mut problems);
    let context = ListContext {
        translation,
        default_mode,
        failover_region: failover_region.is_some(),
        ..Default::default()
    };
    let ParsedObjects { objects, selections, registries, mut plan } =
        parse_objects(parameters.get(OBJECTS), context, &mut problems);
    if let Err(e) = csi_secrets_provider_core::kit::check_registry_count(registries.len()) {
        problems.push(e.with_field(OBJECTS));
    }
    for warning in csi_secrets_provider_core::unknown_parameters::<ParameterKey>(parameters) {
        plan.warn(warning);
    }
    // Regions become part of an endpoint's host name.
    for (region, field) in [(&region, REGION), (&failover_region, FAILOVER_REGION)] {
        if let Some(Err(e)) = region.as_deref().map(|r| names::REGION.check(r)) {
            problems.push(e.with_field(field));
        }
    }
    for object in &objects {
        let regions = [
            (&object.region, "region"),
            (&object.arn_region, "objectName"),
            (&object.failover_arn_region, "failoverObject.objectName"),
        ];
        for (region, field) in regions {
            if let Some(Err(e)) = region.as_deref().map(|r| names::REGION.check(r)) {
                problems.push(e.with_object(&object.name).with_field(field));
            }
        }
    }
    let spec =
        MountSpec { region, failover_region, identity, assume_role, objects, selections, registries, plan };
    if let Some(primary) = &spec.region {
        problems.extend(spec.check_regions(primary));
    }
    if problems.is_empty() { Ok(spec) } else { Err(problems) }
}

/// `assumeRoleArn`, `assumeRoleExternalId`, `assumeRoleDurationSeconds`.
fn assume_role(parameters: &Parameters, problems: &mut Vec<Error>) -> Option<AssumeRole> {
    let role_arn = parameters.get_trimmed(ASSUME_ROLE_ARN).map(str::to_owned);
    let external_id = parameters.get_trimmed(ASSUME_ROLE_EXTERNAL_ID).map(str::to_owned);
    let duration = parameters.get_trimmed(ASSUME_ROLE_DURATION_SECONDS);
    let Some(role_arn) = role_arn else {
        for (key, present) in [
            (ASSUME_ROLE_EXTERNAL_ID, external_id.is_some()),
            (ASSUME_ROLE_DURATION_SECONDS, duration.is_some()),
        ] {
            if present {
                problems.push(Error::invalid_config(format!("{key} needs assumeRoleArn")).with_field(key));
            }
        }
        return None;
    };
    if !names::is_role_arn(&role_arn) {
        problems.push(
            Error::invalid_config(format!(
                "assumeRoleArn {} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                csi_secrets_provider_core::grammar::shown(&role_arn)
            ))
            .with_field(ASSUME_ROLE_ARN),
        );
    }
    if let Some(Err(e)) = external_id.as_deref().map(names::check_external_id) {
        problems.push(e.with_field(ASSUME_ROLE_EXTERNAL_ID));
    }
    let duration_seconds = match duration.map(str::parse::<i32>) {
        None => None,
        Some(Ok(seconds)) if (900..=43_200).contains(&seconds) => Some(seconds),
        Some(_) => {
            problems.push(
                Error::invalid_config(
                    "assumeRoleDurationSeconds must be a whole number of seconds from 900 to 43200",
                )
                .with_field(ASSUME_ROLE_DURATION_SECONDS),
            );
            None
        }
    };
    Some(AssumeRole { role_arn, external_id, duration_seconds })
}

/// `pathTranslation`: `_` by default, `False` for none, or one character.
fn path_translation(parameters: &Parameters, problems: &mut Vec<Error>) -> Option<char> {
    match parameters.get(PATH_TRANSLATION).unwrap_or_default() {
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
    }
}

/// IRSA unless `usePodIdentity` is true.
fn identity_mode(parameters: &Parameters, problems: &mut Vec<Error>) -> IdentityMode {
    match parameters.get(USE_POD_IDENTITY).map(str::trim).filter(|v| !v.is_empty()) {
        None => IdentityMode::Irsa,
        Some(value) => match parse_go_bool(value) {
            Some(true) => IdentityMode::PodIdentity(address_type(parameters.get(PREFERRED_ADDRESS_TYPE))),
            Some(false) => IdentityMode::Irsa,
            None => {
                problems.push(
                    Error::invalid_config(format!(
                        "failed to parse usePodIdentity value {value:?} (expected true or false)"
                    ))
                    .with_field(USE_POD_IDENTITY),
                );
                IdentityMode::Irsa
            }
        },
    }
}

/// What the `objects` entries are, and the files they plan.
#[derive(Default)]
struct ParsedObjects {
    objects: Vec<ObjectSpec>,
    selections: Vec<SelectionSpec>,
    registries: Vec<RegistrySpec>,
    plan: FilePlan,
}

/// `objects`: a YAML list of object entries, and the files they plan.
fn parse_objects(value: Option<&str>, mut context: ListContext, problems: &mut Vec<Error>) -> ParsedObjects {
    let mut parsed = ParsedObjects::default();
    match value.map(csi_secrets_provider_core::yaml::parse) {
        None => problems.push(Error::invalid_config("objects is not set").with_field(OBJECTS)),
        Some(Err(e)) => problems.push(
            Error::invalid_config(format!(
                "Failed to load SecretProviderClass: objects is not valid YAML: {e}"
            ))
            .with_field(OBJECTS),
        ),
        Some(Ok(Value::Sequence(items))) => {
            if let Err(e) = csi_secrets_provider_core::check_object_count(items.len(), OBJECTS) {
                problems.push(e);
                return parsed;
            }
            for (index, item) in items.iter().enumerate() {
                match parse_entry(index, item, &mut context) {
                    Ok(Entry::Object(object)) => {
                        add_files(&object, &mut parsed.plan, problems);
                        parsed.objects.push(object);
                    }
                    Ok(Entry::Selection(selection)) => parsed.selections.push(selection),
                    Ok(Entry::Registry(registry)) => {
                        let earlier =
                            parsed.registries.iter().find(|r| r.spec.file_name == registry.spec.file_name);
                        let planned = csi_secrets_provider_core::kit::plan_registry_file(
                            &mut parsed.plan,
                            earlier.map(|earlier| &earlier.spec),
                            &registry.spec,
                        );
                        problems.extend(planned.err().map(|e| e.with_field("objectAlias")));
                        parsed.registries.push(registry);
                    }
                    Err(mut errors) => problems.append(&mut errors),
                }
            }
            if items.is_empty() {
                problems.push(Error::invalid_config("objects is an empty list").with_field(OBJECTS));
            }
            for warning in context.warnings {
                parsed.plan.warn(warning);
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
    parsed
}

fn address_type(value: Option<&str>) -> AddressType {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("ipv4") => AddressType::Ipv4,
        Some("ipv6") => AddressType::Ipv6,
        // Upstream: empty or unknown means auto, without an error.
        _ => AddressType::Auto,
    }
}

/// What upstream's duplicate rules compare of an earlier entry.
pub(super) struct SeenObject {
    alias: Option<String>,
    version_label: Option<String>,
}

#[derive(Default)]
pub(super) struct ListContext {
    translation: Option<char>,
    default_mode: FileMode,
    failover_region: bool,
    /// Earlier entries by name, for upstream's duplicate rules.
    seen_names: std::collections::HashMap<String, Vec<SeenObject>>,
    seen_aliases: std::collections::HashSet<String>,
    /// Unknown keys and the like: the mount goes on.
    warnings: Vec<Warning>,
}

/// An SSM entry (or its failover) with both `objectVersion` and `objectVersionLabel`, in the
/// AWS provider's words.
fn both_versions(name: &str) -> Error {
    Error::invalid_config(format!(
        "ssm parameters can not specify both objectVersion and objectVersionLabel: {name}"
    ))
    .with_object(name)
    .with_field("objectVersionLabel")
}

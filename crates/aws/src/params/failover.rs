//! `failoverObject`: what to read in the failover region instead.

use super::arn::resolve_type;
use super::keys::{FailoverKey, MATCHING};
use super::{FAILOVER_REGION, FailoverObject, ListContext, ObjectType};
use csi_secrets_provider_core::{ConfigKey, Error, Fields};
use serde_norway::Value;

/// What the failover entry is checked against.
pub(super) struct PrimaryObject<'a> {
    pub name: &'a str,
    pub object_type: ObjectType,
    pub has_alias: bool,
    pub version: Option<&'a str>,
    /// The object's own `region`, which has no failover.
    pub own_region: Option<&'a str>,
}

/// A parsed `failoverObject`, and the region its ARN names.
#[derive(Default)]
pub(super) struct ParsedFailover {
    pub object: Option<FailoverObject>,
    pub arn_region: Option<String>,
}

pub(super) fn parse_failover(
    entry: Option<&Value>,
    primary: &PrimaryObject<'_>,
    context: &mut ListContext,
    problems: &mut Vec<Error>,
) -> ParsedFailover {
    let name = primary.name;
    let Some(entry) = entry.filter(|v| !v.is_null()) else { return ParsedFailover::default() };
    let field = "failoverObject";
    if !entry.is_mapping() {
        // Upstream's JSON decoder refuses the whole `objects` list for this.
        problems.push(
            Error::invalid_config(format!(
                "failoverObject must be a mapping with objectName, objectVersion or objectVersionLabel: {name}"
            ))
            .with_object(name)
            .with_field(field),
        );
        return ParsedFailover::default();
    }
    if primary.own_region.is_some() {
        problems.push(
            Error::invalid_config(format!(
                "failoverObject cannot be used with the object's own region (failover applies to the \
                 SecretProviderClass's region): {name}"
            ))
            .with_object(name)
            .with_field(field),
        );
    }
    let fields: Fields<'_, FailoverKey> = Fields::read(entry, MATCHING);
    context.warnings.extend(fields.unknown_keys(name, "failoverObject."));
    let mut get = |key: FailoverKey| {
        fields.non_empty(key).unwrap_or_else(|e| {
            problems.push(e.with_object(name).with_field(format!("{field}.{}", key.as_str())));
            None
        })
    };
    let version = get(FailoverKey::ObjectVersion);
    let version_label = get(FailoverKey::ObjectVersionLabel);
    let Some(failover_name) = get(FailoverKey::ObjectName) else {
        // Upstream checks a failover entry only when it names an object, and still asks the
        // failover region for its version or label (of the primary's name).
        let object = (version.is_some() || version_label.is_some()).then_some(FailoverObject {
            name: None,
            version,
            version_label,
        });
        return ParsedFailover { object, arn_region: None };
    };
    let failover = FailoverObject { name: Some(failover_name), version, version_label };
    let arn_region = check_named_failover(&failover, primary, context.failover_region, problems);
    ParsedFailover { object: Some(failover), arn_region }
}

/// Upstream's rules for a failover entry that names an object; returns the region its ARN
/// names, if any.
fn check_named_failover(
    failover: &FailoverObject,
    primary: &PrimaryObject<'_>,
    failover_region: bool,
    problems: &mut Vec<Error>,
) -> Option<String> {
    let (name, field) = (primary.name, "failoverObject");
    let fail =
        |message: String, field: String| Error::invalid_config(message).with_object(name).with_field(field);
    if !primary.has_alias {
        problems.push(fail(
            format!("object alias must be specified for objects with failover entries: {name}"),
            "objectAlias".to_owned(),
        ));
    }
    if !failover_region {
        problems.push(fail(
            format!("failover object allowed only when failover region is defined: {name}"),
            FAILOVER_REGION.to_owned(),
        ));
    }
    let mut arn_region = None;
    if let Some(failover_name) = failover.name.as_deref().filter(|n| n.starts_with("arn:")) {
        match resolve_type(failover_name, Some(primary.object_type.as_str())) {
            Ok((_, region)) => arn_region = region,
            Err(e) => problems.push(e.with_object(name).with_field(format!("{field}.objectName"))),
        }
    }
    if primary.object_type == ObjectType::SsmParameter
        && failover.version.is_some()
        && failover.version_label.is_some()
    {
        problems.push(super::both_versions(name).with_field(format!("{field}.objectVersionLabel")));
    }
    if failover.version.as_deref() != primary.version {
        problems.push(fail(
            format!("object versions must match between primary and failover regions: {name}"),
            format!("{field}.objectVersion"),
        ));
    }
    arn_region
}

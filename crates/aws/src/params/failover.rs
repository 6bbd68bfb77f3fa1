//! `failoverObject`: what to read in the failover region instead.

use super::arn::resolve_type;
use super::keys::{FailoverKey, MATCHING};
use super::object::both_versions;
use super::{FAILOVER_REGION, FailoverObject, ObjectType};
use csi_secrets_provider_core::{Error, Fields, Warning};
use serde_norway::Value;

#[allow(clippy::too_many_arguments)]
pub(super) fn parse_failover(
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

//! Object types from `objectType` and ARNs.

use super::ObjectType;
use csi_secrets_provider_core::Error;

/// The object type from `objectType` and/or the ARN, and the ARN's region.
pub(super) fn resolve_type(
    name: &str,
    object_type: Option<&str>,
) -> Result<(ObjectType, Option<String>), Error> {
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

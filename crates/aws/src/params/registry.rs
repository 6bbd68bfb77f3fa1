//! An `objectType: ecr` entry: the Docker login of an ECR registry,
//! `objectName: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`, answered by
//! `ecr:GetAuthorizationToken` in the registry's region with the pod's identity.

use csi_secrets_provider_core::kit::{RegistryFields, RegistryKeys};
use csi_secrets_provider_core::{Error, Fields};

use super::ListContext;
use super::keys::ObjectKey;
use super::names;
use super::object::file_mode;

/// One ECR registry entry: what every backend's registry entry has, and where the registry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    pub spec: csi_secrets_provider_core::kit::RegistrySpec,
    /// The registry's account (`registryIds`).
    pub account: String,
    pub region: String,
    /// `ecr-fips`: the FIPS endpoint.
    pub fips: bool,
}

/// How an AWS registry entry is written.
const KEYS: RegistryKeys<ObjectKey> = RegistryKeys {
    host: ObjectKey::ObjectName,
    file: ObjectKey::ObjectAlias,
    optional: ObjectKey::Optional,
    not_for_registries: &[
        ObjectKey::ObjectVersion,
        ObjectKey::ObjectVersionLabel,
        ObjectKey::JmesPath,
        ObjectKey::FailoverObject,
        ObjectKey::Region,
        ObjectKey::ObjectPrefix,
    ],
    not_for_registries_says: "does not apply to an ecr object (the registry's region is in its host name)",
    host_missing: "an ecr object needs objectName: the registry host (<account>.dkr.ecr.<region>.amazonaws.com)",
};

/// The partitions' domains an ECR host ends with.
const DOMAINS: [&str; 2] = ["amazonaws.com", "amazonaws.com.cn"];

/// `<account>.dkr.ecr[-fips].<region>.<domain>` → (account, region, fips).
fn parse_host(host: &str) -> Result<(String, String, bool), String> {
    let wrong = || {
        format!(
            "{} is not an ECR registry host (<12-digit account>.dkr.ecr.<region>.amazonaws.com, ecr-fips for FIPS, amazonaws.com.cn in China)",
            csi_secrets_provider_core::grammar::shown(host)
        )
    };
    let parts: Vec<&str> = host.splitn(5, '.').collect();
    let [account, "dkr", service, region, domain] = parts.as_slice() else { return Err(wrong()) };
    let fips = match *service {
        "ecr" => false,
        "ecr-fips" => true,
        _ => return Err(wrong()),
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || !DOMAINS.contains(domain) {
        return Err(wrong());
    }
    names::REGION.check(region).map_err(|e| e.message().to_owned())?;
    Ok(((*account).to_owned(), (*region).to_owned(), fips))
}

/// Parses entry `index` of `objects`, whose `objectType` is `ecr`.
pub(super) fn parse_registry(
    index: usize,
    fields: &Fields<'_, ObjectKey>,
    context: &mut ListContext,
) -> Result<RegistrySpec, Vec<Error>> {
    let mut problems = Vec::new();
    let Some(read) = KEYS.read(fields, &format!("objects[{index}]"), &mut problems) else {
        return Err(problems);
    };
    context.warnings.extend(fields.unknown_keys(&read.host, ""));
    let parsed = parse_host(&read.host).map_err(|why| {
        problems.push(Error::invalid_config(why).with_object(&read.host).with_field("objectName"))
    });
    let permission = fields.non_empty(ObjectKey::FilePermission).unwrap_or_else(|e| {
        problems.push(e.or_object(&read.host));
        None
    });
    let mode =
        file_mode(permission.as_deref(), context.default_mode, &read.host, "filePermission", &mut problems);
    let RegistryFields { host, file_name, optional, shape } = read;
    match parsed {
        Ok((account, region, fips)) if problems.is_empty() => {
            let spec =
                csi_secrets_provider_core::kit::RegistrySpec { host, file_name, mode, optional, shape };
            Ok(RegistrySpec { spec, account, region, fips })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_an_account_a_region_and_a_partition() {
        assert_eq!(
            parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Ok(("123456789012".to_owned(), "eu-west-1".to_owned(), false))
        );
        assert_eq!(
            parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            Ok(("123456789012".to_owned(), "us-gov-west-1".to_owned(), true))
        );
        assert!(parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_ok());
        for bad in [
            "12345.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.evil.com",
            "123456789012.dkr.s3.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu_west.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x",
            "docker.io",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }
}

//! AWS's grammar for what becomes part of an endpoint's host (regions) or an STS request (role
//! ARNs, external ids), checked before use (`core::grammar`). A region is pasted into
//! `secretsmanager.<region>.amazonaws.com`; the SDK refuses most hostile characters, but lets
//! dots through (`s3.us-east-1` makes another service's host), and the error should name the
//! SPC's field before any call.

use csi_secrets_provider_core::Error;
use csi_secrets_provider_core::grammar::{NameRule, lower, lower_digit_or_hyphen, lower_or_digit};

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-isoe-west-1`.
pub const REGION: NameRule = NameRule {
    what: "an AWS region",
    words: "lowercase letters, digits and '-', like us-east-1",
    min: 2,
    max: 32,
    first: lower,
    middle: lower_digit_or_hyphen,
    last: lower_or_digit,
};

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`: the partition `aws` or
/// `aws-<word>…`, a role path and name of IAM's characters (`\w+=,.@-` and `/`), at most 512.
pub fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let partition = |p: &str| {
        p == "aws"
            || p.strip_prefix("aws-").is_some_and(|rest| {
                rest.split('-').all(|w| {
                    REGION.accepts(w) || (!w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
                })
            })
    };
    matches!(parts.as_slice(), ["arn", p, "iam", "", account, resource]
    if partition(p)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|name| {
            (1..=512).contains(&name.len())
                && !name.starts_with('/')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c))
        }))
}

/// `assumeRoleExternalId`: STS's pattern `[\w+=,.@:/-]*`, 2 to 1224 characters.
pub fn check_external_id(id: &str) -> Result<(), Error> {
    let valid = (2..=1224).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_config(
            "assumeRoleExternalId must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_role_arns() {
        for region in ["us-east-1", "us-gov-west-1", "cn-north-1", "eu-isoe-west-1"] {
            assert!(REGION.accepts(region), "{region}");
        }
        for hostile in
            ["s3.us-east-1", "us-east-1@evil", "US-EAST-1", "us east 1", "us/east", "us-east-1:443", "ü", ""]
        {
            assert!(!REGION.accepts(hostile), "{hostile:?}");
        }
        for arn in ["arn:aws:iam::123456789012:role/web", "arn:aws-us-gov:iam::123456789012:role/path/to/x@y"]
        {
            assert!(is_role_arn(arn), "{arn}");
        }
        for arn in [
            "arn:awsx:iam::123456789012:role/web",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "arn:aws:iam::123456789012:role/a\nb",
            "arn:aws:iam::12345678901:role/web",
            "arn:aws:iam::123456789012:user/web",
        ] {
            assert!(!is_role_arn(arn), "{arn:?}");
        }
        assert!(check_external_id("tenant-42").is_ok());
        assert!(check_external_id("a b").is_err());
        assert!(check_external_id("x").is_err());
    }
}

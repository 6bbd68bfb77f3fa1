//! The AWS backend: Secrets Manager and SSM Parameter Store, drop-in for
//! aws/secrets-store-csi-driver-provider-aws SecretProviderClasses (`provider: aws`).
#![forbid(unsafe_code)]

pub mod params;

use async_trait::async_trait;
use csi_secrets_provider_core::{
    Error, FileMode, MountRequest, MountResponse, Parameters, Result, SecretBackend, Validation,
};

/// Serves `provider: aws`.
#[derive(Debug, Default)]
pub struct AwsBackend {}

impl AwsBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SecretBackend for AwsBackend {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn validate(&self, parameters: &Parameters) -> Validation {
        match params::parse(parameters, FileMode::DEFAULT) {
            Ok(spec) => Validation { plan: spec.plan, problems: Vec::new() },
            Err(problems) => Validation::failed(problems),
        }
    }

    async fn mount(&self, request: &MountRequest) -> Result<MountResponse> {
        let _spec = params::parse(&request.parameters, request.default_mode).map_err(|problems| {
            Error::combine(problems).unwrap_or_else(|| Error::internal("no problem reported"))
        })?;
        // Fetching through the AWS SDK is tracked by issue #4; until then say so plainly
        // rather than returning anything that could look like success.
        Err(Error::unavailable(
            "the aws backend of this build cannot fetch from AWS yet (Secrets Manager/SSM support is in progress)",
        ))
    }
}

#[cfg(test)]
mod tests;

//! The Azure Key Vault backend: secrets, keys and certificates, drop-in for
//! Azure/secrets-store-csi-driver-provider-azure SecretProviderClasses (`provider: azure`).
#![forbid(unsafe_code)]

pub mod params;

use async_trait::async_trait;
use csi_secrets_provider_core::{
    Error, FileMode, MountRequest, MountResponse, Parameters, Result, SecretBackend, Validation,
};

/// Serves `provider: azure`.
#[derive(Debug, Default)]
pub struct AzureBackend {}

impl AzureBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SecretBackend for AzureBackend {
    fn name(&self) -> &'static str {
        "azure"
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
        // Fetching from Key Vault is tracked by issue #5; until then say so plainly rather than
        // returning anything that could look like success.
        Err(Error::unavailable(
            "the azure backend of this build cannot fetch from Key Vault yet (Key Vault support is in progress)",
        ))
    }
}

#[cfg(test)]
mod tests;

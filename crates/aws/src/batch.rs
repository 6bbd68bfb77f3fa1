//! Secrets Manager `BatchGetSecretValue`: the current versions of up to twenty secrets in one
//! call, for first mounts (and remounts) that read two or more secrets of one region.
//!
//! The batch reads `AWSCURRENT` only, so an object pinned to a version id or another stage is
//! read on its own. What the batch gives no final word on (a per-secret refusal or throttling,
//! an entry it did not return) is read on its own too, with the failover region as usual.

use csi_secrets_provider_core::{CloudCalls, Error, HeldBytes, SecretBytes};

use crate::fetch::{Fetched, RegionClients};
use crate::params::ObjectSpec;
use crate::sdk_error::{counted, kind_for};

/// `BatchGetSecretValue` takes at most this many secret ids.
pub(crate) const SECRETS_BATCH: usize = 20;

/// API name in the `cloud_requests` metric.
pub(crate) const BATCH_GET_SECRET_VALUE: &str = "secretsmanager:BatchGetSecretValue";

/// What a batch said about one requested secret.
#[derive(Debug, Clone)]
pub(crate) enum BatchAnswer {
    Value(Fetched),
    /// A client fault for this secret (it does not exist, cannot be decrypted): final, as a
    /// single read's would be.
    Failed(Error),
    /// No final word: read the secret on its own.
    Unanswered,
}

/// One batch's answers, in the order asked.
#[derive(Debug, Clone)]
pub(crate) struct SecretBatch {
    pub answers: Vec<BatchAnswer>,
}

impl HeldBytes for SecretBatch {
    fn held_bytes(&self) -> usize {
        self.answers
            .iter()
            .map(|answer| match answer {
                BatchAnswer::Value(fetched) => fetched.held_bytes(),
                _ => 0,
            })
            .sum()
    }
}

/// Whether `object` may be read in a batch: the batch reads the current version only.
pub(crate) fn batchable(object: &ObjectSpec) -> bool {
    object.version.is_none() && object.version_label.as_deref().is_none_or(|label| label == "AWSCURRENT")
}

/// Reads `batch` (distinct secrets, at most [`SECRETS_BATCH`]) in `clients`' region. A failed
/// call is the error (the caller reads each secret on its own, or remembers a refusal).
pub(crate) async fn secret_batch(
    clients: &RegionClients,
    batch: &[&ObjectSpec],
    calls: &CloudCalls,
) -> Result<SecretBatch, Error> {
    let ids: Vec<String> =
        batch.iter().map(|object| object.target(clients.failover).name.to_owned()).collect();
    let result =
        clients.secrets_manager.batch_get_secret_value().set_secret_id_list(Some(ids.clone())).send().await;
    let output = counted(result, BATCH_GET_SECRET_VALUE, calls).map_err(|failure| {
        Error::new(failure.kind, format!("{}: BatchGetSecretValue failed: {failure}", clients.region))
    })?;
    let values = output.secret_values.unwrap_or_default();
    let errors = output.errors.unwrap_or_default();
    let answers = ids
        .iter()
        .zip(batch)
        .map(|(id, object)| {
            let entry = values
                .iter()
                .find(|entry| entry.name.as_deref() == Some(id) || entry.arn.as_deref() == Some(id));
            if let Some(entry) = entry {
                let value = match (&entry.secret_string, &entry.secret_binary) {
                    (Some(text), _) => text.clone().into_bytes(),
                    (None, Some(blob)) => blob.as_ref().to_vec(),
                    (None, None) => Vec::new(),
                };
                return BatchAnswer::Value(Fetched {
                    value: SecretBytes::new(value),
                    version: entry.version_id.clone().unwrap_or_default(),
                    arn: entry.arn.clone().unwrap_or_default(),
                });
            }
            let Some(error) = errors.iter().find(|error| error.secret_id.as_deref() == Some(id)) else {
                return BatchAnswer::Unanswered;
            };
            let code = error.error_code.as_deref().unwrap_or("UnknownError");
            // Only the service's word that the request itself is wrong for this secret is final;
            // a per-secret refusal may be regional (the failover region is then asked), and an
            // unknown code gets a read of its own.
            match code {
                "ResourceNotFoundException"
                | "DecryptionFailure"
                | "InvalidParameterException"
                | "InvalidRequestException" => BatchAnswer::Failed(
                    Error::new(
                        kind_for(code, 400).0,
                        format!(
                            "{}: Failed fetching secret {id}: {code}: {}",
                            clients.region,
                            error.message.as_deref().unwrap_or_default()
                        ),
                    )
                    .with_object(&object.name),
                ),
                _ => BatchAnswer::Unanswered,
            }
        })
        .collect();
    Ok(SecretBatch { answers })
}

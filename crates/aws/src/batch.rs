//! Secrets Manager `BatchGetSecretValue`: the current versions of up to twenty secrets in one
//! call, for first mounts (and remounts) that read two or more secrets of one region.
//!
//! The batch reads `AWSCURRENT` only, so an object pinned to a version id or another stage is
//! read on its own. What the batch gives no final word on (a per-secret refusal or throttling,
//! an entry it did not return) is read on its own too, with the failover region as usual.

use std::hash::Hash;

use csi_secrets_provider_core::kit::{BatchAnswer, BatchAnswers};
use csi_secrets_provider_core::{CloudCalls, Error, SecretBytes};

use crate::fetch::{Fetched, RegionClients};
use crate::params::ObjectSpec;
use crate::sdk_error::{counted, kind_for};

/// `BatchGetSecretValue` takes at most this many secret ids.
pub(crate) const SECRETS_BATCH: usize = 20;

/// API name in the `cloud_requests` metric.
pub(crate) const BATCH_GET_SECRET_VALUE: &str = "secretsmanager:BatchGetSecretValue";

/// Whether `object` may be read in a batch: the batch reads the current version only.
pub(crate) fn batchable(object: &ObjectSpec) -> bool {
    object.version.is_none() && object.version_label.as_deref().is_none_or(|label| label == "AWSCURRENT")
}

/// Reads `batch` (distinct secrets, at most [`SECRETS_BATCH`], each with its read key) in
/// `clients`' region, answering by key: a value, a final error, or nothing (read it on its
/// own). A failed call is the error (the caller reads each secret on its own, or remembers a
/// refusal).
pub(crate) async fn secret_batch<K: Eq + Hash>(
    clients: &RegionClients,
    batch: Vec<(K, &ObjectSpec)>,
    calls: &CloudCalls,
) -> Result<BatchAnswers<K, Fetched>, Error> {
    let ids: Vec<String> =
        batch.iter().map(|(_, object)| object.target(clients.failover).name.to_owned()).collect();
    let result =
        clients.secrets_manager.batch_get_secret_value().set_secret_id_list(Some(ids.clone())).send().await;
    let output = counted(result, BATCH_GET_SECRET_VALUE, calls).map_err(|failure| {
        Error::new(failure.kind, format!("{}: BatchGetSecretValue failed: {failure}", clients.region))
    })?;
    let values = output.secret_values.unwrap_or_default();
    let errors = output.errors.unwrap_or_default();
    // A plain name answers to the entry of that name, which may be another account's secret of
    // the same name when the batch also asks for it by ARN: such a name is read on its own.
    let arn_names: Vec<&str> = ids.iter().filter_map(|id| arn_secret_name(id)).collect();
    let collides = |id: &str| {
        !id.starts_with("arn:")
            && arn_names
                .iter()
                .any(|name| *name == id || name.strip_prefix(id).is_some_and(|rest| rest.starts_with('-')))
    };
    let mut answers = BatchAnswers::default();
    for (key, object) in batch {
        let id = object.target(clients.failover).name;
        if collides(id) {
            continue;
        }
        let entry =
            values.iter().find(|entry| entry.name.as_deref() == Some(id) || entry.arn.as_deref() == Some(id));
        if let Some(entry) = entry {
            let value = match (&entry.secret_string, &entry.secret_binary) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(blob)) => blob.as_ref().to_vec(),
                (None, None) => Vec::new(),
            };
            let fetched = Fetched {
                value: SecretBytes::new(value),
                version: entry.version_id.clone().unwrap_or_default(),
                arn: entry.arn.clone().unwrap_or_default(),
            };
            answers.insert(key, BatchAnswer::Value(fetched));
            continue;
        }
        let Some(error) = errors.iter().find(|error| error.secret_id.as_deref() == Some(id)) else {
            continue;
        };
        let code = error.error_code.as_deref().unwrap_or("UnknownError");
        // Only the service's word that the request itself is wrong for this secret is final; a
        // per-secret refusal may be regional (the failover region is then asked), and an
        // unknown code gets a read of its own.
        if let "ResourceNotFoundException"
        | "DecryptionFailure"
        | "InvalidParameterException"
        | "InvalidRequestException" = code
        {
            let failed = Error::new(
                kind_for(code, 400).0,
                format!(
                    "{}: Failed fetching secret {id}: {code}: {}",
                    clients.region,
                    error.message.as_deref().unwrap_or_default()
                ),
            )
            .with_object(&object.name);
            answers.insert(key, BatchAnswer::Failed(failed));
        }
    }
    Ok(answers)
}

/// The secret name an ARN names (`arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf`
/// → `prod/db-AbCdEf`).
fn arn_secret_name(id: &str) -> Option<&str> {
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, _, _, _, "secret", name] => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::arn_secret_name;

    #[test]
    fn arns_name_their_secret() {
        assert_eq!(
            arn_secret_name("arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf"),
            Some("prod/db-AbCdEf")
        );
        assert_eq!(arn_secret_name("prod/db"), None);
    }
}

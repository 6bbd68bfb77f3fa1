//! Fetching objects from Secrets Manager and SSM, with the failover region.
//!
//! Unlike upstream, which queries both regions on every mount, the failover region is asked
//! only when the primary region failed for a reason another region may not share (5xx,
//! throttling, access denied, network). A client fault (not found, invalid request) fails the
//! mount at once, as upstream does.

use std::hash::Hash;

use csi_secrets_provider_core::kit::{BatchAnswer, BatchAnswers};
use csi_secrets_provider_core::{CloudCalls, Error, SecretBytes};

use crate::params::ObjectSpec;
use crate::sdk_error::{AwsFailure, counted};

/// SSM `GetParameters` takes at most this many names.
pub const SSM_BATCH: usize = 10;

/// API names in the `cloud_requests` metric.
pub(crate) const GET_SECRET_VALUE: &str = "secretsmanager:GetSecretValue";
pub(crate) const GET_PARAMETERS: &str = "ssm:GetParameters";

/// The clients of one region.
#[derive(Debug, Clone)]
pub struct RegionClients {
    pub region: String,
    pub failover: bool,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

/// One object's value and version.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub value: SecretBytes,
    pub version: String,
    /// The ARN the cloud answered with (empty if it gave none): the audit trail's resolved name.
    pub arn: String,
}

/// One Secrets Manager object: the primary region, then the failover region if the primary
/// failed for a reason another region may not share.
pub(crate) async fn secret(
    regions: &[RegionClients],
    object: &ObjectSpec,
    calls: &CloudCalls,
) -> Result<Fetched, Error> {
    let mut failures: Vec<(String, AwsFailure)> = Vec::new();
    for clients in regions {
        let target = object.target(clients.failover);
        let name = target.name;
        let result = clients
            .secrets_manager
            .get_secret_value()
            .secret_id(name)
            .set_version_id(target.version.map(str::to_owned))
            .set_version_stage(target.label.map(str::to_owned))
            .send()
            .await;
        match counted(result, GET_SECRET_VALUE, calls) {
            Ok(output) => {
                let value = match (output.secret_string, output.secret_binary) {
                    (Some(text), _) => text.into_bytes(),
                    (None, Some(blob)) => blob.into_inner(),
                    (None, None) => Vec::new(),
                };
                return Ok(Fetched {
                    value: SecretBytes::new(value),
                    version: output.version_id.unwrap_or_default(),
                    arn: output.arn.unwrap_or_default(),
                });
            }
            Err(failure) => {
                if failure.client_fault {
                    return Err(Error::new(
                        failure.kind,
                        format!("{}: Failed fetching secret {name}: {failure}", clients.region),
                    )
                    .with_object(&object.name));
                }
                tracing::warn!(region = %clients.region, object = %object.name, error = %failure, "fetch failed; trying the next region if any");
                failures.push((clients.region.clone(), failure));
            }
        }
    }
    Err(all_regions_failed(
        &format!(
            "Failed to fetch secret from all regions. Verify secret exists and required permissions are granted for: {}",
            object.name
        ),
        failures,
    )
    .with_object(&object.name))
}

fn all_regions_failed(headline: &str, failures: Vec<(String, AwsFailure)>) -> Error {
    let kind = failures.first().map_or(csi_secrets_provider_core::ErrorKind::Unavailable, |(_, f)| f.kind);
    let details: Vec<String> = failures.iter().map(|(region, f)| format!("{region}: {f}")).collect();
    Error::new(kind, format!("{headline} ({})", details.join("; ")))
}

/// Reads up to ten parameters (each with its read key) with one `GetParameters` call
/// (decrypted), trying each region in turn while the call itself fails for a reason another
/// region may not have. Answers by key: the value, or for a parameter SSM did not return (it
/// does not exist, or not in that version or label) a not-found in upstream's words.
pub(crate) async fn parameter_batch<K: Eq + Hash>(
    regions: &[RegionClients],
    batch: Vec<(K, &ObjectSpec)>,
    calls: &CloudCalls,
) -> Result<BatchAnswers<K, Fetched>, Error> {
    let mut failures: Vec<(String, AwsFailure)> = Vec::new();
    for clients in regions {
        let names: Vec<String> = batch
            .iter()
            .map(|(_, object)| {
                let target = object.target(clients.failover);
                match target.version.or(target.label) {
                    Some(selector) => format!("{}:{selector}", target.name),
                    None => target.name.to_owned(),
                }
            })
            .collect();
        let result = clients.ssm.get_parameters().set_names(Some(names)).with_decryption(true).send().await;
        let output = match counted(result, GET_PARAMETERS, calls) {
            Ok(output) => output,
            Err(failure) => {
                if failure.client_fault {
                    return Err(Error::new(
                        failure.kind,
                        format!("{}: Failed fetching parameters: {failure}", clients.region),
                    ));
                }
                tracing::warn!(region = %clients.region, error = %failure, "parameter fetch failed; trying the next region if any");
                failures.push((clients.region.clone(), failure));
                continue;
            }
        };
        let mut invalid = output.invalid_parameters.unwrap_or_default();
        invalid.sort();
        invalid.dedup();
        let found = output.parameters.unwrap_or_default();
        let mut claimed = vec![false; found.len()];
        let mut answers = BatchAnswers::default();
        for (key, object) in batch {
            let target = object.target(clients.failover);
            let answer = match match_parameter(&found, &claimed, target.name, target.version.or(target.label))
            {
                Some(index) => {
                    claimed[index] = true;
                    let parameter = &found[index];
                    BatchAnswer::Value(Fetched {
                        value: SecretBytes::new(parameter.value.clone().unwrap_or_default().into_bytes()),
                        version: parameter.version.to_string(),
                        arn: parameter.arn.clone().unwrap_or_default(),
                    })
                }
                None => BatchAnswer::Failed(missing_parameter(&clients.region, &invalid, object)),
            };
            answers.insert(key, answer);
        }
        return Ok(answers);
    }
    // Upstream's headline, then the parameters of the batch that were not read: a throttled or
    // failing batch names what it failed to read, as a failing secret does.
    let names: Vec<&str> = batch.iter().map(|(_, object)| object.name.as_str()).collect();
    Err(all_regions_failed(
        &format!("Failed to fetch parameters from all regions. Parameters not read: {}", names.join(", ")),
        failures,
    ))
}

/// Why `object` has no value in `region`'s answer, in upstream's words.
fn missing_parameter(region: &str, invalid: &[String], object: &ObjectSpec) -> Error {
    let message = if invalid.is_empty() {
        format!("{region}: parameter {} missing from the response", object.name)
    } else {
        format!("{region}: invalid parameters: {}", invalid.join(", "))
    };
    Error::not_found(message).with_object(&object.name)
}

/// Which answered parameter serves a request for `name` (`:selector`). The `Selector` field
/// decides when the service fills it; otherwise a numeric selector matches the version and an
/// unpinned request takes the newest version. Each answer serves one request.
fn match_parameter(
    found: &[aws_sdk_ssm::types::Parameter],
    claimed: &[bool],
    name: &str,
    selector: Option<&str>,
) -> Option<usize> {
    let candidates: Vec<usize> = (0..found.len())
        .filter(|&i| !claimed[i])
        .filter(|&i| found[i].name.as_deref() == Some(name) || found[i].arn.as_deref() == Some(name))
        .collect();
    let wanted = selector.map(|s| format!(":{s}"));
    if let Some(&exact) =
        candidates.iter().find(|&&i| found[i].selector.is_some() && found[i].selector == wanted)
    {
        return Some(exact);
    }
    let unlabelled = || candidates.iter().copied().filter(|&i| found[i].selector.is_none());
    match selector {
        Some(version) if version.parse::<i64>().is_ok() => {
            unlabelled().find(|&i| Some(found[i].version) == version.parse::<i64>().ok())
        }
        None => unlabelled().max_by_key(|&i| found[i].version),
        Some(_label) => unlabelled().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::parse;
    use csi_secrets_provider_core::{FileMode, Parameters};

    fn object(jmes: &str) -> ObjectSpec {
        let objects = format!("- objectName: db\n  objectType: secretsmanager\n  jmesPath:\n{jmes}");
        let parameters: Parameters = [("objects".to_owned(), objects)].into_iter().collect();
        match parse(&parameters, FileMode::DEFAULT) {
            Ok(mut spec) => spec.objects.remove(0),
            Err(e) => panic!("{e:?}"),
        }
    }

    fn jmes_values(object: &ObjectSpec, value: &SecretBytes) -> Result<Vec<SecretBytes>, Error> {
        csi_secrets_provider_core::jmes::extract(&object.name, value, &object.jmes)
    }

    fn texts(values: Vec<SecretBytes>) -> Vec<String> {
        values.iter().map(|v| String::from_utf8_lossy(v.expose()).into_owned()).collect()
    }

    fn parameter(name: &str, version: i64, selector: Option<&str>) -> aws_sdk_ssm::types::Parameter {
        aws_sdk_ssm::types::Parameter::builder()
            .name(name)
            .version(version)
            .set_selector(selector.map(str::to_owned))
            .build()
    }

    #[test]
    fn parameters_match_by_selector_version_or_newest() {
        // As real SSM answers: selectors filled in.
        let found =
            [parameter("/a", 2, None), parameter("/a", 1, Some(":1")), parameter("/a", 2, Some(":prod"))];
        let none = [false; 3];
        assert_eq!(match_parameter(&found, &none, "/a", Some("1")), Some(1));
        assert_eq!(match_parameter(&found, &none, "/a", Some("prod")), Some(2));
        assert_eq!(match_parameter(&found, &none, "/a", None), Some(0));
        // As moto answers: no selectors.
        let found = [parameter("/a", 1, None), parameter("/a", 2, None)];
        assert_eq!(match_parameter(&found, &[false; 2], "/a", None), Some(1));
        assert_eq!(match_parameter(&found, &[false; 2], "/a", Some("1")), Some(0));
        assert_eq!(
            match_parameter(&found, &[false, true], "/a", None),
            Some(0),
            "claimed answers are skipped"
        );
        assert_eq!(match_parameter(&found, &[false; 2], "/b", None), None);
    }

    #[test]
    fn extracts_fields_including_quoted_hyphenated_keys() -> Result<(), Error> {
        let object = object(
            "    - {path: username, objectAlias: u}\n    - {path: '\"db-password\"', objectAlias: p}\n    - {path: nested.host, objectAlias: h}\n",
        );
        let value = SecretBytes::new(
            br#"{"username":"admin","db-password":"pw","nested":{"host":"db.local"}}"#.to_vec(),
        );
        assert_eq!(texts(jmes_values(&object, &value)?), ["admin", "pw", "db.local"]);
        Ok(())
    }

    #[test]
    fn failures_say_which_object_path_and_why() {
        let value = SecretBytes::new(br#"{"username":"admin","port":5432}"#.to_vec());
        let cases = [
            (
                "    - {path: missing, objectAlias: m}\n",
                "JMES Path - missing for object alias - m does not point to a valid object.",
            ),
            (
                "    - {path: port, objectAlias: p}\n",
                "Invalid JMES search result type for path:port. Only string is allowed (got number).",
            ),
            ("    - {path: db-password, objectAlias: p}\n", "quote keys with dashes"),
        ];
        for (jmes, expected) in cases {
            let error = jmes_values(&object(jmes), &value).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("object \"db\""), "{error}");
        }
        let error = jmes_values(
            &object("    - {path: a, objectAlias: a}\n"),
            &SecretBytes::new(b"not json".to_vec()),
        );
        assert!(
            error
                .err()
                .is_some_and(|e| e.message().contains("Invalid JSON used with jmesPath in secret: db."))
        );
    }
}

//! Listings for `objectPrefix` entries: Secrets Manager `ListSecrets` (name and tag filters),
//! SSM `GetParametersByPath` (recursive, for a path prefix without tags) or
//! `DescribeParameters` (`BeginsWith` and tag filters). Names and tags only: no value is
//! listed (`GetParametersByPath` without decryption, and its values dropped); the selected
//! secrets are then read like any other object, in batches.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_ssm::types::ParameterStringFilter;
use csi_secrets_provider_core::kit::{Listed, Listing};
use csi_secrets_provider_core::{CloudCalls, Error, ErrorKind};

use crate::credentials::IdentityKey;
use crate::fetch::RegionClients;
use crate::params::{ObjectType, SelectionSpec};
use crate::sdk_error::{AwsFailure, counted};

pub(crate) const LIST_SECRETS: &str = "secretsmanager:ListSecrets";
pub(crate) const GET_PARAMETERS_BY_PATH: &str = "ssm:GetParametersByPath";
pub(crate) const DESCRIBE_PARAMETERS: &str = "ssm:DescribeParameters";

/// Entries one listing may hold: past it the folder is refused whatever `maxObjects` says, so
/// a prefix that matches a whole account costs a bounded number of pages.
const MAX_LISTED: usize = 10_000;

/// Everything that decides a listing's answer: whose credentials, which region set, and the
/// query. Listings are shared under the same rules as reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ListingKey {
    pub identity: IdentityKey,
    pub regions: Vec<String>,
    pub object_type: ObjectType,
    pub prefix: String,
    pub tags: BTreeMap<String, String>,
}

/// The call a selection makes, for messages and the right it needs.
fn api(selection: &SelectionSpec) -> &'static str {
    match selection.object_type {
        ObjectType::SecretsManager => LIST_SECRETS,
        ObjectType::SsmParameter if by_path(selection) => GET_PARAMETERS_BY_PATH,
        ObjectType::SsmParameter => DESCRIBE_PARAMETERS,
    }
}

/// A path prefix (`/team-a/app/`) without tags is listed with `GetParametersByPath`.
fn by_path(selection: &SelectionSpec) -> bool {
    let prefix = &selection.selection.prefix;
    prefix.starts_with('/') && prefix.ends_with('/') && selection.selection.tags.is_empty()
}

/// Lists `selection` in each of `regions` in turn (primary, then failover) while a region is
/// out; a refusal or a bad request is final.
pub(crate) async fn list(
    regions: &[RegionClients],
    selection: &SelectionSpec,
    calls: &CloudCalls,
) -> Result<Listing, Error> {
    let label = selection.selection.label();
    let call = api(selection);
    let mut failures: Vec<String> = Vec::new();
    let mut kind = ErrorKind::Unavailable;
    for clients in regions {
        let result = match selection.object_type {
            ObjectType::SecretsManager => list_secrets(clients, selection, calls).await,
            ObjectType::SsmParameter if by_path(selection) => {
                parameters_by_path(clients, selection, calls).await
            }
            ObjectType::SsmParameter => describe_parameters(clients, selection, calls).await,
        };
        match result {
            Ok(entries) => return Ok(Listing::new(entries)),
            Err(ListFailure::TooMany) => {
                return Err(Error::invalid_config(format!(
                    "{label} lists more than {MAX_LISTED} entries; narrow the prefix or the tags"
                ))
                .with_object(&selection.selection.prefix));
            }
            Err(ListFailure::Aws(failure)) if failure.client_fault => {
                return Err(
                    refused(&clients.region, &label, call, &failure).with_object(&selection.selection.prefix)
                );
            }
            Err(ListFailure::Aws(failure)) => {
                tracing::warn!(region = %clients.region, entry = %label, error = %failure, "listing failed; trying the next region if any");
                kind = failure.kind;
                failures.push(format!("{}: {failure}", clients.region));
            }
        }
    }
    Err(Error::new(
        kind,
        format!("cannot list {label} ({call}) in any region ({}){}", failures.join("; "), needs(kind, call)),
    )
    .with_object(&selection.selection.prefix))
}

/// A refused listing names the entry and the right it needs.
fn refused(region: &str, label: &str, call: &str, failure: &AwsFailure) -> Error {
    Error::new(
        failure.kind,
        format!("{region}: cannot list {label} ({call}): {failure}{}", needs(failure.kind, call)),
    )
}

fn needs(kind: ErrorKind, call: &str) -> String {
    if kind == ErrorKind::PermissionDenied {
        format!("; selecting by prefix needs the {call} permission")
    } else {
        String::new()
    }
}

enum ListFailure {
    Aws(AwsFailure),
    TooMany,
}

fn push(entries: &mut Vec<Listed>, listed: Listed) -> Result<(), ListFailure> {
    if entries.len() >= MAX_LISTED {
        return Err(ListFailure::TooMany);
    }
    entries.push(listed);
    Ok(())
}

/// `ListSecrets` with a name filter (a prefix match) and tag filters, every page; secrets
/// scheduled for deletion are not listed (`IncludePlannedDeletion` stays false) and skipped if
/// they are. Tags are matched exactly by core afterwards (the API's tag filters match keys and
/// values separately, by prefix).
async fn list_secrets(
    clients: &RegionClients,
    selection: &SelectionSpec,
    calls: &CloudCalls,
) -> Result<Vec<Listed>, ListFailure> {
    let mut filters =
        vec![Filter::builder().key(FilterNameStringType::Name).values(&selection.selection.prefix).build()];
    for (key, value) in &selection.selection.tags {
        filters.push(Filter::builder().key(FilterNameStringType::TagKey).values(key).build());
        filters.push(Filter::builder().key(FilterNameStringType::TagValue).values(value).build());
    }
    let mut pages = clients
        .secrets_manager
        .list_secrets()
        .set_filters(Some(filters))
        .max_results(100)
        .into_paginator()
        .send();
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        let output = counted(page, LIST_SECRETS, calls).map_err(ListFailure::Aws)?;
        for secret in output.secret_list() {
            let Some(name) = secret.name() else { continue };
            if secret.deleted_date().is_some() {
                continue;
            }
            let tags = secret
                .tags()
                .iter()
                .filter_map(|tag| Some((tag.key()?.to_owned(), tag.value().unwrap_or_default().to_owned())));
            push(&mut entries, Listed::new(name).with_tags(tags))?;
        }
    }
    Ok(entries)
}

/// `GetParametersByPath`, recursive, without decryption (names only are kept), every page.
async fn parameters_by_path(
    clients: &RegionClients,
    selection: &SelectionSpec,
    calls: &CloudCalls,
) -> Result<Vec<Listed>, ListFailure> {
    let prefix = &selection.selection.prefix;
    let path = if prefix.len() > 1 { prefix.trim_end_matches('/') } else { prefix.as_str() };
    let mut pages = clients
        .ssm
        .get_parameters_by_path()
        .path(path)
        .recursive(true)
        .with_decryption(false)
        .max_results(10)
        .into_paginator()
        .send();
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        let output = counted(page, GET_PARAMETERS_BY_PATH, calls).map_err(ListFailure::Aws)?;
        for name in output.parameters().iter().filter_map(|parameter| parameter.name()) {
            push(&mut entries, Listed::new(name))?;
        }
    }
    Ok(entries)
}

/// `DescribeParameters` with `Name BeginsWith` and a `tag:<key> Equals <value>` filter per
/// pair, every page. SSM matched the tags, so each entry carries them.
async fn describe_parameters(
    clients: &RegionClients,
    selection: &SelectionSpec,
    calls: &CloudCalls,
) -> Result<Vec<Listed>, ListFailure> {
    let filter = |key: String, option: &str, value: &str| {
        ParameterStringFilter::builder().key(key).option(option).values(value).build()
    };
    // Only a missing key fails to build, and every filter here has one.
    let filters: Vec<ParameterStringFilter> =
        std::iter::once(filter("Name".to_owned(), "BeginsWith", &selection.selection.prefix))
            .chain(
                selection
                    .selection
                    .tags
                    .iter()
                    .map(|(key, value)| filter(format!("tag:{key}"), "Equals", value)),
            )
            .flatten()
            .collect();
    let mut pages = clients
        .ssm
        .describe_parameters()
        .set_parameter_filters(Some(filters))
        .max_results(50)
        .into_paginator()
        .send();
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        let output = counted(page, DESCRIBE_PARAMETERS, calls).map_err(ListFailure::Aws)?;
        for name in output.parameters().iter().filter_map(|parameter| parameter.name()) {
            push(&mut entries, Listed::new(name).with_tags(selection.selection.tags.clone()))?;
        }
    }
    Ok(entries)
}

//! Secret Manager's side of the Google peer: `access` of a version (by number, `latest` or
//! an alias; disabled and destroyed versions; CRC32C) and `list` of secrets (pages, label
//! filters, the list permission).

use super::*;

/// Secrets a list page holds at most: fewer than asked, so tests of a few secrets page (Secret
/// Manager, too, may answer fewer than `pageSize` with a `nextPageToken`).
const LIST_PAGE: usize = 2;

/// `GET /v1/projects/P[/locations/L]/secrets`: a page of the secrets (newest first), names with
/// the project number as Secret Manager answers; `filter` as far as this provider uses it
/// (`labels.<key>=<value>` terms joined by `AND`).
pub(super) fn list(state: &State, path: &str, query: &str, principal: Option<&str>) -> Response {
    let Some(principal) = principal else {
        return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    };
    let parent = path.trim_start_matches("/v1/").trim_end_matches("/secrets");
    let location = match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l] if *p == PROJECT || *p == PROJECT_NUMBER => Some((*l).to_owned()),
        ["projects", p] if *p == PROJECT || *p == PROJECT_NUMBER => None,
        _ => {
            return error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission 'secretmanager.secrets.list' denied for resource '{parent}' (or it may not exist)."
                ),
            );
        }
    };
    if !state.listers.iter().any(|l| l == principal) {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.secrets.list' denied for resource '{parent}' (or it may not exist)."
            ),
        );
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for term in get("filter").split(" AND ").map(str::trim).filter(|t| !t.is_empty()) {
        match term.strip_prefix("labels.").and_then(|t| t.split_once('=')) {
            Some((k, v)) => wanted.push((k.to_owned(), v.trim_matches('"').to_owned())),
            None => return error(400, "INVALID_ARGUMENT", &format!("Invalid filter: {term}")),
        }
    }
    let mut matching: Vec<(&String, &Secret)> = state
        .secrets
        .iter()
        .filter(|((l, _), _)| *l == location)
        .filter(|(_, s)| wanted.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|((_, name), secret)| (name, secret))
        .collect();
    matching.sort_by_key(|(_, s)| std::cmp::Reverse(s.created));
    let skip: usize = get("pageToken").parse().unwrap_or(0);
    let asked: usize = get("pageSize").parse().ok().filter(|n| *n > 0).unwrap_or(25);
    let page = asked.min(LIST_PAGE);
    let prefix = match &location {
        Some(l) => format!("projects/{PROJECT_NUMBER}/locations/{l}/secrets"),
        None => format!("projects/{PROJECT_NUMBER}/secrets"),
    };
    let secrets: Vec<serde_json::Value> = matching
        .iter()
        .skip(skip)
        .take(page)
        .map(|(name, secret)| serde_json::json!({ "name": format!("{prefix}/{name}"), "labels": secret.labels }))
        .collect();
    let next = if skip + page < matching.len() { (skip + page).to_string() } else { String::new() };
    json(200, &serde_json::json!({ "secrets": secrets, "nextPageToken": next }))
}

/// `%XX` escapes and `+` of a query value.
pub(super) fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn access(state: &mut State, path: &str, principal: Option<&str>) -> Response {
    let Some(principal) = principal else {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    };
    let name = path.trim_start_matches("/v1/").trim_end_matches(":access");
    let parts: Vec<&str> = name.split('/').collect();
    let (project, location, secret, version) = match parts.as_slice() {
        ["projects", p, "secrets", s, "versions", v] => (*p, None, *s, *v),
        ["projects", p, "locations", l, "secrets", s, "versions", v] => (*p, Some((*l).to_owned()), *s, *v),
        _ => return error(400, "INVALID_ARGUMENT", "Invalid resource field value in the request."),
    };
    if project != PROJECT && project != PROJECT_NUMBER {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{name}' (or it may not exist)."
            ),
        );
    }
    let prefix = match &location {
        Some(l) => format!("projects/{PROJECT_NUMBER}/locations/{l}/secrets/{secret}"),
        None => format!("projects/{PROJECT_NUMBER}/secrets/{secret}"),
    };
    let Some(entry) = state.secrets.get(&(location.clone(), secret.to_owned())) else {
        return error(404, "NOT_FOUND", &format!("Secret [{prefix}] not found or has no versions."));
    };
    if !entry.readers.iter().any(|r| r == principal) {
        return error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{name}' (or it may not exist)."
            ),
        );
    }
    let number = match version {
        "latest" => entry.versions.len(),
        v => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => entry.aliases.get(v).copied().unwrap_or(0),
        },
    };
    let Some(found) = number.checked_sub(1).and_then(|i| entry.versions.get(i)) else {
        return error(404, "NOT_FOUND", &format!("Secret Version [{prefix}/versions/{version}] not found."));
    };
    if !found.enabled {
        return error(
            400,
            "FAILED_PRECONDITION",
            &format!("Secret Version [{prefix}/versions/{number}] is in DISABLED state."),
        );
    }
    let mut crc = i64::from(crc32c::crc32c(&found.data));
    if let Some((_, left)) =
        state.corrupt.iter_mut().find(|(fragment, left)| *left > 0 && path.contains(fragment.as_str()))
    {
        *left -= 1;
        crc += 1;
    }
    json(
        200,
        &serde_json::json!({
            "name": format!("{prefix}/versions/{number}"),
            "payload": { "data": STANDARD.encode(&found.data), "dataCrc32c": crc.to_string() }
        }),
    )
}

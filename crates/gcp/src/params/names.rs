//! Google's grammar for the parts of a Secret Manager name and for labels, checked before a part
//! reaches a URL, a host or a list filter (`core::grammar`).
//!
//! A location becomes part of the regional endpoint's host name
//! (`secretmanager.<location>.rep.googleapis.com`): only a [`Location`] can be put there, and one
//! is made only from a checked name. Projects, secret ids, versions and prefixes go into URL
//! paths; label keys and values into the `ListSecrets` filter's quoted strings.

use csi_secrets_provider_core::Error;
use csi_secrets_provider_core::grammar::{
    NameRule, digit, lower, lower_digit_or_hyphen, lower_or_digit, word_or_hyphen,
};

/// Longest location the GCP provider accepts (its own message is kept for it).
const MAX_LOCATION: usize = 30;

/// `us-central1`, `europe-west4`: Google's location ids.
pub const LOCATION: NameRule = NameRule {
    what: "a Google Cloud location",
    words: "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
    min: 2,
    max: MAX_LOCATION,
    first: lower,
    middle: lower_digit_or_hyphen,
    last: lower_or_digit,
};

/// A GKE cluster name (`prod-eu`): it becomes part of the workload identity provider's URL.
pub const CLUSTER: NameRule = NameRule {
    what: "a GKE cluster name",
    words: "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
    min: 1,
    max: 40,
    first: lower,
    middle: lower_digit_or_hyphen,
    last: lower_or_digit,
};

/// A project id (`shop-prod`); Google's are 6 to 30 characters, shorter ones are let through
/// here as test projects name themselves (`p`): the characters are what keeps a URL path whole.
pub const PROJECT_ID: NameRule = NameRule {
    what: "a Google Cloud project id",
    words: "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
    min: 1,
    max: 30,
    first: lower,
    middle: lower_digit_or_hyphen,
    last: lower_or_digit,
};

/// A project number (`123456789012`).
pub const PROJECT_NUMBER: NameRule = NameRule {
    what: "a Google Cloud project number",
    words: "digits",
    min: 1,
    max: 20,
    first: digit,
    middle: digit,
    last: digit,
};

/// The domain of a domain-scoped project id (`example.com:my-project`).
const PROJECT_DOMAIN: NameRule = NameRule {
    what: "a project's domain",
    words: "lowercase letters, digits, '-' and '.'",
    min: 1,
    max: 63,
    first: lower_or_digit,
    middle: |c| lower_digit_or_hyphen(c) || c == '.',
    last: lower_or_digit,
};

/// A secret id: "letters, numerals, hyphens and underscores", at most 255.
pub const SECRET_ID: NameRule = NameRule {
    what: "a Secret Manager secret id",
    words: "letters, digits, '-' and '_'",
    min: 1,
    max: 255,
    first: word_or_hyphen,
    middle: word_or_hyphen,
    last: word_or_hyphen,
};

/// The start of secret ids (`resourcePrefix`): empty selects every secret.
pub const SECRET_PREFIX: NameRule = NameRule { what: "a secret id prefix", min: 0, ..SECRET_ID };

/// A version: a number, `latest`, or an alias (letters, digits, `-`, `_`, at most 63).
pub const VERSION: NameRule = NameRule {
    what: "a Secret Manager version (a number, latest or an alias)",
    words: "letters, digits, '-' and '_'",
    min: 1,
    max: 63,
    first: word_or_hyphen,
    middle: word_or_hyphen,
    last: word_or_hyphen,
};

/// A label key: starts with a lowercase letter; lowercase letters (international ones too),
/// digits, `-`, `_`; at most 63.
pub const LABEL_KEY: NameRule = NameRule {
    what: "a Google Cloud label key",
    words: "lowercase letters, digits, '-' and '_', starting with a lowercase letter",
    min: 1,
    max: 63,
    first: char::is_lowercase,
    middle: label_char,
    last: label_char,
};

/// A label value: as a key's characters, may be empty or start with any of them.
pub const LABEL_VALUE: NameRule = NameRule {
    what: "a Google Cloud label value",
    words: "lowercase letters, digits, '-' and '_'",
    min: 0,
    first: label_char,
    ..LABEL_KEY
};

fn label_char(c: char) -> bool {
    c.is_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

/// A project as a secret's name gives it: a number, an id, or a domain-scoped id.
pub fn check_project(project: &str) -> Result<(), Error> {
    if project.chars().all(|c| c.is_ascii_digit()) {
        return PROJECT_NUMBER.check(project);
    }
    match project.split_once(':') {
        Some((domain, id)) if PROJECT_DOMAIN.accepts(domain) => PROJECT_ID.check(id),
        _ => PROJECT_ID.check(project),
    }
}

/// A Google service account as an annotation names it (`name@project.iam.gserviceaccount.com`,
/// or its numeric unique id), optionally as `projects/-/serviceAccounts/<it>`: it goes into an
/// IAM Credentials URL path, so nothing but an email's characters (no `/`, `?`, `#`, `%`, `:`).
pub fn check_service_account(account: &str) -> Result<(), Error> {
    let bare = account.strip_prefix("projects/-/serviceAccounts/").unwrap_or(account);
    let local_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let domain_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
    let email = bare.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && local.chars().all(local_char)
            && domain.chars().all(domain_char)
    });
    let unique_id = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit());
    if bare.len() <= 254 && (email || unique_id) {
        Ok(())
    } else {
        Err(Error::invalid_config(format!(
            "{} is not a Google service account (an email such as name@project.iam.gserviceaccount.com, or its unique id)",
            csi_secrets_provider_core::grammar::shown(account)
        )))
    }
}

/// A location that was checked: the only thing the regional endpoint's host is built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location(String);

impl Location {
    pub fn parse(location: &str) -> Result<Self, Error> {
        if location.chars().count() > MAX_LOCATION {
            // The GCP provider's own message.
            return Err(Error::invalid_config(format!(
                "Invalid location: {}, location length exceeds limit",
                csi_secrets_provider_core::grammar::shown(location)
            )));
        }
        LOCATION.check(location)?;
        Ok(Self(location.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values an attacker writes to reach another host or another API path.
    const HOSTILE: &[&str] = &[
        "x@127.0.0.1:5443#",
        "evil.example",
        "a/b",
        "a?b",
        "a#b",
        "a%2Fb",
        "a:b",
        "a b",
        "a\tb",
        "a\r\nb",
        "a\\b",
        "a\"b",
        "..",
        "ä",
        "a\u{202e}b",
    ];

    #[test]
    fn hostile_parts_are_refused_everywhere() {
        for value in HOSTILE {
            assert!(Location::parse(value).is_err(), "location {value:?}");
            assert!(!SECRET_ID.accepts(value), "secret {value:?}");
            assert!(!SECRET_PREFIX.accepts(value), "prefix {value:?}");
            assert!(!VERSION.accepts(value), "version {value:?}");
            // `a:b` is a domain-scoped project id (domain `a`), the one place a ':' may stand.
            assert!(check_project(value).is_err() || *value == "a:b", "project {value:?}");
            if *value != "ä" {
                assert!(!LABEL_KEY.accepts(value) && !LABEL_VALUE.accepts(value), "label {value:?}");
            }
        }
    }

    #[test]
    fn googles_names_pass() -> Result<(), Error> {
        for project in ["shop-prod", "p", "123456789012", "example.com:my-project"] {
            check_project(project)?;
        }
        for location in ["us-central1", "europe-west4", "global"] {
            Location::parse(location)?;
        }
        for version in ["latest", "1", "prod", "blue_green-2"] {
            VERSION.check(version)?;
        }
        SECRET_ID.check("db_password-2")?;
        check_service_account("reader@shop-prod.iam.gserviceaccount.com")?;
        check_service_account("projects/-/serviceAccounts/mid@p.iam.gserviceaccount.com")?;
        check_service_account("112233445566778899")?;
        for hostile in ["x@p.iam.gserviceaccount.com:signBlob?", "../x@p", "x@p/../y", "x@p#", "x@p%2f", ""] {
            assert!(check_service_account(hostile).is_err(), "{hostile:?}");
        }
        SECRET_PREFIX.check("")?;
        LABEL_KEY.check("team")?;
        LABEL_VALUE.check("")?;
        LABEL_VALUE.check("ä-1")?;
        assert!(!LABEL_KEY.accepts("Team") && !LABEL_KEY.accepts("1team"));
        let long = Location::parse(&"l".repeat(31)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(long.contains("location length exceeds limit"), "{long}");
        Ok(())
    }
}

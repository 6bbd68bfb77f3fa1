//! The admin policy: which namespace (and service account) may read which objects, checked
//! before any token exchange or cloud read, for every backend alike.
//!
//! ```yaml
//! defaultAction: allow          # or deny
//! rules:
//!   - namespaces: ["team-a-*"]  # globs; optional serviceAccounts: [...]
//!     allow:
//!       aws:   ["arn:aws:secretsmanager:*:111122223333:secret:team-a/*", "team-a/*", "/team-a/*"]
//!       azure: ["kv-team-a/*"]
//!       gcp:   ["projects/team-a-prod/secrets/*"]
//!       awsRoles: ["arn:aws:iam::444455556666:role/team-a-*"]   # assumeRoleArn
//! ```
//!
//! The first rule whose namespaces (and service accounts, when it names any) match decides:
//! the object is allowed when one of that rule's patterns for the backend matches it, denied
//! otherwise. No matching rule: the default action. Patterns match the object as the backend
//! resolves it ([`crate::Validation::reads`]); `*` matches any run of characters (`/` and `:`
//! included) and `?` any one character.
//!
//! A role an SPC assumes (`assumeRoleArn`) is decided the same way against the rule's
//! `awsRoles` patterns: with a policy in force, a rule that lists none allows none. Objects read
//! as an assumed role are named as ARNs in the role's account (the AWS backend resolves them),
//! so a name pattern written for the node's own account does not reach another account.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::error::Error;

/// What happens to an object no rule speaks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default_action: Action,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleFile {
    namespaces: Vec<String>,
    #[serde(default)]
    service_accounts: Option<Vec<String>>,
    #[serde(default)]
    allow: BTreeMap<String, Vec<String>>,
}

/// One rule: who it is for, and what they may read per backend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    namespaces: Vec<String>,
    service_accounts: Option<Vec<String>>,
    allow: BTreeMap<String, Vec<String>>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    default_action: Action,
    rules: Vec<Rule>,
}

/// Who asks: the mounting pod's namespace and service account.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
}

/// Why an object was denied, for the error and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Rule N (1-based, as a person counts them in the file) matched and allows none of it.
    Rule(usize),
    /// No rule matched and the default action is deny.
    Default,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule(number) => write!(f, "rule {number} applies and allows no pattern matching it"),
            Self::Default => f.write_str("no rule applies and defaultAction is deny"),
        }
    }
}

/// Backends a rule may name (another name is a typo: refused, as an unknown key would be).
pub const BACKENDS: [&str; 3] = ["aws", "azure", "gcp"];

/// The key of a rule's `allow` that lists the IAM roles an SPC may assume (`assumeRoleArn`).
pub const AWS_ROLES: &str = "awsRoles";

impl Policy {
    /// Parses the policy file's YAML; every problem is an `InvalidConfig` saying where.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        let file: PolicyFile =
            serde_norway::from_str(yaml).map_err(|e| Error::invalid_config(format!("policy: {e}")))?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (index, rule) in file.rules.into_iter().enumerate() {
            let number = index + 1;
            if rule.namespaces.is_empty() {
                return Err(Error::invalid_config(format!("policy: rule {number} names no namespaces")));
            }
            if let Some(unknown) = rule
                .allow
                .keys()
                .find(|backend| !BACKENDS.contains(&backend.as_str()) && backend.as_str() != AWS_ROLES)
            {
                return Err(Error::invalid_config(format!(
                    "policy: rule {number} allows objects of an unknown backend {unknown:?} (known: {}, and {AWS_ROLES} for assumeRoleArn)",
                    BACKENDS.join(", ")
                )));
            }
            rules.push(Rule {
                namespaces: rule.namespaces,
                service_accounts: rule.service_accounts,
                allow: rule.allow,
            });
        }
        Ok(Self { default_action: file.default_action, rules })
    }

    /// Whether `requester` may read `object` (as `backend` resolves it).
    pub fn decide(&self, backend: &str, requester: Requester<'_>, object: &str) -> Result<(), Denial> {
        self.decide_under(backend, requester, object)
    }

    /// Whether `requester` may assume the IAM role `role_arn` (`assumeRoleArn`).
    pub fn decide_role(&self, requester: Requester<'_>, role_arn: &str) -> Result<(), Denial> {
        self.decide_under(AWS_ROLES, requester, role_arn)
    }

    /// The first rule for `requester` decides by its patterns under `key`; none: the default.
    fn decide_under(&self, key: &str, requester: Requester<'_>, object: &str) -> Result<(), Denial> {
        let applies = |rule: &Rule| {
            rule.namespaces.iter().any(|pattern| glob_match(pattern, requester.namespace))
                && rule
                    .service_accounts
                    .as_ref()
                    .is_none_or(|accounts| accounts.iter().any(|p| glob_match(p, requester.service_account)))
        };
        match self.rules.iter().position(applies) {
            Some(index) => {
                let allowed = self.rules[index]
                    .allow
                    .get(key)
                    .is_some_and(|patterns| patterns.iter().any(|pattern| glob_match(pattern, object)));
                if allowed { Ok(()) } else { Err(Denial::Rule(index + 1)) }
            }
            None => match self.default_action {
                Action::Allow => Ok(()),
                Action::Deny => Err(Denial::Default),
            },
        }
    }
}

impl Policy {
    /// The objects of `reads` that `requester` may not read from `backend`, one
    /// `PermissionDenied` each, naming the object, the namespace, the service account and the
    /// policy.
    pub fn denials(&self, backend: &str, requester: Requester<'_>, reads: &[String]) -> Vec<Error> {
        reads
            .iter()
            .filter_map(|object| {
                self.decide(backend, requester, object).err().map(|denial| {
                    Error::permission_denied(format!(
                        "denied by policy: namespace {:?} (service account {:?}) may not read {object:?} from {backend}: {denial}",
                        requester.namespace, requester.service_account
                    ))
                    .with_object(object)
                })
            })
            .collect()
    }
}

impl Policy {
    /// The roles of `roles` that `requester` may not assume, one `PermissionDenied` each.
    pub fn role_denials(&self, requester: Requester<'_>, roles: &[String]) -> Vec<Error> {
        roles
            .iter()
            .filter_map(|role| {
                self.decide_role(requester, role).err().map(|denial| {
                    Error::permission_denied(format!(
                        "denied by policy: namespace {:?} (service account {:?}) may not assume role {role:?} ({AWS_ROLES}): {denial}",
                        requester.namespace, requester.service_account
                    ))
                    .with_object(role)
                    .with_field("assumeRoleArn")
                })
            })
            .collect()
    }
}

/// `*` matches any run of characters, `?` any one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much of the text it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
defaultAction: deny
rules:
  - namespaces: ["team-a-*"]
    serviceAccounts: ["app", "batch-?"]
    allow:
      aws: ["arn:aws:secretsmanager:*:111122223333:secret:team-a/*", "team-a/*", "/team-a/*"]
      azure: ["kv-team-a/*"]
  - namespaces: ["team-a-*"]
    allow:
      aws: ["team-a/shared/*"]
  - namespaces: ["ops"]
    allow: {}
"#;

    fn who<'a>(namespace: &'a str, service_account: &'a str) -> Requester<'a> {
        Requester { namespace, service_account }
    }

    #[test]
    fn the_first_matching_rule_decides_else_the_default() -> Result<(), Error> {
        let policy = Policy::parse(EXAMPLE)?;
        let app = who("team-a-prod", "app");
        assert_eq!(policy.decide("aws", app, "team-a/db"), Ok(()));
        assert_eq!(policy.decide("aws", app, "/team-a/param"), Ok(()));
        assert_eq!(
            policy.decide(
                "aws",
                app,
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:team-a/db-AbCdEf"
            ),
            Ok(())
        );
        assert_eq!(
            policy.decide("aws", app, "arn:aws:secretsmanager:eu-west-1:999999999999:secret:team-a/db"),
            Err(Denial::Rule(1))
        );
        assert_eq!(policy.decide("aws", app, "team-b/db"), Err(Denial::Rule(1)));
        assert_eq!(policy.decide("azure", app, "kv-team-a/db"), Ok(()));
        assert_eq!(policy.decide("azure", app, "kv-team-b/db"), Err(Denial::Rule(1)));
        assert_eq!(
            policy.decide("gcp", app, "projects/x/secrets/y"),
            Err(Denial::Rule(1)),
            "no patterns for gcp"
        );
        assert_eq!(policy.decide("aws", who("team-a-prod", "batch-7"), "team-a/db"), Ok(()));
        // Another service account of the namespace: the second rule decides, not the first.
        let other = who("team-a-prod", "web");
        assert_eq!(policy.decide("aws", other, "team-a/db"), Err(Denial::Rule(2)));
        assert_eq!(policy.decide("aws", other, "team-a/shared/token"), Ok(()));
        assert_eq!(policy.decide("aws", who("ops", "x"), "anything"), Err(Denial::Rule(3)));
        assert_eq!(policy.decide("aws", who("team-b", "app"), "team-a/db"), Err(Denial::Default));
        let open = Policy::parse("rules: []")?;
        assert_eq!(open.decide("aws", who("any", "sa"), "x"), Ok(()), "defaultAction allow by default");
        Ok(())
    }

    #[test]
    fn roles_are_allowed_only_where_a_rule_lists_them() -> Result<(), Error> {
        let policy = Policy::parse(
            "defaultAction: allow\nrules:\n  - namespaces: [team-a]\n    allow:\n      aws: ['team-a/*']\n      awsRoles: ['arn:aws:iam::444455556666:role/team-a-*']\n  - namespaces: [team-b]\n    allow: {aws: ['*']}\n",
        )?;
        let role = "arn:aws:iam::444455556666:role/team-a-reader";
        assert_eq!(policy.decide_role(who("team-a", "app"), role), Ok(()));
        assert_eq!(
            policy.decide_role(who("team-a", "app"), "arn:aws:iam::999999999999:role/cross"),
            Err(Denial::Rule(1))
        );
        // A rule that lists no role allows none; no rule: the default action.
        assert_eq!(policy.decide_role(who("team-b", "app"), role), Err(Denial::Rule(2)));
        assert_eq!(policy.decide_role(who("other", "app"), role), Ok(()));
        let denied = policy.role_denials(who("team-b", "app"), &[role.to_owned()]);
        assert!(denied[0].to_string().contains("may not assume role"), "{denied:?}");
        Ok(())
    }

    #[test]
    fn bad_policies_say_where() {
        for (yaml, words) in [
            ("defaultAction: maybe", "policy:"),
            ("rules: [{namespaces: [a], allow: {awss: [x]}}]", "unknown backend \"awss\""),
            ("rules: [{namespaces: [], allow: {}}]", "rule 1 names no namespaces"),
            ("rules: [{namespace: [a]}]", "unknown field"),
            ("defaultAction: allow\nrules: {a: 1}", "policy:"),
        ] {
            let error = Policy::parse(yaml).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(words), "{yaml}: {error}");
        }
    }

    #[test]
    fn globs() {
        for (pattern, text, matches) in [
            ("*", "", true),
            ("*", "a/b:c", true),
            ("team-a/*", "team-a/x/y", true),
            ("team-a/*", "team-b/x", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-prod", "team-a-prod", true),
            ("*-prod", "team-a-prod2", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(pattern, text), matches, "{pattern} ~ {text}");
        }
    }
}

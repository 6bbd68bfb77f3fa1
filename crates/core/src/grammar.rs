//! The grammar of names an SPC author or a cloud answer supplies, checked before the name
//! reaches a URL, a host, a header or a path.
//!
//! Whoever may create a SecretProviderClass in any namespace writes its parameters, and the
//! provider holds the node's credentials: a location pasted into a host name can send the node's
//! token to any host (`x@evil:443#`), a name with `/`, `?` or `%` can reach another API path.
//! Each backend states the grammar of what it names as a [`NameRule`] (the cloud's own rules,
//! characters and lengths) and checks every value against it at parse time, so `validate`
//! reports the same errors before anything is deployed.

use crate::Error;

/// Which characters may stand where in a name, and how long it may be.
#[derive(Debug, Clone, Copy)]
pub struct NameRule {
    /// What the name is, for the error: "a GCP location".
    pub what: &'static str,
    /// The rule in words, for the error: "lowercase letters, digits and '-', starting with a
    /// letter".
    pub words: &'static str,
    /// Shortest and longest, in characters.
    pub min: usize,
    pub max: usize,
    /// The first and last character (of a non-empty name), and every other one.
    pub first: fn(char) -> bool,
    pub middle: fn(char) -> bool,
    pub last: fn(char) -> bool,
}

/// Longest part of a refused name quoted in an error: the name is the SPC author's (or the
/// cloud's) text, shown escaped and cut so that an error stays one readable line.
const SHOWN: usize = 80;

impl NameRule {
    /// Whether `name` follows the rule.
    pub fn accepts(&self, name: &str) -> bool {
        let count = name.chars().count();
        if count < self.min || count > self.max {
            return false;
        }
        let mut chars = name.chars();
        let Some(first) = chars.next() else { return true };
        let last = chars.next_back();
        (self.first)(first) && chars.all(self.middle) && last.is_none_or(self.last)
    }

    /// `Ok` when `name` follows the rule, else an `InvalidConfig` error that names the rule
    /// (the caller adds the object and the field).
    pub fn check(&self, name: &str) -> Result<(), Error> {
        if self.accepts(name) {
            Ok(())
        } else {
            Err(Error::invalid_config(format!(
                "{} is not {}: {}, {}",
                shown(name),
                self.what,
                self.words,
                self.length_words()
            )))
        }
    }

    fn length_words(&self) -> String {
        if self.min == self.max {
            format!("{} characters", self.min)
        } else {
            format!("{} to {} characters", self.min, self.max)
        }
    }
}

/// `name` as an error quotes it: escaped (`{:?}`, so control characters and quotes are visible),
/// cut after [`SHOWN`] characters.
pub fn shown(name: &str) -> String {
    match name.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}…", &name[..cut]),
        None => format!("{name:?}"),
    }
}

/// `a`–`z`.
pub fn lower(c: char) -> bool {
    c.is_ascii_lowercase()
}

/// `a`–`z`, `0`–`9`.
pub fn lower_or_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `a`–`z`, `0`–`9`, `-`.
pub fn lower_digit_or_hyphen(c: char) -> bool {
    lower_or_digit(c) || c == '-'
}

/// `A`–`Z`, `a`–`z`, `0`–`9`.
pub fn alphanumeric(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `A`–`Z`, `a`–`z`, `0`–`9`, `-`, `_`.
pub fn word_or_hyphen(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `A`–`Z`, `a`–`z`, `0`–`9`, `-`.
pub fn alphanumeric_or_hyphen(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// `0`–`9`.
pub fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// One label of a DNS name (RFC 1123): what may stand between two dots of a host name.
pub const DNS_LABEL: NameRule = NameRule {
    what: "a DNS label",
    words: "lowercase letters, digits and '-', starting and ending with a letter or digit",
    min: 1,
    max: 63,
    first: lower_or_digit,
    middle: lower_digit_or_hyphen,
    last: lower_or_digit,
};

#[cfg(test)]
mod tests {
    use super::*;

    const LOCATION: NameRule = NameRule {
        what: "a location",
        words: "lowercase letters, digits and '-'",
        min: 2,
        max: 30,
        first: lower,
        middle: lower_digit_or_hyphen,
        last: lower_or_digit,
    };

    #[test]
    fn names_follow_their_rule_or_are_refused_naming_it() {
        assert!(LOCATION.accepts("us-central1"));
        assert!(LOCATION.accepts("eu"));
        for hostile in [
            "x@127.0.0.1:5443#",
            "us-central1.evil.example",
            "us/central1",
            "us?x",
            "us%2f",
            "us central1",
            "us\ncentral1",
            "üs-central1",
            "-us",
            "us-",
            "1us",
            "u",
            "",
            &"l".repeat(31),
        ] {
            assert!(!LOCATION.accepts(hostile), "{hostile:?}");
            let message = LOCATION.check(hostile).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains("is not a location") && message.contains("2 to 30 characters"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_refused_name_is_quoted_escaped_and_cut() {
        let long = format!("{}\n", "a".repeat(200));
        let message = DNS_LABEL.check(&long).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&format!("{:?}…", "a".repeat(SHOWN))), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert_eq!(shown("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn dns_labels() {
        assert!(DNS_LABEL.accepts("vault-1"));
        assert!(DNS_LABEL.accepts("0a"));
        assert!(!DNS_LABEL.accepts("Vault"));
        assert!(!DNS_LABEL.accepts("a.b"));
        assert!(!DNS_LABEL.accepts(&"a".repeat(64)));
    }
}

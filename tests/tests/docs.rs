//! Every error message the provider can emit is documented in docs/troubleshooting.md: the
//! sources are scanned for error constructors and `#[error("...")]` attributes, and the longest
//! fixed part of each message must appear in the page. A new message without docs fails here.

use std::path::{Path, PathBuf};

const CONSTRUCTORS: [&str; 9] = [
    "Error::invalid_config(",
    "Error::not_found(",
    "Error::permission_denied(",
    "Error::throttled(",
    "Error::unavailable(",
    "Error::deadline_exceeded(",
    "Error::internal(",
    "Error::new(",
    "#[error(",
];

/// Messages built as text before they become an error (a parser's `Err(format!(..))`, a
/// `map_err(|e| format!(..))`, a CLI value parser's `Err("..")`): the literal right after one of
/// these, on the same line.
const BUILT_MESSAGES: [&str; 5] = ["Err(format!(", "| format!(", "|| format!(", "Err(\"", "ok_or(\""];

/// Where a built message starts: only in a call that turns it into the error (`map_err`,
/// `ok_or_else`, `Err`), not a closure that names something (`let at = || format!("objects[{i}]")`).
fn builds_an_error(line_before: &str, pattern: &str) -> bool {
    match pattern {
        "| format!(" | "|| format!(" => {
            line_before.contains("map_err(") || line_before.contains("ok_or_else(")
        }
        _ => true,
    }
}

/// Shorter fixed parts ("{code}: {message}") say nothing a reader could search for.
const MIN_FRAGMENT: usize = 12;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sources(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The Rust string literal starting at `text[0] == '"'`, unescaped, line continuations folded.
fn literal(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars().skip(1).peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                'n' => out.push('\n'),
                other => out.push(other),
            },
            other => out.push(other),
        }
    }
    None
}

/// The longest part of a format string outside `{...}` placeholders.
fn longest_fixed_part(format: &str) -> String {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, depth) {
            ('{', _) if chars.peek() == Some(&'{') => {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('{');
                }
            }
            ('}', 0) if chars.peek() == Some(&'}') => {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('}');
                }
            }
            ('{', _) => {
                depth += 1;
                parts.push(String::new());
            }
            ('}', _) if depth > 0 => depth -= 1,
            (c, 0) => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
            _ => {}
        }
    }
    parts
        .into_iter()
        .map(|p| p.trim_matches(|c: char| c.is_whitespace() || ":;,.()\"'".contains(c)).to_owned())
        .max_by_key(String::len)
        .unwrap_or_default()
}

/// (file, fixed part) of every error message in the non-test sources.
fn messages() -> Result<Vec<(String, String)>, std::io::Error> {
    let mut files = Vec::new();
    sources(&workspace().join("crates"), &mut files)?;
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        // Unit tests sit at the end of each file, after `#[cfg(test)]`.
        let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
        for constructor in CONSTRUCTORS {
            for (at, _) in code.match_indices(constructor) {
                let rest = &code[at + constructor.len()..];
                let window = &rest[..rest.len().min(400)];
                // The message is the first literal of the call, before the statement ends.
                let Some(quote) = window.find('"') else { continue };
                if window[..quote].contains(';') || window[..quote].contains("=>") {
                    continue;
                }
                let Some(message) = literal(&window[quote..]) else { continue };
                let fixed = longest_fixed_part(&message);
                if fixed.len() >= MIN_FRAGMENT {
                    let name = file.strip_prefix(workspace()).unwrap_or(&file).display().to_string();
                    found.push((name, fixed));
                }
            }
        }
        let in_src = file.components().any(|c| c.as_os_str() == "src");
        for pattern in BUILT_MESSAGES.iter().filter(|_| in_src) {
            for (at, _) in code.match_indices(pattern) {
                let line_start = code[..at].rfind('\n').map_or(0, |i| i + 1);
                if !builds_an_error(&code[line_start..at + pattern.len()], pattern) {
                    continue;
                }
                let rest = &code[at + pattern.len() - usize::from(pattern.ends_with('"'))..];
                let Some(message) = rest.starts_with('"').then(|| literal(rest)).flatten() else { continue };
                let fixed = longest_fixed_part(&message);
                if fixed.len() >= MIN_FRAGMENT {
                    let name = file.strip_prefix(workspace()).unwrap_or(&file).display().to_string();
                    found.push((name, fixed));
                }
            }
        }
    }
    Ok(found)
}

#[test]
fn every_error_message_is_in_the_troubleshooting_page() -> Result<(), Box<dyn std::error::Error>> {
    let page = std::fs::read_to_string(workspace().join("docs/troubleshooting.md"))?;
    let messages = messages()?;
    assert!(messages.len() > 80, "the scan finds the provider's messages ({} found)", messages.len());
    // Messages built as text first are seen too (`is not a duration like`, a CLI value parser's).
    assert!(
        messages.iter().any(|(_, fixed)| fixed.contains("is not a duration like")),
        "the scan sees messages built before they become errors"
    );
    let missing: Vec<String> = messages
        .iter()
        .filter(|(_, fixed)| !page.contains(fixed.as_str()))
        .map(|(file, fixed)| format!("{file}: {fixed}"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} messages are not in docs/troubleshooting.md:\n{}",
        missing.len(),
        missing.join("\n")
    );
    Ok(())
}

#[test]
fn the_scanner_reads_format_strings() {
    assert_eq!(literal("\"a \\\"b\\\" \\\n     c\" rest").as_deref(), Some("a \"b\" c"));
    assert_eq!(
        longest_fixed_part("{region}: Failed fetching secret {name}: {failure}"),
        "Failed fetching secret"
    );
    assert_eq!(longest_fixed_part("bad {{x}} value {v:?}"), "bad {x} value");
}

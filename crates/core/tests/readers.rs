//! Round trip of the `dotenv` and `properties` writers through the readers applications use:
//! python-dotenv and bash's `source` for dotenv, jproperties (Java's `Properties.load` rules)
//! for properties (tests/peers/readers.py, in the `.venv` the test command sets up). Values are
//! generated from the characters that need quoting or escaping; every value the dotenv writer
//! accepts must read back the same in both readers, and every value it refuses must be one of
//! the kinds docs/shaping-files.md lists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use csi_secrets_provider_core::shaping::{FilesSpec, shape};
use csi_secrets_provider_core::{FileMode, MountResponse, MountedFile, ObjectVersion};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Characters that mean something to a shell, a dotenv parser or a properties parser, and some
/// that are not ASCII.
const ALPHABET: &[char] = &[
    'a', 'Z', '0', '_', '-', ' ', '\'', '"', '\\', '$', '`', '#', '=', ':', '!', '{', '}', '(', ')', '*',
    '\t', '\n', '\r', '\u{c}', '\u{1}', 'é', '€', '😀', '%', ';', '&', '|', '<', '>', '~', '^',
];

/// A deterministic stream of test strings (xorshift), so a failure reproduces.
fn generated(count: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut values = vec![
        String::new(),
        " leading and trailing ".to_owned(),
        "it's".to_owned(),
        "say \"hi\"".to_owned(),
        "back\\slash".to_owned(),
        "ends with backslash\\".to_owned(),
        "$HOME and `date`".to_owned(),
        "${HOME".to_owned(),
        "line one\nline two\n".to_owned(),
        "#not a comment".to_owned(),
        "x=y:z".to_owned(),
        "ünïcødé € 😀".to_owned(),
    ];
    while values.len() < count {
        let len = usize::try_from(next() % 24).unwrap_or(0);
        let value: String = (0..len)
            .map(|_| ALPHABET[usize::try_from(next() % ALPHABET.len() as u64).unwrap_or(0)])
            .collect();
        values.push(value);
    }
    values
}

fn python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    if python.exists() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing: run scripts/test.sh once (it creates .venv with python-dotenv and jproperties)",
            python.display()
        ))
    }
}

/// Shapes one `format` file from a single JSON object holding `pairs`.
fn write(format: &str, pairs: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut object = serde_json::Map::new();
    for (key, value) in pairs {
        object.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    let json = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    let files = FilesSpec::parse(Some(&format!("- path: out\n  format: {format}\n  from: [src]\n")))
        .map_err(|e| format!("{e:?}"))?;
    let mut response = MountResponse {
        files: vec![MountedFile::new("src", FileMode::DEFAULT, json)],
        versions: vec![ObjectVersion::new("src", "1")],
        ..MountResponse::default()
    };
    shape(&mut response, &files, FileMode::DEFAULT, 1 << 22).map_err(|e| e.to_string())?;
    let out = response.files.iter().find(|f| f.path == "out").ok_or("no out file")?;
    Ok(out.contents.expose().to_vec())
}

/// What docs/shaping-files.md says the dotenv writer refuses, checked independently of it.
fn documented_refusal(value: &str) -> bool {
    let quote_or_backslash = value.contains('\'') || value.contains('\\');
    let expands = value.contains('$') || value.contains('`');
    let braces = value.find("${").is_some_and(|at| value[at..].contains('}'));
    value.contains('\0') || value.contains('\r') || braces || (quote_or_backslash && expands)
}

#[test]
fn dotenv_and_properties_read_back_alike_in_real_readers() -> TestResult {
    let python = python()?;
    let values = generated(600, 0x9e37_79b9_7f4a_7c15);
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut refused = 0;
    for (i, value) in values.iter().enumerate() {
        let key = format!("K{i}");
        match write("dotenv", &[(key.clone(), value.clone())]) {
            Ok(_) => {
                assert!(!documented_refusal(value), "accepted a value the docs say is refused: {value:?}");
                accepted.push((key, value.clone()));
            }
            Err(error) => {
                assert!(documented_refusal(value), "refused {value:?}: {error}");
                assert!(error.contains(&format!("key \"{key}\"")), "the error names the key: {error}");
                refused += 1;
            }
        }
    }
    assert!(accepted.len() > 300 && refused > 20, "{} accepted, {refused} refused", accepted.len());

    // Properties keys may hold anything: use the values as keys too.
    let mut properties: Vec<(String, String)> =
        values.iter().enumerate().map(|(i, v)| (format!("{v}#{i}"), v.clone())).collect();
    properties.retain(|(_, v)| !v.contains('\0'));

    let dir = tempfile_dir()?;
    let dotenv_path = dir.join("app.env");
    let properties_path = dir.join("app.properties");
    std::fs::write(&dotenv_path, write("dotenv", &accepted)?)?;
    std::fs::write(&properties_path, write("properties", &properties)?)?;
    let output = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/readers.py"))
        .args([&dotenv_path, &properties_path])
        .output()?;
    assert!(output.status.success(), "readers.py: {}", String::from_utf8_lossy(&output.stderr));
    let read: BTreeMap<String, BTreeMap<String, Option<String>>> = serde_json::from_slice(&output.stdout)?;
    let expected: BTreeMap<String, Option<String>> =
        accepted.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    for reader in ["dotenv", "bash"] {
        let got = read.get(reader).cloned().unwrap_or_default();
        for (key, value) in &expected {
            assert_eq!(got.get(key), Some(value), "{reader} read {key} differently");
        }
        let extra: Vec<&String> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
        assert!(extra.is_empty(), "{reader} read other variables: {extra:?}");
    }
    let got = read.get("properties").cloned().unwrap_or_default();
    for (key, value) in &properties {
        assert_eq!(got.get(key), Some(&Some(value.clone())), "jproperties read {key:?} differently");
    }
    assert_eq!(got.len(), properties.len());
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("csi-readers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

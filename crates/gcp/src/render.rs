//! A secret's payload as files: whole, one key of a JSON or YAML payload (`extractJSONKey`,
//! `extractYAMLKey`, the GCP provider's), or with `jmesPath` entries (this provider's).

use csi_secrets_provider_core::kit::Rendered;
use csi_secrets_provider_core::{Error, MountedFile, ObjectVersion, SecretBytes, jmes};

use crate::params::{Extract, SecretSpec};
use crate::secret_manager::Accessed;

/// The files of `secret`, each with the resolved version name.
pub fn render(secret: &SecretSpec, accessed: &Accessed) -> Result<Rendered, Error> {
    let object = &secret.resource_name;
    let contents = match &secret.extract {
        Extract::Whole => accessed.data.clone(),
        Extract::JsonKey(key) => {
            let value: serde_json::Value = serde_json::from_slice(accessed.data.expose()).map_err(|e| {
                Error::invalid_config(format!(
                    "failed to unmarshal JSON: {e}. Invalid JSON format for key extraction"
                ))
                .with_object(object)
                .with_field("extractJSONKey")
            })?;
            SecretBytes::new(string_at(
                value.get(key.as_str()).map(json_text),
                key,
                "JSON",
                object,
                "extractJSONKey",
            )?)
        }
        Extract::YamlKey(key) => {
            let unmarshal = |e: &dyn std::fmt::Display| {
                Error::invalid_config(format!(
                    "failed to unmarshal YAML: {e}. Invalid YAML format for key extraction"
                ))
                .with_object(object)
                .with_field("extractYAMLKey")
            };
            // A secret's value is the cloud's: its aliases may not expand past its length.
            let text = std::str::from_utf8(accessed.data.expose()).map_err(|e| unmarshal(&e))?;
            let value = csi_secrets_provider_core::yaml::parse(text).map_err(|e| unmarshal(&e))?;
            SecretBytes::new(string_at(
                value.get(key.as_str()).map(yaml_text),
                key,
                "YAML",
                object,
                "extractYAMLKey",
            )?)
        }
    };
    let extracted = jmes::extract(object, &contents, &secret.jmes)?;
    let mut rendered = Rendered::file(
        MountedFile::new(secret.file_name.clone(), secret.mode, contents).shaped(object, secret.shape),
        ObjectVersion::new(object.clone(), accessed.name.clone()),
    );
    for (entry, value) in secret.jmes.iter().zip(extracted) {
        rendered.push(
            MountedFile::new(entry.file_name.clone(), entry.mode, value).shaped(object, entry.shape()),
            ObjectVersion::new(format!("{object}/{}", entry.alias), accessed.name.clone()),
        );
    }
    Ok(rendered)
}

/// A top-level value as the GCP provider accepts it: a string only.
enum Found {
    Text(String),
    Other,
}

fn json_text(value: &serde_json::Value) -> Found {
    value.as_str().map_or(Found::Other, |s| Found::Text(s.to_owned()))
}

fn yaml_text(value: &serde_norway::Value) -> Found {
    value.as_str().map_or(Found::Other, |s| Found::Text(s.to_owned()))
}

fn string_at(
    found: Option<Found>,
    key: &str,
    format: &str,
    object: &str,
    field: &str,
) -> Result<Vec<u8>, Error> {
    match found {
        Some(Found::Text(text)) => Ok(text.into_bytes()),
        Some(Found::Other) => Err(Error::invalid_config(format!("unsupported value type for key '{key}'"))
            .with_object(object)
            .with_field(field)),
        None => Err(Error::not_found(format!("key '{key}' not found in {format}"))
            .with_object(object)
            .with_field(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::parse;
    use csi_secrets_provider_core::{FileMode, Parameters};

    fn secret(extra: &str) -> Result<SecretSpec, Error> {
        let parameters: Parameters = [(
            "secrets".to_owned(),
            format!("- resourceName: projects/p/secrets/s/versions/1\n  path: out\n{extra}"),
        )]
        .into_iter()
        .collect();
        let spec = parse(&parameters, FileMode::DEFAULT)
            .map_err(|e| Error::combine(e).unwrap_or_else(|| Error::internal("?")))?;
        spec.secrets.into_iter().next().ok_or_else(|| Error::internal("no secret"))
    }

    fn accessed(data: &str) -> Accessed {
        Accessed {
            data: SecretBytes::new(data.as_bytes().to_vec()),
            name: "projects/123/secrets/s/versions/1".to_owned(),
        }
    }

    fn text(rendered: &Rendered, index: usize) -> String {
        String::from_utf8_lossy(rendered.files[index].contents.expose()).into_owned()
    }

    #[test]
    fn keys_of_json_and_yaml_payloads() -> Result<(), Error> {
        let json =
            render(&secret("  extractJSONKey: url\n")?, &accessed(r#"{"url":"https://db","port":5432}"#))?;
        assert_eq!(text(&json, 0), "https://db");
        assert_eq!(
            json.versions[0],
            ObjectVersion::new("projects/p/secrets/s/versions/1", "projects/123/secrets/s/versions/1")
        );
        let yaml = render(&secret("  extractYAMLKey: user\n")?, &accessed("user: admin\nport: 5432\n"))?;
        assert_eq!(text(&yaml, 0), "admin");
        let not_string = render(&secret("  extractJSONKey: port\n")?, &accessed(r#"{"port":5432}"#))
            .err()
            .map(|e| e.to_string());
        assert!(not_string.is_some_and(|m| m.contains("unsupported value type for key 'port'")));
        let missing =
            render(&secret("  extractJSONKey: nope\n")?, &accessed("{}")).err().map(|e| e.to_string());
        assert!(missing.is_some_and(|m| m.contains("key 'nope' not found in JSON")));
        let bad =
            render(&secret("  extractJSONKey: x\n")?, &accessed("not json")).err().map(|e| e.to_string());
        assert!(
            bad.is_some_and(
                |m| m.contains("Invalid JSON format for key extraction") && !m.contains("not json")
            )
        );
        Ok(())
    }

    #[test]
    fn jmes_path_entries_write_their_own_files() -> Result<(), Error> {
        let spec = secret("  jmesPath:\n    - {path: db.user, objectAlias: user}\n")?;
        let rendered = render(&spec, &accessed(r#"{"db":{"user":"u1"}}"#))?;
        assert_eq!((rendered.files[1].path.as_str(), text(&rendered, 1).as_str()), ("user", "u1"));
        Ok(())
    }
}

//! SecretProviderClass manifests as users write them (full Kubernetes YAML, several documents),
//! for `validate` and `mount`. The server never sees these: the driver sends parameters.

use serde_norway::Value;

use crate::error::Error;
use crate::parameters::Parameters;

pub const KIND: &str = "SecretProviderClass";
const API_VERSIONS: [&str; 2] = ["secrets-store.csi.x-k8s.io/v1", "secrets-store.csi.x-k8s.io/v1alpha1"];

/// A SecretProviderClass, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub struct SecretProviderClass {
    pub name: String,
    pub namespace: Option<String>,
    pub provider: String,
    pub parameters: Parameters,
    pub secret_objects: Vec<SecretObject>,
}

/// `spec.secretObjects[]`: a Kubernetes Secret the driver syncs from mounted files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretObject {
    pub secret_name: String,
    pub secret_type: String,
    /// `(objectName, key)`: objectName is a mounted file name.
    pub data: Vec<(String, String)>,
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub enum Document {
    /// A SecretProviderClass and the problems of its shape (not of its parameters).
    SecretProviderClass { spc: SecretProviderClass, problems: Vec<Error> },
    /// Another kind of object; `validate` skips it.
    Other { kind: String },
    /// An empty document (`---` with nothing after it).
    Empty,
}

/// Splits a file into documents. A YAML syntax error ends the file: what follows it cannot be
/// read reliably.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, Error> {
    let mut documents = Vec::new();
    for (index, document) in crate::yaml::parse_each(text).enumerate() {
        let value = document
            .map_err(|e| Error::invalid_config(format!("document {}: YAML syntax error: {e}", index + 1)))?;
        // `kubectl get secretproviderclasses -A -o yaml` prints one `kind: List` of them.
        match value.get("kind").and_then(Value::as_str) {
            Some("List") => {
                let items =
                    value.get("items").and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or_default();
                documents.extend(items.iter().map(Document::from_value));
            }
            _ => documents.push(Document::from_value(&value)),
        }
    }
    Ok(documents)
}

impl Document {
    fn from_value(value: &Value) -> Self {
        if value.is_null() {
            return Self::Empty;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != KIND {
            return Self::Other {
                kind: if kind.is_empty() { "<no kind>".to_owned() } else { kind.to_owned() },
            };
        }
        let mut problems = Vec::new();
        let mut spc = SecretProviderClass::default();
        match value.get("apiVersion").and_then(Value::as_str) {
            Some(version) if API_VERSIONS.contains(&version) => {}
            other => problems.push(
                Error::invalid_config(format!(
                    "apiVersion {:?} is not one of {}",
                    other.unwrap_or_default(),
                    API_VERSIONS.join(", ")
                ))
                .with_field("apiVersion"),
            ),
        }
        let metadata = value.get("metadata");
        match metadata.and_then(|m| m.get("name")).and_then(Value::as_str) {
            Some(name) if !name.trim().is_empty() => spc.name = name.to_owned(),
            _ => {
                problems.push(Error::invalid_config("metadata.name is required").with_field("metadata.name"))
            }
        }
        spc.namespace = metadata.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_owned);
        let Some(spec) = value.get("spec").filter(|s| s.is_mapping()) else {
            problems.push(Error::invalid_config("spec is required and must be a mapping").with_field("spec"));
            return Self::SecretProviderClass { spc, problems };
        };
        match spec.get("provider").and_then(Value::as_str).map(str::trim) {
            Some(provider) if !provider.is_empty() => spc.provider = provider.to_owned(),
            _ => problems.push(
                Error::invalid_config("spec.provider is required (for example aws or azure)")
                    .with_field("spec.provider"),
            ),
        }
        match spec.get("parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(map)) => {
                let mut parameters = Parameters::default();
                for (key, value) in map {
                    let Some(key) = key.as_str() else {
                        problems.push(
                            Error::invalid_config("a parameter name is not a string")
                                .with_field("spec.parameters"),
                        );
                        continue;
                    };
                    match value {
                        Value::String(s) => parameters.insert(key, s.as_str()),
                        // Kubernetes types parameters as map[string]string: the API server
                        // refuses an unquoted `true` or `5`, so say so here.
                        other => problems.push(
                            Error::invalid_config(format!(
                                "must be a string; quote it (got {})",
                                yaml_type(other)
                            ))
                            .with_field(format!("spec.parameters.{key}")),
                        ),
                    }
                }
                spc.parameters = parameters;
            }
            Some(_) => problems
                .push(Error::invalid_config("must be a mapping of strings").with_field("spec.parameters")),
        }
        spc.secret_objects = parse_secret_objects(spec.get("secretObjects"), &mut problems);
        Self::SecretProviderClass { spc, problems }
    }
}

fn parse_secret_objects(value: Option<&Value>, problems: &mut Vec<Error>) -> Vec<SecretObject> {
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            problems.push(Error::invalid_config("must be a list").with_field("spec.secretObjects"));
            return Vec::new();
        }
    };
    let mut objects = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("spec.secretObjects[{i}].{name}");
        let text =
            |name: &str| item.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let mut object = SecretObject::default();
        match text("secretName") {
            Some(name) => object.secret_name = name.to_owned(),
            None => {
                problems.push(Error::invalid_config("secretName is required").with_field(field("secretName")))
            }
        }
        match text("type") {
            Some(t) => object.secret_type = t.to_owned(),
            None => problems.push(
                Error::invalid_config("type is required (for example Opaque)").with_field(field("type")),
            ),
        }
        for (j, entry) in item.get("data").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
            let get =
                |name: &str| entry.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
            match (get("objectName"), get("key")) {
                (Some(object_name), Some(key)) => object.data.push((object_name.to_owned(), key.to_owned())),
                _ => problems.push(
                    Error::invalid_config("objectName and key are both required")
                        .with_field(field(&format!("data[{j}]"))),
                ),
            }
        }
        objects.push(object);
    }
    objects
}

fn yaml_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_DOCS: &str = r#"
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-kv
  namespace: shop
spec:
  provider: azure
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - objectName: SQL_PASSWORD
          key: password
  parameters:
    keyvaultName: "kv"
    objects: |
      array:
        - |
          objectName: sql-password
          objectType: secret
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
"#;

    #[test]
    fn reads_spc_and_skips_other_documents() -> Result<(), Error> {
        let docs = parse_documents(TWO_DOCS)?;
        assert_eq!(docs.len(), 3);
        let Document::SecretProviderClass { spc, problems } = &docs[0] else {
            panic!("first document is the SPC: {docs:?}");
        };
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spc.name, "azure-kv");
        assert_eq!(spc.namespace.as_deref(), Some("shop"));
        assert_eq!(spc.provider, "azure");
        assert_eq!(spc.parameters.get("keyvaultName"), Some("kv"));
        assert!(spc.parameters.get("objects").is_some_and(|o| o.contains("array:")));
        assert_eq!(spc.secret_objects[0].data, [("SQL_PASSWORD".to_owned(), "password".to_owned())]);
        assert!(matches!(docs[1], Document::Empty));
        assert!(matches!(&docs[2], Document::Other { kind } if kind == "ConfigMap"));
        Ok(())
    }

    #[test]
    fn reports_shape_problems_with_fields() -> Result<(), Error> {
        let docs = parse_documents(
            "apiVersion: v1\nkind: SecretProviderClass\nmetadata: {}\nspec:\n  parameters:\n    usePodIdentity: true\n  secretObjects:\n    - data: [{objectName: a}]\n",
        )?;
        let Document::SecretProviderClass { problems, .. } = &docs[0] else {
            panic!("an SPC: {docs:?}");
        };
        let fields: Vec<_> = problems.iter().filter_map(Error::field).collect();
        assert_eq!(
            fields,
            [
                "apiVersion",
                "metadata.name",
                "spec.provider",
                "spec.parameters.usePodIdentity",
                "spec.secretObjects[0].secretName",
                "spec.secretObjects[0].type",
                "spec.secretObjects[0].data[0]"
            ]
        );
        Ok(())
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(parse_documents("kind: [").is_err());
    }

    #[test]
    fn a_kubectl_list_is_read_item_by_item() -> Result<(), Error> {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {name: a, namespace: x}\n  spec: {provider: aws, parameters: {objects: ''}}\n- apiVersion: secrets-store.csi.x-k8s.io/v1\n  kind: SecretProviderClass\n  metadata: {name: b}\n  spec: {provider: gcp, parameters: {secrets: ''}}\nmetadata: {resourceVersion: ''}\n";
        let documents = parse_documents(list)?;
        let names: Vec<&str> = documents
            .iter()
            .filter_map(|d| match d {
                Document::SecretProviderClass { spc, .. } => Some(spc.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
        Ok(())
    }
}

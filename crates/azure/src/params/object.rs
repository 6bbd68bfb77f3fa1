//! One `objects.array` entry: its keys, type, format, encoding, file name and mode, and this
//! provider's own keys (`optional`, `keyvaultName`, `jmesPath`).

use csi_secrets_provider_core::jmes::{self, JmesEntry, JmesRules};
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::{Error, Fields, FileMode, FilePlan, KeyMatching, Warning};
use serde_norway::Value;

use super::{ObjectEncoding, ObjectFormat, ObjectType, vault_name_problem};

csi_secrets_provider_core::config_keys! {
    /// Keys of an `objects.array` entry. Upstream decodes them with `gopkg.in/yaml.v3`, which matches
    /// the exact spelling only; another spelling is ignored there and reported here.
    pub enum ObjectKey {
        ObjectName => "objectName",
        ObjectType => "objectType",
        ObjectAlias => "objectAlias",
        ObjectVersion => "objectVersion",
        ObjectVersionHistory => "objectVersionHistory",
        ObjectFormat => "objectFormat",
        ObjectEncoding => "objectEncoding",
        FilePermission => "filePermission",
        // This provider's own: not in the official provider, which ignores them.
        Optional => "optional",
        KeyvaultName => "keyvaultName",
        JmesPath => "jmesPath",
        WriteFile => "writeFile",
        ExpandKeys => "expandKeys",
        Decode => "decode",
        ObjectPrefix => "objectPrefix",
        Tags => "tags",
        MaxObjects => "maxObjects",
    }
}

csi_secrets_provider_core::shape_keys!(ObjectKey);

/// Upstream wraps every error about an object this way (validation and fetching alike); users'
/// alerts and runbooks search for it.
pub fn upstream_prefix(object_type: &str, name: &str, version: &str) -> String {
    format!("failed to get objectType:{object_type}, objectName:{name}, objectVersion:{version}")
}

/// One entry of `objects.array`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    pub name: String,
    pub object_type: ObjectType,
    pub alias: Option<String>,
    pub version: Option<String>,
    /// Number of versions to write as `<file>/<i>`; 0 or 1 means a single file.
    pub version_history: u32,
    pub format: ObjectFormat,
    pub encoding: ObjectEncoding,
    pub mode: FileMode,
    /// `optional: true`: a missing object (or disabled version) is skipped, not a failure.
    pub optional: bool,
    /// The object's own vault (same tenant and identity), instead of the SPC's `keyvaultName`.
    pub keyvault_name: Option<String>,
    /// Fields of a JSON secret written as files of their own.
    pub jmes: Vec<JmesEntry>,
    /// `writeFile`, `expandKeys`, `decode`: what the server makes of the object's files.
    pub shape: FileShape,
}

impl ObjectSpec {
    /// The file (or directory, with version history) name.
    pub fn file_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// The ObjectVersion id upstream reports: type and name, not alias.
    pub fn version_id(&self) -> String {
        format!("{}/{}", self.object_type.as_str(), self.name)
    }

    /// The files this object writes (before certificate splitting, which depends on the value).
    pub(super) fn add_files(&self, plan: &mut FilePlan) -> Result<(), Error> {
        if self.version_history > 1 {
            for i in 0..self.version_history {
                plan.add_shaped(&self.name, format!("{}/{i}", self.file_name()), self.mode, self.shape)?;
            }
        } else {
            plan.add_shaped(&self.name, self.file_name().to_owned(), self.mode, self.shape)?;
        }
        for entry in &self.jmes {
            plan.add_shaped(&self.name, entry.file_name.clone(), entry.mode, entry.shape())
                .map_err(|e| e.with_field("jmesPath"))?;
        }
        if self.optional {
            plan.mark_optional(&self.name);
        }
        Ok(())
    }
}

/// The string keys of an entry, read at once.
struct ObjectFields {
    name: Option<String>,
    object_type: Option<String>,
    alias: Option<String>,
    version: Option<String>,
    history: Option<String>,
    format: Option<String>,
    encoding: Option<String>,
    permission: Option<String>,
    keyvault_name: Option<String>,
}

fn read_fields(fields: &Fields<'_, ObjectKey>) -> (ObjectFields, Vec<Error>) {
    let ([name, object_type, alias, version, history, format, encoding, permission, keyvault_name], problems) =
        fields.many(
            [
                ObjectKey::ObjectName,
                ObjectKey::ObjectType,
                ObjectKey::ObjectAlias,
                ObjectKey::ObjectVersion,
                ObjectKey::ObjectVersionHistory,
                ObjectKey::ObjectFormat,
                ObjectKey::ObjectEncoding,
                ObjectKey::FilePermission,
                ObjectKey::KeyvaultName,
            ],
            Fields::trimmed,
        );
    let read = ObjectFields {
        name,
        object_type,
        alias,
        version,
        history,
        format,
        encoding,
        permission,
        keyvault_name,
    };
    (read, problems)
}

/// Problems of one entry, each prefixed as upstream does and naming the object and field.
struct Problems<'a> {
    prefix: String,
    object: &'a str,
    list: Vec<Error>,
}

impl Problems<'_> {
    fn fail(&mut self, field: &str, cause: impl std::fmt::Display) {
        self.list.push(
            Error::invalid_config(format!("{}: {cause}", self.prefix))
                .with_object(self.object)
                .with_field(field),
        );
    }
}

pub(super) fn parse_object(
    index: usize,
    entry: &Value,
    default_mode: FileMode,
    warnings: &mut Vec<Warning>,
) -> Result<ObjectSpec, Vec<Error>> {
    let fields: Fields<'_, ObjectKey> = Fields::read(entry, KeyMatching::Exact);
    let (read, read_problems) = read_fields(&fields);
    let id = read.name.clone().unwrap_or_else(|| format!("objects.array[{index}]"));
    warnings.extend(fields.unknown_keys(&id, ""));
    let mut problems = Problems {
        prefix: upstream_prefix(
            read.object_type.as_deref().unwrap_or_default(),
            read.name.as_deref().unwrap_or_default(),
            read.version.as_deref().unwrap_or_default(),
        ),
        object: &id,
        list: read_problems.into_iter().map(|e| e.or_object(&id)).collect(),
    };
    match read.name.as_deref() {
        None => problems.fail("objectName", "object name is not set"),
        Some(name) => {
            if let Err(e) = super::OBJECT_NAME.check(name) {
                problems.fail("objectName", e.message());
            }
        }
    }
    if let Some(version) = read.version.as_deref().filter(|version| !version.is_empty())
        && let Err(e) = super::OBJECT_VERSION.check(version)
    {
        problems.fail("objectVersion", e.message());
    }
    let object_type = match read.object_type.as_deref() {
        Some("secret") => Some(ObjectType::Secret),
        Some("key") => Some(ObjectType::Key),
        Some("cert") => Some(ObjectType::Cert),
        _ => {
            problems.fail("objectType", "Invalid vaultObjectTypes. Should be secret, key, or cert");
            None
        }
    };
    let format = parse_format(read.format.as_deref(), object_type, &mut problems);
    let encoding = parse_encoding(read.encoding.as_deref(), object_type, &mut problems);
    let version_history = match read.history.as_deref().map(str::parse::<u32>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            let value = read.history.as_deref().unwrap_or_default();
            problems.fail(
                "objectVersionHistory",
                format!("objectVersionHistory must be a whole number, got {value:?}"),
            );
            0
        }
    };
    let mode = match read.permission.as_deref().map(FileMode::parse_go_octal) {
        None => default_mode,
        Some(Ok(mode)) => mode,
        Some(Err(e)) => {
            problems.fail("filePermission", e.message());
            default_mode
        }
    };
    if let Some(file) = read.alias.as_deref().or(read.name.as_deref())
        && file.contains("..")
    {
        let field = if read.alias.is_some() { "objectAlias" } else { "objectName" };
        problems.fail(field, format!("file name {file:?} must not contain \"..\""));
    }
    if let Some(problem) = read.keyvault_name.as_deref().and_then(vault_name_problem) {
        problems.list.push(problem.with_object(&id));
    }
    let optional = fields.flag(ObjectKey::Optional).unwrap_or_else(|e| {
        problems.list.push(e.with_object(&id));
        false
    });
    let (shape, shape_problems) = FileShape::read(&fields);
    problems.list.extend(shape_problems.into_iter().map(|e| e.with_object(&id)));
    if shape.decode.is_some() && read.encoding.is_some() {
        // objectEncoding keeps its upstream meaning (how Key Vault holds the value); two
        // decodings of one value are one too many.
        problems.list.push(
            Error::invalid_config("objectEncoding and decode both decode the value; set one of them")
                .with_object(&id)
                .with_field("decode"),
        );
    }
    let jmes = parse_jmes(
        fields.get(ObjectKey::JmesPath),
        object_type,
        version_history,
        mode,
        warnings,
        &mut problems,
    );
    match (read.name, object_type) {
        (Some(name), Some(object_type)) if problems.list.is_empty() => Ok(ObjectSpec {
            name,
            object_type,
            alias: read.alias,
            version: read.version,
            version_history,
            format,
            encoding,
            mode,
            optional,
            keyvault_name: read.keyvault_name,
            jmes,
            shape,
        }),
        _ => Err(problems.list),
    }
}

fn parse_format(
    value: Option<&str>,
    object_type: Option<ObjectType>,
    problems: &mut Problems<'_>,
) -> ObjectFormat {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("pem") => ObjectFormat::Pem,
        Some("pfx") => {
            // Upstream refuses only the exact `pfx` for keys and certificates (a case-sensitive
            // comparison); `PFX` passes there and changes nothing for them.
            if value == Some("pfx") && object_type.is_some_and(|t| t != ObjectType::Secret) {
                problems.fail("objectFormat", "objectFormat pfx is only supported for objectType secret");
            }
            ObjectFormat::Pfx
        }
        Some(other) => {
            problems.fail("objectFormat", format!("invalid objectFormat: {other}, should be PEM or PFX"));
            ObjectFormat::Pem
        }
    }
}

fn parse_encoding(
    value: Option<&str>,
    object_type: Option<ObjectType>,
    problems: &mut Problems<'_>,
) -> ObjectEncoding {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf-8") => ObjectEncoding::Utf8,
        Some(other @ ("hex" | "base64")) => {
            if object_type.is_some_and(|t| t != ObjectType::Secret) {
                problems.fail("objectEncoding", "objectEncoding only supported for objectType secret");
            }
            if other == "hex" { ObjectEncoding::Hex } else { ObjectEncoding::Base64 }
        }
        Some(other) => {
            problems.fail(
                "objectEncoding",
                format!("invalid objectEncoding: {other}, should be hex, base64 or utf-8"),
            );
            ObjectEncoding::Utf8
        }
    }
}

/// `jmesPath` as the AWS provider has it, on secrets: entries inherit the object's permission
/// and are named by their alias (no path translation on Azure).
fn parse_jmes(
    list: Option<&Value>,
    object_type: Option<ObjectType>,
    version_history: u32,
    mode: FileMode,
    warnings: &mut Vec<Warning>,
    problems: &mut Problems<'_>,
) -> Vec<JmesEntry> {
    if list.is_none_or(Value::is_null) {
        return Vec::new();
    }
    if object_type.is_some_and(|t| t != ObjectType::Secret) {
        problems.fail("jmesPath", "jmesPath is only supported for objectType secret");
    }
    if version_history > 1 {
        problems.fail("jmesPath", "jmesPath cannot be combined with objectVersionHistory");
    }
    let rules = JmesRules {
        matching: KeyMatching::Exact,
        file_name: &|alias| alias.to_owned(),
        mode: &FileMode::parse_go_octal,
    };
    let object = problems.object;
    let entries = jmes::parse_entries(list, object, mode, &rules, warnings, &mut problems.list);
    for entry in &entries {
        if entry.file_name.contains("..") {
            problems.list.push(
                Error::invalid_config(format!("file name {:?} must not contain \"..\"", entry.file_name))
                    .with_object(object)
                    .with_field("jmesPath"),
            );
        }
    }
    entries
}

//! `mount`: one Mount in-process, built as the driver builds it, with the files written out.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use csi_secrets_provider_core::attr;
use csi_secrets_provider_core::spc::{Document, SecretProviderClass, parse_documents};
use csi_secrets_provider_core::{Error, FileMode};
use csi_secrets_provider_server::proto;
use csi_secrets_provider_server::{ProviderService, ServiceConfig};

use crate::cli::MountArgs;
use crate::registry::Registry;

/// Runs the mount and writes the files; returns the versions for display.
pub async fn run(registry: &Registry, args: &MountArgs) -> Result<Vec<proto::ObjectVersion>, Error> {
    let spc = load_spc(&args.spc, args.name.as_deref())?;
    let backend = registry.get(&spc.provider).map_err(|e| e.with_field("spec.provider"))?;
    let request = driver_request(&spc, args)?;
    let service = ProviderService::new(
        backend,
        ServiceConfig {
            max_response_bytes: args.limits.max_response_bytes,
            mount_timeout: args.limits.mount_timeout,
            ..ServiceConfig::default()
        },
    );
    let response = service.mount(request, None).await?;
    write_files(&args.target, &response.files)?;
    Ok(response.object_version)
}

fn load_spc(path: &Path, name: Option<&str>) -> Result<SecretProviderClass, Error> {
    let content = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid_config(format!("cannot read {}: {e}", path.display())))?;
    let mut candidates = Vec::new();
    for document in parse_documents(&content)? {
        if let Document::SecretProviderClass { spc, problems } = document
            && name.is_none_or(|n| n == spc.name)
        {
            if let Some(error) = Error::combine(problems) {
                return Err(error);
            }
            candidates.push(spc);
        }
    }
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(Error::invalid_config(format!(
            "{} holds no SecretProviderClass{}",
            path.display(),
            name.map(|n| format!(" named {n:?}")).unwrap_or_default()
        ))),
        n => Err(Error::invalid_config(format!(
            "{} holds {n} SecretProviderClasses; choose one with --name",
            path.display()
        ))),
    }
}

/// The MountRequest the driver would send for a pod using this SPC.
fn driver_request(spc: &SecretProviderClass, args: &MountArgs) -> Result<proto::MountRequest, Error> {
    let mut attributes: BTreeMap<String, String> =
        spc.parameters.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let namespace =
        args.namespace.clone().or_else(|| spc.namespace.clone()).unwrap_or_else(|| "default".to_owned());
    attributes.insert(attr::SPC_NAME.to_owned(), spc.name.clone());
    attributes.insert(attr::POD_NAMESPACE.to_owned(), namespace);
    attributes.insert(attr::POD_NAME.to_owned(), args.pod_name.clone());
    attributes.insert(attr::POD_UID.to_owned(), "00000000-0000-0000-0000-000000000000".to_owned());
    attributes.insert(attr::SERVICE_ACCOUNT.to_owned(), args.service_account.clone());
    attributes.insert(attr::EPHEMERAL.to_owned(), "true".to_owned());
    if !args.tokens.is_empty() {
        let mut tokens = serde_json::Map::new();
        for (audience, file) in &args.tokens {
            let token = read_trimmed(file)?;
            tokens.insert(audience.clone(), serde_json::json!({ "token": token }));
        }
        attributes
            .insert(attr::SERVICE_ACCOUNT_TOKENS.to_owned(), serde_json::Value::Object(tokens).to_string());
    }
    let secrets = if args.secrets.is_empty() {
        "null".to_owned()
    } else {
        let mut secrets = serde_json::Map::new();
        for (key, file) in &args.secrets {
            secrets.insert(key.clone(), serde_json::Value::String(read_trimmed(file)?));
        }
        serde_json::Value::Object(secrets).to_string()
    };
    let attributes = serde_json::to_string(&attributes)
        .map_err(|e| Error::internal(format!("cannot encode attributes: {e}")))?;
    Ok(proto::MountRequest {
        attributes,
        secrets,
        target_path: args.target.display().to_string(),
        permission: args.permission.clone(),
        current_object_version: Vec::new(),
    })
}

fn read_trimmed(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::invalid_config(format!("cannot read {}: {e}", path.display())))
}

/// Writes every file with its mode. Paths were checked by the service (relative, clean).
fn write_files(target: &Path, files: &[proto::File]) -> Result<(), Error> {
    let io_error =
        |path: &Path, e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    for file in files {
        let path = target.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let mode = FileMode::from_driver_mode(file.mode).map_err(|e| e.with_object(&file.path))?.bits();
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        handle.write_all(&file.contents).map_err(|e| io_error(&path, e))?;
        // The umask may have narrowed the mode at creation; the driver writes it exactly.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&path, e))?;
    }
    Ok(())
}

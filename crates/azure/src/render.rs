//! Turning one SPC object's Key Vault answers into files, as the Azure provider does.

use base64::Engine;
use csi_secrets_provider_core::kit::{Provenance, Rendered};
use csi_secrets_provider_core::{Error, MountedFile, ObjectVersion, SecretBytes, Served, jmes};
use secrecy::ExposeSecret;

use crate::convert;
use crate::keyvault::RawObject;
use crate::params::{ObjectEncoding, ObjectFormat, ObjectSpec, upstream_prefix};
use crate::reads::VaultReads;

/// Provider-wide settings that change what is written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub construct_pem_chain: bool,
    pub write_cert_and_key_in_separate_files: bool,
}

/// The files and versions of one object, and how its reads were served.
#[derive(Debug, Default)]
pub struct ObjectFiles {
    pub rendered: Rendered,
    /// The version served (the newest, with `objectVersionHistory`), for the audit trail.
    pub version: String,
    pub provenance: Provenance,
}

impl ObjectFiles {
    fn take<V>(&mut self, served: Served<V>) -> V {
        self.provenance.take(served)
    }
}

/// Fetches `object` (with its version history when asked) and renders its files. Errors carry
/// upstream's `failed to get objectType:…, objectName:…, objectVersion:…` prefix.
pub(crate) async fn fetch(
    reads: &VaultReads<'_>,
    object: &ObjectSpec,
    write: WriteOptions,
) -> Result<ObjectFiles, Error> {
    let version = object.version.as_deref().unwrap_or_default();
    let mut prefix = upstream_prefix(object.object_type.as_str(), &object.name, version);
    if let Some(vault) = &object.keyvault_name {
        // The SPC's vault is the one upstream names; an object's own vault is said.
        prefix.push_str(&format!(", keyvaultName:{vault}"));
    }
    fetch_files(reads, object, write).await.map_err(|e| e.prefixed(prefix))
}

async fn fetch_files(
    reads: &VaultReads<'_>,
    object: &ObjectSpec,
    write: WriteOptions,
) -> Result<ObjectFiles, Error> {
    let mut out = ObjectFiles::default();
    if object.version_history > 1 {
        let versions = out.take(reads.history(object).await?);
        for (index, version) in versions.iter().enumerate() {
            let raw = out.take(reads.object(object, Some(version)).await?);
            if index == 0 {
                out.version = raw.version().to_owned();
            }
            let contents = render(&raw, object, write)?;
            let file = format!("{}/{index}", object.file_name());
            let id = format!("{}/{index}", object.version_id());
            push(&mut out, object, &file, id, contents, raw.version());
        }
    } else {
        let raw = out.take(reads.object(object, object.version.as_deref()).await?);
        out.version = raw.version().to_owned();
        let contents = render(&raw, object, write)?;
        let extracted = jmes::extract(&object.name, &SecretBytes::new(contents.main.clone()), &object.jmes)?;
        push(&mut out, object, object.file_name(), object.version_id(), contents, raw.version());
        for (entry, value) in object.jmes.iter().zip(extracted) {
            out.rendered.files.push(
                MountedFile::new(entry.file_name.clone(), entry.mode, value)
                    .shaped(&object.name, entry.shape()),
            );
            out.rendered
                .versions
                .push(ObjectVersion::new(format!("{}/{}", object.version_id(), entry.alias), raw.version()));
        }
    }
    Ok(out)
}

/// The main file's bytes and, for certificates split into `.crt`/`.key`, the extra ones.
struct Contents {
    main: Vec<u8>,
    split: Option<SplitPem>,
}

/// A PEM bundle split by block type (`--write-cert-and-key-in-separate-files`).
struct SplitPem {
    certificates: Vec<u8>,
    keys: Vec<u8>,
}

fn push(
    out: &mut ObjectFiles,
    object: &ObjectSpec,
    file: &str,
    id: String,
    contents: Contents,
    version: &str,
) {
    let shaped = |path: String, bytes: Vec<u8>| {
        MountedFile::new(path, object.mode, bytes).shaped(&object.name, object.shape)
    };
    out.rendered.files.push(shaped(file.to_owned(), contents.main));
    out.rendered.versions.push(ObjectVersion::new(id.clone(), version));
    if let Some(split) = contents.split {
        out.rendered.files.push(shaped(format!("{file}.crt"), split.certificates));
        out.rendered.versions.push(ObjectVersion::new(id.clone(), version));
        out.rendered.files.push(shaped(format!("{file}.key"), split.keys));
        out.rendered.versions.push(ObjectVersion::new(id, version));
    }
}

/// The files' bytes for one object version, as the Azure provider writes them.
fn render(raw: &RawObject, object: &ObjectSpec, write: WriteOptions) -> Result<Contents, Error> {
    let plain = |main: Vec<u8>| Contents { main, split: None };
    let rendered = match raw {
        RawObject::Secret(secret) => {
            let value = secret.value.expose_secret();
            match &secret.kid {
                None => convert::decode(value, object.encoding).map(plain),
                Some(_) => certificate_secret(
                    value,
                    secret.content_type.as_deref().unwrap_or_default(),
                    object,
                    write,
                ),
            }
        }
        RawObject::Key(jwk) => {
            convert::public_key_pem(&jwk.kty, jwk.crv.as_ref(), &jwk.n, &jwk.e, &jwk.x, &jwk.y)
                .map(|pem| plain(pem.into_bytes()))
        }
        RawObject::Certificate { der, .. } => Ok(plain(convert::pem_block("CERTIFICATE", der).into_bytes())),
    };
    rendered.map_err(|e| e.or_object(&object.name))
}

/// A certificate's secret: PEM as stored; PFX as stored with `objectFormat: pfx`; otherwise the
/// PFX opened and written as key + ordered chain.
fn certificate_secret(
    value: &str,
    content_type: &str,
    object: &ObjectSpec,
    write: WriteOptions,
) -> Result<Contents, Error> {
    let pem_text = match content_type {
        "application/x-pem-file" => value.as_bytes().to_vec(),
        "application/x-pkcs12" if object.format == ObjectFormat::Pfx => {
            // The stored base64 text, or the PFX bytes with objectEncoding base64.
            return Ok(Contents { main: convert::decode(value, object.encoding)?, split: None });
        }
        "application/x-pkcs12" => {
            let pfx = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|e| Error::invalid_config(format!("the certificate's PFX is not base64: {e}")))?;
            convert::pfx_to_pem(&pfx, write.construct_pem_chain)?
        }
        other => {
            return Err(Error::invalid_config(format!(
                "unknown content type {other:?} of a certificate-backed secret (expected application/x-pem-file or application/x-pkcs12)"
            )));
        }
    };
    let split = if write.write_cert_and_key_in_separate_files && object.encoding == ObjectEncoding::Utf8 {
        let (certificates, keys) = convert::split_certificates_and_keys(&pem_text)?;
        Some(SplitPem { certificates, keys })
    } else {
        None
    };
    Ok(Contents { main: pem_text, split })
}

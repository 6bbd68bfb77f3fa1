//! Certificate filters for `files` templates: `pem_certs` (a bundle's certificates, leaf first
//! then each issuer, the rest after), `pem_key` (its private key block, as stored) and
//! `pfx(password)` (a PKCS#12 file, as bytes or base64 text, to `{key, cert, chain}` PEM). They
//! name the object a value came from when it came straight from one (`objects["tls"]`), never
//! the value; the PFX reader's bounds are `certs::pkcs12`'s.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use base64::Engine as _;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};

use super::objects::ObjectValues;
use super::own_errors::own_error;
use crate::certs::{self, pkcs12};

thread_local! {
    /// The objects of the mount being shaped on this thread, to name where a value came from.
    static OBJECTS: RefCell<Weak<ObjectValues>> = const { RefCell::new(Weak::new()) };
}

/// The span of one mount's renders: the certificate filters may name its objects.
pub(crate) struct ObjectsInScope(());

impl ObjectsInScope {
    pub(crate) fn enter(objects: &Arc<ObjectValues>) -> Self {
        OBJECTS.with_borrow_mut(|current| *current = Arc::downgrade(objects));
        Self(())
    }
}

impl Drop for ObjectsInScope {
    fn drop(&mut self) {
        OBJECTS.with_borrow_mut(|current| *current = Weak::new());
    }
}

/// `object "tls"` when `value` is an object's value as the template read it, else `the value`.
fn source_of(value: &Value) -> String {
    let named = OBJECTS.with_borrow(|objects| {
        objects.upgrade().and_then(|objects| objects.name_of(value).map(str::to_owned))
    });
    match named {
        Some(name) => format!("object {name:?}"),
        None => "the value".to_owned(),
    }
}

fn failed(filter: &str, value: &Value, why: impl std::fmt::Display) -> minijinja::Error {
    own_error(ErrorKind::InvalidOperation, format!("{filter}: {} {why}", source_of(value)))
}

/// A value's bytes: its text, or its bytes.
fn bytes_of<'v>(filter: &str, value: &'v Value) -> Result<&'v [u8], minijinja::Error> {
    value.as_str().map(str::as_bytes).or_else(|| value.as_bytes()).ok_or_else(|| {
        own_error(ErrorKind::InvalidOperation, format!("{filter} takes text or bytes, got {}", value.kind()))
    })
}

/// `pem_certs`, `pem_certs("leaf")`, `pem_certs("issuers")`.
fn pem_certs(value: &Value, part: Option<&str>) -> Result<Value, minijinja::Error> {
    let text = bytes_of("pem_certs", value)?;
    let part = match part {
        None => certs::CertificatePart::All,
        Some(name) => certs::CertificatePart::parse(name).ok_or_else(|| {
            own_error(
                ErrorKind::InvalidOperation,
                format!(
                    "pem_certs takes {} (or nothing), not {name:?}",
                    certs::CertificatePart::NAMES.join(", ")
                ),
            )
        })?,
    };
    certs::pem_certificates(text, part).map(Value::from).map_err(|why| failed("pem_certs", value, why))
}

fn pem_key(value: &Value) -> Result<Value, minijinja::Error> {
    let text = bytes_of("pem_key", value)?;
    certs::pem_private_key(text).map(Value::from).map_err(|why| failed("pem_key", value, why))
}

/// `pfx(password)`: the PFX's first private key (PKCS#8 `PRIVATE KEY`), its leaf certificate
/// and the rest of its certificates, each as PEM text. Bytes are the file; text is its base64
/// (as Key Vault and most secret stores hold it). No password, or `none`, is the empty one.
fn pfx(value: &Value, password: Option<Value>) -> Result<Value, minijinja::Error> {
    let der = match (value.as_str(), value.as_bytes()) {
        (Some(text), _) => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| {
                failed("pfx", value, "is text but not base64 (give the PFX as bytes or base64 text)")
            })?
        }
        (None, Some(bytes)) => bytes.to_vec(),
        (None, None) => {
            return Err(own_error(
                ErrorKind::InvalidOperation,
                format!("pfx takes bytes or base64 text, got {}", value.kind()),
            ));
        }
    };
    let password = match &password {
        None => "",
        Some(password) if password.is_none() || password.is_undefined() => "",
        Some(password) => password.as_str().ok_or_else(|| {
            own_error(
                ErrorKind::InvalidOperation,
                format!("pfx: the password must be text, got {}", password.kind()),
            )
        })?,
    };
    let opened = pkcs12::open(&der, password).map_err(|why| failed("pfx", value, why))?;
    let key = opened.keys.first().ok_or_else(|| failed("pfx", value, "holds no private key"))?;
    if opened.certificates.is_empty() {
        return Err(failed("pfx", value, "holds no certificate"));
    }
    let ordered = certs::order_leaf_first(opened.certificates).map_err(|why| failed("pfx", value, why))?;
    let pem =
        |ders: &[Vec<u8>]| ders.iter().map(|der| certs::pem_block("CERTIFICATE", der)).collect::<String>();
    let parts: std::collections::BTreeMap<&str, String> = [
        ("key", certs::pem_block("PRIVATE KEY", key)),
        ("cert", pem(&ordered[..1])),
        ("chain", pem(&ordered[1..])),
    ]
    .into();
    Ok(Value::from(parts))
}

/// Adds the certificate filters to a template environment.
pub(crate) fn install(env: &mut Environment<'static>) {
    env.add_filter("pem_certs", pem_certs);
    env.add_filter("pem_key", pem_key);
    env.add_filter("pfx", pfx);
}

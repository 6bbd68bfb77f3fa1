//! Certificate filters for `files` templates: `pem_certs` (a bundle's certificates, leaf first
//! then each issuer, the rest after), `pem_key` (its private key block, as stored) and
//! `pfx(password)` (a PKCS#12 file, as bytes or base64 text, to `{key, cert, chain}` PEM). They
//! name the object a value came from when it came straight from one (`objects["tls"]`), never
//! the value. A filter runs outside the template's fuel, so its work is bounded per mount: the
//! PFX key derivations of all of a mount's `pfx` calls share one `certs::pkcs12::Budget`, at
//! most [`MAX_CERTIFICATES_PER_MOUNT`] certificates are parsed, and a call repeated with the
//! same value and arguments (the recipes call `pfx` once per file) answers from the first.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use base64::Engine as _;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};
use zeroize::Zeroizing;

use super::objects::ObjectValues;
use super::own_errors::own_error;
use crate::certs::{self, pkcs12};

/// The most certificates the filters of one mount parse (100 bundles of the largest size):
/// ordering parses every certificate of its input.
pub const MAX_CERTIFICATES_PER_MOUNT: usize = 10 * certs::MAX_CERTIFICATES;

/// What a filter was asked (its input and arguments), for answering a repeat from memory.
#[derive(PartialEq, Eq)]
struct Asked {
    filter: &'static str,
    input: Zeroizing<Vec<u8>>,
    argument: Zeroizing<String>,
}

/// What the certificate filters of the mount being shaped on this thread know and spent.
#[derive(Default)]
struct MountSpan {
    /// Its objects, to name where a value came from.
    objects: Weak<ObjectValues>,
    kdf: pkcs12::Budget,
    certificates: usize,
    answered: Vec<(Asked, Value)>,
}

thread_local! {
    static SPAN: RefCell<MountSpan> = RefCell::new(MountSpan::default());
}

/// The span of one mount's renders: the certificate filters may name its objects, and share
/// its budget and its answers.
pub(crate) struct ObjectsInScope(());

impl ObjectsInScope {
    pub(crate) fn enter(objects: &Arc<ObjectValues>) -> Self {
        SPAN.with_borrow_mut(|span| {
            *span = MountSpan { objects: Arc::downgrade(objects), ..MountSpan::default() }
        });
        Self(())
    }
}

impl Drop for ObjectsInScope {
    fn drop(&mut self) {
        SPAN.with_borrow_mut(|span| *span = MountSpan::default());
    }
}

/// `compute`'s answer for `asked`, or the one given to the same question earlier in the mount.
fn answered_once(
    asked: Asked,
    compute: impl FnOnce() -> Result<Value, minijinja::Error>,
) -> Result<Value, minijinja::Error> {
    let known =
        SPAN.with_borrow(|span| span.answered.iter().find(|(a, _)| *a == asked).map(|(_, v)| v.clone()));
    if let Some(value) = known {
        return Ok(value);
    }
    let value = compute()?;
    // At most a few answers kept: each holds a copy of what it was asked (the budgets bound the
    // work either way).
    SPAN.with_borrow_mut(|span| {
        if span.answered.len() < 16 {
            span.answered.push((asked, value.clone()));
        }
    });
    Ok(value)
}

/// Charges `count` parsed certificates to the mount.
fn spend_certificates(count: usize) -> Result<(), String> {
    SPAN.with_borrow_mut(|span| {
        span.certificates += count;
        if span.certificates > MAX_CERTIFICATES_PER_MOUNT {
            Err(format!("would take the mount past {MAX_CERTIFICATES_PER_MOUNT} certificates parsed"))
        } else {
            Ok(())
        }
    })
}

/// `object "tls"` when `value` is an object's value as the template read it, else `the value`.
fn source_of(value: &Value) -> String {
    let named = SPAN.with_borrow(|span| {
        span.objects.upgrade().and_then(|objects| objects.name_of(value).map(str::to_owned))
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
    let chosen = match part {
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
    let asked = Asked {
        filter: "pem_certs",
        input: Zeroizing::new(text.to_vec()),
        argument: Zeroizing::new(part.unwrap_or_default().to_owned()),
    };
    answered_once(asked, || {
        let count = certs::pem_blocks(text)
            .map(|blocks| blocks.iter().filter(|(tag, _)| tag == "CERTIFICATE").count())
            .unwrap_or_default();
        spend_certificates(count)
            .and_then(|()| certs::pem_certificates(text, chosen))
            .map(Value::from)
            .map_err(|why| failed("pem_certs", value, why))
    })
}

fn pem_key(value: &Value) -> Result<Value, minijinja::Error> {
    let text = bytes_of("pem_key", value)?;
    let asked = Asked {
        filter: "pem_key",
        input: Zeroizing::new(text.to_vec()),
        argument: Zeroizing::new(String::new()),
    };
    answered_once(asked, || {
        certs::pem_private_key(text).map(Value::from).map_err(|why| failed("pem_key", value, why))
    })
}

/// The longest base64 text of a PFX read, line breaks included.
const MAX_PFX_TEXT: usize = 2 * (pkcs12::MAX_PFX_BYTES / 3 + 1) * 4;

/// `pfx(password)`: the PFX's first private key (PKCS#8 `PRIVATE KEY`), its leaf certificate
/// and the rest of its certificates, each as PEM text. Bytes are the file; text is its base64
/// (as Key Vault and most secret stores hold it). No password, or `none`, is the empty one.
fn pfx(value: &Value, password: Option<Value>) -> Result<Value, minijinja::Error> {
    let der: Zeroizing<Vec<u8>> = match (value.as_str(), value.as_bytes()) {
        (Some(text), _) => {
            if text.len() > MAX_PFX_TEXT {
                return Err(failed(
                    "pfx",
                    value,
                    format!("is more text than a PFX of {} bytes", pkcs12::MAX_PFX_BYTES),
                ));
            }
            let compact =
                Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>());
            Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()).map_err(
                |_| failed("pfx", value, "is text but not base64 (give the PFX as bytes or base64 text)"),
            )?)
        }
        (None, Some(bytes)) => Zeroizing::new(bytes.to_vec()),
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
    let asked = Asked { filter: "pfx", input: der.clone(), argument: Zeroizing::new(password.to_owned()) };
    answered_once(asked, || {
        let opened = SPAN
            .with_borrow_mut(|span| pkcs12::open_within(&der, password, &mut span.kdf))
            .map_err(|why| failed("pfx", value, why))?;
        let key = opened.keys.first().ok_or_else(|| failed("pfx", value, "holds no private key"))?;
        if opened.certificates.is_empty() {
            return Err(failed("pfx", value, "holds no certificate"));
        }
        spend_certificates(opened.certificates.len()).map_err(|why| failed("pfx", value, why))?;
        let ordered =
            certs::order_leaf_first(opened.certificates).map_err(|why| failed("pfx", value, why))?;
        let pem = |ders: &[Vec<u8>]| {
            ders.iter().map(|der| certs::pem_block("CERTIFICATE", der)).collect::<String>()
        };
        let parts: std::collections::BTreeMap<&str, String> = [
            ("key", certs::pem_block("PRIVATE KEY", key)),
            ("cert", pem(&ordered[..1])),
            ("chain", pem(&ordered[1..])),
        ]
        .into();
        Ok(Value::from(parts))
    })
}

/// Adds the certificate filters to a template environment.
pub(crate) fn install(env: &mut Environment<'static>) {
    env.add_filter("pem_certs", pem_certs);
    env.add_filter("pem_key", pem_key);
    env.add_filter("pfx", pfx);
}

//! Ordering and picking PEM blocks, with certificates made by rcgen; PFX files are made by
//! `openssl` in `crates/core/tests/pfx.rs`.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A CA or leaf named `name`, signed by `issuer` (self-signed when `None`).
pub(crate) struct Made {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub(crate) fn make(name: &str, ca: bool, issuer: Option<&Made>) -> Result<Made, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(if ca { Vec::new() } else { vec![format!("{name}.example")] })?;
    params.distinguished_name.push(DnType::CommonName, name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let certificate = match issuer {
        Some(issuer) => params.signed_by(&key, &issuer.issuer)?,
        None => params.self_signed(&key)?,
    };
    Ok(Made { pem: certificate.pem(), issuer: Issuer::new(params, key) })
}

fn names(pem_text: &str) -> Vec<String> {
    pem_blocks(pem_text.as_bytes())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, der)| X509Certificate::from_der(&der).ok().map(|(_, c)| c.subject().to_string()))
        .collect()
}

#[test]
fn bundles_are_ordered_leaf_first_then_issuers_then_the_rest() -> TestResult {
    let root = make("root", true, None)?;
    let mid = make("intermediate", true, Some(&root))?;
    let leaf = make("leaf", false, Some(&mid))?;
    let other = make("unrelated", true, None)?;
    let shuffled = format!("{}{}{}{}", root.pem, other.pem, leaf.pem, mid.pem);
    assert_eq!(
        names(&pem_certificates(shuffled.as_bytes(), CertificatePart::All)?),
        ["CN=leaf", "CN=intermediate", "CN=root", "CN=unrelated"]
    );
    assert_eq!(names(&pem_certificates(shuffled.as_bytes(), CertificatePart::Leaf)?), ["CN=leaf"]);
    assert_eq!(
        names(&pem_certificates(shuffled.as_bytes(), CertificatePart::Issuers)?),
        ["CN=intermediate", "CN=root", "CN=unrelated"]
    );
    // The intermediate missing: the root issued nothing here, so it comes after the leaf as
    // an unrelated certificate, in its place.
    let gap = format!("{}{}{}", other.pem, root.pem, leaf.pem);
    assert_eq!(
        names(&pem_certificates(gap.as_bytes(), CertificatePart::All)?),
        ["CN=leaf", "CN=unrelated", "CN=root"]
    );
    // A key in the bundle is left out; a lone certificate is itself.
    let key = KeyPair::generate()?.serialize_pem();
    assert_eq!(
        names(&pem_certificates(format!("{key}{}", leaf.pem).as_bytes(), CertificatePart::All)?),
        ["CN=leaf"]
    );
    Ok(())
}

#[test]
fn bad_bundles_say_what_is_wrong_without_the_value() {
    for (text, says) in [
        ("no pem here".to_owned(), "holds no PEM certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
            "certificate 1 is not an X.509",
        ),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n".to_owned(), "is not PEM text"),
    ] {
        let error = pem_certificates(text.as_bytes(), CertificatePart::All).err().unwrap_or_default();
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("AAAA"), "{error}");
    }
}

#[test]
fn the_private_key_block_is_kept_as_stored() -> TestResult {
    let leaf = make("leaf", false, None)?;
    let pkcs8 = KeyPair::generate()?.serialize_pem();
    let picked = pem_private_key(format!("{}{pkcs8}", leaf.pem).as_bytes())?;
    assert_eq!(picked, pkcs8);
    for tag in ["RSA PRIVATE KEY", "EC PRIVATE KEY"] {
        let block = pem_block(tag, b"stored as is");
        assert_eq!(pem_private_key(format!("{}{block}", leaf.pem).as_bytes())?, block);
    }
    for (text, says) in [
        (leaf.pem.clone(), "holds no private key block"),
        (format!("{pkcs8}{pkcs8}"), "holds 2 private keys"),
        (pem_block("ENCRYPTED PRIVATE KEY", b"x"), "encrypted private key"),
    ] {
        assert!(pem_private_key(text.as_bytes()).err().unwrap_or_default().contains(says), "{says}");
    }
    Ok(())
}

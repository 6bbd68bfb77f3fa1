//! `pfx()`'s reader (`core::certs::pkcs12`) against PFX files a real tool wrote: `openssl
//! pkcs12 -export` with today's defaults (PBES2, AES-256, PBKDF2), the legacy ones (RC2-40 for
//! certificates, 3DES for the key, a SHA-1 MAC), 3DES throughout, and an empty password; a
//! wrong password and a file past the iteration bound are refused clearly.

mod common;

use std::path::Path;

use common::chain;
use std::process::Command;

use csi_secrets_provider_core::certs::pkcs12::{self, OpenError};
use csi_secrets_provider_core::certs::{order_leaf_first, pem_block, pem_blocks};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `openssl pkcs12 -export` of the chain with `password` and `options`.
fn export(dir: &Path, password: &str, options: &[&str]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let common::Chain { leaf, mid, root, key } = chain()?;
    std::fs::write(dir.join("leaf.pem"), &leaf)?;
    std::fs::write(dir.join("key.pem"), &key)?;
    // The chain stored root first: the reader's order is not the file's.
    std::fs::write(dir.join("chain.pem"), format!("{root}{mid}"))?;
    let out = dir.join("out.pfx");
    let status = Command::new("openssl")
        .args(["pkcs12", "-export"])
        .args(options)
        .arg("-in")
        .arg(dir.join("leaf.pem"))
        .arg("-inkey")
        .arg(dir.join("key.pem"))
        .arg("-certfile")
        .arg(dir.join("chain.pem"))
        .arg("-out")
        .arg(&out)
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .status()?;
    assert!(status.success(), "openssl pkcs12 -export {options:?}");
    let pfx = std::fs::read(&out)?;
    // Checked against the key openssl was given, below.
    std::fs::write(dir.join("expected-key.der"), pem_blocks(key.as_bytes())?.remove(0).1)?;
    Ok(pfx)
}

fn subjects(certificates: &[Vec<u8>]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    certificates
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c.subject().to_string()))
        .collect()
}

#[test]
fn openssl_files_open_with_their_password() -> TestResult {
    let cases: [(&str, &str, &[&str]); 4] = [
        ("today's defaults", "s3cret pass", &[]),
        ("legacy (RC2-40, 3DES, SHA-1 MAC)", "s3cret pass", &["-legacy"]),
        (
            "3DES throughout",
            "p@ss",
            &["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
        ),
        ("an empty password", "", &[]),
    ];
    for (case, password, options) in cases {
        let dir = tempfile::tempdir()?;
        let der = export(dir.path(), password, options)?;
        let opened = pkcs12::open(&der, password).map_err(|e| format!("{case}: {e}"))?;
        let expected_key = std::fs::read(dir.path().join("expected-key.der"))?;
        assert_eq!(opened.keys.len(), 1, "{case}");
        assert_eq!(opened.keys[0].as_slice(), expected_key.as_slice(), "{case}: the key openssl was given");
        let ordered = order_leaf_first(opened.certificates.clone())?;
        assert_eq!(subjects(&ordered), ["CN=leaf", "CN=intermediate", "CN=root"], "{case}");
        assert!(pem_block("CERTIFICATE", &ordered[0]).starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!format!("{opened:?}").contains(&format!("{:?}", &expected_key[..8])), "Debug shows no key");
    }
    Ok(())
}

#[test]
fn a_wrong_password_and_the_bounds_are_refused_clearly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let der = export(dir.path(), "right", &[])?;
    assert_eq!(pkcs12::open(&der, "wrong").err(), Some(OpenError::WrongPassword));
    assert_eq!(pkcs12::open(&der, "").err(), Some(OpenError::WrongPassword));

    let costly = export(dir.path(), "right", &["-iter", "700000"])?;
    let refused = pkcs12::open(&costly, "right").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("700000 key derivation iterations"), "{refused}");

    let big = vec![0u8; pkcs12::MAX_PFX_BYTES + 1];
    let refused = pkcs12::open(&big, "").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("more than the 65536 a PFX may be"), "{refused}");
    let not_pfx = pkcs12::open(b"not a pfx at all", "").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(not_pfx.contains("is not a PKCS#12 (PFX) file"), "{not_pfx}");
    Ok(())
}

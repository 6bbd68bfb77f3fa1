//! The certificate filters of `files` templates, rendered as a mount renders them: a PEM
//! bundle stored in any order split into `tls.crt` / `tls.key` / `ca.crt`, a chain with a
//! missing intermediate, PFX files `openssl` wrote with and without a password, and the errors
//! (a wrong password, a bundle without a key) naming the object and never a value.

use std::process::Command;

mod common;

use common::{Chain, chain};
use csi_secrets_provider_core::shaping::{FilesSpec, shape};
use csi_secrets_provider_core::{FileMode, MountResponse, MountedFile, ObjectVersion};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Renders `files` over objects (file name, contents) as a mount would.
fn render(files: &str, objects: &[(&str, Vec<u8>)]) -> Result<MountResponse, String> {
    let spec = FilesSpec::parse(Some(files)).map_err(|problems| format!("{problems:?}"))?;
    let mut mount = MountResponse {
        files: objects
            .iter()
            .map(|(path, contents)| MountedFile::new(*path, FileMode::DEFAULT, contents.clone()))
            .collect(),
        versions: objects.iter().map(|(path, _)| ObjectVersion::new(*path, "1")).collect(),
        ..MountResponse::default()
    };
    shape(&mut mount, &spec, FileMode::DEFAULT, 1 << 20).map_err(|e| e.to_string())?;
    Ok(mount)
}

fn text(mount: &MountResponse, path: &str) -> String {
    mount
        .files
        .iter()
        .find(|f| f.path == path)
        .map(|f| String::from_utf8_lossy(f.contents.expose()).into_owned())
        .unwrap_or_default()
}

/// The recipe of docs/shaping-files.md for a PEM bundle.
const BUNDLE_RECIPE: &str = r#"
- path: tls.crt
  template: '{{ objects.bundle | pem_certs }}'
- path: tls.key
  template: '{{ objects.bundle | pem_key }}'
- path: ca.crt
  template: '{{ objects.bundle | pem_certs("issuers") }}'
"#;

#[test]
fn a_shuffled_bundle_becomes_the_files_a_server_wants() -> TestResult {
    let c = chain()?;
    let shuffled = format!("{}{}{}{}", c.root, c.key, c.leaf, c.mid);
    let mount = render(BUNDLE_RECIPE, &[("bundle", shuffled.into_bytes())])?;
    assert_eq!(text(&mount, "tls.crt"), format!("{}{}{}", c.leaf, c.mid, c.root));
    assert_eq!(text(&mount, "tls.key"), c.key);
    assert_eq!(text(&mount, "ca.crt"), format!("{}{}", c.mid, c.root));
    // The intermediate missing: leaf first, the rest after in their order.
    let gap = format!("{}{}{}", c.root, c.leaf, c.key);
    let mount = render(BUNDLE_RECIPE, &[("bundle", gap.into_bytes())])?;
    assert_eq!(text(&mount, "tls.crt"), format!("{}{}", c.leaf, c.root));
    Ok(())
}

#[test]
fn errors_name_the_object_and_never_the_value() -> TestResult {
    let c = chain()?;
    let error = render(BUNDLE_RECIPE, &[("bundle", c.leaf.clone().into_bytes())]).err().unwrap_or_default();
    assert!(error.contains("pem_key: object \"bundle\" holds no private key block"), "{error}");
    assert!(!error.contains("BEGIN"), "{error}");
    Ok(())
}

/// `openssl pkcs12 -export` of the chain, base64 as a secret store holds it.
fn pfx(c: &Chain, password: &str, options: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    use base64::Engine;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("leaf.pem"), &c.leaf)?;
    std::fs::write(dir.path().join("key.pem"), &c.key)?;
    std::fs::write(dir.path().join("chain.pem"), format!("{}{}", c.root, c.mid))?;
    let out = dir.path().join("out.pfx");
    let status = Command::new("openssl")
        .args(["pkcs12", "-export"])
        .args(options)
        .args(["-in", "leaf.pem", "-inkey", "key.pem", "-certfile", "chain.pem", "-out", "out.pfx"])
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .current_dir(dir.path())
        .status()?;
    assert!(status.success(), "openssl pkcs12 -export");
    Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(out)?))
}

/// The recipe of docs/shaping-files.md for a password-protected PFX.
const PFX_RECIPE: &str = r#"
- path: tls.crt
  template: '{% set p = objects["app.pfx"] | pfx(objects["pfx-password"]) %}{{ p.cert }}{{ p.chain }}'
- path: tls.key
  template: '{{ (objects["app.pfx"] | pfx(objects["pfx-password"])).key }}'
- path: ca.crt
  template: '{{ (objects["app.pfx"] | pfx(objects["pfx-password"])).chain }}'
"#;

#[test]
fn a_pfx_with_or_without_a_password_becomes_cert_key_and_chain() -> TestResult {
    let c = chain()?;
    for (password, options) in [("correct horse", &[][..]), ("legacy", &["-legacy"][..]), ("", &[][..])] {
        let file = pfx(&c, password, options)?;
        let mount = render(
            PFX_RECIPE,
            &[("app.pfx", file.into_bytes()), ("pfx-password", password.as_bytes().to_vec())],
        )?;
        assert_eq!(text(&mount, "tls.crt"), format!("{}{}{}", c.leaf, c.mid, c.root), "{options:?}");
        assert_eq!(text(&mount, "ca.crt"), format!("{}{}", c.mid, c.root));
        let key = text(&mount, "tls.key");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
        assert_eq!(key, c.key, "rcgen's key is PKCS#8 as well");
    }
    // No password argument: the empty password.
    let empty = pfx(&c, "", &[])?;
    let mount = render("- {path: k, template: '{{ (objects.p | pfx).key }}'}", &[("p", empty.into_bytes())])?;
    assert_eq!(text(&mount, "k"), c.key);
    Ok(())
}

#[test]
fn a_wrong_password_is_said_clearly() -> TestResult {
    let c = chain()?;
    let file = pfx(&c, "right one", &[])?;
    let error =
        render(PFX_RECIPE, &[("app.pfx", file.into_bytes()), ("pfx-password", b"wrong one".to_vec())])
            .err()
            .unwrap_or_default();
    assert!(error.contains("pfx: object \"app.pfx\" cannot be opened with that password"), "{error}");
    assert!(!error.contains("wrong one") && !error.contains("right one"), "{error}");
    Ok(())
}

/// A filter runs outside the template's fuel, so its work is bounded per mount: the recipe's
/// three `pfx` calls on one costly file (600,000 iterations, the most one derivation may ask)
/// open it once, and a second such file takes the mount past its key derivation budget.
#[test]
fn pfx_work_is_bounded_per_mount_and_repeats_are_free() -> TestResult {
    let c = chain()?;
    let costly = pfx(&c, "pw", &["-iter", "600000", "-maciter"])?;
    let other = pfx(&c, "pw", &["-iter", "600000", "-maciter"])?;
    let three_calls =
        render(PFX_RECIPE, &[("app.pfx", costly.clone().into_bytes()), ("pfx-password", b"pw".to_vec())])?;
    assert_eq!(text(&three_calls, "tls.key"), c.key);
    let two_files = r#"
- path: a
  template: '{{ (objects.a | pfx("pw")).key }}'
- path: b
  template: '{{ (objects.b | pfx("pw")).key }}'
"#;
    let error =
        render(two_files, &[("a", costly.into_bytes()), ("b", other.into_bytes())]).err().unwrap_or_default();
    assert!(error.contains("object \"b\"") && error.contains("key derivation iterations in all"), "{error}");
    Ok(())
}

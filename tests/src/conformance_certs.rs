//! The certificate filters of `files` (`pem_certs`, `pem_key`, `pfx`) through every backend: a
//! PEM bundle stored shuffled and a password-protected PFX (base64 text, as stores hold it, made
//! by p12-keystore, another implementation than the provider's reader) become `tls.crt`,
//! `tls.key` and `ca.crt`; a wrong password fails the mount naming the object, not a value.

use base64::Engine as _;
use tonic::Code;

use crate::azure::{TestChain, pem_text, pfx_with_password};
use crate::conformance::{BoxError, Capabilities, Fixture, ObjectRef, ensure};

/// The chain and key as a PFX protected by `password`, stored root first, as base64 text.
fn pfx(chain: &TestChain, password: &str) -> Result<String, BoxError> {
    let stored = [chain.root.as_slice(), chain.intermediate.as_slice(), chain.leaf.as_slice()];
    Ok(base64::engine::general_purpose::STANDARD.encode(pfx_with_password(
        &chain.leaf_key,
        &stored,
        password,
    )?))
}

const FILES: &str = r#"
- path: bundle/tls.crt
  template: '{{ objects.bundle | pem_certs }}'
- path: bundle/tls.key
  template: '{{ objects.bundle | pem_key }}'
- path: bundle/ca.crt
  template: '{{ objects.bundle | pem_certs("issuers") }}'
- path: pfx/tls.crt
  template: '{% set p = objects["app.pfx"] | pfx(objects["pfx-password"]) %}{{ p.cert }}{{ p.chain }}'
- path: pfx/tls.key
  template: '{{ (objects["app.pfx"] | pfx(objects["pfx-password"])).key }}'
- path: pfx/ca.crt
  template: '{{ (objects["app.pfx"] | pfx(objects["pfx-password"])).chain }}'
"#;

pub async fn certificate_filters_make_tls_files_from_a_bundle_and_a_pfx(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let chain = TestChain::new()?;
    let key = pem_text(Some(&chain.leaf_key), &[]);
    let [leaf, mid, root] = [&chain.leaf, &chain.intermediate, &chain.root].map(|der| pem_text(None, &[der]));
    let (bundle, archive, password) =
        (fixture.unique("conf-bundle"), fixture.unique("conf-pfx"), fixture.unique("conf-pfx-password"));
    fixture.put(&bundle, &format!("{root}{key}{leaf}{mid}")).await?;
    fixture.put(&archive, &pfx(&chain, "pfx pass phrase")?).await?;
    fixture.put(&password, "pfx pass phrase").await?;
    let objects = [
        ObjectRef::new(&bundle, "bundle").with("writeFile", "false"),
        ObjectRef::new(&archive, "app.pfx").with("writeFile", "false"),
        ObjectRef::new(&password, "pfx-password").with("writeFile", "false"),
    ];
    let mut parameters = fixture.parameters(&objects);
    parameters.push(("files".to_owned(), FILES.to_owned()));
    let response = fixture.mount(&parameters).await?;
    let text = |path: &str| crate::client::file_text(&response, path);
    for dir in ["bundle", "pfx"] {
        ensure(text(&format!("{dir}/tls.crt"))? == format!("{leaf}{mid}{root}"), || {
            format!("{dir}: tls.crt")
        })?;
        ensure(text(&format!("{dir}/tls.key"))? == key, || format!("{dir}: tls.key"))?;
        ensure(text(&format!("{dir}/ca.crt"))? == format!("{mid}{root}"), || format!("{dir}: ca.crt"))?;
    }

    // The intermediate missing from the bundle: the leaf first, the rest after as stored; a
    // PFX without a password: `pfx` with none.
    fixture.put(&bundle, &format!("{root}{key}{leaf}")).await?;
    fixture.put(&archive, &pfx(&chain, "")?).await?;
    let mut no_password = fixture.parameters(&objects[..2]);
    no_password.push((
        "files".to_owned(),
        "- {path: tls.crt, template: '{{ objects.bundle | pem_certs }}'}\n- {path: pfx.key, template: '{{ (objects[\"app.pfx\"] | pfx).key }}'}\n".to_owned(),
    ));
    let response = fixture.mount(&no_password).await?;
    let text = |path: &str| crate::client::file_text(&response, path);
    ensure(text("tls.crt")? == format!("{leaf}{root}"), || "the gap: leaf, then the rest".into())?;
    ensure(text("pfx.key")? == key, || "a PFX without a password".into())?;

    fixture.put(&archive, &pfx(&chain, "pfx pass phrase")?).await?;
    fixture.put(&password, "not the pass phrase").await?;
    let status = fixture.mount(&parameters).await.err().ok_or("a wrong password mounted")?;
    ensure(status.code() == Code::InvalidArgument, || format!("{status:?}"))?;
    let message = status.message();
    ensure(message.contains("pfx: object \"app.pfx\" cannot be opened with that password"), || {
        format!("says the password is wrong, naming the object: {message}")
    })?;
    ensure(!message.contains("pass phrase") && !message.contains("BEGIN"), || {
        format!("quotes a value: {message}")
    })
}

//! The certificate filters of `files` (`pem_certs`, `pem_key`, `pfx`) through every backend: a
//! PEM bundle stored shuffled and a password-protected PFX (base64 text, as stores hold it, made
//! by p12-keystore, another implementation than the provider's reader) become `tls.crt`,
//! `tls.key` and `ca.crt`; a wrong password fails the mount naming the object, not a value.

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::Code;

use crate::conformance::{BoxError, Capabilities, Fixture, ObjectRef, ensure};

/// root → intermediate → leaf: the PEM of each, the leaf's key (PKCS#8 PEM) and DERs for a PFX.
struct Chain {
    pem: [String; 3],
    der: [Vec<u8>; 3],
    key: KeyPair,
}

fn chain() -> Result<Chain, BoxError> {
    let ca = |name: &str| -> Result<(CertificateParams, KeyPair), rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok((params, KeyPair::generate()?))
    };
    let (root_params, root_key) = ca("conformance root")?;
    let root = root_params.self_signed(&root_key)?;
    let root_issuer = Issuer::new(root_params, root_key);
    let (mid_params, mid_key) = ca("conformance intermediate")?;
    let mid = mid_params.signed_by(&mid_key, &root_issuer)?;
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["app.example".to_owned()])?;
    leaf_params.distinguished_name.push(DnType::CommonName, "conformance leaf");
    let leaf = leaf_params.signed_by(&key, &mid_issuer)?;
    Ok(Chain {
        pem: [leaf.pem(), mid.pem(), root.pem()],
        der: [leaf.der().to_vec(), mid.der().to_vec(), root.der().to_vec()],
        key,
    })
}

/// The chain and key as a PFX protected by `password`, stored root first, as base64 text.
fn pfx(chain: &Chain, password: &str) -> Result<String, BoxError> {
    let certificates = [&chain.der[2], &chain.der[1], &chain.der[0]]
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    let key = p12_keystore::PrivateKey::from_der(&chain.key.serialize_der())?;
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "app",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            b"1".to_vec(),
            key,
            certificates,
        )),
    );
    Ok(base64::engine::general_purpose::STANDARD.encode(store.writer(password).write()?))
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
    let chain = chain()?;
    let key = chain.key.serialize_pem();
    let [leaf, mid, root] = &chain.pem;
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

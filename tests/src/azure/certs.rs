//! Certificates for certificate tests: a root → intermediate → leaf chain, as PFX or PEM.

/// A certificate's secret as Key Vault stores it.
#[derive(Debug, Clone)]
pub enum CertificateSecret {
    Pfx(Vec<u8>),
    Pem(String),
}

/// A certificate chain root → intermediate → leaf, for certificate tests.
#[derive(Debug)]
pub struct TestChain {
    pub leaf: Vec<u8>,
    pub intermediate: Vec<u8>,
    pub root: Vec<u8>,
    /// The leaf's private key, PKCS#8 DER.
    pub leaf_key: Vec<u8>,
}

impl TestChain {
    pub fn new() -> Result<Self, rcgen::Error> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca = |name: &str| -> Result<(CertificateParams, KeyPair), rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            Ok((params, KeyPair::generate()?))
        };
        let (root_params, root_key) = ca("Test Root")?;
        let root = root_params.self_signed(&root_key)?;
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let (mid_params, mid_key) = ca("Test Intermediate")?;
        let intermediate = mid_params.signed_by(&mid_key, &root_issuer)?;
        let mid_issuer = rcgen::Issuer::new(mid_params, mid_key);
        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec!["app.example.com".to_owned()])?;
        leaf_params.distinguished_name.push(DnType::CommonName, "app.example.com");
        let leaf = leaf_params.signed_by(&leaf_key, &mid_issuer)?;
        Ok(Self {
            leaf: leaf.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            root: root.der().to_vec(),
            leaf_key: leaf_key.serialize_der(),
        })
    }

    /// A PFX with an empty password (as Key Vault stores it), certificates in `order`
    /// (indexes into [leaf, intermediate, root]).
    pub fn pfx(&self, order: [usize; 3]) -> Result<Vec<u8>, p12_keystore::error::Error> {
        let all = [&self.leaf, &self.intermediate, &self.root];
        let certificates = order
            .iter()
            .map(|&i| p12_keystore::Certificate::from_der(all[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let key = p12_keystore::PrivateKey::from_der(&self.leaf_key)?;
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "cert",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
                b"1".to_vec(),
                key,
                certificates,
            )),
        );
        store.writer("").write()
    }

    /// PEM text as a user would upload it: key, then certificates in the given order.
    pub fn pem(&self, order: [usize; 3]) -> String {
        let all = [&self.leaf, &self.intermediate, &self.root];
        let block = |tag: &str, der: &[u8]| {
            pem::encode_config(
                &pem::Pem::new(tag, der.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        };
        let mut text = block("PRIVATE KEY", &self.leaf_key);
        for i in order {
            text.push_str(&block("CERTIFICATE", all[i]));
        }
        text
    }
}

/// A chain leaf → `intermediates` CAs → root in which every certificate but the root names its
/// issuer's key (authority key identifier) and the leaf has no subject key identifier, as a
/// public CA issues them; leaf first, with the leaf's PKCS#8 key.
pub fn chain_with_key_ids(intermediates: usize) -> Result<(Vec<Vec<u8>>, Vec<u8>), rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca = |name: String| -> Result<(CertificateParams, KeyPair), rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        Ok((params, KeyPair::generate()?))
    };
    let (root_params, root_key) = ca("Chain Root".to_owned())?;
    let mut certificates = vec![root_params.self_signed(&root_key)?.der().to_vec()];
    let mut issuer = rcgen::Issuer::new(root_params, root_key);
    for index in 1..=intermediates {
        let (params, key) = ca(format!("Chain Intermediate {index}"))?;
        certificates.push(params.signed_by(&key, &issuer)?.der().to_vec());
        issuer = rcgen::Issuer::new(params, key);
    }
    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["chain.example.com".to_owned()])?;
    leaf_params.distinguished_name.push(DnType::CommonName, "chain.example.com");
    leaf_params.use_authority_key_identifier_extension = true;
    certificates.push(leaf_params.signed_by(&leaf_key, &issuer)?.der().to_vec());
    certificates.reverse();
    Ok((certificates, leaf_key.serialize_der()))
}

/// PEM text: the key (when given), then `certificates` in the order given.
pub fn pem_text(key: Option<&[u8]>, certificates: &[&[u8]]) -> String {
    let block = |tag: &str, der: &[u8]| {
        pem::encode_config(
            &pem::Pem::new(tag, der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    };
    let mut text = key.map(|key| block("PRIVATE KEY", key)).unwrap_or_default();
    for certificate in certificates {
        text.push_str(&block("CERTIFICATE", certificate));
    }
    text
}

/// A PFX with an empty password holding `key` and `certificates` in the order given.
pub fn pfx_of(key: &[u8], certificates: &[&[u8]]) -> Result<Vec<u8>, p12_keystore::error::Error> {
    pfx_with_password(key, certificates, "")
}

/// A PFX protected by `password` holding `key` and `certificates` in the order given.
pub fn pfx_with_password(
    key: &[u8],
    certificates: &[&[u8]],
    password: &str,
) -> Result<Vec<u8>, p12_keystore::error::Error> {
    let certificates = certificates
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "cert",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            b"1".to_vec(),
            p12_keystore::PrivateKey::from_der(key)?,
            certificates,
        )),
    );
    store.writer(password).write()
}

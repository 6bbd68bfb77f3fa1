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

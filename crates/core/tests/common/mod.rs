//! What the certificate tests share: a root → intermediate → leaf chain made by rcgen.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The chain's certificates and the leaf's key (PKCS#8), each as PEM.
pub struct Chain {
    pub leaf: String,
    pub mid: String,
    pub root: String,
    pub key: String,
}

pub fn chain() -> Result<Chain, rcgen::Error> {
    let ca = |name: &str| -> Result<(CertificateParams, KeyPair), rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok((params, KeyPair::generate()?))
    };
    let (root_params, root_key) = ca("root")?;
    let root = root_params.self_signed(&root_key)?;
    let root_issuer = Issuer::new(root_params, root_key);
    let (mid_params, mid_key) = ca("intermediate")?;
    let mid = mid_params.signed_by(&mid_key, &root_issuer)?;
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["app.example".to_owned()])?;
    leaf_params.distinguished_name.push(DnType::CommonName, "leaf");
    let leaf = leaf_params.signed_by(&key, &mid_issuer)?;
    Ok(Chain { leaf: leaf.pem(), mid: mid.pem(), root: root.pem(), key: key.serialize_pem() })
}

//! What the Azure provider writes for each kind of Key Vault object, in pure Rust.

use azure_security_keyvault_keys::models::{CurveName, KeyType};
use base64::Engine;
use csi_secrets_provider_core::Error;

use crate::params::ObjectEncoding;

pub use csi_secrets_provider_core::certs::pem_block;

/// A secret's value as written: decoded per `objectEncoding`.
pub fn decode(value: &str, encoding: ObjectEncoding) -> Result<Vec<u8>, Error> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(value.as_bytes().to_vec()),
        ObjectEncoding::Hex => hex::decode(value.trim()).map_err(|e| {
            Error::invalid_config(format!("failed to decode the secret as hex: {e}"))
                .with_field("objectEncoding")
        }),
        ObjectEncoding::Base64 => {
            // Go's decoder skips CR and LF, so line-wrapped base64 (as `base64` prints it) works.
            let unwrapped: String = value.trim().chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            base64::engine::general_purpose::STANDARD.decode(unwrapped).map_err(|e| {
                Error::invalid_config(format!("failed to decode the secret as base64: {e}"))
                    .with_field("objectEncoding")
            })
        }
    }
}

/// A key's public part as PKIX `PUBLIC KEY` PEM, from its JSON Web Key fields.
pub fn public_key_pem(
    kty: &KeyType,
    crv: Option<&CurveName>,
    n: &[u8],
    e: &[u8],
    x: &[u8],
    y: &[u8],
) -> Result<String, Error> {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let invalid = |why: String| Error::invalid_config(format!("cannot convert the key to PEM: {why}"));
    match kty {
        KeyType::Rsa | KeyType::RsaHsm => {
            let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e))
                .map_err(|e| invalid(e.to_string()))?;
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&key, rsa::pkcs8::LineEnding::LF)
                .map_err(|e| invalid(e.to_string()))
        }
        KeyType::Ec | KeyType::EcHsm => {
            let point: Vec<u8> = [&[0x04][..], x, y].concat();
            let pem = match crv {
                Some(CurveName::P256) => p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| invalid(e.to_string()))?
                    .to_public_key_pem(LineEnding::LF),
                Some(CurveName::P384) => p384::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| invalid(e.to_string()))?
                    .to_public_key_pem(LineEnding::LF),
                Some(CurveName::P521) => p521::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| invalid(e.to_string()))?
                    .to_public_key_pem(LineEnding::LF),
                other => {
                    let other = other.map_or_else(|| "none".to_owned(), ToString::to_string);
                    return Err(invalid(format!("unsupported curve {other} (P-256, P-384 and P-521 are)")));
                }
            };
            pem.map_err(|e| invalid(e.to_string()))
        }
        other => Err(invalid(format!("unsupported key type {other} (RSA and EC are)"))),
    }
}

/// A PFX (PKCS#12, empty password, as Key Vault stores it): every private key as PKCS#8
/// `PRIVATE KEY` first, then the certificates, ordered leaf to root when `construct_chain`.
pub fn pfx_to_pem(pfx: &[u8], construct_chain: bool) -> Result<Vec<u8>, Error> {
    // The archive gives every bag as stored; the KeyStore view links keys to certificates by
    // its own rules and may drop chain certificates.
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(pfx, "")
        .map_err(|e| Error::invalid_config(format!("cannot open the PFX of the certificate: {e}")))?;
    let keys: String = archive.keys.iter().map(|bag| pem_block("PRIVATE KEY", bag.key.as_der())).collect();
    let mut certificates: Vec<Vec<u8>> = Vec::new();
    for bag in &archive.certs {
        let der = bag.cert.as_der().to_vec();
        if !certificates.contains(&der) {
            certificates.push(der);
        }
    }
    let ordered = if construct_chain { order_chain(certificates)? } else { certificates };
    let mut out = keys.into_bytes();
    for certificate in ordered {
        out.extend_from_slice(pem_block("CERTIFICATE", &certificate).as_bytes());
    }
    Ok(out)
}

/// Orders certificates leaf → intermediates → root, as the Azure provider does: an incomplete
/// chain keeps the stored order (logged), as do several leaves; a chain without a leaf (a cycle)
/// is an error. How certificates chain is core's (`certs::chaining`).
pub fn order_chain(certificates: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, Error> {
    if certificates.len() < 2 {
        return Ok(certificates);
    }
    let chaining = csi_secrets_provider_core::certs::chaining(&certificates)
        .map_err(|why| Error::invalid_config(format!("cannot parse a certificate of the chain: {why}")))?;
    match chaining.leaves.len() {
        0 => {
            return Err(Error::invalid_config(
                "cannot order the certificate chain: no leaf certificate (a cycle?)",
            ));
        }
        1 => {}
        leaves => {
            tracing::warn!(leaves, "certificate chain has several leaves; keeping the stored order");
            return Ok(certificates);
        }
    }
    if chaining.walk.len() != certificates.len() {
        // Upstream's words, which log alerts match.
        tracing::warn!(
            "certificate chain is not complete due to missing intermediate/root certificates in the cert from key vault; keeping the stored order"
        );
        return Ok(certificates);
    }
    Ok(chaining.walk.into_iter().map(|i| certificates[i].clone()).collect())
}

/// Splits PEM text into (certificate blocks, every other block), for
/// `--write-cert-and-key-in-separate-files`.
pub fn split_certificates_and_keys(pem_text: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let blocks =
        pem::parse_many(pem_text).map_err(|e| Error::invalid_config(format!("cannot split the PEM: {e}")))?;
    let (mut certificates, mut others) = (String::new(), String::new());
    for block in blocks {
        let text = pem_block(block.tag(), block.contents());
        if block.tag() == "CERTIFICATE" { certificates.push_str(&text) } else { others.push_str(&text) }
    }
    Ok((certificates.into_bytes(), others.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use x509_parser::prelude::{FromDer, X509Certificate};

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    /// Certificates as DER, leaf first, and the leaf's key.
    type Chain = (Vec<Vec<u8>>, KeyPair);

    /// root → intermediate → leaf, as DER, and the leaf's key.
    fn chain() -> Result<Chain, Box<dyn std::error::Error>> {
        let root_key = KeyPair::generate()?;
        let mut root_params = CertificateParams::new(Vec::<String>::new())?;
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params.distinguished_name.push(rcgen::DnType::CommonName, "root");
        let root = root_params.self_signed(&root_key)?;
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let mid_key = KeyPair::generate()?;
        let mut mid_params = CertificateParams::new(Vec::<String>::new())?;
        mid_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        mid_params.distinguished_name.push(rcgen::DnType::CommonName, "intermediate");
        let mid = mid_params.signed_by(&mid_key, &root_issuer)?;
        let mid_issuer = rcgen::Issuer::new(mid_params, mid_key);
        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(vec!["app.example".to_owned()])?;
        leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "leaf");
        let leaf = leaf_params.signed_by(&leaf_key, &mid_issuer)?;
        Ok((vec![leaf.der().to_vec(), mid.der().to_vec(), root.der().to_vec()], leaf_key))
    }

    fn names(certificates: &[Vec<u8>]) -> Vec<String> {
        certificates
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok())
            .map(|(_, c)| c.subject().to_string())
            .collect()
    }

    #[test]
    fn chains_are_ordered_leaf_to_root_whatever_the_stored_order() -> TestResult {
        let (ordered, _) = chain()?;
        let shuffled = vec![ordered[2].clone(), ordered[0].clone(), ordered[1].clone()];
        assert_eq!(names(&order_chain(shuffled)?), ["CN=leaf", "CN=intermediate", "CN=root"]);
        // Incomplete: keeps the stored order.
        let partial = vec![ordered[2].clone(), ordered[0].clone()];
        assert_eq!(names(&order_chain(partial)?), ["CN=root", "CN=leaf"]);
        Ok(())
    }

    #[test]
    fn pfx_becomes_key_first_then_ordered_chain() -> TestResult {
        let (ordered, key) = chain()?;
        let certs: Vec<p12_keystore::Certificate> = [&ordered[2], &ordered[1], &ordered[0]]
            .iter()
            .map(|d| p12_keystore::Certificate::from_der(d))
            .collect::<Result<_, _>>()?;
        let mut store = p12_keystore::KeyStore::new();
        let private_key = p12_keystore::PrivateKey::from_der(&key.serialize_der())?;
        store.add_entry(
            "leaf",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
                b"1".to_vec(),
                private_key,
                certs,
            )),
        );
        let pfx = store.writer("").write()?;
        let pem_text = pfx_to_pem(&pfx, true)?;
        let blocks = pem::parse_many(&pem_text)?;
        let tags: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
        assert_eq!(tags, ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE", "CERTIFICATE"]);
        assert_eq!(blocks[0].contents(), key.serialize_der().as_slice(), "PKCS#8 key unchanged");
        let chain: Vec<Vec<u8>> = blocks[1..].iter().map(|b| b.contents().to_vec()).collect();
        assert_eq!(names(&chain), ["CN=leaf", "CN=intermediate", "CN=root"]);
        let (certificates, keys) = split_certificates_and_keys(&pem_text)?;
        assert_eq!(pem::parse_many(&certificates)?.len(), 3);
        assert_eq!(pem::parse_many(&keys)?.len(), 1);
        Ok(())
    }

    #[test]
    fn keys_become_pkix_pem() -> TestResult {
        use p256::pkcs8::DecodePublicKey;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let raw = key.public_key_raw().to_vec(); // 04 || x || y
        let pem_text =
            public_key_pem(&KeyType::Ec, Some(&CurveName::P256), &[], &[], &raw[1..33], &raw[33..])?;
        assert!(pem_text.starts_with("-----BEGIN PUBLIC KEY-----"));
        let parsed = p256::PublicKey::from_public_key_pem(&pem_text)?;
        assert_eq!(parsed.to_sec1_bytes().as_ref(), raw.as_slice());
        assert!(public_key_pem(&KeyType::Ec, Some(&CurveName::P256K), &[], &[], &[1], &[2]).is_err());
        assert!(public_key_pem(&KeyType::Oct, None, &[], &[], &[], &[]).is_err());
        Ok(())
    }

    #[test]
    fn encodings() -> Result<(), Error> {
        assert_eq!(decode("plain", ObjectEncoding::Utf8)?, b"plain");
        assert_eq!(decode("00ff41", ObjectEncoding::Hex)?, [0, 0xff, b'A']);
        assert_eq!(decode("AP9B", ObjectEncoding::Base64)?, [0, 0xff, b'A']);
        assert!(decode("zz", ObjectEncoding::Hex).is_err());
        Ok(())
    }
}

//! Certificates as servers want them, for `files` templates (`pem_certs`, `pem_key`, `pfx`):
//! PEM blocks picked out of a bundle, a chain ordered leaf first, a PKCS#12 file opened within
//! documented bounds ([`pkcs12`]). Pure Rust, no TLS stack.

pub mod pkcs12;

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Most certificates one value may hold for [`order_leaf_first`] (ordering compares pairs).
pub const MAX_CERTIFICATES: usize = 100;

/// A PEM block with LF line endings.
pub fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// What ordering needs of a certificate: its names and key identifiers.
struct Link {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

impl Link {
    /// `index` counts from 1 in the message.
    fn of(der: &[u8], index: usize) -> Result<Self, String> {
        let (_, certificate) = X509Certificate::from_der(der)
            .map_err(|_| format!("certificate {index} is not an X.509 certificate"))?;
        let mut link = Link {
            subject: certificate.subject().as_raw().to_vec(),
            issuer: certificate.issuer().as_raw().to_vec(),
            subject_key_id: None,
            authority_key_id: None,
        };
        for extension in certificate.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => link.subject_key_id = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    link.authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                _ => {}
            }
        }
        Ok(link)
    }

    /// Whether this certificate issued `child`: by key identifiers when both have them, else
    /// by names.
    fn issued(&self, child: &Link) -> bool {
        match (&child.authority_key_id, &self.subject_key_id) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => child.issuer == self.subject,
        }
    }

    fn self_signed(&self) -> bool {
        self.issued(self)
    }
}

/// How a set of certificates chains: the leaves (certificates that issued none of the others,
/// and are not self-signed unless all of them are), and from the first leaf the walk to each
/// issuer in turn as far as the set goes, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chaining {
    pub leaves: Vec<usize>,
    pub walk: Vec<usize>,
}

/// How `certificates` (DER) chain; errors name a certificate by its place, never its contents.
pub fn chaining(certificates: &[Vec<u8>]) -> Result<Chaining, String> {
    if certificates.len() > MAX_CERTIFICATES {
        return Err(format!("holds {} certificates, more than {MAX_CERTIFICATES}", certificates.len()));
    }
    let links = certificates
        .iter()
        .enumerate()
        .map(|(i, der)| Link::of(der, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    let issues_none = |i: usize| !(0..links.len()).any(|j| j != i && links[i].issued(&links[j]));
    let mut leaves: Vec<usize> =
        (0..links.len()).filter(|&i| issues_none(i) && !links[i].self_signed()).collect();
    if leaves.is_empty() {
        leaves = (0..links.len()).filter(|&i| issues_none(i)).collect();
    }
    let mut walk = Vec::new();
    if let Some(&leaf) = leaves.first() {
        walk.push(leaf);
        let mut current = leaf;
        while !links[current].self_signed() {
            match (0..links.len()).find(|&i| !walk.contains(&i) && links[i].issued(&links[current])) {
                Some(issuer) => {
                    walk.push(issuer);
                    current = issuer;
                }
                None => break,
            }
        }
    }
    Ok(Chaining { leaves, walk })
}

/// Orders DER certificates as a server sends them: the leaf first (the first, in the given
/// order, that issued none of the others and is not self-signed; else the first that issued
/// none), then its issuer, that one's issuer and so on as far as the set goes, then every other
/// certificate in its given order (a root whose intermediate is missing comes after the leaf
/// that way, as unrelated). Errors name the certificate by its place, never its contents.
pub fn order_leaf_first(certificates: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
    let Chaining { walk, .. } = chaining(&certificates)?;
    let rest: Vec<usize> = (0..certificates.len()).filter(|i| !walk.contains(i)).collect();
    let mut certificates: Vec<Option<Vec<u8>>> = certificates.into_iter().map(Some).collect();
    Ok(walk.into_iter().chain(rest).filter_map(|i| certificates[i].take()).collect())
}

/// The PEM blocks of `text`, as (tag, DER).
pub fn pem_blocks(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let cut = "is not PEM text (a block is cut or malformed)";
    // The parser skips a block that never ends; a cut bundle must not lose its last certificate
    // silently.
    let count = |marker: &[u8]| text.windows(marker.len()).filter(|w| *w == marker).count();
    if count(b"-----BEGIN ") != count(b"-----END ") {
        return Err(cut.to_owned());
    }
    let blocks = pem::parse_many(text).map_err(|_| cut.to_owned())?;
    Ok(blocks.into_iter().map(|block| (block.tag().to_owned(), block.contents().to_vec())).collect())
}

/// Which certificates of a bundle [`pem_certificates`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificatePart {
    /// All, leaf first (`tls.crt`).
    All,
    /// The leaf alone.
    Leaf,
    /// All but the leaf: its issuers, then the others (`ca.crt`).
    Issuers,
}

impl CertificatePart {
    pub const NAMES: [&str; 3] = ["all", "leaf", "issuers"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "all" => Some(Self::All),
            "leaf" => Some(Self::Leaf),
            "issuers" => Some(Self::Issuers),
            _ => None,
        }
    }
}

/// The certificate blocks of PEM `text`, ordered leaf first ([`order_leaf_first`]), as PEM:
/// `part` of them.
pub fn pem_certificates(text: &[u8], part: CertificatePart) -> Result<String, String> {
    let certificates: Vec<Vec<u8>> =
        pem_blocks(text)?.into_iter().filter(|(tag, _)| tag == "CERTIFICATE").map(|(_, der)| der).collect();
    if certificates.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    let ordered = order_leaf_first(certificates)?;
    let chosen = match part {
        CertificatePart::All => &ordered[..],
        CertificatePart::Leaf => &ordered[..1],
        CertificatePart::Issuers => &ordered[1..],
    };
    Ok(chosen.iter().map(|der| pem_block("CERTIFICATE", der)).collect())
}

/// The tags of private key blocks: PKCS#8, PKCS#1 (RSA) and SEC1 (EC), kept as stored.
const KEY_TAGS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// The one private key block of PEM `text`, as stored (its tag kept).
pub fn pem_private_key(text: &[u8]) -> Result<String, String> {
    let blocks = pem_blocks(text)?;
    let keys: Vec<&(String, Vec<u8>)> =
        blocks.iter().filter(|(tag, _)| KEY_TAGS.contains(&tag.as_str())).collect();
    match keys.as_slice() {
        [(tag, der)] => Ok(pem_block(tag, der)),
        [] if blocks.iter().any(|(tag, _)| tag == "ENCRYPTED PRIVATE KEY") => {
            Err("holds an encrypted private key (ENCRYPTED PRIVATE KEY), which pem_key does not decrypt"
                .to_owned())
        }
        [] => Err("holds no private key block (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".to_owned()),
        many => Err(format!("holds {} private keys, not one", many.len())),
    }
}

#[cfg(test)]
pub(crate) mod tests;

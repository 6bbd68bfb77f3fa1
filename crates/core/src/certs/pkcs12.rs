//! PKCS#12 (PFX) files opened within bounds a mount can afford.
//!
//! A PFX names its own key derivation: an iteration count, or scrypt with its memory cost. The
//! general-purpose readers accept up to a million iterations per derivation and a gibibyte of
//! scrypt memory, any number of times in one file, which one template could turn into seconds
//! of CPU or the OOM killer for every pod of the node. So `pfx()` reads the file itself, with the
//! RustCrypto building blocks, and checks every derivation's cost before running it:
//! [`MAX_PFX_BYTES`], [`MAX_ITERATIONS`] per derivation, [`MAX_TOTAL_ITERATIONS`] and
//! [`MAX_DERIVATIONS`] per file; scrypt is refused (no common tool writes it into a PFX).
//!
//! Read: the MAC (HMAC-SHA-1/-256/-384/-512, checked first, so a wrong password is said as
//! such), `Data` and `EncryptedData` contents (PBES2 with PBKDF2, or PBES1 3DES and RC2), key
//! bags, shrouded key bags and X.509 certificate bags; other bags are ignored.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyInit, KeyIvInit};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use hmac::Mac;
use pkcs5::pbes2;
use pkcs12::kdf::{self, Pkcs12KeyType};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::safe_bag::{PrivateKeyInfo, SafeContents};
use pkcs12::{AuthenticatedSafe, CertBag, MacData};
use zeroize::Zeroizing;

/// The largest PFX read: a key and a chain of a few certificates take a few KiB.
pub const MAX_PFX_BYTES: usize = 64 * 1024;
/// The most iterations one key derivation may ask for (common tools write 2,000 to 10,000;
/// OWASP's PBKDF2-HMAC-SHA256 advice is 600,000).
pub const MAX_ITERATIONS: u64 = 600_000;
/// The most iterations a [`Budget`] allows over all its derivation blocks (one mount's PFX
/// files together): about a second of one core.
pub const MAX_TOTAL_ITERATIONS: u64 = 4_000_000;
/// The most derivation blocks a [`Budget`] allows (a derivation that makes a key longer than
/// its hash's output runs once per block: a 3DES key and its IV over SHA-1 are three).
pub const MAX_DERIVATIONS: usize = 32;

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_RC2_128: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// What a PFX holds: its private keys (PKCS#8 DER, wiped when dropped) and its certificates
/// (DER), in the order stored.
#[derive(Default)]
pub struct Pfx {
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    pub certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pfx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pfx")
            .field("keys", &self.keys.len())
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// Why a PFX could not be read: the password, or the file (its words name no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    WrongPassword,
    Unreadable(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongPassword => {
                f.write_str("cannot be opened with that password (its integrity check fails)")
            }
            Self::Unreadable(why) => f.write_str(why),
        }
    }
}

fn unreadable(why: impl Into<String>) -> OpenError {
    OpenError::Unreadable(why.into())
}

fn malformed(_: der::Error) -> OpenError {
    unreadable("is not a PKCS#12 (PFX) file")
}

/// The password as the PKCS#12 key derivation takes it: the text (UTF-16, NUL-terminated), or,
/// for an empty password, possibly no bytes at all (tools differ; the MAC says which).
#[derive(Clone, Copy)]
enum Password<'a> {
    Text(&'a str),
    Absent,
}

impl Password<'_> {
    fn pkcs12_key<D>(
        self,
        salt: &[u8],
        kind: Pkcs12KeyType,
        rounds: i32,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, OpenError>
    where
        D: hmac::digest::Digest + hmac::digest::FixedOutputReset + hmac::digest::block_api::BlockSizeUser,
    {
        match self {
            Self::Text(text) => kdf::derive_key_utf8::<D>(text, salt, kind, rounds, len)
                .map(Zeroizing::new)
                .map_err(|_| unreadable("has a password that is not text the PFX can hold")),
            Self::Absent => Ok(Zeroizing::new(kdf::derive_key::<D>(&[], salt, kind, rounds, len))),
        }
    }

    fn bytes(self) -> &'static [u8] {
        &[]
    }
}

/// The cost of the key derivations asked so far, refused past [`MAX_TOTAL_ITERATIONS`] and
/// [`MAX_DERIVATIONS`]: one per file, or one for every file of a mount.
#[derive(Debug, Default)]
pub struct Budget {
    derivations: usize,
    iterations: u64,
}

impl Budget {
    /// Accounts for `count` derivation blocks of `iterations` each.
    fn spend(&mut self, iterations: i64, count: usize) -> Result<i32, OpenError> {
        let per =
            u64::try_from(iterations).ok().filter(|n| (1..=MAX_ITERATIONS).contains(n)).ok_or_else(|| {
                unreadable(format!(
                    "asks for {iterations} key derivation iterations (1 to {MAX_ITERATIONS} are read)"
                ))
            })?;
        self.derivations += count;
        self.iterations += per * count as u64;
        if self.derivations > MAX_DERIVATIONS {
            return Err(unreadable(format!("asks for more than {MAX_DERIVATIONS} key derivations")));
        }
        if self.iterations > MAX_TOTAL_ITERATIONS {
            return Err(unreadable(format!(
                "asks for more than {MAX_TOTAL_ITERATIONS} key derivation iterations in all"
            )));
        }
        i32::try_from(per).map_err(|_| unreadable("asks for too many iterations"))
    }
}

/// Opens `der` with `password`, within the bounds above.
pub fn open(der: &[u8], password: &str) -> Result<Pfx, OpenError> {
    open_within(der, password, &mut Budget::default())
}

/// [`open`], its key derivations charged to `budget` (shared by the files of one mount).
pub fn open_within(der: &[u8], password: &str, budget: &mut Budget) -> Result<Pfx, OpenError> {
    if der.len() > MAX_PFX_BYTES {
        return Err(unreadable(format!(
            "is {} bytes, more than the {MAX_PFX_BYTES} a PFX may be",
            der.len()
        )));
    }
    let pfx = pkcs12::pfx::Pfx::from_der(der).map_err(malformed)?;
    if pfx.auth_safe.content_type != DATA {
        return Err(unreadable("is signed with a public key (only password-protected PFX files are read)"));
    }
    let content = octets(&pfx.auth_safe.content)?;
    let password = match &pfx.mac_data {
        Some(mac) => verified_password(mac, &content, password, budget)?,
        None => Password::Text(password),
    };
    let safes = AuthenticatedSafe::from_der(&content).map_err(malformed)?;
    let mut found = Pfx::default();
    for safe in &safes {
        let bags = match safe.content_type {
            DATA => Zeroizing::new(octets(&safe.content)?),
            ENCRYPTED_DATA => encrypted_contents(safe, password, budget)?,
            _ => return Err(unreadable("holds a part that is neither data nor password-encrypted data")),
        };
        read_bags(&bags, password, budget, &mut found)?;
    }
    Ok(found)
}

fn octets(content: &Any) -> Result<Vec<u8>, OpenError> {
    let der = content.to_der().map_err(malformed)?;
    Ok(OctetString::from_der(&der).map_err(malformed)?.into_bytes().into_vec())
}

/// Checks the MAC with `password` (and, when it is empty, with no password bytes): which form
/// verifies is the one the file was written with.
fn verified_password<'a>(
    mac: &MacData,
    content: &[u8],
    password: &'a str,
    budget: &mut Budget,
) -> Result<Password<'a>, OpenError> {
    let forms: &[Password<'a>] = if password.is_empty() {
        &[Password::Text(password), Password::Absent]
    } else {
        &[Password::Text(password)]
    };
    let rounds = budget.spend(i64::from(mac.iterations), forms.len())?;
    for &form in forms {
        if mac_matches(mac, content, form, rounds)? {
            return Ok(form);
        }
    }
    Err(OpenError::WrongPassword)
}

fn mac_matches(
    mac: &MacData,
    content: &[u8],
    password: Password<'_>,
    rounds: i32,
) -> Result<bool, OpenError> {
    macro_rules! check {
        ($digest:ty) => {{
            let size = <$digest as hmac::digest::OutputSizeUser>::output_size();
            let key =
                password.pkcs12_key::<$digest>(mac.mac_salt.as_bytes(), Pkcs12KeyType::Mac, rounds, size)?;
            let mut hmac = <hmac::Hmac<$digest> as KeyInit>::new_from_slice(&key)
                .map_err(|_| unreadable("has a MAC key of the wrong length"))?;
            hmac.update(content);
            Ok(hmac.verify_slice(mac.mac.digest.as_bytes()).is_ok())
        }};
    }
    match mac.mac.algorithm.oid {
        SHA1 => check!(sha1::Sha1),
        SHA256 => check!(sha2::Sha256),
        SHA384 => check!(sha2::Sha384),
        SHA512 => check!(sha2::Sha512),
        _ => Err(unreadable("has an integrity check (MAC) of a kind not read here")),
    }
}

fn encrypted_contents(
    safe: &ContentInfo,
    password: Password<'_>,
    budget: &mut Budget,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let der = safe.content.to_der().map_err(malformed)?;
    let encrypted = EncryptedData::from_der(&der).map_err(malformed)?;
    let info = &encrypted.enc_content_info;
    let Some(data) = info.encrypted_content.as_ref() else { return Ok(Zeroizing::new(Vec::new())) };
    let parameters =
        info.content_enc_alg.parameters.as_ref().map(|p| p.to_der()).transpose().map_err(malformed)?;
    decrypt(info.content_enc_alg.oid, parameters.as_deref(), data.as_bytes(), password, budget)
}

/// Decrypts `data` encrypted with `algorithm` (and its DER `parameters`), the cost checked first.
fn decrypt(
    algorithm: ObjectIdentifier,
    parameters: Option<&[u8]>,
    data: &[u8],
    password: Password<'_>,
    budget: &mut Budget,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let parameters = parameters.ok_or_else(|| unreadable("has encrypted data without its parameters"))?;
    let failed = || unreadable("has a part that does not decrypt with the password");
    match algorithm {
        PBES2 => {
            let parameters = pbes2::Parameters::from_der(parameters).map_err(malformed)?;
            match &parameters.kdf {
                // An AES-256 key over HMAC-SHA-1 is two PBKDF2 blocks: charged two.
                pbes2::Kdf::Pbkdf2(pbkdf2) => budget.spend(i64::from(pbkdf2.iteration_count), 2)?,
                // scrypt's memory cost is the file's to choose; no common tool writes it.
                _ => return Err(unreadable("derives its keys with scrypt, which is not read")),
            };
            let text = match password {
                Password::Text(text) => text.as_bytes(),
                Password::Absent => password.bytes(),
            };
            parameters.decrypt(text, data).map(Zeroizing::new).map_err(|_| failed())
        }
        PBE_SHA1_3DES | PBE_SHA1_RC2_128 | PBE_SHA1_RC2_40 => {
            let parameters = Pkcs12PbeParams::from_der(parameters).map_err(malformed)?;
            let key_len: usize = match algorithm {
                PBE_SHA1_3DES => 24,
                PBE_SHA1_RC2_128 => 16,
                _ => 5,
            };
            // The key (one SHA-1 block per 20 bytes) and the IV (one), each block a derivation.
            let rounds = budget.spend(i64::from(parameters.iterations), key_len.div_ceil(20) + 1)?;
            let salt = parameters.salt.as_bytes();
            let key =
                password.pkcs12_key::<sha1::Sha1>(salt, Pkcs12KeyType::EncryptionKey, rounds, key_len)?;
            let iv = password.pkcs12_key::<sha1::Sha1>(salt, Pkcs12KeyType::Iv, rounds, 8)?;
            let plain = if algorithm == PBE_SHA1_3DES {
                cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                    .map_err(|_| failed())?
                    .decrypt_padded_vec::<Pkcs7>(data)
            } else {
                let cipher = rc2::Rc2::new_with_eff_key_len(&key, key_len * 8);
                cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
                    .map_err(|_| failed())?
                    .decrypt_padded_vec::<Pkcs7>(data)
            };
            plain.map(Zeroizing::new).map_err(|_| failed())
        }
        _ => Err(unreadable(
            "is encrypted with an algorithm not read here (PBES2 with PBKDF2, 3DES and RC2 are)",
        )),
    }
}

fn read_bags(
    contents: &[u8],
    password: Password<'_>,
    budget: &mut Budget,
    found: &mut Pfx,
) -> Result<(), OpenError> {
    let bags = SafeContents::from_der(contents).map_err(malformed)?;
    for bag in bags {
        match bag.bag_id {
            KEY_BAG => {
                let key = ContextSpecific::<Any>::from_der(&bag.bag_value).map_err(malformed)?;
                found.keys.push(Zeroizing::new(key.value.to_der().map_err(malformed)?));
            }
            SHROUDED_KEY_BAG => {
                let shrouded = ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&bag.bag_value)
                    .map_err(malformed)?;
                let algorithm = &shrouded.value.encryption_algorithm;
                let parameters =
                    algorithm.parameters.as_ref().map(|p| p.to_der()).transpose().map_err(malformed)?;
                let data = shrouded.value.encrypted_data.as_bytes();
                let key = decrypt(algorithm.oid, parameters.as_deref(), data, password, budget)?;
                // Without a MAC a wrong password can still unpad (1 in 256): the key must parse.
                PrivateKeyInfo::from_der(&key)
                    .map_err(|_| unreadable("has a key that does not decrypt with the password"))?;
                found.keys.push(key);
            }
            CERT_BAG => {
                let certificate = ContextSpecific::<CertBag>::from_der(&bag.bag_value).map_err(malformed)?;
                if certificate.value.cert_id == X509_CERTIFICATE {
                    let der = certificate.value.cert_value.as_bytes().to_vec();
                    if !found.certificates.contains(&der) {
                        found.certificates.push(der);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

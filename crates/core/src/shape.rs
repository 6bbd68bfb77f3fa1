//! What one object's file becomes (see [`crate::shaping`]): `writeFile`, `expandKeys`, `decode`, the per-object keys every
//! backend accepts beside its upstream ones.

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::{ConfigKey, Fields};

/// How an object's value is decoded before it is written (`decode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// RFC 4648 base64, standard alphabet, padding optional, whitespace ignored.
    Base64,
    /// Hexadecimal digits in either case, whitespace ignored.
    Hex,
}

impl Decoding {
    pub const KEY: &'static str = "decode";

    /// `base64` or `hex` (any case); the error names the accepted values.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("base64") => Ok(Self::Base64),
            t if t.eq_ignore_ascii_case("hex") => Ok(Self::Hex),
            other => {
                Err(Error::invalid_config(format!("decode must be \"base64\" or \"hex\", got {other:?}"))
                    .with_field(Self::KEY))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base64 => "base64",
            Self::Hex => "hex",
        }
    }

    /// The decoded bytes, or why they cannot be (never quoting the value).
    pub(crate) fn decode(self, encoded: &[u8]) -> Result<Vec<u8>, String> {
        let compact: Zeroizing<Vec<u8>> =
            Zeroizing::new(encoded.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect());
        match self {
            Self::Base64 => BASE64_PADDING_OPTIONAL.decode(compact.as_slice()).map_err(|e| {
                let why = match e {
                    base64::DecodeError::InvalidByte(offset, _) => {
                        format!("a character that is not in the standard base64 alphabet at offset {offset}")
                    }
                    base64::DecodeError::InvalidLength(_) => "a length no base64 text has".to_owned(),
                    base64::DecodeError::InvalidLastSymbol(offset, _) => {
                        format!("a last character at offset {offset} that leaves bits over")
                    }
                    base64::DecodeError::InvalidPadding => "bad padding".to_owned(),
                };
                format!("the value is not base64 (RFC 4648, standard alphabet): it has {why}")
            }),
            Self::Hex => hex::decode(compact.as_slice()).map_err(|e| {
                let why = match e {
                    hex::FromHexError::InvalidHexCharacter { index, .. } => {
                        format!("a character that is not a hex digit at offset {index}")
                    }
                    hex::FromHexError::OddLength => "an odd number of digits".to_owned(),
                    hex::FromHexError::InvalidStringLength => "a bad length".to_owned(),
                };
                format!("the value is not hexadecimal: it has {why}")
            }),
        }
    }
}

const BASE64_PADDING_OPTIONAL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// How one object's file is written: decoded, expanded to one file per JSON key, or not at all
/// (read for `files` only). The default writes the value as the cloud returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileShape {
    /// `writeFile` (default true): false reads the object for `files` without writing it.
    pub write_file: bool,
    /// `expandKeys`: one file per top-level key of the object's JSON value.
    pub expand_keys: bool,
    /// `decode`: the file holds the decoded bytes.
    pub decode: Option<Decoding>,
}

impl Default for FileShape {
    fn default() -> Self {
        Self::PLAIN
    }
}

/// The per-object keys, for a backend's own key enum: a backend lists `writeFile`,
/// `expandKeys` and `decode` among its object keys and says which variants they are.
pub trait ShapeKeys: ConfigKey {
    const WRITE_FILE: Self;
    const EXPAND_KEYS: Self;
    const DECODE: Self;
}

/// Implements [`ShapeKeys`] for a key enum declared with `WriteFile => "writeFile"`,
/// `ExpandKeys => "expandKeys"` and `Decode => "decode"` among its variants.
#[macro_export]
macro_rules! shape_keys {
    ($keys:ty) => {
        impl $crate::shape::ShapeKeys for $keys {
            const WRITE_FILE: Self = Self::WriteFile;
            const EXPAND_KEYS: Self = Self::ExpandKeys;
            const DECODE: Self = Self::Decode;
        }
    };
}

impl FileShape {
    /// Written as read.
    pub const PLAIN: Self = Self { write_file: true, expand_keys: false, decode: None };

    pub fn is_plain(&self) -> bool {
        *self == Self::PLAIN
    }

    /// Written, decoded as `decode` says (a `jmesPath` entry's shape).
    pub fn decoded(decode: Option<Decoding>) -> Self {
        Self { decode, ..Self::PLAIN }
    }

    /// Reads an object's `writeFile`, `expandKeys` and `decode`; each problem names its key
    /// (callers add the object).
    pub fn read<K: ShapeKeys>(fields: &Fields<'_, K>) -> (Self, Vec<Error>) {
        let mut problems = Vec::new();
        let mut shape = Self::PLAIN;
        match fields.trimmed(K::WRITE_FILE) {
            Ok(None) => {}
            Ok(Some(_)) => match fields.flag(K::WRITE_FILE) {
                Ok(write) => shape.write_file = write,
                Err(e) => problems.push(e),
            },
            Err(e) => problems.push(e),
        }
        match fields.flag(K::EXPAND_KEYS) {
            Ok(expand) => shape.expand_keys = expand,
            Err(e) => problems.push(e),
        }
        match fields.trimmed(K::DECODE) {
            Ok(None) => {}
            Ok(Some(text)) => match Decoding::parse(&text) {
                Ok(decode) => shape.decode = Some(decode),
                Err(e) => problems.push(e.with_field(K::DECODE.as_str())),
            },
            Err(e) => problems.push(e),
        }
        (shape, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc4648_standard_with_optional_padding_and_whitespace() {
        let decode = |text: &str| Decoding::Base64.decode(text.as_bytes());
        assert_eq!(decode("aGVsbG8="), Ok(b"hello".to_vec()));
        assert_eq!(decode("aGVsbG8"), Ok(b"hello".to_vec()));
        assert_eq!(decode(" aGVs\nbG8=\r\n"), Ok(b"hello".to_vec()));
        assert_eq!(decode(""), Ok(Vec::new()));
        for bad in ["aGVsbG8-", "aGVsbG8_", "a", "aGVsbG8==="] {
            let error = decode(bad).err().unwrap_or_default();
            assert!(error.starts_with("the value is not base64"), "{bad}: {error}");
            assert!(bad.len() < 3 || !error.contains(bad), "the value is never quoted: {error}");
        }
    }

    #[test]
    fn hex_takes_either_case_and_ignores_whitespace() {
        assert_eq!(Decoding::Hex.decode(b"DEad be\nef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert!(Decoding::Hex.decode(b"abc").is_err());
        assert!(Decoding::Hex.decode(b"zz").is_err());
    }

    #[test]
    fn decode_names_its_values() {
        assert_eq!(Decoding::parse("Base64"), Ok(Decoding::Base64));
        assert_eq!(Decoding::parse("hex"), Ok(Decoding::Hex));
        let error = Decoding::parse("utf-8").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(r#"must be "base64" or "hex""#), "{error}");
    }
}

//! File modes: the driver's decimal `permission` and the SPC's octal `filePermission`.

use std::fmt;

use crate::error::{Error, Result};

/// Permission bits of a written file, `0o000..=0o777` (the driver's `File.mode` range).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    /// What the driver sends in practice: `"420"`, i.e. 0644.
    pub const DEFAULT: FileMode = FileMode(0o644);
    const MAX: u32 = 0o777;

    pub fn new(bits: u32) -> Option<Self> {
        (bits <= Self::MAX).then_some(Self(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// The driver's `MountRequest.permission`: a decimal string (`"420"` = 0644). An empty string
    /// means the driver did not say, and the default applies.
    pub fn from_driver_permission(value: &str) -> Result<Self> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::DEFAULT);
        }
        value.parse::<u32>().ok().and_then(Self::new).ok_or_else(|| {
            Error::invalid_config(format!(
                "invalid permission {value:?}: expected the decimal form of a file mode \
                     between 0 and 511 (for example \"420\" for 0644)"
            ))
            .with_field("permission")
        })
    }

    /// A per-object `filePermission`: three or four octal digits (`"0600"`, `"640"`), at most
    /// 0777. Unlike the Azure provider, which silently turns a bad value into mode 0, a bad value
    /// is an error. The caller adds the object name.
    pub fn parse_octal(value: &str) -> Result<Self> {
        let trimmed = value.trim();
        let well_formed =
            (3..=4).contains(&trimmed.len()) && trimmed.bytes().all(|b| (b'0'..=b'7').contains(&b));
        well_formed
            .then(|| u32::from_str_radix(trimmed, 8).ok())
            .flatten()
            .and_then(Self::new)
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "Invalid File Permission: {value} (expected an octal mode such as \"0600\", at most \"0777\")"
                ))
                .with_field("filePermission")
            })
    }
}

impl Default for FileMode {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#05o}", self.0)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_permission_is_decimal() {
        assert_eq!(FileMode::from_driver_permission("420").map(FileMode::bits), Ok(0o644));
        assert_eq!(FileMode::from_driver_permission("384").map(FileMode::bits), Ok(0o600));
        assert_eq!(FileMode::from_driver_permission("0").map(FileMode::bits), Ok(0));
        assert_eq!(FileMode::from_driver_permission("").map(FileMode::bits), Ok(0o644));
        for bad in ["512", "-1", "0644x", "abc", "4294967296"] {
            let error = FileMode::from_driver_permission(bad).err();
            assert_eq!(error.as_ref().and_then(Error::field), Some("permission"), "{bad}");
        }
    }

    #[test]
    fn file_permission_is_strict_octal() {
        assert_eq!(FileMode::parse_octal("0600").map(FileMode::bits), Ok(0o600));
        assert_eq!(FileMode::parse_octal("640").map(FileMode::bits), Ok(0o640));
        assert_eq!(FileMode::parse_octal(" 0444 ").map(FileMode::bits), Ok(0o444));
        for bad in ["0999", "1644", "0o644", "64", "00644", "", "rw-r--r--", "4755"] {
            let error = FileMode::parse_octal(bad).err();
            assert_eq!(error.as_ref().and_then(Error::field), Some("filePermission"), "{bad}");
            assert!(error.is_some_and(|e| e.message().contains("Invalid File Permission")));
        }
    }

    #[test]
    fn display_is_four_octal_digits() {
        assert_eq!(FileMode::DEFAULT.to_string(), "0644");
        assert_eq!(format!("{:?}", FileMode(0o600)), "0o600");
    }
}

//! File modes: the driver's decimal `permission` and the SPC's octal `filePermission`.

use std::fmt;

use crate::error::{Error, Result};

/// Permission bits of a written file, `0o000..=0o777` (the driver's `File.mode` range). Held
/// in a `u16`, so it converts to the proto's `i32` and the file system's `u32` without a
/// fallible cast anywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u16);

impl FileMode {
    /// What the driver sends in practice: `"420"`, i.e. 0644.
    pub const DEFAULT: FileMode = FileMode(0o644);
    const MAX: u16 = 0o777;

    pub fn new(bits: u32) -> Option<Self> {
        u16::try_from(bits).ok().filter(|bits| *bits <= Self::MAX).map(Self)
    }

    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }

    /// The driver's `File.mode` (proto `int32`).
    pub fn to_driver_mode(self) -> i32 {
        i32::from(self.0)
    }

    /// A `File.mode` from the driver's protocol; anything outside `0..=0o777` is refused rather
    /// than replaced by a default.
    pub fn from_driver_mode(mode: i32) -> Result<Self> {
        u32::try_from(mode).ok().and_then(Self::new).ok_or_else(|| {
            Error::invalid_config(format!("file mode {mode} is not between 0 and 0o777")).with_field("mode")
        })
    }

    /// The driver's `MountRequest.permission`: a decimal string (`"420"` = 0644). An empty string
    /// means the driver did not say, and the default applies.
    pub fn from_driver_permission(value: &str) -> Result<Self> {
        let value = value.trim();
        // The official providers decode it as JSON, so an empty one fails there too.
        value.parse::<u32>().ok().and_then(Self::new).ok_or_else(|| {
            Error::invalid_config(format!(
                "failed to unmarshal file permission: invalid permission {value:?}: expected the \
                     decimal form of a file mode between 0 and 511 (for example \"420\" for 0644)"
            ))
            .with_field("permission")
        })
    }

    /// The AWS provider's `filePermission`: exactly four octal digits (`^[0-7]{4}$`, so `"1640"`
    /// passes). The driver writes only the permission bits, so only those are kept. The caller
    /// adds the object name.
    pub fn parse_four_octal_digits(value: &str) -> Result<Self> {
        let well_formed = value.len() == 4 && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
        well_formed
            .then(|| u32::from_str_radix(value, 8).ok())
            .flatten()
            .map(Self::permission_bits)
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "Invalid File Permission: {value} (expected four octal digits such as \"0600\")"
                ))
                .with_field("filePermission")
            })
    }

    /// The Azure provider's `filePermission`: what Go's `strconv.ParseInt(value, 8, 32)` accepts
    /// (`"0644"`, `"00644"`, `"644"`, `"0"`, a leading `+`), permission bits kept. Upstream turns
    /// anything else silently into mode 0; here it is an error. The caller adds the object name.
    pub fn parse_go_octal(value: &str) -> Result<Self> {
        let digits = value.strip_prefix('+').unwrap_or(value);
        let parsed = (!digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .then(|| i32::from_str_radix(digits, 8).ok())
            .flatten()
            .and_then(|v| u32::try_from(v).ok());
        parsed.map(Self::permission_bits).ok_or_else(|| {
            Error::invalid_config(format!(
                "Invalid File Permission: {value} (file permission must be a valid octal number such as \"0644\")"
            ))
            .with_field("filePermission")
        })
    }

    /// The permission bits of a mode (`0o1640` → `0o640`): what the driver writes.
    fn permission_bits(mode: u32) -> Self {
        // Masked to nine bits, so the narrowing cannot lose anything.
        Self(u16::try_from(mode & u32::from(Self::MAX)).unwrap_or(Self::MAX))
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
        for bad in ["", " ", "512", "-1", "0644x", "abc", "4294967296"] {
            let error = FileMode::from_driver_permission(bad).err();
            assert_eq!(error.as_ref().and_then(Error::field), Some("permission"), "{bad}");
        }
    }

    #[test]
    fn aws_file_permission_is_four_octal_digits_keeping_permission_bits() {
        assert_eq!(FileMode::parse_four_octal_digits("0600").map(FileMode::bits), Ok(0o600));
        assert_eq!(FileMode::parse_four_octal_digits("1640").map(FileMode::bits), Ok(0o640));
        assert_eq!(FileMode::parse_four_octal_digits("4755").map(FileMode::bits), Ok(0o755));
        for bad in ["0999", "640", "0o644", "00644", "", "rw-r--r--", " 0644"] {
            let error = FileMode::parse_four_octal_digits(bad).err();
            assert_eq!(error.as_ref().and_then(Error::field), Some("filePermission"), "{bad}");
            assert!(error.is_some_and(|e| e.message().contains("Invalid File Permission")));
        }
    }

    #[test]
    fn azure_file_permission_is_what_go_parses_in_base_8() {
        for (value, bits) in
            [("0644", 0o644), ("00644", 0o644), ("644", 0o644), ("0", 0), ("+600", 0o600), ("1640", 0o640)]
        {
            assert_eq!(FileMode::parse_go_octal(value).map(FileMode::bits), Ok(bits), "{value}");
        }
        for bad in ["0999", "0o644", "", "-1", "+", "rw-r--r--", "77777777777777"] {
            let error = FileMode::parse_go_octal(bad).err();
            assert_eq!(error.as_ref().and_then(Error::field), Some("filePermission"), "{bad}");
        }
    }

    #[test]
    fn display_is_four_octal_digits() {
        assert_eq!(FileMode::DEFAULT.to_string(), "0644");
        assert_eq!(format!("{:?}", FileMode(0o600)), "0o600");
        assert_eq!(FileMode(0o600).to_driver_mode(), 0o600);
        assert_eq!(FileMode::from_driver_mode(0o640).map(FileMode::bits), Ok(0o640));
        for bad in [-1, 0o1000, i32::MAX] {
            assert!(FileMode::from_driver_mode(bad).is_err(), "{bad} must be refused");
        }
    }
}

//! SecretProviderClass parameters every backend accepts, parsed here once so that each backend
//! gets them already checked (and `validate` reports them for every provider alike).

use std::time::Duration;

use crate::error::Error;
use crate::parameters::Parameters;
use crate::shaping::FilesSpec;

crate::config_keys! {
    /// Parameters of this provider's own that every backend accepts beside its upstream ones.
    pub enum CommonParameter {
        StaleIfError => "staleIfError",
        RefreshInterval => "refreshInterval",
        Files => "files",
    }
}

/// The common parameters of one SecretProviderClass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommonParameters {
    /// `staleIfError`: how old a last good value of the same identity and object a mount
    /// accepts when the cloud is out; `None` (absent or `0`) = never.
    pub stale_if_error: Option<Duration>,
    /// `refreshInterval`: how old a read of the same identity and object a remount takes
    /// without asking the cloud, in place of the remount rule; `None` (absent or `0`): the rule.
    pub refresh_interval: Option<Duration>,
    /// `files`: files built from the mount's objects (templates and formats), compiled.
    pub files: FilesSpec,
}

impl CommonParameters {
    /// The longest `staleIfError`: values are held in memory that long.
    pub const MAX_STALE_IF_ERROR: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    /// The longest `refreshInterval`: a pod's files are at most a day older than the cloud's
    /// (and values are held in memory that long).
    pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

    /// Reads the common parameters; every problem names its parameter.
    pub fn parse(parameters: &Parameters) -> Result<Self, Vec<Error>> {
        let mut problems = Vec::new();
        let mut duration = |key: CommonParameter, longest: Duration| match parameters.get_trimmed(key.name())
        {
            None | Some("") => None,
            Some(text) => match parse_duration(text, key.name(), longest) {
                Ok(duration) => Some(duration).filter(|d| !d.is_zero()),
                Err(message) => {
                    problems.push(Error::invalid_config(message).with_field(key.name()));
                    None
                }
            },
        };
        let stale_if_error = duration(CommonParameter::StaleIfError, Self::MAX_STALE_IF_ERROR);
        let refresh_interval = duration(CommonParameter::RefreshInterval, Self::MAX_REFRESH_INTERVAL);
        let files =
            FilesSpec::parse(parameters.get(CommonParameter::Files.name())).unwrap_or_else(|mut found| {
                problems.append(&mut found);
                FilesSpec::default()
            });
        if problems.is_empty() { Ok(Self { stale_if_error, refresh_interval, files }) } else { Err(problems) }
    }
}

impl CommonParameter {
    fn name(self) -> &'static str {
        crate::ConfigKey::as_str(self)
    }
}

/// A duration parameter (`staleIfError`, `refreshInterval`): `0` or a duration like `30m`, at
/// most `longest`.
fn parse_duration(text: &str, key: &str, longest: Duration) -> Result<Duration, String> {
    let duration = if text == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration like \"30m\" or \"2h\" ({e})"))?
    };
    if duration > longest {
        return Err(format!(
            "{text:?} is longer than the longest {key}, {}",
            humantime::format_duration(longest)
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_common_names_are_the_keys() {
        let names: Vec<&str> =
            <CommonParameter as crate::ConfigKey>::ALL.iter().map(|k| crate::ConfigKey::as_str(*k)).collect();
        assert_eq!(names, crate::parameters::COMMON);
    }

    fn parse(value: Option<&str>) -> Result<CommonParameters, Vec<Error>> {
        let map: BTreeMap<String, String> =
            value.map(|v| ("staleIfError".to_owned(), v.to_owned())).into_iter().collect();
        CommonParameters::parse(&Parameters::new(map))
    }

    #[test]
    fn stale_if_error_is_a_duration_or_off() {
        assert_eq!(parse(None).ok(), Some(CommonParameters::default()));
        assert_eq!(parse(Some("")).ok(), Some(CommonParameters::default()));
        assert_eq!(parse(Some("0")).ok(), Some(CommonParameters::default()));
        assert_eq!(parse(Some("30m")).ok().and_then(|p| p.stale_if_error), Some(Duration::from_secs(1800)));
        assert_eq!(parse(Some("1h30m")).ok().and_then(|p| p.stale_if_error), Some(Duration::from_secs(5400)));
        for bad in ["soon", "-5m", "30", "8d", "1x"] {
            let problems = parse(Some(bad)).err().unwrap_or_default();
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].field(), Some("staleIfError"), "{bad}");
            assert_eq!(problems[0].kind(), crate::ErrorKind::InvalidConfig);
        }
    }

    #[test]
    fn refresh_interval_is_a_duration_of_at_most_a_day_or_off() {
        let parse = |value: &str| {
            let map: BTreeMap<String, String> = [("refreshInterval".to_owned(), value.to_owned())].into();
            CommonParameters::parse(&Parameters::new(map))
        };
        assert_eq!(parse("1h").ok().and_then(|p| p.refresh_interval), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0").ok().and_then(|p| p.refresh_interval), None);
        for bad in ["hourly", "25h", "-1m"] {
            let problems = parse(bad).err().unwrap_or_default();
            assert_eq!(problems.len(), 1, "{bad}");
            assert_eq!(problems[0].field(), Some("refreshInterval"), "{bad}");
        }
        let longer = parse("2d").err().unwrap_or_default();
        assert!(longer[0].message().contains("longer than the longest refreshInterval, 1day"), "{longer:?}");
    }
}

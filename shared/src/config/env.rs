//! Reading variables: one lookup function (the process environment, or a map in tests), and the
//! parsers every setting shares, each naming the variable in its error.

use std::time::Duration;

use super::ConfigError;

/// Reads variables through a lookup function so tests need not touch the process environment.
pub struct EnvSource<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    /// A whole number of seconds from `name`, or `default` when unset; zero only where `zero_allowed`
    /// (a window of nothing, "off").
    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        zero_allowed: bool,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(Duration::from_secs(default));
        };
        match raw.trim().parse::<u64>() {
            Ok(secs) if secs > 0 || zero_allowed => Ok(Duration::from_secs(secs)),
            _ => Err(ConfigError::Invalid {
                name,
                problem: if zero_allowed {
                    format!("expected a whole number of seconds (0 or more), got {raw:?}")
                } else {
                    format!("expected a positive number of seconds, got {raw:?}")
                },
            }),
        }
    }

    /// Like [`EnvSource::seconds_or`], but `0` is a value (a window of nothing: "off").
    pub(super) fn seconds_or_zero(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.seconds(name, default, true)
    }

    pub(super) fn seconds_or(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.seconds(name, default, false)
    }

    /// Like [`EnvSource::count_or`], but `0` is a value (no fee, no commission, no hold).
    pub(super) fn count_or_zero(
        &self,
        name: &'static str,
        default: u32,
    ) -> Result<u32, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse::<u32>().map_err(|_| ConfigError::Invalid {
                name,
                problem: format!("expected a whole number from 0, got {raw:?}"),
            }),
        }
    }

    pub(super) fn count_or(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(count) if count > 0 => Ok(count),
                _ => Err(ConfigError::Invalid {
                    name,
                    problem: format!("expected a positive whole number, got {raw:?}"),
                }),
            },
        }
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    /// `true`/`false` (also 1/0, on/off, yes/no), or `default` when unset.
    pub(super) fn flag_or(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(true),
                "0" | "false" | "off" | "no" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name,
                    problem: format!("expected true or false, got {raw:?}"),
                }),
            },
        }
    }

    /// An absolute `http://` or `https://` URL, or `None` when unset.
    pub(super) fn url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(ConfigError::Invalid {
                    name,
                    problem: "must start with http:// or https://".into(),
                })
            }
            url => Ok(url),
        }
    }
}

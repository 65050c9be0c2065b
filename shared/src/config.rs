//! Configuration, read from the environment once at start-up.

use std::time::Duration;

pub const DEFAULT_TABLE_NAME: &str = "points-redemption";
pub const DEFAULT_REGION: &str = "ap-northeast-1";
/// HS256 keys shorter than the hash output weaken the MAC; refuse them.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
pub const DEFAULT_LOGIN_MAX_FAILURES: u32 = 10;
pub const DEFAULT_LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
pub struct Config {
    pub table_name: String,
    /// Set for the local emulator; unset on AWS, where the SDK resolves the regional endpoint.
    pub dynamodb_endpoint: Option<String>,
    pub region: String,
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Failed logins allowed per username within one window before further attempts get 429.
    pub login_max_failures: u32,
    pub login_failure_window: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table_name", &self.table_name)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .field("region", &self.region)
            .field("jwt_secret", &"<redacted>")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_failure_window", &self.login_failure_window)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Reads variables through a lookup function so tests need not touch the process environment.
pub struct EnvSource<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    fn seconds_or(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
                _ => Err(ConfigError::Invalid {
                    name,
                    problem: format!("expected a positive number of seconds, got {raw:?}"),
                }),
            },
        }
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    fn count_or(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
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

impl Config {
    /// Reads the process environment. `JWT_SECRET` is mandatory here: a Lambda function must
    /// never start with a guessable key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource(|k| std::env::var(k).ok()), None)
    }

    /// Like [`Config::from_env`], but a missing `JWT_SECRET` is replaced by `fallback_secret`
    /// (the local host's generated one).
    pub fn from_env_with_fallback_secret(fallback_secret: Vec<u8>) -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource(|k| std::env::var(k).ok()), Some(fallback_secret))
    }

    pub fn from_source<F: Fn(&str) -> Option<String>>(
        env: &EnvSource<F>,
        fallback_secret: Option<Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        let jwt_secret = match (env.get("JWT_SECRET"), fallback_secret) {
            (Some(secret), _) => secret.into_bytes(),
            (None, Some(fallback)) => fallback,
            (None, None) => return Err(ConfigError::Missing { name: "JWT_SECRET" }),
        };
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
        Ok(Config {
            table_name: env.string_or("TABLE_NAME", DEFAULT_TABLE_NAME),
            dynamodb_endpoint: env.get("DYNAMODB_ENDPOINT"),
            region: env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            jwt_secret,
            access_token_ttl: env.seconds_or("ACCESS_TOKEN_TTL_SECONDS", 15 * 60)?,
            refresh_token_ttl: env.seconds_or("REFRESH_TOKEN_TTL_SECONDS", 14 * 24 * 3600)?,
            login_max_failures: env.count_or("LOGIN_MAX_FAILURES", DEFAULT_LOGIN_MAX_FAILURES)?,
            login_failure_window: env.seconds_or(
                "LOGIN_FAILURE_WINDOW_SECONDS",
                DEFAULT_LOGIN_FAILURE_WINDOW.as_secs(),
            )?,
        })
    }

    /// A configuration for tests and the local host, with an explicit endpoint and secret.
    pub fn local(endpoint: String, table_name: String, jwt_secret: Vec<u8>) -> Self {
        Config {
            table_name,
            dynamodb_endpoint: Some(endpoint),
            region: DEFAULT_REGION.to_string(),
            jwt_secret,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            login_max_failures: DEFAULT_LOGIN_MAX_FAILURES,
            login_failure_window: DEFAULT_LOGIN_FAILURE_WINDOW,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn source(vars: &[(&str, &str)]) -> EnvSource<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvSource(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn a_lambda_refuses_to_start_without_a_secret() {
        let err = Config::from_source(&source(&[]), None).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { name: "JWT_SECRET" }));
    }

    #[test]
    fn a_short_secret_is_refused() {
        let err = Config::from_source(&source(&[("JWT_SECRET", "too-short")]), None).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "JWT_SECRET",
                ..
            }
        ));
    }

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let secret = "x".repeat(32);
        let config = Config::from_source(&source(&[("JWT_SECRET", &secret)]), None).unwrap();
        assert_eq!(config.table_name, DEFAULT_TABLE_NAME);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(1_209_600));
        assert!(config.dynamodb_endpoint.is_none());
        assert!(
            !format!("{config:?}").contains(&secret),
            "secret leaked into Debug"
        );
    }

    #[test]
    fn token_lifetimes_must_be_positive_numbers() {
        let secret = "x".repeat(32);
        let err = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ]),
            None,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "ACCESS_TOKEN_TTL_SECONDS",
                ..
            }
        ));
    }
}

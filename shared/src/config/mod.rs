//! Configuration, read from the environment once at start-up: the settings here, how variables are
//! read in [`env`], ECPay's in [`payments`]. Every default is a constant, written once, used both
//! for an unset variable and by [`Config::local`].

use std::time::Duration;

use secrecy::SecretSlice;

mod env;
pub mod fulfilment;
pub mod invoices;
mod payments;
pub mod settlement;
pub mod webhooks;

pub use env::EnvSource;
pub use fulfilment::FulfilmentConfig;
pub use invoices::InvoiceConfig;
use payments::payments_from;
pub use payments::{
    EcpayEnvironment, PaymentsConfig, CALLBACK_PATH, LOCAL_CHECKOUT_PATH, LOCAL_CREDIT_CHECK_CODE,
    LOCAL_CREDIT_QUERY_PATH, LOCAL_DO_ACTION_PATH, LOCAL_ECPAY_PREFIX, LOCAL_QUERY_PATH,
};
pub use settlement::SettlementConfig;
pub use webhooks::WebhookConfig;

pub const DEFAULT_TABLE_NAME: &str = "points-redemption";
pub const DEFAULT_REGION: &str = "ap-northeast-1";
/// HS256 keys shorter than the hash output weaken the MAC; refuse them.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
pub const DEFAULT_LOGIN_MAX_FAILURES: u32 = 10;
pub const DEFAULT_LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_IP: u32 = 50;
pub const DEFAULT_LOGIN_USERNAME_BACKOFF: Duration = Duration::from_secs(5);
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
pub const DEFAULT_REFRESH_REUSE_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Config {
    pub table_name: String,
    /// Set by the local host and tests for their embedded emulator. Elsewhere it is unset and the SDK
    /// resolves the endpoint itself: the regional one on AWS, or the standard
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` variables when they are set.
    pub dynamodb_endpoint: Option<String>,
    pub region: String,
    /// Held as a secret: never printed, zeroed when dropped; read with `expose_secret()`.
    pub jwt_secret: SecretSlice<u8>,
    /// The secret before the last rotation: tokens it signed are still accepted (never issued).
    pub jwt_previous_secret: Option<SecretSlice<u8>>,
    /// The CloudWatch namespace of the functions' Embedded Metric Format lines.
    pub metrics_namespace: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A refresh token presented again within this long gets the same successor pair
    /// (`REFRESH_REUSE_GRACE_SECONDS`, 10; 0 for no grace window); later, reuse revokes the session.
    pub refresh_reuse_grace: Duration,
    /// Failed logins allowed per username within one window before further attempts get 429.
    pub login_max_failures: u32,
    /// Failed logins allowed per client address (across usernames) within one window.
    pub login_max_failures_per_ip: u32,
    /// Past `login_max_failures` for one username from anywhere, one attempt per this long.
    pub login_username_backoff: Duration,
    pub login_failure_window: Duration,
    /// Password hashes computed at once (`PASSWORD_HASH_CONCURRENCY`, default: the cores).
    pub password_hash_concurrency: u32,
    /// Password hashes waiting beyond those (`PASSWORD_HASH_QUEUE`, default 64); past it, 503.
    pub password_hash_queue: u32,
    /// argon2id cost of new hashes: always production from the environment; tests lower it.
    pub password_cost: crate::auth::password::PasswordCost,
    pub payments: PaymentsConfig,
    pub fulfilment: FulfilmentConfig,
    /// Commission and the hold before a sale is owed.
    pub settlement: SettlementConfig,
    /// E-invoices: when, and ECPay's invoice credentials.
    pub invoices: InvoiceConfig,
    /// Merchants' webhooks: the delivery queue, private addresses, the local retry scale.
    pub webhooks: WebhookConfig,
}

/// The number of cores this process may use (at least one).
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
pub const DEFAULT_PASSWORD_HASH_QUEUE: u32 = 64;

/// Defaults that differ between a Lambda function and the local host.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Used when `JWT_SECRET` is unset (the local host's generated one); `None` makes it mandatory.
    pub fallback_secret: Option<Vec<u8>>,
    /// Used when `PUBLIC_BASE_URL` is unset; with `None` it is taken from each request.
    pub public_base_url: Option<String>,
    pub ecpay_environment: EcpayEnvironment,
}

impl Defaults {
    /// On Lambda every secret must be configured; the public URL may come from API Gateway.
    pub fn lambda() -> Self {
        Defaults {
            fallback_secret: None,
            public_base_url: None,
            ecpay_environment: EcpayEnvironment::Stage,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table_name", &self.table_name)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .field("region", &self.region)
            .field("jwt_secret", &"<redacted>")
            .field(
                "jwt_previous_secret",
                &self.jwt_previous_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("metrics_namespace", &self.metrics_namespace)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_max_failures_per_ip", &self.login_max_failures_per_ip)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .field("password_hash_queue", &self.password_hash_queue)
            .field("password_cost", &self.password_cost)
            .field("login_username_backoff", &self.login_username_backoff)
            .field("login_failure_window", &self.login_failure_window)
            .field("payments", &self.payments)
            .field("invoices", &self.invoices)
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

impl Config {
    /// Reads the process environment with Lambda's rules: `JWT_SECRET` is mandatory, so a function
    /// never starts with a guessable key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource(|k| std::env::var(k).ok()), Defaults::lambda())
    }

    pub fn from_env_with(defaults: Defaults) -> Result<Self, ConfigError> {
        Self::from_source(&EnvSource(|k| std::env::var(k).ok()), defaults)
    }

    pub fn from_source<F: Fn(&str) -> Option<String>>(
        env: &EnvSource<F>,
        defaults: Defaults,
    ) -> Result<Self, ConfigError> {
        let jwt_secret = signing_secret(env, "JWT_SECRET")?
            .or_else(|| defaults.fallback_secret.clone())
            .ok_or(ConfigError::Missing { name: "JWT_SECRET" })?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            // A fallback (the local host's generated secret) obeys the same rule.
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
        let jwt_previous_secret =
            signing_secret(env, "JWT_PREVIOUS_SECRET")?.map(SecretSlice::from);
        let payments = payments_from(env, &defaults)?;
        let invoices =
            invoices::invoices_from(env, payments.environment, payments.public_base_url.clone())?;
        Ok(Config {
            table_name: env.string_or("TABLE_NAME", DEFAULT_TABLE_NAME),
            dynamodb_endpoint: None,
            jwt_previous_secret,
            metrics_namespace: env
                .string_or("METRICS_NAMESPACE", crate::observe::DEFAULT_NAMESPACE),
            region: env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            jwt_secret: SecretSlice::from(jwt_secret),
            access_token_ttl: env.seconds_or(
                "ACCESS_TOKEN_TTL_SECONDS",
                DEFAULT_ACCESS_TOKEN_TTL.as_secs(),
            )?,
            refresh_token_ttl: env.seconds_or(
                "REFRESH_TOKEN_TTL_SECONDS",
                DEFAULT_REFRESH_TOKEN_TTL.as_secs(),
            )?,
            refresh_reuse_grace: env.seconds_or_zero(
                "REFRESH_REUSE_GRACE_SECONDS",
                DEFAULT_REFRESH_REUSE_GRACE.as_secs(),
            )?,
            login_max_failures: env.count_or("LOGIN_MAX_FAILURES", DEFAULT_LOGIN_MAX_FAILURES)?,
            login_max_failures_per_ip: env.count_or(
                "LOGIN_MAX_FAILURES_PER_IP",
                DEFAULT_LOGIN_MAX_FAILURES_PER_IP,
            )?,
            login_username_backoff: env.seconds_or(
                "LOGIN_USERNAME_BACKOFF_SECONDS",
                DEFAULT_LOGIN_USERNAME_BACKOFF.as_secs(),
            )?,
            login_failure_window: env.seconds_or(
                "LOGIN_FAILURE_WINDOW_SECONDS",
                DEFAULT_LOGIN_FAILURE_WINDOW.as_secs(),
            )?,
            password_hash_concurrency: env.count_or("PASSWORD_HASH_CONCURRENCY", cores())?,
            password_hash_queue: env
                .count_or("PASSWORD_HASH_QUEUE", DEFAULT_PASSWORD_HASH_QUEUE)?,
            password_cost: crate::auth::password::PasswordCost::PRODUCTION,
            payments,
            fulfilment: fulfilment::fulfilment_from(env)?,
            settlement: settlement::settlement_from(env)?,
            invoices,
            webhooks: webhooks::webhooks_from(env)?,
        })
    }

    /// A configuration for tests and the local host, with an explicit endpoint and secret.
    pub fn local(endpoint: String, table_name: String, jwt_secret: Vec<u8>) -> Self {
        Config {
            table_name,
            dynamodb_endpoint: Some(endpoint),
            region: DEFAULT_REGION.to_string(),
            jwt_secret: SecretSlice::from(jwt_secret),
            jwt_previous_secret: None,
            metrics_namespace: crate::observe::DEFAULT_NAMESPACE.to_string(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            refresh_reuse_grace: DEFAULT_REFRESH_REUSE_GRACE,
            login_max_failures: DEFAULT_LOGIN_MAX_FAILURES,
            login_max_failures_per_ip: DEFAULT_LOGIN_MAX_FAILURES_PER_IP,
            login_username_backoff: DEFAULT_LOGIN_USERNAME_BACKOFF,
            login_failure_window: DEFAULT_LOGIN_FAILURE_WINDOW,
            password_hash_concurrency: cores(),
            password_hash_queue: DEFAULT_PASSWORD_HASH_QUEUE,
            password_cost: crate::auth::password::PasswordCost::PRODUCTION,
            payments: PaymentsConfig::local("http://127.0.0.1:3000"),
            fulfilment: FulfilmentConfig::defaults(),
            settlement: SettlementConfig::defaults(),
            invoices: InvoiceConfig::local(
                "http://127.0.0.1:3000",
                crate::domain::e_invoice::InvoiceMode::Off,
            ),
            webhooks: WebhookConfig::defaults(),
        }
    }
}

/// An HS256 signing secret from `name`, if set: at least [`MIN_JWT_SECRET_BYTES`] long (the one
/// rule for the current secret and the one before a rotation).
fn signing_secret<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
    name: &'static str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    match env.get(name) {
        Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => Err(ConfigError::Invalid {
            name,
            problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
        }),
        secret => Ok(secret.map(String::into_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn source(vars: &[(&str, &str)]) -> EnvSource<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvSource(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn production_refuses_ecpays_public_stage_merchant_and_keys() {
        let secret = "x".repeat(32);
        for (name, merchant, key, iv) in [
            (
                "ECPAY_MERCHANT_ID",
                "3002607",
                "OwnKey0000000000",
                "OwnIv00000000000",
            ),
            (
                "ECPAY_HASH_KEY",
                "3999999",
                "pwFHCqoQZGmho4w6",
                "OwnIv00000000000",
            ),
            (
                "ECPAY_HASH_IV",
                "3999999",
                "OwnKey0000000000",
                "EkRm7iFT261dpevs",
            ),
        ] {
            let err = Config::from_source(
                &source(&[
                    ("JWT_SECRET", &secret),
                    ("ECPAY_ENVIRONMENT", "production"),
                    ("ECPAY_MERCHANT_ID", merchant),
                    ("ECPAY_HASH_KEY", key),
                    ("ECPAY_HASH_IV", iv),
                ]),
                Defaults::lambda(),
            )
            .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{err}"
            );
        }
        let config = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("ECPAY_ENVIRONMENT", "production"),
                ("ECPAY_MERCHANT_ID", "3999999"),
                ("ECPAY_HASH_KEY", "OwnKey0000000000"),
                ("ECPAY_HASH_IV", "OwnIv00000000000"),
            ]),
            Defaults::lambda(),
        )
        .unwrap();
        assert!(
            config.payments.confirm_with_query,
            "on by default in production"
        );
        let stage = Config::from_source(
            &source(&[("JWT_SECRET", &secret), ("ECPAY_ENVIRONMENT", "stage")]),
            Defaults::lambda(),
        )
        .unwrap();
        assert!(!stage.payments.confirm_with_query);
    }

    #[test]
    fn production_refuses_a_hash_key_or_iv_that_is_not_sixteen_letters_and_digits() {
        let secret = "x".repeat(32);
        for (name, key, iv) in [
            ("ECPAY_HASH_KEY", "OwnKey000000000", "OwnIv00000000000"),
            ("ECPAY_HASH_KEY", "OwnKey00000000000", "OwnIv00000000000"),
            ("ECPAY_HASH_KEY", " OwnKey000000000", "OwnIv00000000000"),
            ("ECPAY_HASH_IV", "OwnKey0000000000", "OwnIv0000000000"),
            ("ECPAY_HASH_IV", "OwnKey0000000000", "OwnIv000000000é"),
        ] {
            let err = Config::from_source(
                &source(&[
                    ("JWT_SECRET", &secret),
                    ("ECPAY_ENVIRONMENT", "production"),
                    ("ECPAY_MERCHANT_ID", "3999999"),
                    ("ECPAY_HASH_KEY", key),
                    ("ECPAY_HASH_IV", iv),
                ]),
                Defaults::lambda(),
            )
            .unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{key:?}/{iv:?}: {err}"
            );
        }
    }

    #[test]
    fn a_lambda_refuses_to_start_without_a_secret() {
        let err = Config::from_source(&source(&[]), Defaults::lambda()).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { name: "JWT_SECRET" }));
    }

    #[test]
    fn a_short_secret_is_refused() {
        let err = Config::from_source(
            &source(&[
                ("JWT_SECRET", "too-short"),
                ("PUBLIC_BASE_URL", "https://api.example.com"),
            ]),
            Defaults::lambda(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "JWT_SECRET",
                ..
            }
        ));
    }

    #[test]
    fn a_refresh_grace_of_zero_means_no_grace_window_and_nonsense_is_refused() {
        let secret = "x".repeat(32);
        let with = |grace: &str| {
            Config::from_source(
                &source(&[
                    ("JWT_SECRET", &secret),
                    ("PUBLIC_BASE_URL", "https://api.example.com"),
                    ("REFRESH_REUSE_GRACE_SECONDS", grace),
                ]),
                Defaults::lambda(),
            )
        };
        assert_eq!(with("0").unwrap().refresh_reuse_grace, Duration::ZERO);
        assert_eq!(
            with(" 30 ").unwrap().refresh_reuse_grace,
            Duration::from_secs(30)
        );
        for nonsense in ["-1", "soon", "1.5"] {
            assert!(
                matches!(
                    with(nonsense),
                    Err(ConfigError::Invalid {
                        name: "REFRESH_REUSE_GRACE_SECONDS",
                        ..
                    })
                ),
                "{nonsense}"
            );
        }
    }

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let secret = "x".repeat(32);
        let config = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("PUBLIC_BASE_URL", "https://api.example.com"),
            ]),
            Defaults::lambda(),
        )
        .unwrap();
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
    fn no_fee_no_commission_and_no_hold_are_values_and_a_commission_past_half_is_refused() {
        let secret = "x".repeat(32);
        let zero = |name| {
            Config::from_source(
                &source(&[
                    ("JWT_SECRET", &secret),
                    ("PUBLIC_BASE_URL", "https://api.example.com"),
                    (name, "0"),
                ]),
                Defaults::lambda(),
            )
            .unwrap()
        };
        assert_eq!(zero("REFUND_FEE_PERCENT").payments.refund_fee_percent, 0);
        assert_eq!(zero("COMMISSION_PERCENT").settlement.commission_percent, 0);
        assert_eq!(zero("SETTLEMENT_HOLD_DAYS").settlement.hold_days, 0);
        let err = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("PUBLIC_BASE_URL", "https://api.example.com"),
                ("COMMISSION_PERCENT", "51"),
            ]),
            Defaults::lambda(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "COMMISSION_PERCENT",
                ..
            }
        ));
    }

    #[test]
    fn token_lifetimes_must_be_positive_numbers() {
        let secret = "x".repeat(32);
        let err = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("PUBLIC_BASE_URL", "https://api.example.com"),
                ("ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ]),
            Defaults::lambda(),
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

    #[test]
    fn payments_default_to_the_stage_merchant_and_a_callback_under_the_public_url() {
        let secret = "x".repeat(32);
        let config = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("PUBLIC_BASE_URL", "https://api.example.com/"),
            ]),
            Defaults::lambda(),
        )
        .unwrap();
        assert_eq!(config.payments.environment, EcpayEnvironment::Stage);
        let credentials = &config.payments.credentials;
        assert_eq!(credentials.merchant_id, crate::ecpay::STAGE_MERCHANT_ID);
        assert_eq!(
            credentials.hash_key.expose_secret(),
            crate::ecpay::STAGE_HASH_KEY
        );
        assert_eq!(
            credentials.hash_iv.expose_secret(),
            crate::ecpay::STAGE_HASH_IV
        );
        assert!(!format!("{credentials:?}").contains(crate::ecpay::STAGE_HASH_KEY));
        let base = config
            .payments
            .base_url(Some("https://ignored.example.com"))
            .unwrap();
        assert_eq!(base, "https://api.example.com");
        assert_eq!(
            config.payments.return_url(&base),
            "https://api.example.com/api/payments/ecpay/callback/"
        );
        assert_eq!(
            config.payments.action_url(&base),
            crate::ecpay::STAGE_ACTION_URL
        );
        assert_eq!(
            (config.payments.min_amount, config.payments.max_amount),
            (100, 50_000)
        );
    }

    #[test]
    fn without_a_public_url_the_request_origin_is_used_and_production_needs_real_keys() {
        let secret = "x".repeat(32);
        let config =
            Config::from_source(&source(&[("JWT_SECRET", &secret)]), Defaults::lambda()).unwrap();
        let base = config
            .payments
            .base_url(Some("https://abc.execute-api.ap-northeast-1.amazonaws.com"))
            .unwrap();
        assert_eq!(
            config.payments.return_url(&base),
            "https://abc.execute-api.ap-northeast-1.amazonaws.com/api/payments/ecpay/callback/"
        );
        let err = Config::from_source(
            &source(&[("JWT_SECRET", &secret), ("PUBLIC_BASE_URL", "ftp://nope")]),
            Defaults::lambda(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "PUBLIC_BASE_URL",
                ..
            }
        ));
        let err = Config::from_source(
            &source(&[
                ("JWT_SECRET", &secret),
                ("PUBLIC_BASE_URL", "https://api.example.com"),
                ("ECPAY_ENVIRONMENT", "production"),
                ("ECPAY_MERCHANT_ID", "2000132"),
            ]),
            Defaults::lambda(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                name: "ECPAY_HASH_KEY"
            }
        ));
    }
}

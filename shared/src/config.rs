//! Configuration, read from the environment once at start-up.

use std::time::Duration;

pub const DEFAULT_TABLE_NAME: &str = "points-redemption";
pub const DEFAULT_REGION: &str = "ap-northeast-1";
/// HS256 keys shorter than the hash output weaken the MAC; refuse them.
pub const MIN_JWT_SECRET_BYTES: usize = 32;
pub const DEFAULT_LOGIN_MAX_FAILURES: u32 = 10;
pub const DEFAULT_LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_IP: u32 = 50;
pub const DEFAULT_LOGIN_USERNAME_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Config {
    pub table_name: String,
    /// Set by the local host and tests for their embedded emulator. Elsewhere it is unset and the SDK
    /// resolves the endpoint itself: the regional one on AWS, or the standard
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` variables when they are set.
    pub dynamodb_endpoint: Option<String>,
    pub region: String,
    pub jwt_secret: Vec<u8>,
    /// The secret before the last rotation: tokens it signed are still accepted (never issued).
    pub jwt_previous_secret: Option<Vec<u8>>,
    /// The CloudWatch namespace of the functions' Embedded Metric Format lines.
    pub metrics_namespace: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// A refresh token presented again within this long gets the same successor pair
    /// (`REFRESH_REUSE_GRACE_SECONDS`, 10); later, reuse revokes the session.
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
}

/// The number of cores this process may use (at least one).
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
pub const DEFAULT_PASSWORD_HASH_QUEUE: u32 = 64;

/// Where members are sent to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcpayEnvironment {
    Stage,
    Production,
    /// The local host's ECPay simulator (only the local host serves it).
    Local,
}

impl EcpayEnvironment {
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "stage" => Some(EcpayEnvironment::Stage),
            "production" => Some(EcpayEnvironment::Production),
            "local" => Some(EcpayEnvironment::Local),
            _ => None,
        }
    }
}

/// Points recharge through ECPay.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    pub environment: EcpayEnvironment,
    pub credentials: crate::ecpay::Credentials,
    /// The API's public origin, e.g. `https://abc.execute-api.ap-northeast-1.amazonaws.com`; links
    /// handed to browsers (checkout) and to ECPay (ReturnURL) start with it. Unset on Lambda, it is
    /// taken from the domain API Gateway received the request on (not from a client header).
    pub public_base_url: Option<String>,
    /// Overrides `<public base>/api/payments/ecpay/callback/`.
    pub return_url: Option<String>,
    pub client_back_url: Option<String>,
    pub order_result_url: Option<String>,
    pub min_amount: i64,
    pub max_amount: i64,
    pub points_per_twd: i64,
    /// Credit a notification only after QueryTradeInfo confirms it (`ECPAY_CONFIRM_WITH_QUERY`;
    /// default on in production, off in stage and local), so a leaked HashKey alone mints nothing.
    pub confirm_with_query: bool,
    /// Reconciliation looks at payments open longer than this (`RECONCILE_AFTER_SECONDS`, 600:
    /// ECPay asks merchants to wait 10 minutes before querying a card payment).
    pub reconcile_after: Duration,
    /// An unpaid payment older than this is expired by reconciliation (`ECPAY_CHECKOUT_WINDOW_SECONDS`,
    /// 3600). A verified success arriving later still credits it.
    pub checkout_window: Duration,
    /// At most this many payments are queried per reconciliation run (`RECONCILE_BATCH`, 50).
    pub reconcile_batch: usize,
    /// Pause between two QueryTradeInfo calls of one run (`ECPAY_QUERY_SPACING_MS`, 1000): ECPay
    /// answers calls that come too fast with HTTP 403 and then refuses every call for 30 minutes.
    pub query_spacing: Duration,
    /// How many times a checkout link may be re-opened (`RECHARGE_MAX_CHECKOUT_ATTEMPTS`, 5).
    pub max_checkout_attempts: u32,
}

impl PaymentsConfig {
    /// The configured public origin, else the request's.
    pub fn base_url(&self, request_origin: Option<&str>) -> Option<String> {
        self.public_base_url
            .clone()
            .or_else(|| request_origin.map(|o| o.trim_end_matches('/').to_string()))
    }

    pub fn return_url(&self, base_url: &str) -> String {
        self.return_url
            .clone()
            .unwrap_or_else(|| format!("{base_url}{CALLBACK_PATH}"))
    }

    /// QueryTradeInfo V5 of the configured environment.
    pub fn query_url(&self) -> Option<String> {
        match self.environment {
            EcpayEnvironment::Stage => Some(crate::ecpay::STAGE_QUERY_URL.to_string()),
            EcpayEnvironment::Production => Some(crate::ecpay::PRODUCTION_QUERY_URL.to_string()),
            EcpayEnvironment::Local => self
                .public_base_url
                .as_ref()
                .map(|base| format!("{base}{LOCAL_QUERY_PATH}")),
        }
    }

    pub fn action_url(&self, base_url: &str) -> String {
        match self.environment {
            EcpayEnvironment::Stage => crate::ecpay::STAGE_ACTION_URL.to_string(),
            EcpayEnvironment::Production => crate::ecpay::PRODUCTION_ACTION_URL.to_string(),
            EcpayEnvironment::Local => format!("{base_url}/dev/ecpay/Cashier/AioCheckOut/V5"),
        }
    }

    /// Local and test defaults: ECPay's public stage credentials and the local simulator.
    pub fn local(public_base_url: &str) -> Self {
        PaymentsConfig {
            environment: EcpayEnvironment::Local,
            credentials: crate::ecpay::Credentials::stage(),
            return_url: None,
            public_base_url: Some(public_base_url.trim_end_matches('/').to_string()),
            client_back_url: None,
            order_result_url: None,
            min_amount: 100,
            max_amount: 50_000,
            points_per_twd: 1,
            confirm_with_query: false,
            reconcile_after: Duration::from_secs(600),
            checkout_window: Duration::from_secs(3600),
            reconcile_batch: 50,
            query_spacing: Duration::from_millis(1000),
            max_checkout_attempts: 5,
        }
    }
}

pub const CALLBACK_PATH: &str = "/api/payments/ecpay/callback/";
/// The local simulator's QueryTradeInfo V5.
pub const LOCAL_QUERY_PATH: &str = "/dev/ecpay/Cashier/QueryTradeInfo/V5";

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
        let jwt_secret = match (env.get("JWT_SECRET"), defaults.fallback_secret.clone()) {
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
        let jwt_previous_secret = env.get("JWT_PREVIOUS_SECRET").map(String::into_bytes);
        if jwt_previous_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_JWT_SECRET_BYTES)
        {
            return Err(ConfigError::Invalid {
                name: "JWT_PREVIOUS_SECRET",
                problem: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }
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
            jwt_secret,
            access_token_ttl: env.seconds_or("ACCESS_TOKEN_TTL_SECONDS", 15 * 60)?,
            refresh_token_ttl: env.seconds_or("REFRESH_TOKEN_TTL_SECONDS", 14 * 24 * 3600)?,
            refresh_reuse_grace: env.seconds_or("REFRESH_REUSE_GRACE_SECONDS", 10)?,
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
            payments: payments_from(env, &defaults)?,
        })
    }

    /// A configuration for tests and the local host, with an explicit endpoint and secret.
    pub fn local(endpoint: String, table_name: String, jwt_secret: Vec<u8>) -> Self {
        Config {
            table_name,
            dynamodb_endpoint: Some(endpoint),
            region: DEFAULT_REGION.to_string(),
            jwt_secret,
            jwt_previous_secret: None,
            metrics_namespace: crate::observe::DEFAULT_NAMESPACE.to_string(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(10),
            login_max_failures: DEFAULT_LOGIN_MAX_FAILURES,
            login_max_failures_per_ip: DEFAULT_LOGIN_MAX_FAILURES_PER_IP,
            login_username_backoff: DEFAULT_LOGIN_USERNAME_BACKOFF,
            login_failure_window: DEFAULT_LOGIN_FAILURE_WINDOW,
            password_hash_concurrency: cores(),
            password_hash_queue: DEFAULT_PASSWORD_HASH_QUEUE,
            password_cost: crate::auth::password::PasswordCost::PRODUCTION,
            payments: PaymentsConfig::local("http://127.0.0.1:3000"),
        }
    }
}

fn payments_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
    defaults: &Defaults,
) -> Result<PaymentsConfig, ConfigError> {
    let environment = match env.get("ECPAY_ENVIRONMENT") {
        None => defaults.ecpay_environment,
        Some(raw) => EcpayEnvironment::parse(&raw).ok_or(ConfigError::Invalid {
            name: "ECPAY_ENVIRONMENT",
            problem: format!("expected stage, production or local, got {raw:?}"),
        })?,
    };
    let public_base_url = env
        .get("PUBLIC_BASE_URL")
        .or_else(|| defaults.public_base_url.clone());
    let return_url = env.get("ECPAY_RETURN_URL");
    for (name, url) in [
        ("PUBLIC_BASE_URL", &public_base_url),
        ("ECPAY_RETURN_URL", &return_url),
    ] {
        if url
            .as_ref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(ConfigError::Invalid {
                name,
                problem: "must start with http:// or https://".into(),
            });
        }
    }
    let mut payments = PaymentsConfig::local("");
    payments.public_base_url = public_base_url.map(|u| u.trim_end_matches('/').to_string());
    payments.return_url = return_url;
    payments.environment = environment;
    let stage = crate::ecpay::Credentials::stage();
    let merchant_id = env.get("ECPAY_MERCHANT_ID");
    let hash_key = env.get("ECPAY_HASH_KEY");
    let hash_iv = env.get("ECPAY_HASH_IV");
    if environment == EcpayEnvironment::Production {
        // Production must never fall back to the public stage merchant.
        for (name, value) in [
            ("ECPAY_MERCHANT_ID", &merchant_id),
            ("ECPAY_HASH_KEY", &hash_key),
            ("ECPAY_HASH_IV", &hash_iv),
        ] {
            if value.is_none() {
                return Err(ConfigError::Missing { name });
            }
        }
    }
    payments.credentials = crate::ecpay::Credentials {
        merchant_id: merchant_id.unwrap_or(stage.merchant_id),
        hash_key: hash_key.unwrap_or(stage.hash_key),
        hash_iv: hash_iv.unwrap_or(stage.hash_iv),
    };
    if environment == EcpayEnvironment::Production {
        // ECPay's stage merchant and keys are published: anyone can sign with them.
        for (name, value, public) in [
            (
                "ECPAY_MERCHANT_ID",
                &payments.credentials.merchant_id,
                crate::ecpay::STAGE_MERCHANT_ID,
            ),
            (
                "ECPAY_HASH_KEY",
                &payments.credentials.hash_key,
                crate::ecpay::STAGE_HASH_KEY,
            ),
            (
                "ECPAY_HASH_IV",
                &payments.credentials.hash_iv,
                crate::ecpay::STAGE_HASH_IV,
            ),
        ] {
            if value.trim() == public {
                return Err(ConfigError::Invalid {
                    name,
                    problem: "is ECPay's public stage value; production needs the merchant's own"
                        .into(),
                });
            }
        }
    }
    payments.confirm_with_query = match env.get("ECPAY_CONFIRM_WITH_QUERY") {
        None => environment == EcpayEnvironment::Production,
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" => true,
            "0" | "false" | "off" | "no" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "ECPAY_CONFIRM_WITH_QUERY",
                    problem: format!("expected true or false, got {raw:?}"),
                })
            }
        },
    };
    payments.reconcile_after = env.seconds_or("RECONCILE_AFTER_SECONDS", 600)?;
    payments.checkout_window = env.seconds_or("ECPAY_CHECKOUT_WINDOW_SECONDS", 3600)?;
    payments.reconcile_batch = env.count_or("RECONCILE_BATCH", 50)? as usize;
    payments.query_spacing =
        Duration::from_millis(u64::from(env.count_or("ECPAY_QUERY_SPACING_MS", 1000)?));
    payments.max_checkout_attempts = env.count_or("RECHARGE_MAX_CHECKOUT_ATTEMPTS", 5)?;
    payments.client_back_url = env.get("ECPAY_CLIENT_BACK_URL");
    payments.order_result_url = env.get("ECPAY_ORDER_RESULT_URL");
    payments.min_amount = env.count_or("RECHARGE_MIN_TWD", 100)? as i64;
    payments.max_amount = env.count_or("RECHARGE_MAX_TWD", 50_000)? as i64;
    payments.points_per_twd = env.count_or("POINTS_PER_TWD", 1)? as i64;
    if payments.min_amount > payments.max_amount {
        return Err(ConfigError::Invalid {
            name: "RECHARGE_MIN_TWD",
            problem: "must not exceed RECHARGE_MAX_TWD".into(),
        });
    }
    Ok(payments)
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
        assert_eq!(
            config.payments.credentials,
            crate::ecpay::Credentials::stage()
        );
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

//! Points recharge through ECPay: which ECPay, with which credentials, and the limits of a recharge.

use std::time::Duration;

use super::env::EnvSource;
use super::{ConfigError, Defaults};

// What an unset variable means, written once (used by `payments_from` and `PaymentsConfig::local`).
const RECHARGE_MIN_TWD: u32 = 100;
const RECHARGE_MAX_TWD: u32 = 50_000;
const POINTS_PER_TWD: u32 = 1;
/// ECPay asks merchants to wait 10 minutes before querying a card payment.
const RECONCILE_AFTER: Duration = Duration::from_secs(600);
const CHECKOUT_WINDOW: Duration = Duration::from_secs(3600);
const RECONCILE_BATCH: u32 = 50;
const QUERY_SPACING: Duration = Duration::from_millis(1000);
const MAX_CHECKOUT_ATTEMPTS: u32 = 5;
const MAX_OPEN_RECHARGES: u32 = 5;
const EVIDENCE_RETENTION_DAYS: u32 = crate::store::DEFAULT_EVIDENCE_RETENTION_DAYS as u32;
/// What a refund of purchased points keeps, in percent of its value (0 unless set).
const REFUND_FEE_PERCENT: u32 = 0;
/// The 商家檢查碼 of ECPay's stage merchant in its SDK's QueryTrade/V2 example: what the local
/// simulator expects unless `ECPAY_CREDIT_CHECK_CODE` is set.
pub const LOCAL_CREDIT_CHECK_CODE: &str = "62861749";
/// The most a refund may keep: the fee commonly held reasonable for prepaid vouchers.
pub const REFUND_FEE_PERCENT_MAX: u32 = 3;

/// Where members are sent to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcpayEnvironment {
    Stage,
    Production,
    /// The local host's ECPay simulator (only the local host serves it).
    Local,
}

impl EcpayEnvironment {
    pub(super) fn parse(raw: &str) -> Option<Self> {
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
    /// How many recharges one member may hold unpaid at once (`RECHARGE_MAX_OPEN_PER_MEMBER`, 5):
    /// each open one is queried by reconciliation until it is paid or expires, so an unlimited
    /// number would let one member fill every run.
    pub max_open_recharges: u32,
    /// How long everything ECPay said about a payment is kept (`PAYMENT_EVIDENCE_RETENTION_DAYS`,
    /// 2,557: seven years, past the five after the year's closing that Taiwan's Business Entity
    /// Accounting Act §38 requires of accounting vouchers).
    pub evidence_retention_days: u32,
    /// What a refund of purchased points keeps, in percent (`REFUND_FEE_PERCENT`, 0; at most 3).
    pub refund_fee_percent: u32,
    /// The merchant's 商家檢查碼 (`ECPAY_CREDIT_CHECK_CODE`; ECPay's vendor site, 信用卡收單 →
    /// 信用卡授權資訊), which QueryTrade/V2 requires: without it refunds wait, `requested`.
    pub credit_check_code: Option<String>,
    /// Promotional points expire this many days after they were given
    /// (`PROMOTIONAL_POINTS_EXPIRE_DAYS`; unset: never). Purchased points never expire.
    pub promotional_expire_days: Option<u32>,
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

    /// CreditDetail/QueryTrade/V2 of the configured environment (ECPay's stage has none: its
    /// page says the stage cannot authorise real cards, so the URL is there but answers nothing).
    pub fn credit_query_url(&self) -> Option<String> {
        self.ecpay_url(
            crate::ecpay_credit::STAGE_CREDIT_QUERY_URL,
            crate::ecpay_credit::PRODUCTION_CREDIT_QUERY_URL,
            LOCAL_CREDIT_QUERY_PATH,
        )
    }

    /// CreditDetail/DoAction of the configured environment.
    pub fn do_action_url(&self) -> Option<String> {
        self.ecpay_url(
            crate::ecpay_credit::STAGE_DO_ACTION_URL,
            crate::ecpay_credit::PRODUCTION_DO_ACTION_URL,
            LOCAL_DO_ACTION_PATH,
        )
    }

    fn ecpay_url(&self, stage: &str, production: &str, local_path: &str) -> Option<String> {
        match self.environment {
            EcpayEnvironment::Stage => Some(stage.to_string()),
            EcpayEnvironment::Production => Some(production.to_string()),
            EcpayEnvironment::Local => self
                .public_base_url
                .as_ref()
                .map(|base| format!("{base}{local_path}")),
        }
    }

    pub fn action_url(&self, base_url: &str) -> String {
        match self.environment {
            EcpayEnvironment::Stage => crate::ecpay::STAGE_ACTION_URL.to_string(),
            EcpayEnvironment::Production => crate::ecpay::PRODUCTION_ACTION_URL.to_string(),
            EcpayEnvironment::Local => format!("{base_url}{LOCAL_CHECKOUT_PATH}"),
        }
    }

    /// Local and test defaults: ECPay's public stage credentials and the local simulator; every
    /// other field at its default (the same constants an unset variable means).
    pub fn local(public_base_url: &str) -> Self {
        PaymentsConfig {
            environment: EcpayEnvironment::Local,
            credentials: crate::ecpay::Credentials::stage(),
            public_base_url: Some(public_base_url.trim_end_matches('/').to_string()),
            return_url: None,
            client_back_url: None,
            order_result_url: None,
            min_amount: i64::from(RECHARGE_MIN_TWD),
            max_amount: i64::from(RECHARGE_MAX_TWD),
            points_per_twd: i64::from(POINTS_PER_TWD),
            confirm_with_query: false,
            reconcile_after: RECONCILE_AFTER,
            checkout_window: CHECKOUT_WINDOW,
            reconcile_batch: RECONCILE_BATCH as usize,
            query_spacing: QUERY_SPACING,
            max_checkout_attempts: MAX_CHECKOUT_ATTEMPTS,
            max_open_recharges: MAX_OPEN_RECHARGES,
            evidence_retention_days: EVIDENCE_RETENTION_DAYS,
            refund_fee_percent: REFUND_FEE_PERCENT,
            credit_check_code: Some(LOCAL_CREDIT_CHECK_CODE.to_string()),
            promotional_expire_days: None,
        }
    }
}

pub const CALLBACK_PATH: &str = "/api/payments/ecpay/callback/";
/// The local simulator's QueryTradeInfo V5.
pub const LOCAL_QUERY_PATH: &str = "/dev/ecpay/Cashier/QueryTradeInfo/V5";
/// The local simulator's CreditDetail/QueryTrade/V2.
pub const LOCAL_CREDIT_QUERY_PATH: &str = "/dev/ecpay/CreditDetail/QueryTrade/V2";
/// The local simulator's CreditDetail/DoAction.
pub const LOCAL_DO_ACTION_PATH: &str = "/dev/ecpay/CreditDetail/DoAction";
/// Where the local host serves its ECPay simulator (only the local host does).
pub const LOCAL_ECPAY_PREFIX: &str = "/dev/ecpay/";
/// The local simulator's AioCheckOut V5.
pub const LOCAL_CHECKOUT_PATH: &str = "/dev/ecpay/Cashier/AioCheckOut/V5";

/// The payments configuration from `env`, in one pass: every field is read (or defaulted) once.
pub(super) fn payments_from<F: Fn(&str) -> Option<String>>(
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
        .url("PUBLIC_BASE_URL")?
        .or_else(|| defaults.public_base_url.clone())
        .map(|u| u.trim_end_matches('/').to_string());
    let payments = PaymentsConfig {
        environment,
        credentials: credentials_from(env, environment)?,
        public_base_url,
        return_url: env.url("ECPAY_RETURN_URL")?,
        client_back_url: env.get("ECPAY_CLIENT_BACK_URL"),
        order_result_url: env.get("ECPAY_ORDER_RESULT_URL"),
        min_amount: i64::from(env.count_or("RECHARGE_MIN_TWD", RECHARGE_MIN_TWD)?),
        max_amount: i64::from(env.count_or("RECHARGE_MAX_TWD", RECHARGE_MAX_TWD)?),
        points_per_twd: i64::from(env.count_or("POINTS_PER_TWD", POINTS_PER_TWD)?),
        confirm_with_query: env.flag_or(
            "ECPAY_CONFIRM_WITH_QUERY",
            environment == EcpayEnvironment::Production,
        )?,
        reconcile_after: env.seconds_or("RECONCILE_AFTER_SECONDS", RECONCILE_AFTER.as_secs())?,
        checkout_window: env
            .seconds_or("ECPAY_CHECKOUT_WINDOW_SECONDS", CHECKOUT_WINDOW.as_secs())?,
        reconcile_batch: env.count_or("RECONCILE_BATCH", RECONCILE_BATCH)? as usize,
        query_spacing: Duration::from_millis(u64::from(
            env.count_or("ECPAY_QUERY_SPACING_MS", QUERY_SPACING.as_millis() as u32)?,
        )),
        max_checkout_attempts: env
            .count_or("RECHARGE_MAX_CHECKOUT_ATTEMPTS", MAX_CHECKOUT_ATTEMPTS)?,
        max_open_recharges: env.count_or("RECHARGE_MAX_OPEN_PER_MEMBER", MAX_OPEN_RECHARGES)?,
        evidence_retention_days: env
            .count_or("PAYMENT_EVIDENCE_RETENTION_DAYS", EVIDENCE_RETENTION_DAYS)?,
        refund_fee_percent: env.count_or_zero("REFUND_FEE_PERCENT", REFUND_FEE_PERCENT)?,
        credit_check_code: match env.get("ECPAY_CREDIT_CHECK_CODE") {
            Some(code)
                if !code.trim().is_empty() && code.trim().bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(code.trim().to_string())
            }
            Some(code) if !code.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    name: "ECPAY_CREDIT_CHECK_CODE",
                    problem: "must be the digits ECPay issued".into(),
                })
            }
            _ if environment == EcpayEnvironment::Local => {
                Some(LOCAL_CREDIT_CHECK_CODE.to_string())
            }
            _ => None,
        },
        promotional_expire_days: match env.get("PROMOTIONAL_POINTS_EXPIRE_DAYS") {
            Some(raw) if !raw.trim().is_empty() => Some(
                raw.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|days| (1..=36_500).contains(days))
                    .ok_or(ConfigError::Invalid {
                        name: "PROMOTIONAL_POINTS_EXPIRE_DAYS",
                        problem: format!("expected a number of days from 1 to 36500, got {raw:?}"),
                    })?,
            ),
            _ => None,
        },
    };
    if payments.refund_fee_percent > REFUND_FEE_PERCENT_MAX {
        return Err(ConfigError::Invalid {
            name: "REFUND_FEE_PERCENT",
            problem: format!("must be at most {REFUND_FEE_PERCENT_MAX}"),
        });
    }
    if payments.min_amount > payments.max_amount {
        return Err(ConfigError::Invalid {
            name: "RECHARGE_MIN_TWD",
            problem: "must not exceed RECHARGE_MAX_TWD".into(),
        });
    }
    Ok(payments)
}

/// The merchant's credentials: ECPay's public stage ones unless set, and in production always the
/// merchant's own (never absent, never the published stage values anyone can sign with).
fn credentials_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
    environment: EcpayEnvironment,
) -> Result<crate::ecpay::Credentials, ConfigError> {
    let mut values = [
        (
            "ECPAY_MERCHANT_ID",
            crate::ecpay::STAGE_MERCHANT_ID,
            String::new(),
        ),
        (
            "ECPAY_HASH_KEY",
            crate::ecpay::STAGE_HASH_KEY,
            String::new(),
        ),
        ("ECPAY_HASH_IV", crate::ecpay::STAGE_HASH_IV, String::new()),
    ];
    for (name, public, value) in &mut values {
        *value = match env.get(name) {
            Some(given)
                if environment == EcpayEnvironment::Production && given.trim() == *public =>
            {
                return Err(ConfigError::Invalid {
                    name,
                    problem: "is ECPay's public stage value; production needs the merchant's own"
                        .into(),
                });
            }
            // ECPay issues a HashKey and a HashIV of 16 letters and digits each (they are also the
            // AES-128 key and IV of its invoice and logistics APIs): anything else is a paste
            // error that would sign every form wrongly, found at start-up rather than at the
            // first payment.
            Some(given)
                if environment == EcpayEnvironment::Production
                    && *name != "ECPAY_MERCHANT_ID"
                    && !is_ecpay_key(&given) =>
            {
                return Err(ConfigError::Invalid {
                    name,
                    problem: "must be the 16 letters and digits ECPay issued".into(),
                });
            }
            Some(given) => given,
            None if environment == EcpayEnvironment::Production => {
                return Err(ConfigError::Missing { name });
            }
            None => public.to_string(),
        };
    }
    let [(_, _, merchant_id), (_, _, hash_key), (_, _, hash_iv)] = values;
    Ok(crate::ecpay::Credentials {
        merchant_id,
        hash_key: hash_key.into(),
        hash_iv: hash_iv.into(),
    })
}

/// What ECPay issues as a HashKey or HashIV: exactly 16 ASCII letters and digits.
pub(super) fn is_ecpay_key(value: &str) -> bool {
    value.len() == 16 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

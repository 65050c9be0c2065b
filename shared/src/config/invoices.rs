//! E-invoices (電子發票) through ECPay's B2C invoice API: when they are issued (`INVOICE_MODE`) and
//! with which credentials. ECPay's invoice MerchantID, HashKey and HashIV differ from the payment
//! ones; they come from the same secret (`ECPAY_INVOICE_MERCHANT_ID`, `ECPAY_INVOICE_HASH_KEY`,
//! `ECPAY_INVOICE_HASH_IV`).

use super::env::EnvSource;
use super::payments::is_ecpay_key;
use super::{ConfigError, EcpayEnvironment};
use crate::domain::e_invoice::InvoiceMode;
use crate::ecpay_invoice::{
    InvoiceCredentials, PRODUCTION_INVOICE_HOST, STAGE_INVOICE_HASH_IV, STAGE_INVOICE_HASH_KEY,
    STAGE_INVOICE_HOST, STAGE_INVOICE_MERCHANT_ID,
};

/// Where the local host serves ECPay's invoice API (its simulator), before each API path.
pub const LOCAL_INVOICE_PREFIX: &str = "/dev/ecpay";

#[derive(Debug, Clone)]
pub struct InvoiceConfig {
    /// `INVOICE_MODE`: `off` (default), `at_recharge` or `at_redemption`.
    pub mode: InvoiceMode,
    pub credentials: InvoiceCredentials,
    environment: EcpayEnvironment,
    /// The local host's origin (its simulator), for `Local`.
    local_base: Option<String>,
}

impl InvoiceConfig {
    /// Off, with ECPay's stage invoice merchant and the local simulator.
    pub fn local(public_base_url: &str, mode: InvoiceMode) -> Self {
        InvoiceConfig {
            mode,
            credentials: InvoiceCredentials::stage(),
            environment: EcpayEnvironment::Local,
            local_base: Some(public_base_url.trim_end_matches('/').to_string()),
        }
    }

    /// The URL of `path` (one of `ecpay_invoice::*_PATH`) at the configured ECPay.
    pub fn url(&self, path: &str) -> Option<String> {
        match self.environment {
            EcpayEnvironment::Stage => Some(format!("{STAGE_INVOICE_HOST}{path}")),
            EcpayEnvironment::Production => Some(format!("{PRODUCTION_INVOICE_HOST}{path}")),
            EcpayEnvironment::Local => self
                .local_base
                .as_ref()
                .map(|base| format!("{base}{LOCAL_INVOICE_PREFIX}{path}")),
        }
    }
}

/// The invoice configuration from `env`. In production with invoicing on, the three credentials
/// are required, each the merchant's own (never ECPay's published stage values), the key and IV
/// 16 letters and digits: a missing or pasted-wrong key is found at start-up, not at the first
/// invoice.
pub(super) fn invoices_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
    environment: EcpayEnvironment,
    public_base_url: Option<String>,
) -> Result<InvoiceConfig, ConfigError> {
    let mode = match env.get("INVOICE_MODE") {
        None => InvoiceMode::Off,
        Some(raw) => InvoiceMode::parse(&raw).ok_or(ConfigError::Invalid {
            name: "INVOICE_MODE",
            problem: format!("expected off, at_recharge or at_redemption, got {raw:?}"),
        })?,
    };
    let strict = environment == EcpayEnvironment::Production && mode != InvoiceMode::Off;
    let mut values = [
        (
            "ECPAY_INVOICE_MERCHANT_ID",
            STAGE_INVOICE_MERCHANT_ID,
            String::new(),
        ),
        (
            "ECPAY_INVOICE_HASH_KEY",
            STAGE_INVOICE_HASH_KEY,
            String::new(),
        ),
        (
            "ECPAY_INVOICE_HASH_IV",
            STAGE_INVOICE_HASH_IV,
            String::new(),
        ),
    ];
    for (name, public, value) in &mut values {
        *value = match env.get(name).map(|v| v.trim().to_string()) {
            Some(given) if strict && given == *public => {
                return Err(ConfigError::Invalid {
                    name,
                    problem: "is ECPay's public stage value; production needs the merchant's own"
                        .into(),
                })
            }
            Some(given) if *name != "ECPAY_INVOICE_MERCHANT_ID" && !is_ecpay_key(&given) => {
                return Err(ConfigError::Invalid {
                    name,
                    problem: "must be the 16 letters and digits ECPay issued".into(),
                })
            }
            Some(given) if !given.is_empty() => given,
            _ if strict => return Err(ConfigError::Missing { name }),
            _ => public.to_string(),
        };
    }
    let [(_, _, merchant_id), (_, _, hash_key), (_, _, hash_iv)] = values;
    Ok(InvoiceConfig {
        mode,
        credentials: InvoiceCredentials {
            merchant_id,
            hash_key: hash_key.into(),
            hash_iv: hash_iv.into(),
        },
        environment,
        local_base: public_base_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(
        vars: &[(&str, &str)],
        environment: EcpayEnvironment,
    ) -> Result<InvoiceConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        invoices_from(
            &EnvSource(move |k: &str| map.get(k).cloned()),
            environment,
            None,
        )
    }

    #[test]
    fn production_refuses_to_invoice_without_its_own_invoice_credentials() {
        let own = [
            ("INVOICE_MODE", "at_recharge"),
            ("ECPAY_INVOICE_MERCHANT_ID", "3085340"),
            ("ECPAY_INVOICE_HASH_KEY", "OwnInvoiceKey000"),
            ("ECPAY_INVOICE_HASH_IV", "OwnInvoiceIv0000"),
        ];
        let config = from(&own, EcpayEnvironment::Production).unwrap();
        assert_eq!(config.mode, InvoiceMode::AtRecharge);
        assert_eq!(config.credentials.merchant_id, "3085340");
        assert_eq!(
            config.url(crate::ecpay_invoice::ISSUE_PATH).as_deref(),
            Some("https://einvoice.ecpay.com.tw/B2CInvoice/Issue")
        );
        for missing in 1..own.len() {
            let vars: Vec<_> = own
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, v)| *v)
                .collect();
            assert!(
                matches!(from(&vars, EcpayEnvironment::Production), Err(ConfigError::Missing { name }) if name == own[missing].0),
                "{}",
                own[missing].0
            );
        }
        let mut stage_key = own;
        stage_key[2] = ("ECPAY_INVOICE_HASH_KEY", STAGE_INVOICE_HASH_KEY);
        assert!(matches!(
            from(&stage_key, EcpayEnvironment::Production),
            Err(ConfigError::Invalid {
                name: "ECPAY_INVOICE_HASH_KEY",
                ..
            })
        ));
        let mut short_iv = own;
        short_iv[3] = ("ECPAY_INVOICE_HASH_IV", "short");
        assert!(matches!(
            from(&short_iv, EcpayEnvironment::Production),
            Err(ConfigError::Invalid {
                name: "ECPAY_INVOICE_HASH_IV",
                ..
            })
        ));
        // Off, production needs none of them.
        assert_eq!(
            from(&[], EcpayEnvironment::Production).unwrap().mode,
            InvoiceMode::Off
        );
    }

    #[test]
    fn stage_and_local_use_ecpays_stage_invoice_merchant_and_a_bad_mode_is_refused() {
        let stage = from(
            &[("INVOICE_MODE", "at_redemption")],
            EcpayEnvironment::Stage,
        )
        .unwrap();
        assert_eq!(stage.credentials.merchant_id, STAGE_INVOICE_MERCHANT_ID);
        assert_eq!(
            stage.url(crate::ecpay_invoice::GET_ISSUE_PATH).as_deref(),
            Some("https://einvoice-stage.ecpay.com.tw/B2CInvoice/GetIssue")
        );
        assert!(matches!(
            from(&[("INVOICE_MODE", "monthly")], EcpayEnvironment::Stage),
            Err(ConfigError::Invalid {
                name: "INVOICE_MODE",
                ..
            })
        ));
        let local = InvoiceConfig::local("http://127.0.0.1:3000/", InvoiceMode::Off);
        assert_eq!(
            local.url(crate::ecpay_invoice::ISSUE_PATH).as_deref(),
            Some("http://127.0.0.1:3000/dev/ecpay/B2CInvoice/Issue")
        );
    }
}

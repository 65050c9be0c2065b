//! What merchants are paid: the platform's commission and how long a sale is held before it is
//! owed.

use super::env::EnvSource;
use super::ConfigError;

// What an unset variable means, written once.
const COMMISSION_PERCENT: u32 = 10;
/// A sale is held this long after completion (a cancellation window) before it is owed.
const SETTLEMENT_HOLD_DAYS: u32 = 7;

#[derive(Debug, Clone)]
pub struct SettlementConfig {
    /// Percent of each sale the platform keeps unless an operator set the merchant's own
    /// (`COMMISSION_PERCENT`, 10; 0–50).
    pub commission_percent: u32,
    /// A completed order's line is `pending` this many days, then `available`
    /// (`SETTLEMENT_HOLD_DAYS`, 7).
    pub hold_days: u32,
}

impl SettlementConfig {
    pub fn defaults() -> Self {
        SettlementConfig {
            commission_percent: COMMISSION_PERCENT,
            hold_days: SETTLEMENT_HOLD_DAYS,
        }
    }
}

pub(super) fn settlement_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
) -> Result<SettlementConfig, ConfigError> {
    let config = SettlementConfig {
        commission_percent: env.count_or_zero("COMMISSION_PERCENT", COMMISSION_PERCENT)?,
        hold_days: env.count_or_zero("SETTLEMENT_HOLD_DAYS", SETTLEMENT_HOLD_DAYS)?,
    };
    if config.commission_percent > crate::domain::settlement::COMMISSION_PERCENT_MAX {
        return Err(ConfigError::Invalid {
            name: "COMMISSION_PERCENT",
            problem: format!(
                "must be at most {}",
                crate::domain::settlement::COMMISSION_PERCENT_MAX
            ),
        });
    }
    Ok(config)
}

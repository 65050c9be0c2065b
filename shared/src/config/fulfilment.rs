//! How gifts are handed over: how long a pickup code stays valid, the limit on wrong codes, when a
//! shipped delivery completes by itself, and how long a delivery address is kept.

use std::time::Duration;

use super::env::EnvSource;
use super::ConfigError;

// What an unset variable means, written once.
const PICKUP_VALID_DAYS: u32 = 30;
/// Wrong pickup codes a merchant may try per window (issue: 20 per 15 minutes).
const PICKUP_CODE_MAX_FAILURES: u32 = 20;
const PICKUP_CODE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Orders each kind of scheduled fulfilment work handles per run at most (bounded like
/// reconciliation).
const FULFILMENT_BATCH: u32 = 100;
const DELIVERY_AUTO_COMPLETE_DAYS: u32 = 7;
/// Taiwan's Personal Data Protection Act: personal data is kept only as long as its purpose needs.
const ADDRESS_RETENTION_DAYS: u32 = 180;
/// Saved addresses per member.
pub const ADDRESSES_MAX: u32 = 10;

#[derive(Debug, Clone)]
pub struct FulfilmentConfig {
    /// A pickup not collected within this many days is cancelled with a full refund
    /// (`PICKUP_VALID_DAYS`, 30).
    pub pickup_valid_days: u32,
    /// Wrong codes one merchant may try in `pickup_code_window` before 429 (20).
    pub pickup_code_max_failures: u32,
    pub pickup_code_window: Duration,
    /// Orders each kind of scheduled work handles per run (`FULFILMENT_BATCH`, 100).
    pub batch: u32,
    /// A shipped delivery its member has not confirmed completes this many days after shipping
    /// (`DELIVERY_AUTO_COMPLETE_DAYS`, 7).
    pub delivery_auto_complete_days: u32,
    /// A delivery's address is replaced by "redacted" this many days after its order ends
    /// (`ADDRESS_RETENTION_DAYS`, 180).
    pub address_retention_days: u32,
}

impl FulfilmentConfig {
    pub fn defaults() -> Self {
        FulfilmentConfig {
            pickup_valid_days: PICKUP_VALID_DAYS,
            pickup_code_max_failures: PICKUP_CODE_MAX_FAILURES,
            pickup_code_window: PICKUP_CODE_WINDOW,
            batch: FULFILMENT_BATCH,
            delivery_auto_complete_days: DELIVERY_AUTO_COMPLETE_DAYS,
            address_retention_days: ADDRESS_RETENTION_DAYS,
        }
    }

    /// A pickup placed at `at` must be collected by this time.
    pub fn pickup_expires(&self, at: crate::domain::Timestamp) -> crate::domain::Timestamp {
        at + chrono::Duration::days(i64::from(self.pickup_valid_days))
    }

    /// A delivery shipped at `at` completes by itself at this time.
    pub fn delivery_completes(&self, at: crate::domain::Timestamp) -> crate::domain::Timestamp {
        at + chrono::Duration::days(i64::from(self.delivery_auto_complete_days))
    }

    /// The address of an order that ended at `at` is redacted at this time.
    pub fn address_redacted(&self, at: crate::domain::Timestamp) -> crate::domain::Timestamp {
        at + chrono::Duration::days(i64::from(self.address_retention_days))
    }
}

pub(super) fn fulfilment_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
) -> Result<FulfilmentConfig, ConfigError> {
    Ok(FulfilmentConfig {
        pickup_valid_days: env.count_or("PICKUP_VALID_DAYS", PICKUP_VALID_DAYS)?,
        pickup_code_max_failures: PICKUP_CODE_MAX_FAILURES,
        pickup_code_window: PICKUP_CODE_WINDOW,
        batch: env.count_or("FULFILMENT_BATCH", FULFILMENT_BATCH)?,
        delivery_auto_complete_days: env
            .count_or("DELIVERY_AUTO_COMPLETE_DAYS", DELIVERY_AUTO_COMPLETE_DAYS)?,
        address_retention_days: env.count_or("ADDRESS_RETENTION_DAYS", ADDRESS_RETENTION_DAYS)?,
    })
}

//! How gifts are handed over: how long a pickup code stays valid, and the limit on wrong codes.

use std::time::Duration;

use super::env::EnvSource;
use super::ConfigError;

// What an unset variable means, written once.
const PICKUP_VALID_DAYS: u32 = 30;
/// Wrong pickup codes a merchant may try per window (issue: 20 per 15 minutes).
const PICKUP_CODE_MAX_FAILURES: u32 = 20;
const PICKUP_CODE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Pending pickups cancelled per scheduled run at most (bounded like reconciliation).
const PICKUP_EXPIRY_BATCH: u32 = 100;

#[derive(Debug, Clone)]
pub struct FulfilmentConfig {
    /// A pickup not collected within this many days is cancelled with a full refund
    /// (`PICKUP_VALID_DAYS`, 30).
    pub pickup_valid_days: u32,
    /// Wrong codes one merchant may try in `pickup_code_window` before 429 (20).
    pub pickup_code_max_failures: u32,
    pub pickup_code_window: Duration,
    /// Expired pickups handled per scheduled run (`PICKUP_EXPIRY_BATCH`, 100).
    pub pickup_expiry_batch: u32,
}

impl FulfilmentConfig {
    pub fn defaults() -> Self {
        FulfilmentConfig {
            pickup_valid_days: PICKUP_VALID_DAYS,
            pickup_code_max_failures: PICKUP_CODE_MAX_FAILURES,
            pickup_code_window: PICKUP_CODE_WINDOW,
            pickup_expiry_batch: PICKUP_EXPIRY_BATCH,
        }
    }

    /// A pickup placed at `at` must be collected by this time.
    pub fn pickup_expires(&self, at: crate::domain::Timestamp) -> crate::domain::Timestamp {
        at + chrono::Duration::days(i64::from(self.pickup_valid_days))
    }
}

pub(super) fn fulfilment_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
) -> Result<FulfilmentConfig, ConfigError> {
    Ok(FulfilmentConfig {
        pickup_valid_days: env.count_or("PICKUP_VALID_DAYS", PICKUP_VALID_DAYS)?,
        pickup_code_max_failures: PICKUP_CODE_MAX_FAILURES,
        pickup_code_window: PICKUP_CODE_WINDOW,
        pickup_expiry_batch: env.count_or("PICKUP_EXPIRY_BATCH", PICKUP_EXPIRY_BATCH)?,
    })
}

//! Failed-login counters, one per (lower-cased) username, in fixed windows that start at the first
//! failure. The window's end is the item's TTL, so DynamoDB cleans up after it; until the sweep runs,
//! reads treat a passed window as absent.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use serde::Deserialize;

use super::keys::{login_failures_pk, LOGIN_FAILURES_SK};
use super::table::{PK, SK, TTL_ATTRIBUTE};
use super::{n, s, Store};
use crate::domain::user::canonical;
use crate::error::AppError;

#[derive(Deserialize)]
struct FailureWindowRecord {
    failures: u32,
    expires_at: i64,
}

/// A username's current failure window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureWindow {
    pub failures: u32,
    /// Epoch seconds at which the window closes.
    pub ends_at: i64,
}

impl Store {
    pub async fn login_failure_window(
        &self,
        username: &str,
        now: i64,
    ) -> Result<Option<FailureWindow>, AppError> {
        let record = self
            .get_item::<FailureWindowRecord>(
                login_failures_pk(&canonical(username)),
                LOGIN_FAILURES_SK,
            )
            .await?;
        Ok(record
            .filter(|r| r.expires_at > now)
            .map(|r| FailureWindow {
                failures: r.failures,
                ends_at: r.expires_at,
            }))
    }

    /// Counts one failed login: adds to the open window, or opens a new one if none is open.
    /// Both steps are conditional single-item writes, so concurrent failures are all counted.
    pub async fn record_login_failure(
        &self,
        username: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<(), AppError> {
        let key = login_failures_pk(&canonical(username));
        for _ in 0..4 {
            let added = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(key.clone()))
                .key(SK, s(LOGIN_FAILURES_SK))
                .update_expression("ADD failures :one")
                .condition_expression("#ttl > :now")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match added.map_err(|e| e.into_service_error()) {
                Ok(_) => return Ok(()),
                Err(UpdateItemError::ConditionalCheckFailedException(_)) => {}
                Err(other) => {
                    return Err(AppError::internal(format!(
                        "count login failure: {other:?}"
                    )))
                }
            }
            // No open window: open one, unless a concurrent failure just did.
            let opened = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(key.clone()))
                .key(SK, s(LOGIN_FAILURES_SK))
                .update_expression("SET failures = :one, #ttl = :end, entity = :entity")
                .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":end", n(now + window_secs))
                .expression_attribute_values(":entity", s("LoginFailures"))
                .send()
                .await;
            match opened.map_err(|e| e.into_service_error()) {
                Ok(_) => return Ok(()),
                Err(UpdateItemError::ConditionalCheckFailedException(_)) => continue,
                Err(other) => {
                    return Err(AppError::internal(format!(
                        "open login failure window: {other:?}"
                    )))
                }
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: 1,
        })
    }
}

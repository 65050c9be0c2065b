//! Attempt counters (logins, a merchant's wrong pickup codes) in fixed windows that start at the first attempt; the window's end is the
//! item's TTL, so DynamoDB cleans up after it, and until the sweep runs a passed window counts as
//! absent. An attempt is *reserved* (a conditional increment) before the password is checked, so any
//! number of parallel guesses checks at most the limit's worth of passwords; a successful login hands
//! its reservation back.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use serde::Deserialize;

use super::table::{PK, SK, TTL_ATTRIBUTE};
use super::{from_item, n, s, Store};
use crate::error::AppError;

const WINDOW_SK: &str = "WINDOW";

/// Which counter: they are keyed apart so one never touches another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCounter {
    /// One username from one client address: the hard limit.
    Pair { username: String, address: String },
    /// One client address, across usernames (password spraying).
    Address(String),
    /// One username, across addresses: past its limit only a short back-off applies, so nobody can
    /// lock the owner out from elsewhere.
    Username(String),
    /// One merchant's wrong pickup codes (a merchant guessing members' codes).
    PickupCodes(String),
}

impl LoginCounter {
    fn key(&self) -> String {
        match self {
            LoginCounter::Pair { username, address } => {
                format!("LOGIN#PAIR#{username}#{address}")
            }
            LoginCounter::Address(address) => format!("LOGIN#ADDR#{address}"),
            LoginCounter::Username(username) => format!("LOGIN#USER#{username}"),
            LoginCounter::PickupCodes(merchant) => format!("PICKUPCODES#MERCHANT#{merchant}"),
        }
    }
}

/// The outcome of reserving one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    Reserved,
    /// The window is full until `ends_at` (epoch seconds).
    Full {
        ends_at: i64,
    },
    /// No window was open, and a concurrent attempt opened one first: ask again (the caller
    /// retries; the next ask is counted in that window).
    Raced,
}

#[derive(Deserialize)]
struct WindowRecord {
    expires_at: i64,
    #[serde(default)]
    next_at: Option<i64>,
}

impl Store {
    /// Reserves one attempt in `counter`'s window (opening a window if none is open), unless `max`
    /// are already reserved. Conditional single-item writes: concurrent attempts are all counted.
    /// One pass: when a concurrent attempt opens the window between its two writes, it answers
    /// [`Reservation::Raced`] and the caller asks again.
    pub async fn reserve_login_attempt(
        &self,
        counter: &LoginCounter,
        max: u32,
        now: i64,
        window_secs: i64,
    ) -> Result<Reservation, AppError> {
        let key = counter.key();
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.clone()))
            .key(SK, s(WINDOW_SK))
            .update_expression("ADD attempts :one")
            .condition_expression("#ttl > :now AND attempts < :max")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":max", n(i64::from(max)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match added.map_err(|e| e.into_service_error()) {
            Ok(_) => return Ok(Reservation::Reserved),
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                if let Some(old) = failed.item {
                    let old: WindowRecord = from_item(old)?;
                    if old.expires_at > now {
                        return Ok(Reservation::Full {
                            ends_at: old.expires_at,
                        });
                    }
                }
            }
            Err(other) => return Err(super::dynamo_failure("reserve login attempt", other)),
        }
        // No open window: open one with this attempt, unless a concurrent attempt just did.
        let opened = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key.clone()))
            .key(SK, s(WINDOW_SK))
            .update_expression("SET attempts = :one, #ttl = :end, entity = :entity REMOVE next_at")
            .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":end", n(now + window_secs))
            .expression_attribute_values(":entity", s("LoginAttempts"))
            .send()
            .await;
        match opened.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(Reservation::Reserved),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Reservation::Raced),
            Err(other) => Err(super::dynamo_failure("open login window", other)),
        }
    }

    /// Hands a reservation back (the login succeeded, or was refused by another counter).
    pub async fn release_login_attempt(
        &self,
        counter: &LoginCounter,
        now: i64,
    ) -> Result<(), AppError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(counter.key()))
            .key(SK, s(WINDOW_SK))
            .update_expression("ADD attempts :minus_one")
            .condition_expression("#ttl > :now AND attempts > :zero")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match released.map_err(|e| e.into_service_error()) {
            Ok(_) | Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(other) => Err(super::dynamo_failure("release login attempt", other)),
        }
    }

    /// For a full window: lets one attempt through per `backoff_secs` (a conditional write of the
    /// next allowed time). `None` when this attempt may go ahead, else when the next one may.
    pub async fn pass_login_backoff(
        &self,
        counter: &LoginCounter,
        backoff_secs: i64,
        now: i64,
    ) -> Result<Option<i64>, AppError> {
        let passed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(counter.key()))
            .key(SK, s(WINDOW_SK))
            .update_expression("SET next_at = :next")
            .condition_expression(
                "#ttl > :now AND (attribute_not_exists(next_at) OR next_at <= :now)",
            )
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":next", n(now + backoff_secs))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match passed.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(None),
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let old: Option<WindowRecord> = failed.item.map(from_item).transpose()?;
                Ok(match old {
                    // The window closed meanwhile: the next reservation opens a new one.
                    Some(old) if old.expires_at > now => Some(old.next_at.unwrap_or(now + 1)),
                    _ => None,
                })
            }
            Err(other) => Err(super::dynamo_failure("login back-off", other)),
        }
    }
}

//! ECPay's QueryTradeInfo pacing, shared by every function in the table. ECPay answers queries
//! that come too fast with HTTP 403 and then refuses every query for 30 minutes; on AWS the admin,
//! callback and reconcile functions (and several instances of each) may query at once, so a pause
//! kept in one process is not enough. One item holds the earliest moment the next query may be
//! sent; a caller takes the next free moment with a conditional write on the value it read, then
//! waits for it. Callers queue up fairly (each reserves a distinct moment, `spacing` apart).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::keys::*;
use super::table::{PK, SK};
use super::{n, s, Store};
use crate::error::AppError;

/// What asking for a query moment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuerySlot {
    /// Send the query at this moment (Unix milliseconds); it is this caller's alone.
    At(i64),
    /// Every moment within the wait allowed is taken: the earliest free one.
    Busy { free_at: i64 },
    /// Another caller took the moment read: read again.
    Raced,
}

const NEXT_AT: &str = "next_at_ms";

impl Store {
    /// Reserves the first free query moment at or after `now_ms`, if it is at most `max_wait_ms`
    /// away; the next caller's moment is then `spacing_ms` later.
    pub async fn reserve_query_slot(
        &self,
        now_ms: i64,
        spacing_ms: i64,
        max_wait_ms: i64,
    ) -> Result<QuerySlot, AppError> {
        #[derive(serde::Deserialize)]
        struct Slot {
            next_at_ms: i64,
        }
        let read = self
            .get_item::<Slot>(GATEWAY_PK.to_string(), GATEWAY_QUERY_SLOT_SK)
            .await?
            .map(|slot| slot.next_at_ms);
        let slot = read.map_or(now_ms, |next| next.max(now_ms));
        if slot - now_ms > max_wait_ms {
            return Ok(QuerySlot::Busy { free_at: slot });
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(GATEWAY_PK))
            .key(SK, s(GATEWAY_QUERY_SLOT_SK))
            .update_expression("SET #next = :next, entity = :entity")
            .expression_attribute_names("#next", NEXT_AT)
            .expression_attribute_values(":next", n(slot + spacing_ms))
            .expression_attribute_values(":entity", s("GatewayQuerySlot"));
        update = match read {
            Some(read) => update
                .condition_expression("#next = :read")
                .expression_attribute_values(":read", n(read)),
            None => update.condition_expression("attribute_not_exists(#next)"),
        };
        match update.send().await.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(QuerySlot::At(slot)),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(QuerySlot::Raced),
            Err(other) => Err(super::dynamo_failure("reserve query slot", other)),
        }
    }
}

//! Idempotency-Keys: a client's key claimed in the same transaction as the write it protects, with
//! the request's hash and the first answer, so a repeat gets that answer and changes nothing. One
//! record shape for redemptions (which also name their order) and operators' adjustments.

use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

use super::to_item;
use crate::error::AppError;

/// A key claimed by a write: the request's hash and the answer to replay, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    pub body_hash: String,
    pub response: String,
    pub expires_at: i64,
    /// When the claim is made (epoch seconds): a record expired by then is free to claim again.
    pub claimed_at: i64,
}

/// A stored idempotency outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentOutcome {
    pub body_hash: String,
    pub response: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub body_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The first response's body, replayed verbatim.
    pub response: String,
    pub expires_at: i64,
}

impl IdempotencyRecord {
    /// The stored outcome, unless it has expired (TTL deletion lags, so expiry is checked here).
    pub(super) fn outcome(self, now: i64) -> Option<IdempotentOutcome> {
        (self.expires_at > now).then_some(IdempotentOutcome {
            body_hash: self.body_hash,
            response: self.response,
        })
    }
}

/// The stored outcome at `key` among what one batch read `found` (taken out of it), unless absent
/// or expired: the replay every Idempotency-Key'd write reads first.
pub(super) fn take_outcome(
    found: &mut std::collections::HashMap<(String, String), super::Item>,
    key: Option<(String, String)>,
    now: i64,
) -> Result<Option<IdempotentOutcome>, AppError> {
    Ok(key
        .and_then(|key| found.remove(&key))
        .map(super::from_item::<IdempotencyRecord>)
        .transpose()?
        .and_then(|record| record.outcome(now)))
}

/// The put that claims `claim` at (`pk`, `sk`), only if nobody holds it: a second request with the
/// same key cancels the whole transaction it rides in. A record past its `expires_at` counts as
/// free, as the reads treat it: DynamoDB's TTL deletes expired items only eventually (often days
/// later), and a claim refused by a record every read ignores would be refused forever.
pub(super) fn claim_put(
    table: &str,
    pk: String,
    sk: &str,
    claim: &IdempotencyClaim,
    order_id: Option<&str>,
) -> Result<TransactWriteItem, AppError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(to_item(&IdempotencyRecord {
            pk,
            sk: sk.into(),
            entity: "IdempotencyKey".into(),
            body_hash: claim.body_hash.clone(),
            order_id: order_id.map(str::to_string),
            response: claim.response.clone(),
            expires_at: claim.expires_at,
        })?))
        .condition_expression("attribute_not_exists(#pk) OR expires_at <= :now")
        .expression_attribute_names("#pk", super::table::PK)
        .expression_attribute_values(":now", super::n(claim.claimed_at))
        .build()
        .map_err(AppError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

//! Pickup codes: the guard item that makes each code unique and names the order it completes, and
//! the queue of pickups by expiry that the scheduled job walks.
//!
//! The guard is put in the redemption's one `TransactWriteItems` (`place_order`), so a code costs no
//! extra round trip. It stays after the order ends: a used code then answers "already completed"
//! to its merchant, and the code is never handed out again. Its gsi2 keys queue the order for
//! expiry until the job has seen it end.

use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI2_PK, GSI2_SK, PK, SK};
use super::{dynamo_failure, from_item, put_new, s, to_item, Store};
use crate::domain::{Order, OrderId, Timestamp, UserId};
use crate::error::AppError;

#[derive(Serialize, Deserialize)]
struct PickupCodeRecord {
    pk: String,
    sk: String,
    entity: String,
    order_id: OrderId,
    merchant_id: UserId,
    /// While the order may still expire: `pickups_due_gsi` / `<expiry>#<order id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
}

/// The sort key of a pickup in the expiry queue: its expiry (RFC 3339 in UTC, which sorts as time)
/// and its order id.
fn due_sort_key(expires_at: Timestamp, order_id: &OrderId) -> String {
    format!(
        "{}#{order_id}",
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// A pickup the expiry queue holds whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePickup {
    pub code: String,
    pub order_id: OrderId,
}

impl Store {
    /// The guard of `order`'s pickup code, to put in the redemption's transaction; `None` when the
    /// order has no code (a delivery).
    pub(super) fn pickup_code_guard(
        &self,
        order: &Order,
    ) -> Result<Option<TransactWriteItem>, AppError> {
        let Some(code) = &order.pickup_code else {
            return Ok(None);
        };
        let expires_at = order
            .pickup_expires_at
            .ok_or_else(|| AppError::internal("a pickup code without an expiry"))?;
        let record = PickupCodeRecord {
            pk: pickup_code_pk(code),
            sk: PICKUP_CODE_SK.into(),
            entity: "PickupCode".into(),
            order_id: order.id.clone(),
            merchant_id: order.merchant_id.clone(),
            gsi2pk: Some(pickups_due_gsi(&order.id)),
            gsi2sk: Some(due_sort_key(expires_at, &order.id)),
        };
        Ok(Some(put_new(&self.table, to_item(&record)?)?))
    }

    /// The order a pickup code completes, if it is the code of an order of `merchant_id`'s. Another
    /// merchant's code reads as no code at all.
    pub async fn order_of_pickup_code(
        &self,
        code: &str,
        merchant_id: &UserId,
    ) -> Result<Option<OrderId>, AppError> {
        Ok(self
            .get_item::<PickupCodeRecord>(pickup_code_pk(code), PICKUP_CODE_SK)
            .await?
            .filter(|guard| guard.merchant_id == *merchant_id)
            .map(|guard| guard.order_id))
    }

    /// Up to `limit` pickups whose expiry is before `now`, soonest first, from every partition of
    /// the queue.
    pub async fn due_pickups(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<DuePickup>, AppError> {
        self.due_items(pickups_due_partitions(), now, limit)
            .await?
            .into_iter()
            .map(|item| {
                let record: PickupCodeRecord = from_item(item)?;
                let code = record
                    .pk
                    .strip_prefix("PICKUPCODE#")
                    .ok_or_else(|| AppError::internal("a pickup guard's key"))?
                    .to_string();
                Ok(DuePickup {
                    code,
                    order_id: record.order_id,
                })
            })
            .collect()
    }

    /// Takes a pickup out of the expiry queue (its order ended).
    pub async fn clear_due_pickup(&self, code: &str) -> Result<(), AppError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pickup_code_pk(code)))
            .key(SK, s(PICKUP_CODE_SK))
            .update_expression("REMOVE #gsi2pk, #gsi2sk")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#gsi2pk", GSI2_PK)
            .expression_attribute_names("#gsi2sk", GSI2_SK)
            .send()
            .await
            .map_err(|err| dynamo_failure("clear due pickup", err.into_service_error()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_queue_sorts_by_time_then_order() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let a = OrderId::generate();
        let earlier = due_sort_key(at("2026-12-31T23:59:59.5Z"), &a);
        let later = due_sort_key(at("2027-01-01T00:00:00Z"), &a);
        assert!(earlier < later, "{earlier} {later}");
        assert!(later.starts_with("2027-01-01T00:00:00.000Z#"));
    }
}

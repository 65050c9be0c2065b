//! Queues of orders with work due at a time: a shipped delivery completing by itself, an ended
//! delivery's address redacted. One small item per order and kind, put in the transaction that makes
//! the work due and deleted in the one that does it; its gsi2 keys (spread over partitions like a
//! merchant's orders, sorted by when) are what the scheduled job reads. (Pickups are queued on their
//! code's guard instead, which exists anyway: `pickups.rs`.)

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI2, GSI2_PK, GSI2_SK, PK, SK};
use super::{dynamo_failure, from_item, s, to_item, Item, Store};
use crate::domain::{OrderId, Timestamp};
use crate::error::AppError;

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueWork {
    /// A shipped delivery its member has not confirmed completes.
    DeliveryCompletes,
    /// An ended delivery's address is redacted.
    AddressRedacted,
}

impl DueWork {
    fn name(self) -> &'static str {
        match self {
            DueWork::DeliveryCompletes => "DELIVERY",
            DueWork::AddressRedacted => "REDACTION",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DueRecord {
    pk: String,
    sk: String,
    entity: String,
    order_id: OrderId,
    gsi2pk: String,
    gsi2sk: String,
}

impl Store {
    /// Queues `work` on `order_id` for `at` (a put: queuing again moves it).
    pub(super) fn due_put(
        &self,
        work: DueWork,
        order_id: &OrderId,
        at: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        let record = DueRecord {
            pk: due_pk(work.name(), order_id),
            sk: DUE_SK.into(),
            entity: "Due".into(),
            order_id: order_id.clone(),
            gsi2pk: due_gsi(work.name(), order_id),
            gsi2sk: format!(
                "{}#{order_id}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Takes `work` on `order_id` off its queue (nothing if it is not queued).
    pub(super) fn due_delete(
        &self,
        work: DueWork,
        order_id: &OrderId,
    ) -> Result<TransactWriteItem, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(due_pk(work.name(), order_id)))
            .key(SK, s(DUE_SK))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Up to `limit` orders whose `work` is due before `now`, soonest first.
    pub async fn due_orders(
        &self,
        work: DueWork,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OrderId>, AppError> {
        let due = self
            .due_items(due_partitions(work.name()), now, limit)
            .await?
            .into_iter()
            .map(from_item::<DueRecord>)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(due.into_iter().map(|d| d.order_id).collect())
    }

    /// Up to `limit` items of a queue spread over `partitions` of gsi2 whose sort key (`<when>#…`)
    /// is before `now`, soonest first: each partition read at once, then merged.
    pub(super) async fn due_items(
        &self,
        partitions: Vec<String>,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Item>, AppError> {
        let before = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let reads = partitions.into_iter().map(|partition| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .key_condition_expression("#pk = :pk AND #sk < :before")
                .expression_attribute_names("#pk", GSI2_PK)
                .expression_attribute_names("#sk", GSI2_SK)
                .expression_attribute_values(":pk", s(partition))
                .expression_attribute_values(":before", s(before.clone()))
                .limit(limit.clamp(1, i32::MAX as usize) as i32)
                .send()
        });
        let pages = try_join_all(reads)
            .await
            .map_err(|err| dynamo_failure("due work", err.into_service_error()))?;
        let sort_key = |item: &Item| match item.get(GSI2_SK) {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(key)) => key.clone(),
            _ => String::new(),
        };
        let mut due: Vec<Item> = pages
            .into_iter()
            .flat_map(|page| page.items.unwrap_or_default())
            .collect();
        due.sort_by_key(sort_key);
        due.truncate(limit);
        Ok(due)
    }
}

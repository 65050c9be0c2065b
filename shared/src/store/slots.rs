//! A bounded set of items in one partition (a member's saved addresses, a merchant's webhooks):
//! the set of their ids lives in a slots item that the same transaction changes as the item itself,
//! conditioned on its size, so two additions at once cannot both take the last slot.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::table::{PK, SK};
use super::{n, s, Item, Store, TransactionAttempt};
use crate::error::AppError;

/// Where a set's slots are kept.
pub(super) struct Slots {
    /// The partition of the items and of their slots item.
    pub pk: String,
    /// The slots item's sort key.
    pub sk: &'static str,
    /// Its string-set attribute of ids.
    pub attribute: &'static str,
    /// Its `entity`.
    pub entity: &'static str,
}

/// One attempt at adding an item to a bounded set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotSave {
    Saved,
    /// The set already holds the most allowed.
    Full,
    Contended,
}

impl Store {
    /// Every item of a bounded set: those of partition `pk` whose sort key starts with `prefix`,
    /// read strongly consistent (an item added a moment ago is in it). One call: a set is small.
    pub(super) async fn items_in_slots(
        &self,
        pk: String,
        prefix: &str,
        during: &'static str,
    ) -> Result<Vec<Item>, AppError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| super::dynamo_failure(during, err.into_service_error()))?;
        Ok(output.items.unwrap_or_default())
    }

    /// Puts `item` (named `id` in the set) unless the set already holds `max`.
    pub(super) async fn put_in_slot(
        &self,
        slots: &Slots,
        id: &str,
        max: u32,
        item: Item,
    ) -> Result<SlotSave, AppError> {
        let slot = Update::builder()
            .table_name(&self.table)
            .key(PK, s(slots.pk.clone()))
            .key(SK, s(slots.sk))
            .update_expression("ADD #saved :id SET entity = :entity")
            .condition_expression("attribute_not_exists(#saved) OR size(#saved) < :max")
            .expression_attribute_names("#saved", slots.attribute)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![id.to_string()]))
            .expression_attribute_values(":entity", s(slots.entity))
            .expression_attribute_values(":max", n(i64::from(max)))
            .build()
            .map_err(AppError::internal)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(slot).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        Ok(match self.transact_once(items).await? {
            TransactionAttempt::Committed => SlotSave::Saved,
            TransactionAttempt::Contended(_) => SlotSave::Contended,
            TransactionAttempt::Refused(c) if c.condition_failed(0) => SlotSave::Full,
            TransactionAttempt::Refused(c) => {
                return Err(AppError::internal(format!(
                    "{} refused: {:?}",
                    slots.entity, c.reasons
                )))
            }
        })
    }

    /// Deletes the item at `item_sk` (named `id` in the set): `Some(false)` when there is none,
    /// `None` when contended (try again).
    pub(super) async fn delete_from_slot(
        &self,
        slots: &Slots,
        id: &str,
        item_sk: String,
    ) -> Result<Option<bool>, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(slots.pk.clone()))
            .key(SK, s(item_sk))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(AppError::internal)?;
        let slot = Update::builder()
            .table_name(&self.table)
            .key(PK, s(slots.pk.clone()))
            .key(SK, s(slots.sk))
            .update_expression("DELETE #saved :id")
            .expression_attribute_names("#saved", slots.attribute)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![id.to_string()]))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(slot).build(),
        ];
        Ok(match self.transact_once(items).await? {
            TransactionAttempt::Committed => Some(true),
            TransactionAttempt::Contended(_) => None,
            TransactionAttempt::Refused(c) if c.condition_failed(0) => Some(false),
            TransactionAttempt::Refused(c) => {
                return Err(AppError::internal(format!(
                    "{} delete refused: {:?}",
                    slots.entity, c.reasons
                )))
            }
        })
    }
}

//! Moves index entries written before the catalogue and merchants' orders were spread over several
//! index partitions (`keys::CATALOGUE_PARTITIONS`, `keys::MERCHANT_ORDER_PARTITIONS`) to their
//! spread keys. A scan, so it runs where a scan belongs: when the local host opens a data file made
//! by an earlier version (beside `backfill_user_directory`).

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::*;
use super::table::{GSI2_PK, PK, SK};
use super::{dynamo_failure, s, Filter, Store};
use crate::error::AppError;

/// The single catalogue partition of earlier versions.
const LEGACY_CATALOGUE: &str = "CATALOGUE";

impl Store {
    /// Re-keys every legacy catalogue or merchant-orders entry; returns how many it moved. Each
    /// write is conditioned on the key it read, so a concurrent edit is never overwritten.
    pub async fn spread_legacy_index_keys(&self) -> Result<usize, AppError> {
        let filter = Filter {
            // Orders are told apart in code: their legacy key is a prefix of the spread one.
            expression: "(#entity = :product AND #g2pk = :legacy) OR #entity = :order",
            names: vec![("#entity", "entity"), ("#g2pk", GSI2_PK)],
            values: vec![
                (":product", s("Product")),
                (":order", s("Order")),
                (":legacy", s(LEGACY_CATALOGUE)),
            ],
        };
        let mut moved = 0;
        for item in self.scan_every(Some(&filter)).await? {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => Some(value.clone()),
                _ => None,
            };
            let (Some(pk), Some(sk), Some(id), Some(old)) =
                (text(PK), text(SK), text("id"), text(GSI2_PK))
            else {
                continue;
            };
            let new = match (text("entity").as_deref(), text("merchant_id")) {
                (Some("Product"), _) => catalogue_gsi(&id),
                (Some("Order"), Some(merchant)) => merchant_orders_gsi(&merchant, &id),
                _ => continue,
            };
            if new == old {
                continue;
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(pk))
                .key(SK, s(sk))
                .update_expression("SET #g2pk = :new")
                .condition_expression("#g2pk = :old")
                .expression_attribute_names("#g2pk", GSI2_PK)
                .expression_attribute_values(":new", s(new))
                .expression_attribute_values(":old", s(old))
                .send()
                .await;
            match result {
                Ok(_) => moved += 1,
                Err(err) => {
                    let err = err.into_service_error();
                    // Changed since the scan read it: its writer wrote a current key.
                    if !err.is_conditional_check_failed_exception() {
                        return Err(dynamo_failure("re-key", err));
                    }
                }
            }
        }
        Ok(moved)
    }
}

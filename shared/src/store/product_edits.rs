//! A merchant's edit of a product (conditioned on the version they read) and stock moved between a
//! product's shards: the writes that change stock other than a redemption or a cancellation.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::keys::*;
use super::products::{ProductStock, ShardState, StockShardRecord};
use super::table::{GSI2_PK, PK, SK};
use super::{n, put_new, s, timestamp, to_item, Store, TransactionAttempt};
use crate::domain::stock::{shards_for, spread, Rebalance};
use crate::domain::{Product, ProductChanges, ProductId, Timestamp, UserId};
use crate::error::AppError;

/// What a merchant's conditional product write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductWrite {
    Written(Product),
    /// No such product, or another merchant's: indistinguishable on purpose.
    NotFound,
    /// The product changed since the version the merchant based the edit on.
    VersionConflict {
        current_version: i64,
    },
    /// The merchant asked to put on sale a product an operator took down.
    Blocked,
}

/// A move of stock between shards, as attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMove {
    Moved,
    /// A shard changed since it was read (or another transaction held it): nothing moved.
    Stale,
}

impl Store {
    /// Applies a merchant's changes if the product is theirs and still at `expected_version`, as one
    /// transaction: the product item, conditioned on its own version, and — when the stock or the
    /// shard count changes — every shard set to its share of the new total, each conditioned on the
    /// version it was read at. A redemption landing between the read and the write changes a shard's
    /// version, so the edit is refused (409) rather than overwriting a newer stock figure.
    pub async fn update_product(
        &self,
        merchant_id: &UserId,
        product_id: &ProductId,
        expected_version: i64,
        changes: &ProductChanges,
        now: Timestamp,
    ) -> Result<super::Attempt<ProductWrite>, AppError> {
        let Some(current) = self.product_stock(product_id).await? else {
            return Ok(super::Attempt::Done(ProductWrite::NotFound));
        };
        if current.product.merchant_id != merchant_id {
            return Ok(super::Attempt::Done(ProductWrite::NotFound));
        }
        if current.product.version != expected_version {
            return Ok(super::Attempt::Done(ProductWrite::VersionConflict {
                current_version: current.product.version,
            }));
        }
        if changes.is_active == Some(true) && current.product.blocked {
            return Ok(super::Attempt::Done(ProductWrite::Blocked));
        }
        let old_shards = current.product.stock_shards;
        let total = changes.stock.unwrap_or(current.product.stock);
        let shards =
            old_shards
                .max(changes.stock_shards.unwrap_or(1))
                .max(if changes.stock.is_some() {
                    shards_for(total)
                } else {
                    1
                });
        let restock = changes.stock.is_some() || shards != old_shards;

        let mut sets = vec![
            "version = version + :one",
            "updated_at = :now",
            "stock_shards = :shards",
        ];
        let mut removes = vec![];
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(product_pk(product_id)))
            .key(SK, s(PRODUCT_SK))
            .condition_expression(
                "attribute_exists(#pk) AND merchant_id = :merchant AND version = :expected",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":expected", n(current.item_version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":shards", n(shards as i64));
        if let Some(name) = &changes.name {
            sets.push("#name = :name");
            update = update
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":name", s(name.clone()));
        }
        if let Some(description) = &changes.description {
            sets.push("description = :description");
            update = update.expression_attribute_values(":description", s(description.clone()));
        }
        if let Some(points) = changes.points_required {
            sets.push("points_required = :points");
            update = update.expression_attribute_values(":points", n(points.get()));
        }
        if let Some(fulfilment) = changes.fulfilment {
            sets.push("fulfilment = :fulfilment");
            update = update.expression_attribute_values(":fulfilment", s(fulfilment.as_str()));
        }
        // The merchant sets only their own flag; whether that puts it on sale depends on the others,
        // as read (the version condition makes the read the state written over).
        let on_sale = changes.is_active.map(|listed| {
            crate::domain::product::on_sale(
                listed,
                current.product.blocked,
                current.product.merchant_suspended,
            )
        });
        if let (Some(listed), Some(active)) = (changes.is_active, on_sale) {
            sets.push("listed = :listed, is_active = :active");
            update = update
                .expression_attribute_values(":listed", AttributeValue::Bool(listed))
                .expression_attribute_values(":active", AttributeValue::Bool(active));
            if active {
                sets.push("#gsi2pk = :catalogue, #gsi2sk = id");
                update = update.expression_attribute_values(
                    ":catalogue",
                    s(catalogue_gsi(&current.product.id)),
                );
            } else {
                removes.push("#gsi2pk, #gsi2sk");
            }
            update = update
                .expression_attribute_names("#gsi2pk", GSI2_PK)
                .expression_attribute_names("#gsi2sk", super::table::GSI2_SK);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if restock {
            for (i, stock) in spread(total, shards).into_iter().enumerate() {
                items.push(match current.shards.get(i) {
                    Some(read) => self.set_shard(product_id, i, stock, *read)?,
                    None => put_new(
                        &self.table,
                        to_item(&StockShardRecord::new(product_id, i, stock))?,
                    )?,
                });
            }
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Contended(_) => Ok(super::Attempt::Contended),
            TransactionAttempt::Committed => {
                self.remember_shards(product_id, shards);
                if restock {
                    self.remember_stock(product_id, spread(total, shards).into_iter().enumerate());
                }
                let mut product = current.product;
                product.version += 1;
                product.updated_at = now;
                product.stock = total;
                product.stock_shards = shards;
                if let Some(name) = &changes.name {
                    product.name = name.clone();
                }
                if let Some(description) = &changes.description {
                    product.description = description.clone();
                }
                if let Some(fulfilment) = changes.fulfilment {
                    product.fulfilment = fulfilment;
                }
                if let Some(points) = changes.points_required {
                    product.points_required = points;
                }
                if let Some(listed) = changes.is_active {
                    product.listed = listed;
                }
                Ok(super::Attempt::Done(ProductWrite::Written(product)))
            }
            // Something moved since the read: say where it is now.
            TransactionAttempt::Refused(_) => Ok(super::Attempt::Done(
                match self.get_product(product_id).await? {
                    Some(now) if now.merchant_id == merchant_id => ProductWrite::VersionConflict {
                        current_version: now.version,
                    },
                    _ => ProductWrite::NotFound,
                },
            )),
        }
    }

    /// Sets shard `index` to `stock`, only if it is still at the version `read`. Its version is
    /// left as it is: the product item's bump already moves the product's version by exactly one.
    fn set_shard(
        &self,
        product_id: &ProductId,
        index: usize,
        stock: i64,
        read: ShardState,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(stock_shard_pk(product_id, index)))
            .key(SK, s(STOCK_SHARD_SK))
            .update_expression("SET stock = :stock")
            .condition_expression("version = :read")
            .expression_attribute_values(":stock", n(stock))
            .expression_attribute_values(":read", n(read.version))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves stock between a product's shards as `plan` says, in one transaction. Each touched shard
    /// changes by the difference between its planned and read figure: a donor only if it still
    /// holds what it gives (`stock >= give`), a receiver unconditionally. So redemptions landing on
    /// those shards after the read do not spoil the move (only one in flight does), and no unit is
    /// created or lost whatever happened since. One attempt: when it does not go through, the
    /// caller reads again. Each touched shard's version goes up, so a merchant's edit based on the
    /// old figures is refused.
    pub async fn move_stock(
        &self,
        product: &ProductStock,
        plan: &Rebalance,
    ) -> Result<StockMove, AppError> {
        if !product.complete {
            return Err(AppError::internal("a stock move planned on a partial read"));
        }
        let mut items = Vec::with_capacity(plan.new_stock.len());
        for (index, stock) in &plan.new_stock {
            let read = product.shards.get(*index).ok_or_else(|| {
                AppError::internal("a stock move names a shard that does not exist")
            })?;
            let delta = stock - read.stock;
            if delta == 0 {
                continue;
            }
            let mut update = Update::builder()
                .table_name(&self.table)
                .key(PK, s(stock_shard_pk(&product.product.id, *index)))
                .key(SK, s(STOCK_SHARD_SK))
                .update_expression("SET stock = stock + :delta, version = version + :one")
                .expression_attribute_values(":delta", n(delta))
                .expression_attribute_values(":one", n(1));
            update = if delta < 0 {
                update
                    .condition_expression("stock >= :give")
                    .expression_attribute_values(":give", n(-delta))
            } else {
                update
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
            };
            items.push(
                TransactWriteItem::builder()
                    .update(update.build().map_err(AppError::internal)?)
                    .build(),
            );
        }
        if items.len() < 2 {
            return Ok(StockMove::Stale);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => {
                self.remember_stock(&product.product.id, plan.new_stock.iter().copied());
                Ok(StockMove::Moved)
            }
            TransactionAttempt::Refused(_) | TransactionAttempt::Contended(_) => {
                Ok(StockMove::Stale)
            }
        }
    }
}

//! Products and their stock shards as stored: the records, creation, and every read (one product
//! with all or a sample of its shards, a merchant's list, the catalogue). One job, the product's
//! items, kept whole; edits and stock moves are in `product_edits.rs`, who may put a product on sale
//! in `product_flags.rs`.

use std::collections::HashMap;

use rand::seq::SliceRandom;

use crate::domain::{Fulfilment, Points, Product, ProductId, Timestamp, UserId};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::spread_lists::SpreadQuery;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, GSI2_SK};
use super::{from_item, put_new, to_item, Filter, Item, ListQuery, Store, TransactionAttempt};
use crate::domain::stock::{spread, MAX_SHARDS};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
pub(super) struct ProductRecord {
    pk: String,
    sk: String,
    entity: String,
    // An index copy lacks the other index's keys (indexes project only `table::INDEX_PROJECTED_ATTRIBUTES`
    // besides their own keys); a record read from one is only turned into a value, never written back.
    #[serde(default)]
    gsi1pk: String,
    #[serde(default)]
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    pub(super) id: ProductId,
    merchant_id: UserId,
    name: String,
    description: String,
    points_required: Points,
    /// Absent on products listed before fulfilment existed: they are pickup.
    #[serde(default)]
    fulfilment: Fulfilment,
    /// The stock itself is in the shard items.
    pub(super) stock_shards: u8,
    /// On sale: `domain::product::on_sale` of the three flags below, rewritten with them.
    pub(super) is_active: bool,
    /// The merchant's own choice; absent on items written before takedowns were kept apart, where
    /// it is what `is_active` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) listed: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) blocked: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) merchant_suspended: bool,
    /// The product item's own version: bumped by merchants' edits (redemptions bump shards').
    version: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl ProductRecord {
    fn new(p: &Product) -> Self {
        ProductRecord {
            pk: product_pk(&p.id),
            sk: PRODUCT_SK.into(),
            entity: "Product".into(),
            gsi1pk: merchant_products_gsi(&p.merchant_id),
            gsi1sk: p.id.to_string(),
            gsi2pk: p.is_active().then(|| catalogue_gsi(&p.id)),
            gsi2sk: p.is_active().then(|| p.id.to_string()),
            id: p.id.clone(),
            merchant_id: p.merchant_id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            points_required: p.points_required,
            fulfilment: p.fulfilment,
            stock_shards: p.stock_shards,
            is_active: p.is_active(),
            listed: Some(p.listed),
            blocked: p.blocked,
            merchant_suspended: p.merchant_suspended,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    /// The product as callers see it: the stock and version summed over its shards.
    fn with_shards(self, shards: &[ShardState]) -> Product {
        Product {
            stock: shards.iter().map(|s| s.stock).sum(),
            version: self.version + shards.iter().map(|s| s.version).sum::<i64>(),
            id: self.id,
            merchant_id: self.merchant_id,
            name: self.name,
            description: self.description,
            points_required: self.points_required,
            fulfilment: self.fulfilment,
            stock_shards: self.stock_shards,
            listed: self.listed.unwrap_or(self.is_active),
            blocked: self.blocked,
            merchant_suspended: self.merchant_suspended,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct StockShardRecord {
    pk: String,
    sk: String,
    entity: String,
    product_id: String,
    shard: usize,
    stock: i64,
    /// Bumped by every change of this shard's stock.
    version: i64,
}

impl StockShardRecord {
    pub(super) fn new(product_id: &ProductId, shard: usize, stock: i64) -> Self {
        StockShardRecord {
            pk: stock_shard_pk(product_id, shard),
            sk: STOCK_SHARD_SK.into(),
            entity: "StockShard".into(),
            product_id: product_id.to_string(),
            shard,
            stock,
            version: 0,
        }
    }
}

/// One stock shard as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardState {
    pub stock: i64,
    pub version: i64,
}

/// A product with its stock shards, as read together.
#[derive(Debug, Clone)]
pub struct ProductStock {
    /// When not `complete`, `stock` and `version` count only the shards that were read.
    pub product: Product,
    /// Indexed by shard number, `product.stock_shards` of them; a shard that was not read counts
    /// as empty (nothing is ever taken from it on the strength of this read).
    pub shards: Vec<ShardState>,
    /// Whether every shard was read: only then is `product.stock` the product's stock, and only
    /// then may anyone declare it sold out or move stock.
    pub complete: bool,
    /// The product item's own version (the conditions of an edit name it).
    pub(super) item_version: i64,
}

impl ProductStock {
    pub fn stocks(&self) -> Vec<i64> {
        self.shards.iter().map(|s| s.stock).collect()
    }
}

/// One stock shard item as read.
fn shard_state(item: Item) -> Result<ShardState, AppError> {
    let shard: StockShardRecord = from_item(item)?;
    Ok(ShardState {
        stock: shard.stock,
        version: shard.version,
    })
}

/// The shard keys of a product: `0..count`.
fn shard_keys(product_id: &ProductId, count: u8) -> impl Iterator<Item = (String, String)> + '_ {
    (0..count as usize).map(move |i| (stock_shard_pk(product_id, i), STOCK_SHARD_SK.to_string()))
}

impl Store {
    /// The product item and its stock shards, in one transaction: a product never exists without
    /// its stock.
    pub async fn create_product(&self, product: &Product) -> Result<super::Attempt<()>, AppError> {
        let mut items = vec![put_new(
            &self.table,
            to_item(&ProductRecord::new(product))?,
        )?];
        for (i, stock) in spread(product.stock, product.stock_shards)
            .into_iter()
            .enumerate()
        {
            items.push(put_new(
                &self.table,
                to_item(&StockShardRecord::new(&product.id, i, stock))?,
            )?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => {
                self.remember_shards(&product.id, product.stock_shards);
                Ok(super::Attempt::Done(()))
            }
            TransactionAttempt::Contended(_) => Ok(super::Attempt::Contended),
            TransactionAttempt::Refused(cancelled) => Err(AppError::internal(format!(
                "new product refused: {:?}",
                cancelled.reasons
            ))),
        }
    }

    pub async fn get_product(&self, product_id: &ProductId) -> Result<Option<Product>, AppError> {
        Ok(self.product_stock(product_id).await?.map(|p| p.product))
    }

    /// A product with each of its shards, in one strongly consistent `BatchGetItem`.
    pub async fn product_stock(
        &self,
        product_id: &ProductId,
    ) -> Result<Option<ProductStock>, AppError> {
        let mut found = self
            .batch_get(&self.product_keys(product_id, vec![]))
            .await?;
        self.product_stock_from(product_id, &mut found).await
    }

    /// The keys to read a product with its shards (as many as it is known to have, or could have),
    /// followed by `others`.
    pub(super) fn product_keys(
        &self,
        product_id: &ProductId,
        others: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let guess = self.known_shards(product_id).unwrap_or(MAX_SHARDS);
        let mut keys = vec![(product_pk(product_id), PRODUCT_SK.to_string())];
        keys.extend(shard_keys(product_id, guess));
        keys.extend(others);
        keys
    }

    /// The keys to read a product with `sample` of its shards at random (all of them when its shard
    /// count is not known yet), followed by `others`. Reading 3 of 16 shards is most of a
    /// redemption's read cost saved; a sample that cannot cover an order is completed by a second
    /// read (see [`Store::product_stock`]). The sample is drawn from the shards not believed dry;
    /// when all are believed dry, every shard is read at once, as the second read would.
    pub(super) fn sampled_product_keys(
        &self,
        product_id: &ProductId,
        sample: usize,
        others: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let Some(hint) = self.shard_hint(product_id).filter(|hint| hint.count > 0) else {
            return self.product_keys(product_id, others);
        };
        let mut indices: Vec<usize> = hint.stocked().collect();
        if indices.is_empty() {
            return self.product_keys(product_id, others);
        }
        indices.shuffle(&mut rand::thread_rng());
        indices.truncate(sample.max(1));
        let mut keys = vec![(product_pk(product_id), PRODUCT_SK.to_string())];
        keys.extend(
            indices
                .into_iter()
                .map(|i| (stock_shard_pk(product_id, i), STOCK_SHARD_SK.to_string())),
        );
        keys.extend(others);
        keys
    }

    /// Takes a product and whichever of its shards were read out of a batch read made with
    /// [`Store::sampled_product_keys`].
    pub(super) fn product_sample_from(
        &self,
        product_id: &ProductId,
        found: &mut HashMap<(String, String), Item>,
    ) -> Result<Option<ProductStock>, AppError> {
        let Some(item) = found.remove(&(product_pk(product_id), PRODUCT_SK.to_string())) else {
            return Ok(None);
        };
        let record: ProductRecord = from_item(item)?;
        self.remember_shards(product_id, record.stock_shards);
        let mut complete = true;
        let mut seen = Vec::new();
        let shards: Vec<ShardState> = shard_keys(product_id, record.stock_shards)
            .enumerate()
            .map(|(index, key)| match found.remove(&key) {
                Some(item) => {
                    let shard = shard_state(item)?;
                    seen.push((index, shard.stock));
                    Ok(shard)
                }
                None => {
                    complete = false;
                    Ok(ShardState {
                        stock: 0,
                        version: 0,
                    })
                }
            })
            .collect::<Result<_, AppError>>()?;
        self.remember_stock(product_id, seen);
        let item_version = record.version;
        Ok(Some(ProductStock {
            product: record.with_shards(&shards),
            shards,
            complete,
            item_version,
        }))
    }

    /// Takes a product and its shards out of a batch read made with [`Store::product_keys`]. When
    /// the product has more shards than were read (it was raised by another process), the missing
    /// ones are read now: the only case where this costs a second round trip.
    pub(super) async fn product_stock_from(
        &self,
        product_id: &ProductId,
        found: &mut HashMap<(String, String), Item>,
    ) -> Result<Option<ProductStock>, AppError> {
        let Some(item) = found.remove(&(product_pk(product_id), PRODUCT_SK.to_string())) else {
            return Ok(None);
        };
        let record: ProductRecord = from_item(item)?;
        let missing: Vec<(String, String)> = shard_keys(product_id, record.stock_shards)
            .filter(|key| !found.contains_key(key))
            .collect();
        if !missing.is_empty() {
            found.extend(self.batch_get(&missing).await?);
        }
        self.remember_shards(product_id, record.stock_shards);
        let shards = self.shards_from(&record, found)?;
        self.remember_stock(
            product_id,
            shards.iter().map(|shard| shard.stock).enumerate(),
        );
        let item_version = record.version;
        Ok(Some(ProductStock {
            product: record.with_shards(&shards),
            shards,
            complete: true,
            item_version,
        }))
    }

    fn shards_from(
        &self,
        record: &ProductRecord,
        found: &mut HashMap<(String, String), Item>,
    ) -> Result<Vec<ShardState>, AppError> {
        shard_keys(&record.id, record.stock_shards)
            .map(|key| {
                let item = found.remove(&key).ok_or_else(|| {
                    AppError::internal(format!("product {} lacks stock shard {}", record.id, key.0))
                })?;
                shard_state(item)
            })
            .collect()
    }

    /// Products of a list page with their stock: every shard of the page in one batch read,
    /// eventually consistent. A page shows stock, it decides nothing, and a product of 1,000 units
    /// has 16 shards: strongly consistent, a page of 20 such products cost 320 read units, half
    /// that now (the capacity bench, docs/cost.md).
    async fn with_stock(&self, page: Page<Item>) -> Result<Page<Product>, AppError> {
        let records: Vec<ProductRecord> = page
            .items
            .into_iter()
            .map(from_item::<ProductRecord>)
            .collect::<Result<_, _>>()?;
        let keys: Vec<(String, String)> = records
            .iter()
            .flat_map(|r| shard_keys(&r.id, r.stock_shards))
            .collect();
        let mut found = self.batch_get_eventually(&keys).await?;
        let items = records
            .into_iter()
            .map(|record| {
                let shards = self.shards_from(&record, &mut found)?;
                Ok(record.with_shards(&shards))
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// A merchant's products, active and inactive, newest first.
    pub async fn list_merchant_products(
        &self,
        merchant_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<Product>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: merchant_products_gsi(merchant_id),
            ascending: false,
            sort_prefix: None,
            filter: None,
            scope: format!("merchant-products:{merchant_id}"),
        };
        self.with_stock(self.query_page(query, page).await?).await
    }

    /// Active products, newest first; of one merchant when `merchant_id` is given.
    pub async fn list_catalogue(
        &self,
        merchant_id: Option<&UserId>,
        page: &PageRequest,
    ) -> Result<Page<Product>, AppError> {
        let query = match merchant_id {
            None => {
                let query = SpreadQuery {
                    index: GSI2,
                    partition_attribute: GSI2_PK,
                    sort_attribute: GSI2_SK,
                    partitions: catalogue_partitions(),
                    filter: None,
                    scope: "catalogue".into(),
                };
                return self
                    .with_stock(self.query_spread_page(query, page).await?)
                    .await;
            }
            Some(merchant_id) => ListQuery {
                index: Some(GSI1),
                partition_attribute: GSI1_PK,
                partition_value: merchant_products_gsi(merchant_id),
                ascending: false,
                sort_prefix: None,
                filter: Some(Filter {
                    expression: "is_active = :active",
                    names: vec![],
                    values: vec![(":active", AttributeValue::Bool(true))],
                }),
                scope: format!("catalogue:{merchant_id}"),
            },
        };
        self.with_stock(self.query_page(query, page).await?).await
    }
}

//! Orders: the redemption transaction, cancellation with refund, completion, and the lists.

use crate::domain::{
    BalanceChange, Order, OrderId, OrderParty, OrderStatus, Points, ProductId, Timestamp, UserId,
};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::guards::GuardRecord;
use super::idempotency::{claim_put, IdempotencyClaim, IdempotencyRecord, IdempotentOutcome};
use super::keys::*;
use super::points::AccountSnapshot;
use super::products::ProductStock;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, PK, SK};
use super::{
    from_item, n, page_of, put_new, s, timestamp, to_item, Filter, ListQuery, Store,
    TransactionAttempt,
};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
struct OrderRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    id: OrderId,
    order_number: String,
    member_id: UserId,
    merchant_id: UserId,
    product_id: ProductId,
    product_name: String,
    quantity: i64,
    points_cost: Points,
    status: OrderStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<OrderRecord> for Order {
    fn from(r: OrderRecord) -> Self {
        Order {
            id: r.id,
            order_number: r.order_number,
            member_id: r.member_id,
            merchant_id: r.merchant_id,
            product_id: r.product_id,
            product_name: r.product_name,
            quantity: r.quantity,
            points_cost: r.points_cost,
            status: r.status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<&Order> for OrderRecord {
    fn from(o: &Order) -> Self {
        OrderRecord {
            pk: order_pk(&o.id),
            sk: ORDER_SK.into(),
            entity: "Order".into(),
            gsi1pk: member_orders_gsi(&o.member_id),
            gsi1sk: o.id.to_string(),
            gsi2pk: merchant_orders_gsi(&o.merchant_id),
            gsi2sk: o.id.to_string(),
            id: o.id.clone(),
            order_number: o.order_number.clone(),
            member_id: o.member_id.clone(),
            merchant_id: o.merchant_id.clone(),
            product_id: o.product_id.clone(),
            product_name: o.product_name.clone(),
            quantity: o.quantity,
            points_cost: o.points_cost,
            status: o.status,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// One attempt at the redemption transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed,
    /// Another request with the same Idempotency-Key committed first.
    IdempotencyKeyUsed,
    /// The product's condition failed: gone, inactive, or repriced since it was read.
    ProductRefused,
    /// The chosen stock shard no longer holds the quantity (others may).
    ShardShort,
    /// The account changed since it was read (or cannot cover the cost).
    AccountChanged,
    /// The random order number collided.
    OrderNumberTaken,
    /// Another transaction held an item (or DynamoDB throttled): nothing written. `on_shard` says
    /// whether the chosen shard was the contended item, so another shard may do.
    Contended {
        on_shard: bool,
    },
}

/// The positions of the redemption transaction's items, for reading its cancellation reasons.
mod redemption_item {
    pub const PRODUCT: usize = 0;
    pub const SHARD: usize = 1;
    pub const ACCOUNT: usize = 2;
    pub const ORDER_NUMBER: usize = 5;
    pub const IDEMPOTENCY_KEY: usize = 6;
}

/// The positions of the cancellation transaction's items.
mod cancellation_item {
    pub const ORDER: usize = 0;
    pub const ACCOUNT: usize = 2;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// Completed or cancelled already (by anyone): nothing refunded.
    NotPending,
    AccountChanged,
    /// Another transaction held an item (the stock shard, most likely): nothing written.
    Contended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    Completed(Order),
    NotFound,
    NotPending(OrderStatus),
    /// A transaction (a cancellation) held the order: DynamoDB refused the write.
    Contended,
}

fn status_filter(status: Option<OrderStatus>) -> Option<Filter> {
    status.map(|status| Filter {
        expression: "#status = :status",
        names: vec![("#status", "status")],
        values: vec![(":status", s(status.as_str()))],
    })
}

/// Which orders an operator lists.
#[derive(Debug, Clone, Default)]
pub struct OrderSearch {
    pub status: Option<OrderStatus>,
    pub merchant_id: Option<UserId>,
    pub member_id: Option<UserId>,
}

/// Everything a redemption decides on, read in one strongly consistent `BatchGetItem`.
#[derive(Debug, Clone)]
pub struct RedemptionReads {
    /// The product with each of its stock shards.
    pub product: Option<ProductStock>,
    pub account: Option<AccountSnapshot>,
    /// `None` when the member no longer exists.
    pub member: Option<crate::domain::User>,
    /// The outcome already stored for the request's Idempotency-Key, unless expired.
    pub replay: Option<IdempotentOutcome>,
}

impl Store {
    /// The product with `sample` of its stock shards picked at random (see
    /// [`Store::sampled_product_keys`]), the member's account, the member, and the outcome of the
    /// Idempotency-Key if one is given: one round trip (a strongly consistent `BatchGetItem`).
    ///
    /// Not `TransactGetItems`: DynamoDB cancels a transactional read of an item that an ongoing
    /// transaction is writing ("Transaction conflict handling in DynamoDB"), which in a flash sale
    /// is most reads of the stock. A batch of consistent reads returns each item's last committed
    /// state instead; the redemption's write is conditioned on everything it relies on, so a read
    /// that is not one snapshot can cost a retry but never a wrong write.
    pub async fn redemption_reads(
        &self,
        product_id: &ProductId,
        member_id: &UserId,
        idempotency_key: Option<&str>,
        sample: usize,
        now: i64,
    ) -> Result<RedemptionReads, AppError> {
        let account_key = (user_pk(member_id), ACCOUNT_SK.to_string());
        let member_key = (user_pk(member_id), USER_PROFILE_SK.to_string());
        let mut others = vec![account_key.clone(), member_key.clone()];
        let idempotency_key =
            idempotency_key.map(|key| (idempotency_pk(member_id, key), IDEMPOTENCY_SK.to_string()));
        others.extend(idempotency_key.clone());
        let mut found = self
            .batch_get(&self.sampled_product_keys(product_id, sample, others))
            .await?;
        let account = found
            .remove(&account_key)
            .map(from_item::<super::users::AccountRecord>)
            .transpose()?
            .map(|a| a.snapshot());
        let member = found
            .remove(&member_key)
            .map(from_item::<super::users::UserRecord>)
            .transpose()?
            .map(crate::domain::User::from);
        let replay = idempotency_key
            .and_then(|key| found.remove(&key))
            .map(from_item::<IdempotencyRecord>)
            .transpose()?
            .and_then(|record| record.outcome(now));
        let product = self.product_sample_from(product_id, &mut found)?;
        Ok(RedemptionReads {
            product,
            account,
            member,
            replay,
        })
    }

    /// The redemption, as one `TransactWriteItems` (positions in [`redemption_item`]):
    /// 0. the product is checked — it exists, is active and still costs `unit_price` (the price the
    ///    member is charged) — without being written, so redemptions do not conflict on it;
    /// 1. stock shard `shard` loses `quantity` units, only if it has them;
    /// 2. the account takes `spend` (the SPEND the domain worked out on the account as read) — only
    ///    if it is unchanged since that read; 3. the order is put; 4. the SPEND ledger row is put;
    ///    5. the order number is claimed; 6. (optional) the Idempotency-Key is claimed.
    ///
    /// One attempt: on contention the caller chooses where to retry (another shard, or later).
    pub async fn place_order(
        &self,
        order: &Order,
        unit_price: Points,
        shard: usize,
        spend: &BalanceChange,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<PlaceOutcome, AppError> {
        let check_product = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(product_pk(&order.product_id)))
            .key(SK, s(PRODUCT_SK))
            .condition_expression(
                "attribute_exists(#pk) AND is_active = :true AND points_required = :price",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":price", n(unit_price.get()))
            .build()
            .map_err(AppError::internal)?;
        let take_stock = Update::builder()
            .table_name(&self.table)
            .key(PK, s(stock_shard_pk(&order.product_id, shard)))
            .key(SK, s(STOCK_SHARD_SK))
            .update_expression("SET stock = stock - :q, version = version + :one")
            .condition_expression("stock >= :q")
            .expression_attribute_values(":q", n(order.quantity))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![
            TransactWriteItem::builder()
                .condition_check(check_product)
                .build(),
            TransactWriteItem::builder().update(take_stock).build(),
            self.account_change(&order.member_id, spend)?,
            put_new(&self.table, to_item(&OrderRecord::from(order))?)?,
            self.ledger_put(spend)?,
            put_new(
                &self.table,
                to_item(&GuardRecord {
                    pk: order_number_pk(&order.order_number),
                    sk: ORDER_NUMBER_SK.into(),
                    entity: "OrderNumber".into(),
                    user_id: None,
                    order_id: Some(order.id.clone()),
                })?,
            )?,
        ];
        if let Some(claim) = idempotency {
            items.push(claim_put(
                &self.table,
                idempotency_pk(&order.member_id, &claim.key),
                IDEMPOTENCY_SK,
                claim,
                Some(&order.id),
            )?);
        }
        use redemption_item::*;
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(PlaceOutcome::Placed),
            TransactionAttempt::Contended(c) => Ok(PlaceOutcome::Contended {
                on_shard: c.contended_at(SHARD),
            }),
            // Read by position, most decisive first.
            TransactionAttempt::Refused(c) if c.condition_failed(IDEMPOTENCY_KEY) => {
                Ok(PlaceOutcome::IdempotencyKeyUsed)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(PRODUCT) => {
                Ok(PlaceOutcome::ProductRefused)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(SHARD) => {
                Ok(PlaceOutcome::ShardShort)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(ACCOUNT) => {
                Ok(PlaceOutcome::AccountChanged)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(ORDER_NUMBER) => {
                Ok(PlaceOutcome::OrderNumberTaken)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "redemption cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// The stored outcome of a member's Idempotency-Key, unless it has expired (test support: no
    /// request reads a key on its own; the redemption reads it in its one batch).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn idempotent_outcome(
        &self,
        member_id: &UserId,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotentOutcome>, AppError> {
        Ok(self
            .get_item::<IdempotencyRecord>(idempotency_pk(member_id, key), IDEMPOTENCY_SK)
            .await?
            .and_then(|r| r.outcome(now)))
    }

    pub async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>, AppError> {
        Ok(self
            .get_item::<OrderRecord>(order_pk(order_id), ORDER_SK)
            .await?
            .map(Order::from))
    }

    pub async fn list_member_orders(
        &self,
        member_id: &UserId,
        status: Option<OrderStatus>,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: member_orders_gsi(member_id),
            ascending: false,
            sort_prefix: None,
            filter: status_filter(status),
            scope: format!(
                "member-orders:{member_id}:{}",
                status.map_or("all", OrderStatus::as_str)
            ),
        };
        page_of::<OrderRecord, Order>(self.query_page(query, page).await?)
    }

    pub async fn list_merchant_orders(
        &self,
        merchant_id: &UserId,
        status: Option<OrderStatus>,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let query = ListQuery {
            index: Some(GSI2),
            partition_attribute: GSI2_PK,
            partition_value: merchant_orders_gsi(merchant_id),
            ascending: false,
            sort_prefix: None,
            filter: status_filter(status),
            scope: format!(
                "merchant-orders:{merchant_id}:{}",
                status.map_or("all", OrderStatus::as_str)
            ),
        };
        page_of::<OrderRecord, Order>(self.query_page(query, page).await?)
    }

    /// Every order, for operators: of one member (their index), of one merchant (theirs), of both,
    /// or of everyone (a bounded scan), optionally of one status.
    pub async fn search_orders(
        &self,
        search: &OrderSearch,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let status = search.status.map_or("all", OrderStatus::as_str);
        match (&search.member_id, &search.merchant_id) {
            (Some(member), merchant) => {
                let filter = match (search.status, merchant) {
                    (None, None) => None,
                    (Some(_), None) => status_filter(search.status),
                    (None, Some(merchant)) => Some(Filter {
                        expression: "#merchant = :merchant",
                        names: vec![("#merchant", "merchant_id")],
                        values: vec![(":merchant", s(merchant.as_str()))],
                    }),
                    (Some(wanted), Some(merchant)) => Some(Filter {
                        expression: "#merchant = :merchant AND #status = :status",
                        names: vec![("#merchant", "merchant_id"), ("#status", "status")],
                        values: vec![
                            (":merchant", s(merchant.as_str())),
                            (":status", s(wanted.as_str())),
                        ],
                    }),
                };
                let query = ListQuery {
                    index: Some(GSI1),
                    partition_attribute: GSI1_PK,
                    partition_value: member_orders_gsi(member),
                    ascending: false,
                    sort_prefix: None,
                    filter,
                    scope: format!(
                        "admin-orders:{member}:{}:{status}",
                        merchant.as_deref().unwrap_or("any")
                    ),
                };
                page_of::<OrderRecord, Order>(self.query_page(query, page).await?)
            }
            (None, Some(merchant)) => {
                self.list_merchant_orders(merchant, search.status, page)
                    .await
            }
            (None, None) => {
                let filter = match search.status {
                    None => Filter {
                        expression: "#entity = :order",
                        names: vec![("#entity", "entity")],
                        values: vec![(":order", s("Order"))],
                    },
                    Some(wanted) => Filter {
                        expression: "#entity = :order AND #status = :status",
                        names: vec![("#entity", "entity"), ("#status", "status")],
                        values: vec![(":order", s("Order")), (":status", s(wanted.as_str()))],
                    },
                };
                let raw = self
                    .scan_page(filter, &format!("all-orders:{status}"), page)
                    .await?;
                page_of::<OrderRecord, Order>(raw)
            }
        }
    }

    /// Cancels a pending order with its refund, as one transaction:
    /// 0. the order pending → cancelled (only if still pending); 1. the stock comes back;
    /// 2. the account takes `refund` (the REFUND the domain worked out on the account as read), only
    ///    if unchanged since that read; 3. the REFUND row.
    pub async fn cancel_order(
        &self,
        order: &Order,
        refund: &BalanceChange,
        now: Timestamp,
    ) -> Result<CancelOutcome, AppError> {
        let cancel = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(&order.id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :cancelled, updated_at = :now")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":now", timestamp(now))
            .build()
            .map_err(AppError::internal)?;
        // The units go back to a random shard among those known to exist (a product's shard count
        // only grows, so any index below a count once seen is there).
        let shards = self.known_shards(&order.product_id).unwrap_or(1).max(1);
        let shard = rand::random::<usize>() % shards as usize;
        let restock = Update::builder()
            .table_name(&self.table)
            .key(PK, s(stock_shard_pk(&order.product_id, shard)))
            .key(SK, s(STOCK_SHARD_SK))
            .update_expression("SET stock = stock + :q, version = version + :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":q", n(order.quantity))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(cancel).build(),
            TransactWriteItem::builder().update(restock).build(),
            self.account_change(&order.member_id, refund)?,
            self.ledger_put(refund)?,
        ];
        // One attempt: on contention the caller reads again and the units go to another shard.
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(CancelOutcome::Cancelled),
            TransactionAttempt::Contended(_) => Ok(CancelOutcome::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(cancellation_item::ORDER) => {
                Ok(CancelOutcome::NotPending)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(cancellation_item::ACCOUNT) => {
                Ok(CancelOutcome::AccountChanged)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "cancellation cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// pending → completed, by the order's merchant only.
    pub async fn complete_order(
        &self,
        order_id: &OrderId,
        merchant_id: &UserId,
        now: Timestamp,
    ) -> Result<CompleteOutcome, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(order_pk(order_id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :completed, updated_at = :now")
            .condition_expression(
                "attribute_exists(#pk) AND merchant_id = :merchant AND #status = :pending",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(OrderStatus::Completed.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":now", timestamp(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| AppError::internal("update returned no attributes"))?;
                Ok(CompleteOutcome::Completed(
                    from_item::<OrderRecord>(item)?.into(),
                ))
            }
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let old: Option<Order> = failed
                    .item
                    .map(from_item::<OrderRecord>)
                    .transpose()?
                    .map(Order::from);
                match old {
                    Some(order) if order.belongs_to(OrderParty::Merchant(merchant_id)) => {
                        Ok(CompleteOutcome::NotPending(order.status))
                    }
                    _ => Ok(CompleteOutcome::NotFound),
                }
            }
            // "A PutItem, UpdateItem, or DeleteItem request for an item conflicts with an ongoing
            // TransactWriteItems request that includes the same item" (DynamoDB developer guide).
            Err(UpdateItemError::TransactionConflictException(_)) => Ok(CompleteOutcome::Contended),
            Err(other) => Err(super::dynamo_failure("complete order", other)),
        }
    }
}

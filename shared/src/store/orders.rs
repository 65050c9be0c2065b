//! Orders: the record, and the redemption — its one read and its one transaction. What happens to
//! an order after it is placed is in `order_lifecycle.rs`.

use crate::domain::{
    BalanceChange, Fulfilment, Order, OrderId, OrderStatus, Points, ProductId, Shipment,
    ShippingAddress, Timestamp, UserId,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::guards::GuardRecord;
use super::idempotency::{claim_put, IdempotencyClaim, IdempotentOutcome};
use super::keys::*;
use super::points::AccountSnapshot;
use super::products::ProductStock;
use super::table::{PK, SK};
use super::{from_item, n, put_new, s, to_item, Store, TransactionAttempt};
use crate::error::AppError;

#[derive(Serialize, Deserialize)]
pub(super) struct OrderRecord {
    pk: String,
    sk: String,
    entity: String,
    // An index copy lacks the other index's keys (indexes project only `table::INDEX_PROJECTED_ATTRIBUTES`
    // besides their own keys); a record read from one is only turned into a value, never written back.
    #[serde(default)]
    gsi1pk: String,
    #[serde(default)]
    gsi1sk: String,
    #[serde(default)]
    gsi2pk: String,
    #[serde(default)]
    gsi2sk: String,
    id: OrderId,
    order_number: String,
    member_id: UserId,
    merchant_id: UserId,
    product_id: ProductId,
    product_name: String,
    quantity: i64,
    points_cost: Points,
    #[serde(default)]
    promotional_points: i64,
    status: OrderStatus,
    /// Absent on orders placed before fulfilment existed: they are pickup (without a code).
    #[serde(default)]
    fulfilment: Fulfilment,
    /// Withheld from the indexes (`table::INDEX_WITHHELD_ATTRIBUTES`): only a read of the order
    /// itself has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pickup_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pickup_expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shipping: Option<ShippingAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shipped_at: Option<Timestamp>,
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
            promotional_points: r.promotional_points,
            status: r.status,
            fulfilment: r.fulfilment,
            pickup_code: r.pickup_code,
            pickup_expires_at: r.pickup_expires_at,
            shipping: r.shipping,
            shipment: match (r.carrier, r.tracking_number, r.shipped_at) {
                (Some(carrier), Some(tracking_number), Some(shipped_at)) => Some(Shipment {
                    carrier,
                    tracking_number,
                    shipped_at,
                }),
                _ => None,
            },
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
            gsi2pk: merchant_orders_gsi(&o.merchant_id, &o.id),
            gsi2sk: o.id.to_string(),
            id: o.id.clone(),
            order_number: o.order_number.clone(),
            member_id: o.member_id.clone(),
            merchant_id: o.merchant_id.clone(),
            product_id: o.product_id.clone(),
            product_name: o.product_name.clone(),
            quantity: o.quantity,
            points_cost: o.points_cost,
            promotional_points: o.promotional_points,
            status: o.status,
            fulfilment: o.fulfilment,
            pickup_code: o.pickup_code.clone(),
            pickup_expires_at: o.pickup_expires_at,
            shipping: o.shipping.clone(),
            carrier: o.shipment.as_ref().map(|s| s.carrier.clone()),
            tracking_number: o.shipment.as_ref().map(|s| s.tracking_number.clone()),
            shipped_at: o.shipment.as_ref().map(|s| s.shipped_at),
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
    /// The random pickup code collided.
    PickupCodeTaken,
    /// Another transaction held an item (or DynamoDB throttled): nothing written. `on_shard` says
    /// whether the chosen shard was the contended item, so another shard may do.
    Contended {
        on_shard: bool,
    },
}

/// The positions of the redemption transaction's items, for reading its cancellation reasons. A
/// pickup order's code guard comes next, then the Idempotency-Key's claim (each only when there is
/// one, so their positions are worked out per transaction).
mod redemption_item {
    pub const PRODUCT: usize = 0;
    pub const SHARD: usize = 1;
    pub const ACCOUNT: usize = 2;
    pub const ORDER_NUMBER: usize = 5;
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
        let account = super::users::take_account(&mut found, &account_key)?;
        let member = found
            .remove(&member_key)
            .map(from_item::<super::users::UserRecord>)
            .transpose()?
            .map(crate::domain::User::from);
        let replay = super::idempotency::take_outcome(&mut found, idempotency_key, now)?;
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
    ///    5. the order number is claimed; then (pickup orders) the pickup code is claimed by its
    ///    guard, which also queues the order for expiry; then (optional) the Idempotency-Key is
    ///    claimed. The product check includes the fulfilment the order was decided on.
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
            .condition_expression(format!(
                "attribute_exists(#pk) AND is_active = :true AND points_required = :price AND {}",
                match order.fulfilment {
                    // Products listed before fulfilment existed are pickup.
                    Fulfilment::Pickup => "(attribute_not_exists(fulfilment) OR fulfilment = :f)",
                    Fulfilment::Delivery => "fulfilment = :f",
                }
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":price", n(unit_price.get()))
            .expression_attribute_values(":f", s(order.fulfilment.as_str()))
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
        let pickup_code_at = match self.pickup_code_guard(order)? {
            Some(guard) => {
                items.push(guard);
                Some(items.len() - 1)
            }
            None => None,
        };
        let idempotency_key_at = items.len();
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
            TransactionAttempt::Refused(c)
                if idempotency.is_some() && c.condition_failed(idempotency_key_at) =>
            {
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
            TransactionAttempt::Refused(c)
                if pickup_code_at.is_some_and(|at| c.condition_failed(at)) =>
            {
                Ok(PlaceOutcome::PickupCodeTaken)
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
            .get_item::<super::idempotency::IdempotencyRecord>(
                idempotency_pk(member_id, key),
                IDEMPOTENCY_SK,
            )
            .await?
            .and_then(|r| r.outcome(now)))
    }

    pub async fn get_order(&self, order_id: &OrderId) -> Result<Option<Order>, AppError> {
        Ok(self
            .get_item::<OrderRecord>(order_pk(order_id), ORDER_SK)
            .await?
            .map(Order::from))
    }
}

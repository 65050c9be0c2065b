//! Orders: the redemption transaction, cancellation with refund, completion, and the lists.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::points::AccountSnapshot;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, PK, SK};
use super::{from_item, n, page_of, put_new, s, timestamp, to_item, Filter, ListQuery, Store};
use crate::domain::{Order, OrderParty, OrderStatus, PointTransaction, Timestamp, TransactionType};
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
    id: String,
    order_number: String,
    member_id: String,
    merchant_id: String,
    product_id: String,
    product_name: String,
    quantity: i64,
    points_cost: i64,
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
            gsi1sk: o.id.clone(),
            gsi2pk: merchant_orders_gsi(&o.merchant_id),
            gsi2sk: o.id.clone(),
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

#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    pk: String,
    sk: String,
    entity: String,
    body_hash: String,
    order_id: String,
    /// The first response's body, replayed verbatim.
    response: String,
    expires_at: i64,
}

/// An `Idempotency-Key` claimed by a redemption, written in the same transaction as the order.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub body_hash: String,
    pub response: String,
    pub expires_at: i64,
}

/// A stored idempotency outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentOutcome {
    pub body_hash: String,
    pub order_id: String,
    pub response: String,
}

/// One attempt at the redemption transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Placed,
    /// Another request with the same Idempotency-Key committed first.
    IdempotencyKeyUsed,
    /// The product's condition failed: gone, inactive, short of stock, or repriced since it was read.
    ProductRefused,
    /// The account changed since it was read (or cannot cover the cost).
    AccountChanged,
    /// The random order number collided.
    OrderNumberTaken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled,
    /// Completed or cancelled already (by anyone): nothing refunded.
    NotPending,
    AccountChanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    Completed(Order),
    NotFound,
    NotPending(OrderStatus),
}

fn status_filter(status: Option<OrderStatus>) -> Option<Filter> {
    status.map(|status| Filter {
        expression: "#status = :status",
        names: vec![("#status", "status")],
        values: vec![(":status", s(status.as_str()))],
    })
}

/// Everything a redemption decides on, read in one strongly consistent `TransactGetItems`.
#[derive(Debug, Clone)]
pub struct RedemptionReads {
    pub product: Option<crate::domain::Product>,
    pub account: Option<AccountSnapshot>,
    /// `None` when the member no longer exists.
    pub member: Option<crate::domain::User>,
}

impl Store {
    /// The product, the member's account and the member, in one round trip (one consistent,
    /// serializable `TransactGetItems`) instead of three.
    pub async fn redemption_reads(
        &self,
        product_id: &str,
        member_id: &str,
    ) -> Result<RedemptionReads, AppError> {
        use aws_sdk_dynamodb::types::{Get, TransactGetItem};
        let get = |pk: String, sk: &str| -> Result<TransactGetItem, AppError> {
            Ok(TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(&self.table)
                        .key(PK, s(pk))
                        .key(SK, s(sk))
                        .build()
                        .map_err(AppError::internal)?,
                )
                .build())
        };
        let output = self
            .client
            .transact_get_items()
            .transact_items(get(product_pk(product_id), PRODUCT_SK)?)
            .transact_items(get(user_pk(member_id), ACCOUNT_SK)?)
            .transact_items(get(user_pk(member_id), USER_PROFILE_SK)?)
            .send()
            .await
            .map_err(|err| {
                AppError::internal(format!(
                    "transact_get_items: {:?}",
                    err.into_service_error()
                ))
            })?;
        // Responses come back in the order of the requests; a missing item has no `item`.
        let mut items = output
            .responses
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.item);
        let mut next = || items.next().flatten();
        let product = next()
            .map(from_item::<super::products::ProductRecord>)
            .transpose()?
            .map(crate::domain::Product::from);
        let account = next()
            .map(from_item::<super::users::AccountRecord>)
            .transpose()?
            .map(|a| AccountSnapshot {
                balance: a.balance,
                total_earned: a.total_earned,
                total_spent: a.total_spent,
                version: a.version,
            });
        let member = next()
            .map(from_item::<super::users::UserRecord>)
            .transpose()?
            .map(crate::domain::User::from);
        Ok(RedemptionReads {
            product,
            account,
            member,
        })
    }

    /// The redemption, as one `TransactWriteItems`:
    /// 0. the product loses `quantity` units — only if it exists, is active, has the stock and still
    ///    costs `unit_price` (the price the member is charged);
    /// 1. the account is debited — only if it is unchanged since `account` was read and covers the cost;
    /// 2. the order is put; 3. the SPEND ledger row is put; 4. the order number is claimed;
    /// 5. (optional) the Idempotency-Key is claimed.
    pub async fn place_order(
        &self,
        order: &Order,
        unit_price: i64,
        account: AccountSnapshot,
        idempotency: Option<&IdempotencyClaim>,
        now: Timestamp,
    ) -> Result<PlaceOutcome, AppError> {
        let take_stock = Update::builder()
            .table_name(&self.table)
            .key(PK, s(product_pk(&order.product_id)))
            .key(SK, s(PRODUCT_SK))
            .update_expression("SET stock = stock - :q, version = version + :one, updated_at = :now")
            .condition_expression(
                "attribute_exists(#pk) AND is_active = :true AND stock >= :q AND points_required = :price",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":q", n(order.quantity))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":price", n(unit_price))
            .build()
            .map_err(AppError::internal)?;
        let spend = PointTransaction {
            id: uuid::Uuid::now_v7().to_string(),
            member_id: order.member_id.clone(),
            transaction_type: TransactionType::Spend,
            amount: -order.points_cost,
            balance_after: account.balance - order.points_cost,
            payment_id: None,
            order_id: Some(order.id.clone()),
            created_at: now,
        };
        let mut items = vec![
            TransactWriteItem::builder().update(take_stock).build(),
            self.account_change(
                &order.member_id,
                account,
                -order.points_cost,
                0,
                order.points_cost,
            )?,
            put_new(&self.table, to_item(&OrderRecord::from(order))?)?,
            self.ledger_put(&spend, account)?,
            put_new(
                &self.table,
                to_item(&GuardRecord {
                    pk: order_number_pk(&order.order_number),
                    sk: ORDER_NUMBER_SK.into(),
                    entity: "OrderNumber".into(),
                    order_id: order.id.clone(),
                })?,
            )?,
        ];
        if let Some(claim) = idempotency {
            items.push(put_new(
                &self.table,
                to_item(&IdempotencyRecord {
                    pk: idempotency_pk(&order.member_id, &claim.key),
                    sk: IDEMPOTENCY_SK.into(),
                    entity: "IdempotencyKey".into(),
                    body_hash: claim.body_hash.clone(),
                    order_id: order.id.clone(),
                    response: claim.response.clone(),
                    expires_at: claim.expires_at,
                })?,
            )?);
        }
        if spend.balance_after < 0 {
            return Ok(PlaceOutcome::AccountChanged);
        }
        match self.transact(items).await? {
            Ok(()) => Ok(PlaceOutcome::Placed),
            // Read by position, most decisive first.
            Err(c) if c.condition_failed(5) => Ok(PlaceOutcome::IdempotencyKeyUsed),
            Err(c) if c.condition_failed(0) => Ok(PlaceOutcome::ProductRefused),
            Err(c) if c.condition_failed(1) => Ok(PlaceOutcome::AccountChanged),
            Err(c) if c.condition_failed(4) => Ok(PlaceOutcome::OrderNumberTaken),
            Err(c) => Err(AppError::internal(format!(
                "redemption cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// The stored outcome of a member's Idempotency-Key, unless it has expired.
    pub async fn idempotent_outcome(
        &self,
        member_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotentOutcome>, AppError> {
        Ok(self
            .get_item::<IdempotencyRecord>(idempotency_pk(member_id, key), IDEMPOTENCY_SK)
            .await?
            .filter(|r| r.expires_at > now)
            .map(|r| IdempotentOutcome {
                body_hash: r.body_hash,
                order_id: r.order_id,
                response: r.response,
            }))
    }

    pub async fn get_order(&self, order_id: &str) -> Result<Option<Order>, AppError> {
        Ok(self
            .get_item::<OrderRecord>(order_pk(order_id), ORDER_SK)
            .await?
            .map(Order::from))
    }

    pub async fn list_member_orders(
        &self,
        member_id: &str,
        status: Option<OrderStatus>,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: member_orders_gsi(member_id),
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
        merchant_id: &str,
        status: Option<OrderStatus>,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let query = ListQuery {
            index: Some(GSI2),
            partition_attribute: GSI2_PK,
            partition_value: merchant_orders_gsi(merchant_id),
            sort_prefix: None,
            filter: status_filter(status),
            scope: format!(
                "merchant-orders:{merchant_id}:{}",
                status.map_or("all", OrderStatus::as_str)
            ),
        };
        page_of::<OrderRecord, Order>(self.query_page(query, page).await?)
    }

    /// Cancels a pending order with its refund, as one transaction:
    /// 0. the order pending → cancelled (only if still pending); 1. the stock comes back;
    /// 2. the account is credited (only if unchanged since `account` was read); 3. the REFUND row.
    pub async fn cancel_order(
        &self,
        order: &Order,
        account: AccountSnapshot,
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
        let restock = Update::builder()
            .table_name(&self.table)
            .key(PK, s(product_pk(&order.product_id)))
            .key(SK, s(PRODUCT_SK))
            .update_expression(
                "SET stock = stock + :q, version = version + :one, updated_at = :now",
            )
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":q", n(order.quantity))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .build()
            .map_err(AppError::internal)?;
        let refund = PointTransaction {
            id: uuid::Uuid::now_v7().to_string(),
            member_id: order.member_id.clone(),
            transaction_type: TransactionType::Refund,
            amount: order.points_cost,
            balance_after: account.balance + order.points_cost,
            payment_id: None,
            order_id: Some(order.id.clone()),
            created_at: now,
        };
        let items = vec![
            TransactWriteItem::builder().update(cancel).build(),
            TransactWriteItem::builder().update(restock).build(),
            // A refund undoes a spend: total_spent goes back down.
            self.account_change(
                &order.member_id,
                account,
                order.points_cost,
                0,
                -order.points_cost,
            )?,
            self.ledger_put(&refund, account)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(CancelOutcome::Cancelled),
            Err(c) if c.condition_failed(0) => Ok(CancelOutcome::NotPending),
            Err(c) if c.condition_failed(2) => Ok(CancelOutcome::AccountChanged),
            Err(c) => Err(AppError::internal(format!(
                "cancellation cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// pending → completed, by the order's merchant only.
    pub async fn complete_order(
        &self,
        order_id: &str,
        merchant_id: &str,
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
            Err(other) => Err(AppError::internal(format!("complete order: {other:?}"))),
        }
    }
}

#[derive(Serialize)]
struct GuardRecord {
    pk: String,
    sk: String,
    entity: String,
    order_id: String,
}

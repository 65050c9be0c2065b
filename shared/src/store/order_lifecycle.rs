//! An order after it is placed: read by its parties (lists of a member's, a merchant's, or every
//! order for operators), cancelled with its refund and restock in one transaction, or completed.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::keys::*;
use super::orders::OrderRecord;
use super::spread_lists::SpreadQuery;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, GSI2_SK, PK, SK};
use super::{n, page_of, s, timestamp, Filter, ListQuery, Store, TransactionAttempt};
use crate::domain::settlement::SettlementLine;

/// What an order's completion writes besides the order: its settlement line, and in
/// `at_redemption` its e-invoice (an outbox item the invoice job issues later).
#[derive(Debug, Clone)]
pub struct SaleWrites {
    pub line: SettlementLine,
    pub invoice: Option<crate::domain::e_invoice::Invoice>,
}
use crate::domain::{
    BalanceChange, Fulfilment, Order, OrderId, OrderParty, OrderStatus, Timestamp, UserId,
};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

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
    Completed(Box<Order>),
    NotFound,
    NotPending(OrderStatus),
    /// A pending pickup order with a code: only its code completes it.
    PickupCodeRequired,
    /// A pending delivery: it completes when its member receives it, after it ships.
    NotShipped,
    /// A transaction (a cancellation) held the order: DynamoDB refused the write.
    Contended,
}

/// A merchant's orders of one status and/or fulfilment (orders placed before fulfilment existed
/// carry none: they are pickups).
fn merchant_orders_filter(
    status: Option<OrderStatus>,
    fulfilment: Option<Fulfilment>,
) -> Option<Filter> {
    let Some(fulfilment) = fulfilment else {
        return status_filter(status);
    };
    let expression = match (status, fulfilment) {
        (None, Fulfilment::Pickup) => "attribute_not_exists(fulfilment) OR fulfilment = :f",
        (None, Fulfilment::Delivery) => "fulfilment = :f",
        (Some(_), Fulfilment::Pickup) => {
            "#status = :status AND (attribute_not_exists(fulfilment) OR fulfilment = :f)"
        }
        (Some(_), Fulfilment::Delivery) => "#status = :status AND fulfilment = :f",
    };
    let mut filter = Filter {
        expression,
        names: vec![],
        values: vec![(":f", s(fulfilment.as_str()))],
    };
    if let Some(status) = status {
        filter.names.push(("#status", "status"));
        filter.values.push((":status", s(status.as_str())));
    }
    Some(filter)
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

impl Store {
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

    /// Orders on a merchant's products, newest first, optionally of one status and fulfilment.
    pub async fn list_merchant_orders(
        &self,
        merchant_id: &UserId,
        status: Option<OrderStatus>,
        fulfilment: Option<Fulfilment>,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        let query = SpreadQuery {
            index: GSI2,
            partition_attribute: GSI2_PK,
            sort_attribute: GSI2_SK,
            partitions: merchant_orders_partitions(merchant_id),
            filter: merchant_orders_filter(status, fulfilment),
            scope: format!(
                "merchant-orders:{merchant_id}:{}:{}",
                status.map_or("all", OrderStatus::as_str),
                fulfilment.map_or("all", Fulfilment::as_str)
            ),
        };
        page_of::<OrderRecord, Order>(self.query_spread_page(query, page).await?)
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
                self.list_merchant_orders(merchant, search.status, None, page)
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
    ///
    /// `from` are the states the canceller may cancel from (a member: pending; a merchant: pending
    /// or shipped). A delivery's address is queued for redaction at `redact_at`, and its
    /// auto-completion taken off its queue.
    pub async fn cancel_order(
        &self,
        order: &Order,
        refund: &BalanceChange,
        now: Timestamp,
        from: &[OrderStatus],
        redact_at: Timestamp,
    ) -> Result<CancelOutcome, AppError> {
        let mut cancel = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(&order.id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :cancelled, updated_at = :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
            .expression_attribute_values(":now", timestamp(now));
        let mut states = Vec::new();
        for (i, status) in from.iter().enumerate() {
            let placeholder = format!(":from{i}");
            cancel = cancel.expression_attribute_values(&placeholder, s(status.as_str()));
            states.push(placeholder);
        }
        let cancel = cancel
            .condition_expression(format!("#status IN ({})", states.join(", ")))
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
        let mut items = vec![
            TransactWriteItem::builder().update(cancel).build(),
            TransactWriteItem::builder().update(restock).build(),
            self.account_change(&order.member_id, refund)?,
            self.ledger_put(refund)?,
        ];
        if order.shipping.is_some() {
            items.push(self.due_delete(super::due::DueWork::DeliveryCompletes, &order.id)?);
            items.push(self.due_put(super::due::DueWork::AddressRedacted, &order.id, redact_at)?);
        }
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

    /// pending → completed, by the order's merchant only: with the order's pickup code when it has
    /// one (`code`), and without one only when it has none (deliveries; pickups placed before
    /// codes). Both are in the write's condition, so no read decides it. The order's settlement
    /// line and, in `at_redemption`, its e-invoice (`sale`, worked out on the order as read) are
    /// written in the same transaction, the line only if the order has none yet.
    pub async fn complete_order(
        &self,
        order_id: &OrderId,
        merchant_id: &UserId,
        code: Option<&str>,
        now: Timestamp,
        sale: &(dyn Fn(&Order) -> SaleWrites + Sync),
    ) -> Result<CompleteOutcome, AppError> {
        let Some(order) = self.get_order(order_id).await? else {
            return Ok(CompleteOutcome::NotFound);
        };
        if !order.belongs_to(OrderParty::Merchant(merchant_id)) {
            return Ok(CompleteOutcome::NotFound);
        }
        let (code_condition, code_value) = match code {
            Some(code) => ("pickup_code = :code", Some(code)),
            // Directly: only a pickup placed before codes existed (deliveries complete on receipt).
            None => (
                "attribute_not_exists(pickup_code) \
                 AND (attribute_not_exists(fulfilment) OR fulfilment = :pickup)",
                None,
            ),
        };
        let complete = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(order_id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :completed, updated_at = :now")
            .condition_expression(format!(
                "attribute_exists(#pk) AND merchant_id = :merchant AND #status = :pending \
                 AND {code_condition}"
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(OrderStatus::Completed.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":now", timestamp(now));
        let complete = match code_value {
            Some(code) => complete.expression_attribute_values(":code", s(code)),
            None => complete.expression_attribute_values(":pickup", s(Fulfilment::Pickup.as_str())),
        }
        .build()
        .map_err(AppError::internal)?;
        let sale = sale(&order);
        let mut items = vec![
            TransactWriteItem::builder().update(complete).build(),
            self.line_put(&sale.line)?,
        ];
        if let Some(invoice) = &sale.invoice {
            items.push(self.invoice_put(invoice)?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => {
                let mut completed = order;
                completed.status = OrderStatus::Completed;
                completed.updated_at = now;
                Ok(CompleteOutcome::Completed(Box::new(completed)))
            }
            // "A PutItem, UpdateItem, or DeleteItem request for an item conflicts with an ongoing
            // TransactWriteItems request that includes the same item" (DynamoDB developer guide).
            TransactionAttempt::Contended(_) => Ok(CompleteOutcome::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(0) => {
                // Why: the order as it is now.
                let Some(order) = self.get_order(order_id).await? else {
                    return Ok(CompleteOutcome::NotFound);
                };
                Ok(match order.status {
                    OrderStatus::Pending
                        if code.is_none() && order.fulfilment == Fulfilment::Delivery =>
                    {
                        CompleteOutcome::NotShipped
                    }
                    OrderStatus::Pending if code.is_none() => CompleteOutcome::PickupCodeRequired,
                    // A pending order whose code is not `code`: the caller names it by the code's
                    // guard, so this is another order's code.
                    OrderStatus::Pending => CompleteOutcome::NotFound,
                    status => CompleteOutcome::NotPending(status),
                })
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "completion cancelled unexpectedly (a settlement line exists?): {:?}",
                c.reasons
            ))),
        }
    }
}

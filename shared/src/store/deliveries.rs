//! A delivery's life after it is placed: shipped by its merchant, completed by its member's
//! confirmation or by itself, and its address redacted once kept long enough. Each step is one
//! transaction that also moves the order through the queues of work due (`due.rs`).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::due::DueWork;
use super::keys::*;
use super::table::{PK, SK};
use super::{s, timestamp, Store, TransactionAttempt};
use crate::domain::shipping::ShippingAddress;
use crate::domain::{Fulfilment, Order, OrderId, OrderStatus, Shipment, Timestamp, UserId};
use crate::error::AppError;

/// One attempt at a delivery's step. On `Refused` the caller reads the order to say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStep {
    Done,
    /// The order's condition failed: not the party's, not in the state the step needs.
    Refused,
    Contended,
}

/// Who completes a shipped delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt<'a> {
    /// Its member confirms receipt.
    Confirmed(&'a UserId),
    /// The scheduled job, once the auto-completion time has passed.
    AutoCompleted,
}

fn step(attempt: TransactionAttempt) -> Result<DeliveryStep, AppError> {
    Ok(match attempt {
        TransactionAttempt::Committed => DeliveryStep::Done,
        TransactionAttempt::Contended(_) => DeliveryStep::Contended,
        TransactionAttempt::Refused(c) if c.condition_failed(0) => DeliveryStep::Refused,
        TransactionAttempt::Refused(c) => {
            return Err(AppError::internal(format!(
                "delivery step refused: {:?}",
                c.reasons
            )))
        }
    })
}

impl Store {
    /// pending → shipped, by the order's merchant, for a delivery only; queues its auto-completion
    /// at `completes_at`.
    pub async fn ship_order(
        &self,
        order_id: &OrderId,
        merchant_id: &UserId,
        shipment: &Shipment,
        completes_at: Timestamp,
    ) -> Result<DeliveryStep, AppError> {
        let ship = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(order_id)))
            .key(SK, s(ORDER_SK))
            .update_expression(
                "SET #status = :shipped, carrier = :carrier, tracking_number = :tracking, \
                 shipped_at = :now, updated_at = :now",
            )
            .condition_expression(
                "attribute_exists(#pk) AND merchant_id = :merchant AND #status = :pending \
                 AND fulfilment = :delivery",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":shipped", s(OrderStatus::Shipped.as_str()))
            .expression_attribute_values(":pending", s(OrderStatus::Pending.as_str()))
            .expression_attribute_values(":delivery", s(Fulfilment::Delivery.as_str()))
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":carrier", s(shipment.carrier.clone()))
            .expression_attribute_values(":tracking", s(shipment.tracking_number.clone()))
            .expression_attribute_values(":now", timestamp(shipment.shipped_at))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(ship).build(),
            self.due_put(DueWork::DeliveryCompletes, order_id, completes_at)?,
        ];
        step(self.transact_once(items).await?)
    }

    /// shipped → completed, by its member or by the job once `completes_by` (the order's
    /// auto-completion time) has passed; queues the address's redaction at `redact_at`.
    ///
    /// The order's settlement line (only if it has none yet) and e-invoice (`at_redemption`) ride in
    /// the same transaction.
    pub async fn complete_delivery(
        &self,
        order: &Order,
        receipt: Receipt<'_>,
        now: Timestamp,
        redact_at: Timestamp,
        sale: &super::order_lifecycle::SaleWrites,
    ) -> Result<DeliveryStep, AppError> {
        let mut complete = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(&order.id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :completed, updated_at = :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(OrderStatus::Completed.as_str()))
            .expression_attribute_values(":shipped", s(OrderStatus::Shipped.as_str()))
            .expression_attribute_values(":now", timestamp(now));
        complete = match receipt {
            Receipt::Confirmed(member) => complete
                .condition_expression(
                    "attribute_exists(#pk) AND member_id = :member AND #status = :shipped",
                )
                .expression_attribute_values(":member", s(member)),
            Receipt::AutoCompleted => {
                complete.condition_expression("attribute_exists(#pk) AND #status = :shipped")
            }
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .update(complete.build().map_err(AppError::internal)?)
                .build(),
            self.due_delete(DueWork::DeliveryCompletes, &order.id)?,
            self.due_put(DueWork::AddressRedacted, &order.id, redact_at)?,
            self.line_put(&sale.line)?,
        ];
        if let Some(invoice) = &sale.invoice {
            items.push(self.invoice_put(invoice)?);
        }
        step(self.transact_once(items).await?)
    }

    /// Replaces an ended order's address by "redacted" and takes it off the redaction queue.
    pub async fn redact_address(&self, order_id: &OrderId) -> Result<DeliveryStep, AppError> {
        let redacted =
            serde_dynamo::to_attribute_value::<_, AttributeValue>(ShippingAddress::redacted())
                .map_err(AppError::internal)?;
        let redact = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(order_id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET shipping = :redacted")
            .condition_expression(
                "attribute_exists(#pk) AND attribute_exists(shipping) \
                 AND (#status = :completed OR #status = :cancelled)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":redacted", redacted)
            .expression_attribute_values(":completed", s(OrderStatus::Completed.as_str()))
            .expression_attribute_values(":cancelled", s(OrderStatus::Cancelled.as_str()))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(redact).build(),
            self.due_delete(DueWork::AddressRedacted, order_id)?,
        ];
        step(self.transact_once(items).await?)
    }

    /// Takes work off its queue on its own (the order it was queued for no longer needs it).
    pub async fn drop_due(&self, work: DueWork, order_id: &OrderId) -> Result<(), AppError> {
        match self
            .transact_once(vec![self.due_delete(work, order_id)?])
            .await?
        {
            TransactionAttempt::Committed | TransactionAttempt::Contended(_) => Ok(()),
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "dropping due work refused: {:?}",
                c.reasons
            ))),
        }
    }
}

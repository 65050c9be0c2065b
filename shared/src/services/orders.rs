//! The order lifecycle after a redemption (see [`super::redemption`]): reading orders, cancelling
//! and completing them.

use super::retry::RetryBudget;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::idempotency::{
    check_idempotency_key, invalid_idempotency_key, IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_TTL_SECS,
};
pub use super::redemption::{RedeemRequest, Redemption};
use crate::domain::{
    Fulfilment, Movement, Order, OrderId, OrderParty, OrderStatus, ShippingAddress, UserId,
};
use crate::error::{not_found, AppError};
use crate::pagination::{Page, PageRequest};
use crate::store::{CancelOutcome, CompleteOutcome, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: String,
    pub order_number: String,
    pub product_id: String,
    pub product_name: String,
    pub merchant_id: String,
    pub member_id: String,
    pub quantity: i64,
    pub points_cost: i64,
    pub status: OrderStatus,
    /// `pickup` (completed by the code its member shows at the counter) or `delivery`.
    pub fulfilment: Fulfilment,
    /// Pickup orders, to their member only: the code to show at the counter (also drawn as a QR
    /// code at `pickup.svg`). Never in lists, nor to the merchant or operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
    /// Pickup orders: not collected by then, the order is cancelled and its points refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Deliveries: where it goes (to its member, its merchant and operators only); "redacted" in
    /// every field once kept long enough after the order ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingAddress>,
    /// Once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl OrderView {
    /// The order as its member sees it: with the pickup code.
    pub fn for_member(order: Order) -> Self {
        let code = order.pickup_code.clone();
        OrderView {
            pickup_code: code,
            ..OrderView::from(order)
        }
    }
}

impl From<Order> for OrderView {
    /// The order without its pickup code (merchants, operators, every list).
    fn from(o: Order) -> Self {
        OrderView {
            id: o.id.into(),
            order_number: o.order_number,
            product_id: o.product_id.into(),
            product_name: o.product_name,
            merchant_id: o.merchant_id.into(),
            member_id: o.member_id.into(),
            quantity: o.quantity,
            points_cost: o.points_cost.get(),
            status: o.status,
            fulfilment: o.fulfilment,
            pickup_code: None,
            pickup_expires_at: o.pickup_expires_at,
            shipping: o.shipping,
            carrier: o.shipment.as_ref().map(|s| s.carrier.clone()),
            tracking_number: o.shipment.as_ref().map(|s| s.tracking_number.clone()),
            shipped_at: o.shipment.map(|s| s.shipped_at),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

pub struct OrderService<'a> {
    pub store: &'a Store,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
    pub fulfilment: &'a crate::config::FulfilmentConfig,
    /// The line a completed order writes.
    pub settlements: super::settlements::SettlementService<'a>,
}

impl OrderService<'_> {
    pub async fn order(
        &self,
        party: OrderParty<'_>,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        let order = self.owned_order(party, order_id).await?;
        Ok(match party {
            OrderParty::Member(_) => OrderView::for_member(order),
            OrderParty::Merchant(_) => order.into(),
        })
    }

    /// A member's pending pickup order's code, to draw as a QR code. A delivery, or an order that
    /// is no longer pending, has none to show (404 `pickup_code_not_found`).
    pub async fn pickup_code(
        &self,
        member_id: &UserId,
        order_id: &OrderId,
    ) -> Result<String, AppError> {
        let order = self
            .owned_order(OrderParty::Member(member_id), order_id)
            .await?;
        match order.pickup_code {
            Some(code) if order.status == OrderStatus::Pending => Ok(code),
            _ => Err(AppError::not_found(
                "pickup_code_not_found",
                "this order has no pickup code to show: it is a delivery, or no longer pending",
            )),
        }
    }

    async fn owned_order(
        &self,
        party: OrderParty<'_>,
        order_id: &OrderId,
    ) -> Result<Order, AppError> {
        match self.store.get_order(order_id).await? {
            Some(order) if order.belongs_to(party) => Ok(order),
            _ => Err(not_found::order()),
        }
    }

    pub async fn orders(
        &self,
        party: OrderParty<'_>,
        status: Option<OrderStatus>,
        page: &PageRequest,
    ) -> Result<Page<OrderView>, AppError> {
        let page = match party {
            OrderParty::Member(id) => self.store.list_member_orders(id, status, page).await?,
            OrderParty::Merchant(id) => {
                self.store
                    .list_merchant_orders(id, status, None, page)
                    .await?
            }
        };
        Ok(page.map(OrderView::from))
    }

    /// Cancels a pending order of the member's or of the merchant's: points refunded and stock
    /// restored once, whoever cancels and however often.
    pub async fn cancel(
        &self,
        party: OrderParty<'_>,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        // A member cancels only what has not shipped; a merchant may also cancel a shipped
        // delivery (a lost parcel), refunding it.
        let from: &[OrderStatus] = match party {
            OrderParty::Member(_) => &[OrderStatus::Pending],
            OrderParty::Merchant(_) => &[OrderStatus::Pending, OrderStatus::Shipped],
        };
        let cancelled = self
            .cancel_with_refund(order_id, from, |order| order.belongs_to(party))
            .await?;
        Ok(match party {
            OrderParty::Member(_) => OrderView::for_member(cancelled),
            OrderParty::Merchant(_) => cancelled.into(),
        })
    }

    /// Cancels an order in one of the states `from` that `may` allows (else 404), refunding its
    /// points and restoring its stock once however often it is asked: the order's own condition
    /// decides.
    pub(super) async fn cancel_with_refund(
        &self,
        order_id: &OrderId,
        from: &[OrderStatus],
        may: impl Fn(&Order) -> bool,
    ) -> Result<Order, AppError> {
        let mut budget = RetryBudget::new();
        loop {
            let order = match self.store.get_order(order_id).await? {
                Some(order) if may(&order) => order,
                _ => return Err(not_found::order()),
            };
            if order.status == OrderStatus::Shipped && !from.contains(&OrderStatus::Shipped) {
                return Err(AppError::conflict(
                    "already_shipped",
                    "the gift is on its way: it can no longer be cancelled here (its merchant can, should the parcel be lost)",
                ));
            }
            if !from.contains(&order.status) {
                return Err(not_pending(order.status));
            }
            let account = self
                .store
                .account_snapshot(&order.member_id)
                .await?
                .ok_or_else(|| AppError::internal("order of a member without a point account"))?;
            let now = self.clock.now();
            let refund = account
                .apply(
                    &order.member_id,
                    Movement::Refund {
                        points: order.points_cost,
                        order: &order.id,
                        promotional: order.promotional_points,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| AppError::internal_during("refund", refusal))?;
            let redact_at = self.fulfilment.address_redacted(now);
            match self
                .store
                .cancel_order(&order, &refund, now, from, redact_at)
                .await?
            {
                CancelOutcome::Cancelled => {
                    let mut cancelled = order;
                    cancelled.status = OrderStatus::Cancelled;
                    cancelled.updated_at = now;
                    return Ok(cancelled);
                }
                // Re-read: the order's new status decides the answer.
                CancelOutcome::NotPending => continue,
                CancelOutcome::AccountChanged => budget.lost().await?,
                CancelOutcome::Contended => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    budget.lost().await?;
                }
            }
        }
    }

    /// pending → completed, by the order's merchant, for an order without a pickup code (one with
    /// a code is completed only by its code: 409 `pickup_code_required`).
    pub async fn complete(
        &self,
        merchant_id: &UserId,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        match self.complete_once(merchant_id, order_id, None).await? {
            CompleteOutcome::Completed(order) => Ok((*order).into()),
            CompleteOutcome::NotFound => Err(not_found::order()),
            CompleteOutcome::NotPending(status) => Err(not_pending(status)),
            CompleteOutcome::NotShipped => Err(AppError::conflict(
                "not_shipped",
                "a delivery completes when its member confirms receipt (or by itself after shipping): ship it first",
            )),
            CompleteOutcome::PickupCodeRequired => Err(AppError::conflict(
                "pickup_code_required",
                "a pickup order is completed only with the code its member shows: POST it to /api/merchants/orders/redeem-code/",
            )),
            CompleteOutcome::Contended => Err(AppError::internal("contention outlasted retries")),
        }
    }

    /// The completion, retried while a transaction (a cancellation) holds the order.
    pub(super) async fn complete_once(
        &self,
        merchant_id: &UserId,
        order_id: &OrderId,
        code: Option<&str>,
    ) -> Result<CompleteOutcome, AppError> {
        let mut budget = RetryBudget::new();
        // The rate the line is written with (lines keep it when the rate changes later).
        let commission = self.settlements.commission_of(merchant_id).await?;
        loop {
            let now = self.clock.now();
            let sale =
                |order: &crate::domain::Order| self.settlements.sale_writes(order, now, commission);
            match self
                .store
                .complete_order(order_id, merchant_id, code, now, &sale)
                .await?
            {
                CompleteOutcome::Contended => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    budget.lost().await?;
                }
                outcome => return Ok(outcome),
            }
        }
    }
}

pub(super) fn not_pending(status: OrderStatus) -> AppError {
    AppError::conflict(
        "order_not_pending",
        format!("the order is {} and can no longer change", status.as_str()),
    )
}

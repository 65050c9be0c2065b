//! The order lifecycle after a redemption (see [`super::redemption`]): reading orders, cancelling
//! and completing them.

use super::retry::RetryBudget;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::idempotency::{
    check_idempotency_key, invalid_idempotency_key, IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_TTL_SECS,
};
pub use super::redemption::{RedeemRequest, Redemption};
use crate::domain::{Movement, Order, OrderId, OrderParty, OrderStatus, UserId};
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
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Order> for OrderView {
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
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

pub struct OrderService<'a> {
    pub store: &'a Store,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

impl OrderService<'_> {
    pub async fn order(
        &self,
        party: OrderParty<'_>,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        Ok(self.owned_order(party, order_id).await?.into())
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
            OrderParty::Merchant(id) => self.store.list_merchant_orders(id, status, page).await?,
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
        let mut budget = RetryBudget::new();
        loop {
            let order = self.owned_order(party, order_id).await?;
            if order.status != OrderStatus::Pending {
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
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| AppError::internal_during("refund", refusal))?;
            match self.store.cancel_order(&order, &refund, now).await? {
                CancelOutcome::Cancelled => {
                    let mut cancelled = order;
                    cancelled.status = OrderStatus::Cancelled;
                    cancelled.updated_at = now;
                    return Ok(cancelled.into());
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

    /// pending → completed, by the order's merchant.
    pub async fn complete(
        &self,
        merchant_id: &UserId,
        order_id: &OrderId,
    ) -> Result<OrderView, AppError> {
        let mut budget = RetryBudget::new();
        loop {
            match self
                .store
                .complete_order(order_id, merchant_id, self.clock.now())
                .await?
            {
                CompleteOutcome::Completed(order) => return Ok(order.into()),
                CompleteOutcome::NotFound => return Err(not_found::order()),
                CompleteOutcome::NotPending(status) => return Err(not_pending(status)),
                CompleteOutcome::Contended => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    budget.lost().await?;
                }
            }
        }
    }
}

fn not_pending(status: OrderStatus) -> AppError {
    AppError::conflict(
        "order_not_pending",
        format!("the order is {} and can no longer change", status.as_str()),
    )
}

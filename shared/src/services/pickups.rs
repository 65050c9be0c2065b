//! In-store pickup: the merchant completes an order by the code its member shows, and the scheduled
//! job cancels, with a full refund, a pickup nobody collected in time.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::orders::{OrderService, OrderView};
use crate::domain::codes::normalise_pickup_code;
use crate::domain::{OrderStatus, UserId};
use crate::error::{not_found, AppError, FieldCheck};
use crate::store::{CompleteOutcome, LoginCounter, Reservation};

/// The code a member shows at the counter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RedeemCodeRequest {
    /// The 10-character pickup code; case, spaces and dashes do not matter.
    #[schema(value_type = String, required = true, example = "K7M2-Q9XA-HP")]
    pub code: Option<String>,
}

/// What one scheduled pass over the expired pickups did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PickupExpiry {
    /// Cancelled with their points refunded.
    pub cancelled: usize,
    /// Collected or cancelled before their time: only taken off the queue.
    pub already_ended: usize,
}

impl OrderService<'_> {
    /// pending → completed by the pickup code, for the code's merchant only. Wrong codes count
    /// against the merchant (at most `pickup_code_max_failures` per window, then 429); a right one,
    /// even of an order that already ended, is handed back.
    pub async fn redeem_pickup_code(
        &self,
        merchant_id: &UserId,
        request: RedeemCodeRequest,
    ) -> Result<OrderView, AppError> {
        let mut check = FieldCheck::new();
        let code = check
            .required("code", request.code)
            .parse(&mut check, |typed| {
                normalise_pickup_code(&typed)
                    .ok_or_else(|| "must be a 10-character pickup code".to_string())
            });
        let code = check.finish_with(code)?;
        let counter = LoginCounter::PickupCodes(merchant_id.to_string());
        let window = self.fulfilment.pickup_code_window.as_secs() as i64;
        loop {
            let now = self.clock.now().timestamp();
            match self
                .store
                .reserve_login_attempt(
                    &counter,
                    self.fulfilment.pickup_code_max_failures,
                    now,
                    window,
                )
                .await?
            {
                Reservation::Reserved => break,
                Reservation::Raced => continue,
                Reservation::Full { ends_at } => {
                    return Err(AppError::TooManyRequests {
                        code: "too_many_attempts",
                        message: "too many wrong pickup codes; try again later".into(),
                        retry_after_secs: (ends_at - now).max(1) as u64,
                    })
                }
            }
        }
        let outcome = match self.store.order_of_pickup_code(&code, merchant_id).await? {
            Some(order_id) => {
                self.complete_once(merchant_id, &order_id, Some(&code))
                    .await?
            }
            None => CompleteOutcome::NotFound,
        };
        if !matches!(outcome, CompleteOutcome::NotFound) {
            // A right code: it does not count against the merchant.
            let now = self.clock.now().timestamp();
            self.store.release_login_attempt(&counter, now).await?;
        }
        match outcome {
            CompleteOutcome::Completed(order) => Ok((*order).into()),
            CompleteOutcome::NotPending(OrderStatus::Cancelled) => Err(AppError::conflict(
                "order_cancelled",
                "this code's order was cancelled; nothing is to be handed over",
            )),
            CompleteOutcome::NotPending(_) => Err(AppError::conflict(
                "already_completed",
                "this code was used: its order is already completed",
            )),
            CompleteOutcome::NotFound
            | CompleteOutcome::PickupCodeRequired
            | CompleteOutcome::NotShipped
            | CompleteOutcome::Contended => Err(not_found::order()),
        }
    }

    /// Cancels, with a full refund, up to `batch` pickups past their expiry, and
    /// takes orders that ended before it off the queue. Each cancellation is the ordinary one (the
    /// order's condition makes a race with its merchant or member end in exactly one of them).
    pub async fn expire_pickups(&self) -> Result<PickupExpiry, AppError> {
        let now = self.clock.now();
        let due = self
            .store
            .due_pickups(now, self.fulfilment.batch as usize)
            .await?;
        let mut report = PickupExpiry::default();
        for pickup in due {
            let cancelled = self
                .cancel_with_refund(&pickup.order_id, &[OrderStatus::Pending], |order| {
                    order.pickup_expires_at.is_some_and(|at| at <= now)
                })
                .await;
            match cancelled {
                Ok(_) => report.cancelled += 1,
                // Completed or cancelled before it expired (or, never, gone).
                Err(AppError::Conflict { .. }) | Err(AppError::NotFound { .. }) => {
                    report.already_ended += 1
                }
                Err(other) => return Err(other),
            }
            self.store.clear_due_pickup(&pickup.code).await?;
        }
        Ok(report)
    }
}

//! Redemption and the order lifecycle.

use super::retry::RetryBudget;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::order::QUANTITY_MAX;
use crate::domain::stock::{pick_shard, rebalance_plan};
use crate::domain::{
    Movement, Order, OrderId, OrderParty, OrderStatus, Points, ProductId, Refusal, UserId,
};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
use crate::store::{
    CancelOutcome, CompleteOutcome, IdempotencyClaim, IdempotentOutcome, PlaceOutcome, StockMove,
    Store,
};

/// Stock shards a redemption reads at random with everything else; the rest only when these cannot
/// cover the order.
const SHARDS_SAMPLED: usize = 3;
/// How long an Idempotency-Key's outcome is kept (well past DynamoDB's 10-minute ClientRequestToken window).
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
pub const IDEMPOTENCY_KEY_MAX: usize = 64;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RedeemRequest {
    #[schema(value_type = String, required = true, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub product_id: Option<String>,
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 100, example = 1)]
    pub quantity: Option<i64>,
    /// The unit price the member saw. Recommended (our clients always send it): if the merchant has
    /// changed the price since, the answer is 409 `price_changed` with the current price in
    /// `fields.points_required`, and nothing is charged.
    #[schema(value_type = Option<i64>, minimum = 1, example = 100)]
    pub points_required: Option<i64>,
}

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

/// A placed order, or the replay of the first response to the same Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    Placed(OrderView),
    /// The first response's JSON body, verbatim.
    Replayed(String),
}

/// `PO`, the Taipei date, eight random characters: readable over the phone, unique by a guard item.
fn new_order_number(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "PO{}{}",
        crate::domain::codes::in_taipei(now).format("%Y%m%d"),
        crate::domain::codes::random_code(8)
    )
}

pub fn check_idempotency_key(raw: &str) -> Result<(), AppError> {
    let well_formed = !raw.is_empty()
        && raw.len() <= IDEMPOTENCY_KEY_MAX
        && raw.bytes().all(|b| b.is_ascii_graphic());
    if well_formed {
        Ok(())
    } else {
        Err(invalid_idempotency_key())
    }
}

pub fn invalid_idempotency_key() -> AppError {
    let mut fields = crate::error::FieldErrors::new();
    fields.insert(
        "Idempotency-Key".into(),
        format!("must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
    );
    AppError::BadRequest {
        code: "invalid_header",
        message: "the Idempotency-Key header is invalid".into(),
        fields,
    }
}

fn product_not_found() -> AppError {
    AppError::not_found(
        "product_not_found",
        "no such product, or it is no longer offered",
    )
}

/// The stored first outcome of an Idempotency-Key, if the request is the same one.
fn replayed(stored: IdempotentOutcome, body_hash: &str) -> Result<Redemption, AppError> {
    same_request(&stored.body_hash, body_hash)?;
    Ok(Redemption::Replayed(stored.response))
}

/// An Idempotency-Key may only be replayed with the request it was first used for (422 otherwise).
pub(crate) fn same_request(stored_hash: &str, body_hash: &str) -> Result<(), AppError> {
    if stored_hash == body_hash {
        Ok(())
    } else {
        Err(AppError::Unprocessable {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request".into(),
        })
    }
}

/// What identifies a request under its Idempotency-Key: the SHA-256 (hex) of its canonical fields.
pub(crate) fn request_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub struct OrderService<'a> {
    pub store: &'a Store,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

impl OrderService<'_> {
    /// Redeems points for a product: one transaction takes the stock, debits the points, and records
    /// the order and its SPEND row. With an Idempotency-Key, a repeat of the same request returns
    /// the first response and changes nothing.
    pub async fn redeem(
        &self,
        member_id: &UserId,
        session_epoch: u32,
        request: RedeemRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Redemption, AppError> {
        let mut check = FieldCheck::new();
        let product_id = check
            .required("product_id", request.product_id)
            .parse(&mut check, |raw| {
                ProductId::parse(&raw).ok_or_else(|| "must be a product id".to_string())
            });
        let quantity = check
            .required("quantity", request.quantity)
            .parse(&mut check, |quantity| {
                (1..=QUANTITY_MAX)
                    .contains(&quantity)
                    .then_some(quantity)
                    .ok_or_else(|| format!("must be an integer from 1 to {QUANTITY_MAX}"))
            });
        // The price the member saw, if sent: the order is refused should it have changed since.
        let seen_price = check.parse("points_required", request.points_required, |price| {
            Points::new(price).ok_or_else(|| "must be a positive whole number of points".into())
        });
        let (product_id, quantity) = check.finish_with((product_id, quantity))?;
        let seen = seen_price.map(|p| p.to_string()).unwrap_or_default();
        let body_hash = request_hash(&format!("{product_id}\n{quantity}\n{seen}"));
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }

        let mut budget = RetryBudget::new();
        'read: loop {
            // One round trip: the product with its stock shards, the account, the member (still
            // enabled?) and the Idempotency-Key's stored outcome.
            let reads = self
                .store
                .redemption_reads(
                    &product_id,
                    member_id,
                    idempotency_key,
                    SHARDS_SAMPLED,
                    self.clock.now().timestamp(),
                )
                .await?;
            // The member first: a disabled member's replay is refused too.
            crate::services::auth::session_user(reads.member.clone(), session_epoch)?;
            if let Some(stored) = reads.replay {
                return replayed(stored, &body_hash);
            }
            let mut stock = match reads.product {
                Some(stock) if stock.product.is_active => stock,
                _ => return Err(product_not_found()),
            };
            // The sample cannot cover the order: read every shard before deciding anything about
            // the stock (a second round trip, taken near the end of a sale).
            if !stock.complete && !stock.shards.iter().any(|shard| shard.stock >= quantity) {
                stock = match self.store.product_stock(&product_id).await? {
                    Some(full) if full.product.is_active => full,
                    _ => return Err(product_not_found()),
                };
            }
            let product = &stock.product;
            // The member agreed to a price: never charge another. The transaction below is
            // conditioned on exactly this price, so a change after this read is caught there too.
            if let Some(seen) = seen_price.filter(|seen| *seen != product.points_required) {
                let mut fields = crate::error::FieldErrors::new();
                fields.insert(
                    "points_required".into(),
                    product.points_required.to_string(),
                );
                return Err(AppError::Conflict {
                    code: "price_changed",
                    message: format!(
                        "the price changed from {seen} to {} points per unit; nothing was charged",
                        product.points_required
                    ),
                    fields,
                });
            }
            // Sold out is the total over every shard, never one shard's figure.
            if stock.complete && product.stock < quantity {
                return Err(AppError::conflict(
                    "insufficient_stock",
                    format!("only {} left", product.stock),
                ));
            }
            let cost = product
                .points_required
                .times(quantity)
                .ok_or_else(|| AppError::internal("an order's cost out of range"))?;
            let account = reads
                .account
                .ok_or_else(|| AppError::internal("member without a point account"))?;
            let mut stocks = stock.stocks();
            // The stock is there in total but badly placed (no shard covers the order, or half the
            // shards are dry): move it, then read again.
            if let Some(plan) = stock
                .complete
                .then(|| rebalance_plan(&stocks, quantity))
                .flatten()
            {
                let needed = !stocks.iter().any(|&units| units >= quantity);
                if needed || budget.may_rebalance() {
                    let moved = self.store.move_stock(&stock, &plan).await?;
                    if moved == StockMove::Moved || needed {
                        budget.lost().await?;
                        continue 'read;
                    }
                }
            }
            let now = self.clock.now();
            let order = Order {
                id: OrderId::generate(),
                order_number: new_order_number(now),
                member_id: member_id.clone(),
                merchant_id: product.merchant_id.clone(),
                product_id: product.id.clone(),
                product_name: product.name.clone(),
                quantity,
                points_cost: cost,
                status: OrderStatus::Pending,
                created_at: now,
                updated_at: now,
            };
            // The balance rule (never below zero) is the domain's: an account that cannot cover
            // the cost is refused here, before anything is written.
            let spend = account
                .apply(
                    member_id,
                    Movement::Spend {
                        points: cost,
                        order: &order.id,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| match refusal {
                    Refusal::Overdraft { balance, .. } => AppError::conflict(
                        "insufficient_points",
                        format!("this costs {cost} points; the balance is {balance}"),
                    ),
                    Refusal::OutOfRange => AppError::internal("an order's cost out of range"),
                })?;
            let view = OrderView::from(order.clone());
            let claim = match idempotency_key {
                Some(key) => Some(IdempotencyClaim {
                    key: key.to_string(),
                    body_hash: body_hash.clone(),
                    response: serde_json::to_string(&view).map_err(AppError::internal)?,
                    expires_at: now.timestamp() + IDEMPOTENCY_TTL_SECS,
                    claimed_at: now.timestamp(),
                }),
                None => None,
            };
            // Try shards from this read while they can: a contended or emptied shard sends the next
            // attempt to another one at once; anything else reads again.
            let mut tried = Vec::new();
            loop {
                let next = pick_shard(&stocks, quantity, &tried, &mut rand::thread_rng());
                let Some(shard) = next.filter(|shard| !tried.contains(shard)) else {
                    break;
                };
                tried.push(shard);
                let outcome = self
                    .store
                    .place_order(
                        &order,
                        product.points_required,
                        shard,
                        &spend,
                        claim.as_ref(),
                    )
                    .await?;
                match outcome {
                    PlaceOutcome::Placed => {
                        // What this process now knows of the shard plans its next read.
                        self.store
                            .remember_stock(&product.id, [(shard, stocks[shard] - quantity)]);
                        crate::observe::count(crate::observe::Metric::OrdersPlaced, 1.0);
                        return Ok(Redemption::Placed(view));
                    }
                    PlaceOutcome::IdempotencyKeyUsed => {
                        // The first request with this key committed meanwhile: its outcome.
                        budget.lost().await?;
                        continue 'read;
                    }
                    PlaceOutcome::ShardShort => {
                        stocks[shard] = 0;
                        self.store.remember_stock(&product.id, [(shard, 0)]);
                    }
                    PlaceOutcome::Contended { on_shard: true } => {
                        crate::observe::count(
                            crate::observe::Metric::TransactionConflictsRetried,
                            1.0,
                        );
                        budget.lost().await?;
                    }
                    // Somebody else moved first: read again and re-decide (the checks above give
                    // the precise 404/409 when the product or the balance really fell short).
                    PlaceOutcome::Contended { on_shard: false } => {
                        crate::observe::count(
                            crate::observe::Metric::TransactionConflictsRetried,
                            1.0,
                        );
                        break;
                    }
                    PlaceOutcome::ProductRefused
                    | PlaceOutcome::AccountChanged
                    | PlaceOutcome::OrderNumberTaken => break,
                }
            }
            budget.lost().await?;
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_readable_and_distinct() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T17:00:00Z")
            .unwrap()
            .to_utc();
        let a = new_order_number(now);
        assert!(a.starts_with("PO20261127"), "{a}: Taipei date");
        assert_eq!(a.len(), 18);
        assert_ne!(a, new_order_number(now));
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert!(check_idempotency_key("order-2026-11-27-001").is_ok());
        assert!(check_idempotency_key(&"k".repeat(64)).is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key(&"k".repeat(65)).is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key("中文").is_err());
    }
}

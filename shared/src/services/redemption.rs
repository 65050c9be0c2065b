//! A member redeems points for a product: the use case in steps around one pure decision.
//!
//! Each attempt: **read** (one `BatchGetItem`: product, a sample of its stock shards, the account, the
//! member, the Idempotency-Key's record) → **admit** (the session, a replay) → **decide**
//! ([`decide`], pure: what this read allows) → **act** on the decision: read every shard, move stock
//! between shards, or **place** the order (one `TransactWriteItems`, tried on the shards the read
//! shows able to cover it). A lost race reads again, within one [`RetryBudget`].
//!
//! The redemption's request is in `redeem_request.rs`; its decision is unit-tested without the store
//! in `redemption_tests.rs`.

use super::idempotency::{check_idempotency_key, same_request};
use super::orders::{OrderService, OrderView};
pub(crate) use super::redeem_request::Asked;
pub use super::redeem_request::RedeemRequest;
use super::retry::RetryBudget;
use crate::domain::stock::{pick_shard, rebalance_plan, Rebalance};
use crate::domain::{
    AccountSnapshot, BalanceChange, Fulfilment, Movement, Order, OrderId, OrderStatus, Product,
    Refusal, Timestamp, UserId,
};
use crate::error::AppError;
use crate::store::{IdempotencyClaim, IdempotentOutcome, PlaceOutcome, ProductStock, StockMove};

/// Stock shards a redemption reads at random with everything else; the rest only when these cannot
/// cover the order.
const SHARDS_SAMPLED: usize = 3;

/// A placed order, or the replay of the first response to the same Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    Placed(Box<OrderView>),
    /// The first response's JSON body, verbatim.
    Replayed(String),
}

/// What is new in an order placed now: chosen by the caller, so the decision stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fresh {
    pub order_id: OrderId,
    pub order_number: String,
    pub ledger_row_id: String,
    /// The code and expiry the order gets if the product is picked up.
    pub pickup_code: String,
    pub pickup_expires_at: Timestamp,
    pub now: Timestamp,
}

/// The product as one read saw it: what the decision needs of a `ProductStock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shelf<'a> {
    pub product: &'a Product,
    /// Each shard's stock as read (an unread shard counts as empty).
    pub stocks: Vec<i64>,
    /// Whether every shard was read.
    pub complete: bool,
}

impl<'a> From<&'a ProductStock> for Shelf<'a> {
    fn from(read: &'a ProductStock) -> Self {
        Shelf {
            product: &read.product,
            stocks: read.stocks(),
            complete: read.complete,
        }
    }
}

/// What one read of the product and the account allows.
#[derive(Debug, Clone, PartialEq)]
// One value per attempt, matched at once: boxing the placement would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision {
    /// The sampled shards cannot cover the order: read every shard before deciding on stock.
    ReadEveryShard,
    /// The stock is there in total but badly placed: move it, then read again. `needed` when no
    /// shard covers the order (otherwise the move only spreads stock, and may be skipped).
    MoveStock { plan: Rebalance, needed: bool },
    /// Place this order, taking this spend, on one of the shards whose stock is `stocks`.
    Place {
        order: Order,
        spend: BalanceChange,
        stocks: Vec<i64>,
    },
}

fn shipping_problem(problem: &str) -> AppError {
    let mut fields = crate::error::FieldErrors::new();
    fields.insert("shipping".into(), problem.into());
    AppError::validation(fields)
}

fn product_not_found() -> AppError {
    AppError::not_found(
        "product_not_found",
        "no such product, or it is no longer offered",
    )
}

/// The redemption's rules on one read, in the order a member is told: the product on sale, the price
/// they saw, the stock in total, where the stock sits, and the balance (`AccountSnapshot::apply`:
/// never below zero, an exact ledger row). `spread_allowed` says whether an optional spreading move
/// may still be proposed.
pub(crate) fn decide(
    member_id: &UserId,
    asked: &Asked,
    shelf: Shelf<'_>,
    account: Option<AccountSnapshot>,
    spread_allowed: bool,
    fresh: Fresh,
) -> Result<Decision, AppError> {
    let product = shelf.product;
    if !product.is_active() {
        return Err(product_not_found());
    }
    // The address goes with the product's fulfilment, before anything is charged.
    match (product.fulfilment, &asked.shipping) {
        (Fulfilment::Delivery, None) => {
            return Err(shipping_problem(
                "is required: this product is delivered (or send shipping_address_id)",
            ))
        }
        (Fulfilment::Pickup, Some(_)) => {
            return Err(shipping_problem(
                "this product is collected in store: send no address",
            ))
        }
        _ => {}
    }
    let quantity = asked.quantity;
    if !shelf.complete && !shelf.stocks.iter().any(|&units| units >= quantity) {
        return Ok(Decision::ReadEveryShard);
    }
    // The member agreed to a price: never charge another. The transaction is conditioned on exactly
    // this price, so a change after the read is caught there too.
    if let Some(seen) = asked
        .seen_price
        .filter(|seen| *seen != product.points_required)
    {
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
    if shelf.complete && product.stock < quantity {
        return Err(AppError::conflict(
            "insufficient_stock",
            format!("only {} left", product.stock),
        ));
    }
    let cost = product
        .points_required
        .times(quantity)
        .ok_or_else(|| AppError::internal("an order's cost out of range"))?;
    let account = account.ok_or_else(|| AppError::internal("member without a point account"))?;
    let stocks = shelf.stocks;
    if let Some(plan) = shelf
        .complete
        .then(|| rebalance_plan(&stocks, quantity))
        .flatten()
    {
        let needed = !stocks.iter().any(|&units| units >= quantity);
        if needed || spread_allowed {
            return Ok(Decision::MoveStock { plan, needed });
        }
    }
    let spend = account
        .apply(
            member_id,
            Movement::Spend {
                points: cost,
                order: &fresh.order_id,
            },
            fresh.ledger_row_id,
            fresh.now,
        )
        .map_err(|refusal| match refusal {
            Refusal::Overdraft { balance, .. } => AppError::conflict(
                "insufficient_points",
                format!("this costs {cost} points; the balance is {balance}"),
            ),
            Refusal::OutOfRange | Refusal::NotRefundable { .. } => {
                AppError::internal("an order's cost out of range")
            }
        })?;
    let order = Order {
        id: fresh.order_id,
        order_number: fresh.order_number,
        member_id: member_id.clone(),
        merchant_id: product.merchant_id.clone(),
        product_id: product.id.clone(),
        product_name: product.name.clone(),
        quantity,
        points_cost: cost,
        // What the spend took of the promotional points, to give back as such on a cancellation.
        promotional_points: -spend.entry.promotional,
        status: OrderStatus::Pending,
        fulfilment: product.fulfilment,
        pickup_code: (product.fulfilment == Fulfilment::Pickup).then_some(fresh.pickup_code),
        pickup_expires_at: (product.fulfilment == Fulfilment::Pickup)
            .then_some(fresh.pickup_expires_at),
        shipping: asked.shipping.clone(),
        shipment: None,
        created_at: fresh.now,
        updated_at: fresh.now,
    };
    Ok(Decision::Place {
        order,
        spend,
        stocks,
    })
}

/// `PO`, the Taipei date, eight random characters: readable over the phone, unique by a guard item.
pub(crate) fn new_order_number(now: Timestamp) -> String {
    format!(
        "PO{}{}",
        crate::domain::codes::in_taipei(now).format("%Y%m%d"),
        crate::domain::codes::random_code(8)
    )
}

/// What placing came to, for the loop that reads again.
enum Placing {
    Placed(Box<OrderView>),
    /// Read again (somebody moved first, or the key was claimed meanwhile).
    ReadAgain,
}

impl OrderService<'_> {
    /// Redeems points for a product: one transaction takes the stock, debits the points, and records
    /// the order and its SPEND row. With an Idempotency-Key, a repeat of the same request returns
    /// the first response and changes nothing. The member's session is checked here, in the read
    /// the redemption makes anyway (the route is `MEMBER_SESSION_IN_READ`).
    pub async fn redeem(
        &self,
        member_id: &UserId,
        session_epoch: u32,
        request: RedeemRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Redemption, AppError> {
        let mut asked = Asked::validate(request)?;
        let body_hash = asked.hash();
        if let Some(id) = &asked.shipping_address_id {
            asked.shipping = Some(self.saved_address(member_id, id).await?);
        }
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }
        let mut budget = RetryBudget::new();
        loop {
            // Round trip 1: the product with a sample of its shards, the account, the member (still
            // enabled?) and the Idempotency-Key's stored outcome.
            let reads = self
                .store
                .redemption_reads(
                    &asked.product_id,
                    member_id,
                    idempotency_key,
                    SHARDS_SAMPLED,
                    self.clock.now().timestamp(),
                )
                .await?;
            // The member first: a disabled member's replay is refused too.
            super::auth::session_user(reads.member.clone(), session_epoch)?;
            if let Some(stored) = reads.replay {
                return replayed(stored, &body_hash);
            }
            let mut read = reads.product.ok_or_else(product_not_found)?;
            // Decisions on this read, until one needs a new read.
            loop {
                let now = self.clock.now();
                let fresh = Fresh {
                    order_id: OrderId::generate(),
                    order_number: new_order_number(now),
                    ledger_row_id: uuid::Uuid::now_v7().to_string(),
                    pickup_code: crate::domain::codes::pickup_code(),
                    pickup_expires_at: self.fulfilment.pickup_expires(now),
                    now,
                };
                let decision = decide(
                    member_id,
                    &asked,
                    Shelf::from(&read),
                    reads.account,
                    budget.can_rebalance(),
                    fresh,
                )?;
                match decision {
                    // A second round trip, taken near the end of a sale.
                    Decision::ReadEveryShard => {
                        read = self
                            .store
                            .product_stock(&asked.product_id)
                            .await?
                            .ok_or_else(product_not_found)?;
                    }
                    Decision::MoveStock { plan, needed } => {
                        if !needed {
                            budget.note_rebalance();
                        }
                        let moved = self.store.move_stock(&read, &plan).await?;
                        if moved == StockMove::Moved || needed {
                            budget.lost().await?;
                            break;
                        }
                        // An optional spread that did not happen: decide again on this read.
                    }
                    Decision::Place {
                        order,
                        spend,
                        stocks,
                    } => {
                        let claim = idempotency_key
                            .map(|key| claim_for(key, &body_hash, &order))
                            .transpose()?;
                        match self
                            .place(&order, &read, &spend, stocks, claim.as_ref(), &mut budget)
                            .await?
                        {
                            Placing::Placed(view) => return Ok(Redemption::Placed(view)),
                            Placing::ReadAgain => {
                                budget.lost().await?;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Round trip 2: places `order` on a shard this read shows able to cover it, trying another
    /// shard of the same read when one is short or contended.
    async fn place(
        &self,
        order: &Order,
        read: &ProductStock,
        spend: &BalanceChange,
        mut stocks: Vec<i64>,
        claim: Option<&IdempotencyClaim>,
        budget: &mut RetryBudget,
    ) -> Result<Placing, AppError> {
        let product = &read.product;
        let mut tried = Vec::new();
        loop {
            let next = pick_shard(&stocks, order.quantity, &tried, &mut rand::thread_rng());
            let Some(shard) = next.filter(|shard| !tried.contains(shard)) else {
                return Ok(Placing::ReadAgain);
            };
            tried.push(shard);
            let outcome = self
                .store
                .place_order(order, product.points_required, shard, spend, claim)
                .await?;
            match outcome {
                PlaceOutcome::Placed => {
                    // What this process now knows of the shard plans its next read.
                    self.store
                        .remember_stock(&product.id, [(shard, stocks[shard] - order.quantity)]);
                    crate::observe::count(crate::observe::Metric::OrdersPlaced, 1.0);
                    return Ok(Placing::Placed(Box::new(OrderView::for_member(
                        order.clone(),
                    ))));
                }
                // The first request with this key committed meanwhile: its outcome, on a new read.
                PlaceOutcome::IdempotencyKeyUsed => return Ok(Placing::ReadAgain),
                PlaceOutcome::ShardShort => {
                    stocks[shard] = 0;
                    self.store.remember_stock(&product.id, [(shard, 0)]);
                }
                PlaceOutcome::Contended { on_shard: true } => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    budget.lost().await?;
                }
                // Somebody else moved first: read again and re-decide (the decision gives the
                // precise 404/409 when the product or the balance really fell short).
                PlaceOutcome::Contended { on_shard: false } => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    return Ok(Placing::ReadAgain);
                }
                PlaceOutcome::ProductRefused
                | PlaceOutcome::AccountChanged
                | PlaceOutcome::OrderNumberTaken
                | PlaceOutcome::PickupCodeTaken => return Ok(Placing::ReadAgain),
            }
        }
    }
}

/// The Idempotency-Key's claim for `order`: the request's hash and the answer to replay.
fn claim_for(key: &str, body_hash: &str, order: &Order) -> Result<IdempotencyClaim, AppError> {
    super::idempotency::claim(
        key,
        body_hash,
        &OrderView::for_member(order.clone()),
        order.created_at,
    )
}

/// The stored first outcome of an Idempotency-Key, if the request is the same one.
fn replayed(stored: IdempotentOutcome, body_hash: &str) -> Result<Redemption, AppError> {
    same_request(&stored.body_hash, body_hash)?;
    Ok(Redemption::Replayed(stored.response))
}

#[cfg(test)]
#[path = "redemption_tests.rs"]
mod tests;

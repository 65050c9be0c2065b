//! A member redeems points for a product: the use case in steps around one pure decision.
//!
//! Each attempt: **read** (one `BatchGetItem`: product, a sample of its stock shards, the account, the
//! member, the Idempotency-Key's record) → **admit** (the session, a replay) → **decide**
//! ([`decide`], pure: what this read allows) → **act** on the decision: read every shard, move stock
//! between shards, or **place** the order (one `TransactWriteItems`, tried on the shards the read
//! shows able to cover it). A lost race reads again, within one [`RetryBudget`].
//!
//! One job, the redemption, kept in one file: its request, its decision (unit-tested below without
//! the store) and its steps.

use serde::Deserialize;
use utoipa::ToSchema;

use super::idempotency::{check_idempotency_key, request_hash, same_request, IDEMPOTENCY_TTL_SECS};
use super::orders::{OrderService, OrderView};
use super::retry::RetryBudget;
use crate::domain::order::QUANTITY_MAX;
use crate::domain::shipping::{check_shipping, ShippingInput};
use crate::domain::stock::{pick_shard, rebalance_plan, Rebalance};
use crate::domain::{
    AccountSnapshot, AddressId, BalanceChange, Fulfilment, Movement, Order, OrderId, OrderStatus,
    Points, Product, ProductId, Refusal, ShippingAddress, Timestamp, UserId,
};
use crate::error::{AppError, FieldCheck};
use crate::store::{IdempotencyClaim, IdempotentOutcome, PlaceOutcome, ProductStock, StockMove};

/// Stock shards a redemption reads at random with everything else; the rest only when these cannot
/// cover the order.
const SHARDS_SAMPLED: usize = 3;

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
    /// Where to send a `delivery` product (required for one, refused for a `pickup` one); or send
    /// `shipping_address_id` instead. The order keeps a copy.
    #[schema(value_type = Option<ShippingInput>)]
    pub shipping: Option<ShippingInput>,
    /// One of my saved addresses (`/api/members/addresses/`), instead of `shipping`.
    #[schema(value_type = Option<String>, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub shipping_address_id: Option<String>,
}

/// A placed order, or the replay of the first response to the same Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    Placed(Box<OrderView>),
    /// The first response's JSON body, verbatim.
    Replayed(String),
}

/// A redemption request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    pub product_id: ProductId,
    pub quantity: i64,
    /// The unit price the member saw, if they sent it.
    pub seen_price: Option<Points>,
    /// Where a delivery goes (a saved address is resolved into this before deciding).
    pub shipping: Option<ShippingAddress>,
    pub shipping_address_id: Option<AddressId>,
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
    let order = Order {
        id: fresh.order_id,
        order_number: fresh.order_number,
        member_id: member_id.clone(),
        merchant_id: product.merchant_id.clone(),
        product_id: product.id.clone(),
        product_name: product.name.clone(),
        quantity,
        points_cost: cost,
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
    let spend = account
        .apply(
            member_id,
            Movement::Spend {
                points: cost,
                order: &order.id,
            },
            fresh.ledger_row_id,
            fresh.now,
        )
        .map_err(|refusal| match refusal {
            Refusal::Overdraft { balance, .. } => AppError::conflict(
                "insufficient_points",
                format!("this costs {cost} points; the balance is {balance}"),
            ),
            Refusal::OutOfRange => AppError::internal("an order's cost out of range"),
        })?;
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

/// The validated request, or every problem with it at once.
fn validate(request: RedeemRequest) -> Result<Asked, AppError> {
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
    let shipping = request
        .shipping
        .and_then(|input| check_shipping(&mut check, "shipping.", input));
    let shipping_address_id =
        check.parse("shipping_address_id", request.shipping_address_id, |raw| {
            AddressId::parse(&raw).ok_or_else(|| "must be an address id".to_string())
        });
    if shipping.is_some() && shipping_address_id.is_some() {
        check.fail(
            "shipping_address_id",
            "send shipping or shipping_address_id, not both",
        );
    }
    let (product_id, quantity) = check.finish_with((product_id, quantity))?;
    Ok(Asked {
        product_id,
        quantity,
        seen_price,
        shipping,
        shipping_address_id,
    })
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
        let mut asked = validate(request)?;
        let seen = asked.seen_price.map(|p| p.to_string()).unwrap_or_default();
        // The address is part of the request: a key reused with another address is refused.
        let shipping = match (&asked.shipping, &asked.shipping_address_id) {
            (Some(a), _) => format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                a.recipient_name, a.phone, a.postal_code, a.address
            ),
            (None, Some(id)) => format!("saved:{id}"),
            (None, None) => String::new(),
        };
        let mut hashed = format!("{}\n{}\n{seen}", asked.product_id, asked.quantity);
        if !shipping.is_empty() {
            hashed.push_str(&format!("\n{shipping}"));
        }
        let body_hash = request_hash(&hashed);
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
    let now = order.created_at;
    Ok(IdempotencyClaim {
        key: key.to_string(),
        body_hash: body_hash.to_string(),
        response: serde_json::to_string(&OrderView::for_member(order.clone()))
            .map_err(AppError::internal)?,
        expires_at: now.timestamp() + IDEMPOTENCY_TTL_SECS,
        claimed_at: now.timestamp(),
    })
}

/// The stored first outcome of an Idempotency-Key, if the request is the same one.
fn replayed(stored: IdempotentOutcome, body_hash: &str) -> Result<Redemption, AppError> {
    same_request(&stored.body_hash, body_hash)?;
    Ok(Redemption::Replayed(stored.response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> UserId {
        UserId::parse("0190b5e2-0000-7000-8000-000000000001").unwrap()
    }

    fn product(price: i64, stock: i64, active: bool) -> Product {
        let now = chrono::Utc::now();
        Product {
            id: ProductId::generate(),
            merchant_id: UserId::parse("0190b5e2-0000-7000-8000-000000000002").unwrap(),
            name: "Oolong".into(),
            description: String::new(),
            points_required: Points::new(price).unwrap(),
            fulfilment: Fulfilment::Pickup,
            stock,
            stock_shards: 1,
            listed: true,
            blocked: !active,
            merchant_suspended: false,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn asked(product: &Product, quantity: i64, seen: Option<i64>) -> Asked {
        Asked {
            product_id: product.id.clone(),
            quantity,
            seen_price: seen.and_then(Points::new),
            shipping: None,
            shipping_address_id: None,
        }
    }

    fn account(balance: i64) -> Option<AccountSnapshot> {
        Some(AccountSnapshot {
            balance,
            total_earned: balance,
            total_spent: 0,
            version: 1,
        })
    }

    fn fresh() -> Fresh {
        let now = chrono::Utc::now();
        Fresh {
            order_id: OrderId::generate(),
            order_number: new_order_number(now),
            ledger_row_id: "row".into(),
            pickup_code: crate::domain::codes::pickup_code(),
            pickup_expires_at: now + chrono::Duration::days(30),
            now,
        }
    }

    fn shelf<'a>(product: &'a Product, stocks: &[i64], complete: bool) -> Shelf<'a> {
        Shelf {
            product,
            stocks: stocks.to_vec(),
            complete,
        }
    }

    fn refused(result: Result<Decision, AppError>) -> &'static str {
        match result {
            Err(err) => err.code(),
            Ok(decision) => panic!("expected a refusal, got {decision:?}"),
        }
    }

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
    fn a_member_with_enough_points_places_the_order_at_the_price_they_saw() {
        let p = product(100, 5, true);
        let decided = decide(
            &member(),
            &asked(&p, 2, Some(100)),
            shelf(&p, &[5], true),
            account(250),
            true,
            fresh(),
        );
        let Ok(Decision::Place {
            order,
            spend,
            stocks,
        }) = decided
        else {
            panic!("expected a placement, got {decided:?}");
        };
        assert_eq!(order.points_cost.get(), 200);
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(spend.next.balance, 50);
        assert_eq!(spend.entry.amount, -200);
        assert_eq!(stocks, [5]);
    }

    #[test]
    fn each_refusal_comes_in_the_order_a_member_is_told() {
        let off_sale = product(100, 5, false);
        assert_eq!(
            refused(decide(
                &member(),
                &asked(&off_sale, 1, None),
                shelf(&off_sale, &[5], true),
                account(500),
                true,
                fresh()
            )),
            "product_not_found"
        );
        let p = product(100, 5, true);
        // The price changed: refused even with no points and no stock to speak of.
        assert_eq!(
            refused(decide(
                &member(),
                &asked(&p, 9, Some(90)),
                shelf(&p, &[5], true),
                account(0),
                true,
                fresh()
            )),
            "price_changed"
        );
        assert_eq!(
            refused(decide(
                &member(),
                &asked(&p, 6, None),
                shelf(&p, &[5], true),
                account(10_000),
                true,
                fresh()
            )),
            "insufficient_stock"
        );
        assert_eq!(
            refused(decide(
                &member(),
                &asked(&p, 2, None),
                shelf(&p, &[5], true),
                account(199),
                true,
                fresh()
            )),
            "insufficient_points"
        );
    }

    #[test]
    fn a_sample_that_cannot_cover_the_order_asks_for_every_shard_and_never_says_sold_out() {
        let p = product(100, 1, true);
        // Only one of three shards read, and it is dry: the product is not sold out on that.
        let decided = decide(
            &member(),
            &asked(&p, 1, None),
            shelf(&p, &[0, 0, 0], false),
            account(500),
            true,
            fresh(),
        );
        assert_eq!(decided.ok(), Some(Decision::ReadEveryShard));
    }

    #[test]
    fn stock_badly_placed_is_moved_first_and_spreading_is_optional() {
        let p = product(10, 6, true);
        // Six units in total, no shard holding three: a move is needed, whatever the budget says.
        let needed = decide(
            &member(),
            &asked(&p, 3, None),
            shelf(&p, &[2, 2, 2, 0], true),
            account(500),
            false,
            fresh(),
        );
        assert!(
            matches!(needed, Ok(Decision::MoveStock { needed: true, .. })),
            "{needed:?}"
        );
        // Half the shards dry: spreading is proposed only while the budget allows it.
        let p = product(10, 8, true);
        let spread = decide(
            &member(),
            &asked(&p, 1, None),
            shelf(&p, &[8, 0, 0, 0], true),
            account(500),
            true,
            fresh(),
        );
        assert!(
            matches!(spread, Ok(Decision::MoveStock { needed: false, .. })),
            "{spread:?}"
        );
        let placed = decide(
            &member(),
            &asked(&p, 1, None),
            shelf(&p, &[8, 0, 0, 0], true),
            account(500),
            false,
            fresh(),
        );
        assert!(matches!(placed, Ok(Decision::Place { .. })), "{placed:?}");
    }
}

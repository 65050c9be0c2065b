//! The redemption's decision on one read, without the store.

use super::*;
use crate::domain::{Points, ProductId};

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
        purchased: balance,
        promotional: 0,
        promotional_granted: 0,
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

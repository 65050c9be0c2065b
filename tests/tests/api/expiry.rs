//! Promotional points may expire (`PROMOTIONAL_POINTS_EXPIRE_DAYS`); purchased points never do.

use std::time::Duration;

use api_tests::{TestApi, PASSWORD};
use serde_json::Value;

use crate::admin::adjust;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn kinds(api: &TestApi, name: &str) -> (i64, i64, i64) {
    let token = api.login(name, PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let points: Value = api.get("/api/members/points/", Some(&token)).await.body;
    (
        points["balance"].as_i64().unwrap(),
        points["purchased"].as_i64().unwrap(),
        points["promotional"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_gift_expires_by_what_is_left_of_it_and_purchased_points_never_do() {
    let api =
        TestApi::start_with(|config| config.payments.promotional_expire_days = Some(30)).await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let mug = api.create_product(&shop, "Mug", 130, 5).await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    // Day 0: 100 given (the first gift); an order of 130 spends those 100 first, then 30 bought.
    adjust(&api, &operator, &member, 100, "welcome gift", None)
        .await
        .assert_status(201);
    api.redeem(&mia, mug["id"].as_str().unwrap(), 1)
        .await
        .assert_status(201);
    // Day 10: 50 more given (the second gift).
    api.advance_clock(10 * DAY);
    let (_, operator) = api.signed_in_admin("olga").await;
    adjust(&api, &operator, &member, 50, "birthday", None)
        .await
        .assert_status(201);
    assert_eq!(kinds(&api, "mia").await, (520, 470, 50));

    // Day 31: the first gift ends, all of it spent: nothing is taken.
    api.advance_clock(21 * DAY);
    let first = fn_reconcile::run_expiry(&api.ctx).await.unwrap();
    assert_eq!((first.gifts, first.points), (1, 0), "{first:?}");
    assert_eq!(kinds(&api, "mia").await, (520, 470, 50));
    // Day 41: the second gift ends: its 50 go; the 470 bought stay.
    api.advance_clock(10 * DAY);
    let second = fn_reconcile::run_expiry(&api.ctx).await.unwrap();
    assert_eq!((second.gifts, second.points), (1, 50), "{second:?}");
    assert_eq!(kinds(&api, "mia").await, (470, 470, 0));
    // Ten years on, nothing else ever expires.
    api.advance_clock(3_650 * DAY);
    let later = fn_reconcile::run_expiry(&api.ctx).await.unwrap();
    assert_eq!((later.gifts, later.points), (0, 0));
    assert_eq!(kinds(&api, "mia").await, (470, 470, 0));
    let token = api.login("mia", PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let ledger = api.walk("/api/members/transactions/", 20, &token).await;
    let expiry: Vec<&Value> = ledger
        .iter()
        .filter(|row| row["transaction_type"] == "EXPIRY")
        .collect();
    assert_eq!(expiry.len(), 1);
    assert_eq!(
        (
            expiry[0]["amount"].as_i64(),
            expiry[0]["purchased"].as_i64()
        ),
        (Some(-50), Some(0))
    );
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn unset_nothing_expires() {
    let api = TestApi::start().await;
    let (member, _) = api.member_with_points("mia", 200).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    adjust(&api, &operator, &member, 100, "welcome gift", None)
        .await
        .assert_status(201);
    api.advance_clock(3_650 * DAY);
    let report = fn_reconcile::run_expiry(&api.ctx).await.unwrap();
    assert_eq!((report.gifts, report.points), (0, 0));
    assert_eq!(kinds(&api, "mia").await, (300, 200, 100));
    api.assert_points_invariants(&[member]).await;
}

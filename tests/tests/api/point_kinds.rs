//! Purchased and promotional points: bought points are stored value, given points are spent first,
//! each kind comes back as it was taken, and racing operations keep both exact.

use api_tests::TestApi;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::admin::adjust;

async fn points(api: &TestApi, token: &str) -> Value {
    let answer = api.get("/api/members/points/", Some(token)).await;
    answer.assert_status(200);
    answer.body
}

fn kinds(points: &Value) -> (i64, i64, i64) {
    (
        points["balance"].as_i64().unwrap(),
        points["purchased"].as_i64().unwrap(),
        points["promotional"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn given_points_are_spent_first_and_a_cancellation_gives_each_kind_back() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    let bought = points(&api, &mia).await;
    assert_eq!(kinds(&bought), (500, 500, 0));
    assert_eq!(bought["refundable_twd"], 500);

    adjust(
        &api,
        &operator,
        &member,
        100,
        "welcome gift",
        Some("gift-1"),
    )
    .await
    .assert_status(201);
    assert_eq!(kinds(&points(&api, &mia).await), (600, 500, 100));

    let mug = api.create_product(&shop, "Mug", 150, 5).await;
    let order = api.redeem(&mia, mug["id"].as_str().unwrap(), 1).await;
    order.assert_status(201);
    let after = points(&api, &mia).await;
    assert_eq!(kinds(&after), (450, 450, 0), "the 100 given went first");
    assert_eq!(after["refundable_twd"], 450);
    let ledger = api.walk("/api/members/transactions/", 10, &mia).await;
    let spend = ledger
        .iter()
        .find(|row| row["transaction_type"] == "SPEND")
        .unwrap();
    assert_eq!(
        (spend["purchased"].as_i64(), spend["promotional"].as_i64()),
        (Some(-50), Some(-100))
    );

    api.post(
        &format!(
            "/api/members/orders/{}/cancel/",
            order.body["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&mia),
    )
    .await
    .assert_status(200);
    assert_eq!(kinds(&points(&api, &mia).await), (600, 500, 100));

    // A correction downward takes given points first.
    adjust(
        &api,
        &operator,
        &member,
        -120,
        "duplicate gift",
        Some("fix-1"),
    )
    .await
    .assert_status(201);
    assert_eq!(kinds(&points(&api, &mia).await), (480, 480, 0));
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn redemptions_cancellations_and_gifts_racing_keep_both_kinds_exact() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 1_000).await;
    let mug = api.create_product(&shop, "Mug", 30, 500).await;
    let mug = mug["id"].as_str().unwrap().to_string();
    let placed: Vec<Value> = join_all((0..10).map(|_| api.redeem(&mia, &mug, 1)))
        .await
        .into_iter()
        .map(|answer| answer.body)
        .collect();
    let mut racers = Vec::new();
    for (i, order) in placed.iter().enumerate() {
        let (api, mia, operator, member, mug, order) = (
            api.clone(),
            mia.clone(),
            operator.clone(),
            member.clone(),
            mug.clone(),
            order["id"].as_str().unwrap().to_string(),
        );
        racers.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    api.post(
                        &format!("/api/members/orders/{order}/cancel/"),
                        json!({}),
                        Some(&mia),
                    )
                    .await
                    .status
                }
                1 => {
                    adjust(
                        &api,
                        &operator,
                        &member,
                        25,
                        "gift",
                        Some(&format!("race-{i}")),
                    )
                    .await
                    .status
                }
                _ => api.redeem(&mia, &mug, 2).await.status,
            }
        }));
    }
    for answer in join_all(racers).await {
        let status = answer.unwrap();
        assert!(status == 200 || status == 201 || status == 409, "{status}");
    }
    let (balance, purchased, promotional) = kinds(&points(&api, &mia).await);
    assert_eq!(balance, purchased + promotional);
    assert!(purchased >= 0 && promotional >= 0);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn a_balance_from_before_the_two_kinds_counts_as_purchased() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    // The account and its ledger as the version before the two kinds wrote them.
    let changed = api
        .ctx
        .store
        .forget_as_earlier_version(&format!("USER#{member}"), &["purchased", "promotional"])
        .await
        .unwrap();
    assert!(changed >= 2, "the account and its RECHARGE row");
    let legacy = points(&api, &mia).await;
    assert_eq!(kinds(&legacy), (500, 500, 0));
    assert_eq!(legacy["refundable_twd"], 500);
    let ledger = api.walk("/api/members/transactions/", 10, &mia).await;
    assert_eq!(ledger[0]["purchased"], 500);
    assert_eq!(ledger[0]["promotional"], 0);
    // The next change writes both kinds; everything still adds up.
    let mug = api.create_product(&shop, "Mug", 120, 5).await;
    api.redeem(&mia, mug["id"].as_str().unwrap(), 1)
        .await
        .assert_status(201);
    assert_eq!(kinds(&points(&api, &mia).await), (380, 380, 0));
    api.assert_points_invariants(&[member]).await;
}

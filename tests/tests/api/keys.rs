//! Idempotency-Keys past their day, and whose they are: an expired key's record that TTL has not
//! deleted yet (DynamoDB takes up to days) never blocks a request, and an adjustment's key belongs
//! to the member adjusted, not to the operator typing it.

use std::time::Duration;

use api_tests::{TestApi, TestResponse};
use serde_json::json;

use crate::admin::adjust;

/// A new access token for `username` (the day that passed expired the old ones).
async fn signed_in_again(api: &TestApi, username: &str) -> String {
    let login = api.login(username, api_tests::PASSWORD).await;
    login.assert_status(200);
    login.body["access"].as_str().unwrap().to_string()
}

const A_DAY_AND_AN_HOUR: Duration = Duration::from_secs(25 * 3600);

async fn redeem_with_key(api: &TestApi, token: &str, key: &str, product: &str) -> TestResponse {
    api.redeem_with_key(token, key, json!({"product_id": product, "quantity": 1}))
        .await
}

#[tokio::test]
async fn a_redemption_key_reused_after_it_expired_places_a_new_order_at_once() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Oolong", 100, 10).await;
    let id = product["id"].as_str().unwrap();
    let (member, amy) = api.member_with_points("amy", 1_000).await;
    let first = redeem_with_key(&api, &amy, "checkout-1", id).await;
    first.assert_status(201);
    // The record is still in the table (the emulator, like DynamoDB for a while, has not swept
    // it), but it has expired: the key is free again.
    api.advance_clock(A_DAY_AND_AN_HOUR);
    let amy = signed_in_again(&api, "amy").await;
    api.dynamodb_calls.clear();
    let later = redeem_with_key(&api, &amy, "checkout-1", id).await;
    later.assert_status(201);
    assert_ne!(
        later.body["id"], first.body["id"],
        "a new order, not a replay"
    );
    assert_eq!(
        api.dynamodb_calls.by_operation().get("TransactWriteItems"),
        Some(&1),
        "one transaction, not a loop of refused claims"
    );
    // And within the new day the key replays the new order.
    let replay = redeem_with_key(&api, &amy, "checkout-1", id).await;
    assert_eq!(replay.body, later.body);
    api.assert_points_invariants(&[member]).await;
    let shop = signed_in_again(&api, "tea_shop").await;
    api.assert_stock_invariant(&shop, id, 10).await;
}

#[tokio::test]
async fn an_adjustment_key_reused_after_it_expired_answers_at_once() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (member, _) = api.member_with_points("mia", 1_000).await;
    adjust(&api, &operator, &member, 100, "goodwill", Some("runbook-7"))
        .await
        .assert_status(201);
    api.advance_clock(A_DAY_AND_AN_HOUR);
    let (operator, token) = (
        signed_in_again(&api, "olive").await,
        signed_in_again(&api, "mia").await,
    );
    // Before, this request never answered (the claim refused, the read ignored the record).
    let later = tokio::time::timeout(
        Duration::from_secs(10),
        adjust(&api, &operator, &member, 100, "goodwill", Some("runbook-7")),
    )
    .await
    .expect("an answer, not an endless loop");
    later.assert_status(201);
    let balance = api.get("/api/members/points/", Some(&token)).await.body["balance"].clone();
    assert_eq!(balance, 1_200);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn two_operators_following_one_runbook_key_adjust_the_member_once() {
    let api = TestApi::start().await;
    let (_, olive) = api.signed_in_admin("olive").await;
    let (_, omar) = api.signed_in_admin("omar").await;
    let (member, token) = api.member_with_points("mia", 1_000).await;
    let (a, b) = futures::join!(
        adjust(
            &api,
            &olive,
            &member,
            500,
            "parcel lost: INC-42",
            Some("INC-42")
        ),
        adjust(
            &api,
            &omar,
            &member,
            500,
            "parcel lost: INC-42",
            Some("INC-42")
        ),
    );
    a.assert_status(201);
    b.assert_status(201);
    assert_eq!(a.body, b.body, "the second is the first's answer, replayed");
    let balance = api.get("/api/members/points/", Some(&token)).await.body["balance"].clone();
    assert_eq!(balance, 1_500);
    // The same key for another member is that member's own.
    let (other, _, _) = api.signed_up("leo", "MEMBER").await;
    adjust(
        &api,
        &olive,
        &other,
        500,
        "parcel lost: INC-42",
        Some("INC-42"),
    )
    .await
    .assert_status(201);
    api.assert_points_invariants(&[member, other]).await;
}

//! The restore runbook (docs/deploy.md, "Restore the table"), exercised against a copy of the data:
//! a point-in-time restore makes a new table with the same items (here, every item copied into a new
//! table beside the first), TTL is enabled on it again, the functions are switched to it by its name
//! (`TABLE_NAME`, which `TableNameOverride` sets on AWS), and the money is verified.

use api_tests::TestApi;
use serde_json::{json, Value};

/// One request to `host` as the holder of `token`: its status and JSON body.
async fn send(
    host: &local_api::LocalApi,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let (parts, ()) = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts();
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let response = host
        .dispatch(local_api::into_lambda_request(parts, bytes))
        .await;
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_data_restored_into_a_new_table_serves_the_same_members_once_the_functions_switch_to_it(
) {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Oolong", 100, 10).await;
    let id = product["id"].as_str().unwrap().to_string();
    let (member, token) = api.member_with_points("amy", 1_000).await;
    api.redeem(&token, &id, 2).await.assert_status(201);

    // 1. Restore: a new table (its own name) holding the same items.
    let mut config = shared::Config::local(
        api.emulator().endpoint().to_string(),
        "points-restored-20261206".into(),
        api_tests::TEST_SECRET.to_vec(),
    );
    config.password_cost = shared::auth::password::PasswordCost::CHEAPEST;
    // 2. Its TTL enabled again (a restored table has none): `connect` creates the table as the
    //    code defines it, TTL included, as the runbook's `update-time-to-live` does.
    let restored = local_api::LocalApi::connect(config).await.unwrap();
    let copied = api
        .ctx
        .store
        .copy_every_item_to(&restored.ctx.store)
        .await
        .unwrap();
    assert_eq!(copied as i64, api.item_count().await);

    // 3. Switch: the functions now run over the restored table; 4. verify: the member's balance,
    //    ledger and order are there, sessions too, and the money still adds up.
    let (status, points) = send(&restored, "GET", "/api/members/points/", None, &token).await;
    assert_eq!((status, points["balance"].as_i64()), (200, Some(800)));
    let (status, orders) = send(&restored, "GET", "/api/members/orders/", None, &token).await;
    assert_eq!(
        (status, orders["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let body = json!({"product_id": id, "quantity": 1});
    let (status, order) = send(
        &restored,
        "POST",
        "/api/members/orders/",
        Some(body),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let member_id = api_tests::user_id(&member);
    let account = restored
        .ctx
        .store
        .get_point_account(&member_id)
        .await
        .unwrap()
        .unwrap();
    let ledger = restored
        .ctx
        .store
        .all_ledger_rows(&member_id)
        .await
        .unwrap();
    assert_eq!(account.balance, 700);
    assert_eq!(ledger.iter().map(|row| row.amount).sum::<i64>(), 700);
    // The first table is untouched by what the restored one served.
    let before = api.get("/api/members/points/", Some(&token)).await.body;
    assert_eq!(before["balance"], 800);
}

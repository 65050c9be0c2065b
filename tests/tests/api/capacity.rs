//! What each request costs in DynamoDB capacity: every call asks for it, and the units a request's
//! metrics and log line carry are the units DynamoDB reported on the wire (read here by the test's
//! own recorder, not through the code under test).

use api_tests::TestApi;
use serde_json::{json, Value};
use shared::observe::Metric;

/// The units the EMF documents emitted for `route` carry, as (read, write).
fn emitted_for(api: &TestApi, route: &str) -> (f64, f64) {
    let documents: Vec<Value> = api
        .host
        .ctx
        .metrics
        .captured()
        .into_iter()
        .filter(|d| d["route"] == route)
        .collect();
    let sum = |metric: Metric| {
        documents
            .iter()
            .filter_map(|d| d[metric.name()].as_f64())
            .sum::<f64>()
    };
    (
        sum(Metric::DynamoDbReadUnits),
        sum(Metric::DynamoDbWriteUnits),
    )
}

/// What the recorder saw DynamoDB charge since it was last cleared, as (read, write).
fn charged_on_the_wire(api: &TestApi) -> (f64, f64) {
    let consumed = api.dynamodb_calls.consumed();
    let read = consumed
        .iter()
        .filter(|c| !c.is_write())
        .map(|c| c.total())
        .sum();
    let write = consumed
        .iter()
        .filter(|c| c.is_write())
        .map(|c| c.total())
        .sum();
    (read, write)
}

#[tokio::test]
async fn a_redemption_counts_the_units_dynamodb_charged_for_it_tables_and_indexes_alike() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("unit_shop", "MERCHANT").await;
    let lamp = api.create_product(&shop, "Lamp", 120, 5).await;
    let (_, mia) = api.member_with_points("unit_mia", 500).await;

    api.dynamodb_calls.clear();
    let placed = api
        .post(
            "/api/members/orders/",
            json!({"product_id": lamp["id"], "quantity": 1}),
            Some(&mia),
        )
        .await;
    placed.assert_status(201);
    let charged = charged_on_the_wire(&api);
    let emitted = emitted_for(&api, "POST /api/members/orders/");
    assert_eq!(emitted, charged, "(read, write) emitted vs charged");
    // A transaction's items cost twice, and the order is written to its member's and merchant's
    // indexes: more than two units for the one order.
    assert!(charged.1 > 2.0, "{charged:?}");
    assert!(charged.0 > 0.0, "{charged:?}");
    let indexes: Vec<String> = api
        .dynamodb_calls
        .consumed()
        .iter()
        .flat_map(|c| c.units.keys().cloned())
        .filter(|k| k != "table")
        .collect();
    assert!(
        !indexes.is_empty(),
        "the order's index writes are charged too"
    );

    // A list page: reads only.
    api.dynamodb_calls.clear();
    api.get("/api/members/orders/", Some(&mia))
        .await
        .assert_status(200);
    let charged = charged_on_the_wire(&api);
    assert_eq!(emitted_for(&api, "GET /api/members/orders/"), charged);
    assert!(charged.0 > 0.0 && charged.1 == 0.0, "{charged:?}");
}

#[tokio::test]
async fn every_call_of_a_members_journey_asks_dynamodb_for_its_consumed_capacity() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("meter_shop", "MERCHANT").await;
    let kettle = api.create_product(&shop, "Kettle", 100, 3).await;
    let (_, amy) = api.member_with_points("meter_amy", 400).await;
    let order = api
        .post(
            "/api/members/orders/",
            json!({"product_id": kettle["id"], "quantity": 1}),
            Some(&amy),
        )
        .await;
    order.assert_status(201);
    let id = order.body["id"].as_str().unwrap();
    api.post(
        &format!("/api/members/orders/{id}/cancel/"),
        json!({}),
        Some(&amy),
    )
    .await
    .assert_status(200);
    api.get("/api/members/transactions/", Some(&amy))
        .await
        .assert_status(200);
    api.get("/api/merchants/orders/", Some(&shop))
        .await
        .assert_status(200);
    api.login("meter_amy", api_tests::PASSWORD)
        .await
        .assert_status(200);

    assert!(api.dynamodb_calls.total() > 10);
    assert_eq!(api.dynamodb_calls.not_metered(), Vec::<String>::new());
    let (read, write) = (
        api.metric_total(Metric::DynamoDbReadUnits),
        api.metric_total(Metric::DynamoDbWriteUnits),
    );
    assert!(read > 0.0 && write > 0.0, "{read} {write}");
}

//! What a page of a spread list costs (the catalogue over 4 index partitions, one merchant's orders
//! over 8; docs/data-model.md, "Hot index keys are spread"): walks each list to its end at 20 per
//! page and prints the Query calls per page (mean and most) and the median page latency, beside an
//! unspread list of the same size (a member's own orders, one partition). Run with
//! `cargo bench -p api-tests --bench spread_lists`.

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use api_tests::TestApi;
use serde_json::Value;

const PRODUCTS: usize = 200;
const ORDERS: usize = 400;
const LIMIT: usize = 20;

async fn walk_and_measure(api: &TestApi, label: &str, path: &str, token: &str) {
    let mut cursor: Option<String> = None;
    let mut calls = Vec::new();
    let mut latencies = Vec::new();
    let mut items = 0;
    loop {
        let mut url = format!("{path}?limit={LIMIT}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        api.dynamodb_calls.clear();
        let started = Instant::now();
        let page = api.get(&url, Some(token)).await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.status, 200);
        calls.push(
            api.dynamodb_calls
                .by_operation()
                .get("Query")
                .copied()
                .unwrap_or(0),
        );
        items += page.body["items"].as_array().unwrap().len();
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let mean = calls.iter().sum::<usize>() as f64 / calls.len() as f64;
    println!(
        "{label:42} {items:4} items in {:3} pages: Query calls per page {mean:4.1} (most {}), median page {:5.2} ms",
        calls.len(),
        calls.iter().max().unwrap(),
        latencies[latencies.len() / 2],
    );
}

#[tokio::main]
async fn main() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 50_000).await;
    let mut first: Option<Value> = None;
    for i in 0..PRODUCTS {
        let product = api
            .create_product(&shop, &format!("Gift {i}"), 1, 1_000)
            .await;
        first.get_or_insert(product);
    }
    let gift = first.unwrap()["id"].as_str().unwrap().to_string();
    for _ in 0..ORDERS {
        api.redeem(&mia, &gift, 1).await.assert_status(201);
    }
    println!("{PRODUCTS} products on sale, {ORDERS} orders of one member on one merchant; {LIMIT} per page");
    walk_and_measure(
        &api,
        "catalogue (4 partitions)",
        "/api/members/products/",
        &mia,
    )
    .await;
    walk_and_measure(
        &api,
        "merchant's orders (8 partitions)",
        "/api/merchants/orders/",
        &shop,
    )
    .await;
    walk_and_measure(
        &api,
        "member's orders (1 partition, unspread)",
        "/api/members/orders/",
        &mia,
    )
    .await;
}

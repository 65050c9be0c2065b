//! Filtered list cost: a member with 1,500 cancelled orders and one completed one asks for
//! `?status=completed&limit=1` and for the unfiltered `?limit=1`. Prints the median and p95 latency of
//! each over 50 requests, and what walking the filtered list to its one match costs. Run with
//! `cargo bench -p api-tests --bench filtered_lists` (figures in release mode), or quicker with
//! `cargo test -p api-tests --bench filtered_lists` (dev mode: compare the two rows, not the numbers).

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use api_tests::TestApi;
use serde_json::json;

const CANCELLED: usize = 1_500;
const SAMPLES: usize = 50;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

async fn time_requests(api: &TestApi, url: &str, token: &str) -> (f64, f64) {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let page = api.get(url, Some(token)).await;
        samples.push(started.elapsed());
        assert_eq!(page.status, 200);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.95),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let api = TestApi::start().await;
        let (_, shop, _) = api.signed_up("bench_shop", "MERCHANT").await;
        let product = api
            .create_product(&shop, "Sencha", 1, CANCELLED as i64 + 10)
            .await;
        let product_id = product["id"].as_str().unwrap().to_string();
        let (_, token) = api
            .member_with_points("bench_member", CANCELLED as i64 + 10)
            .await;
        let kept = api.redeem(&token, &product_id, 1).await;
        api.hand_over(&shop, &kept.body).await.assert_status(200);
        let seeding = Instant::now();
        for _ in 0..CANCELLED {
            let order = api.redeem(&token, &product_id, 1).await;
            let id = order.body["id"].as_str().unwrap().to_string();
            api.post(
                &format!("/api/members/orders/{id}/cancel/"),
                json!({}),
                Some(&token),
            )
            .await;
        }
        println!(
            "seeded {CANCELLED} cancelled orders and 1 completed in {:.1} s",
            seeding.elapsed().as_secs_f64()
        );

        let (p50, p95) = time_requests(&api, "/api/members/orders/?limit=1", &token).await;
        println!("unfiltered  ?limit=1                   p50 {p50:6.2} ms  p95 {p95:6.2} ms");
        let (p50, p95) = time_requests(
            &api,
            "/api/members/orders/?status=completed&limit=1",
            &token,
        )
        .await;
        println!("filtered    ?status=completed&limit=1  p50 {p50:6.2} ms  p95 {p95:6.2} ms (first page)");
        let (p50, p95) = time_requests(&api, "/api/members/orders/?limit=100", &token).await;
        println!("unfiltered  ?limit=100                  p50 {p50:6.2} ms  p95 {p95:6.2} ms");
        let (p50, p95) = time_requests(
            &api,
            "/api/members/orders/?status=completed&limit=100",
            &token,
        )
        .await;
        println!("filtered    ?status=completed&limit=100 p50 {p50:6.2} ms  p95 {p95:6.2} ms (first page)");

        let started = Instant::now();
        let found = api
            .walk("/api/members/orders/?status=completed", 1, &token)
            .await;
        assert_eq!(found.len(), 1);
        println!(
            "walking ?status=completed&limit=1 to its one match: {:.1} ms in total",
            started.elapsed().as_secs_f64() * 1000.0
        );
    });
}

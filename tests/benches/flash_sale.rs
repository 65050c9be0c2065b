//! The flash sale, measured: N members with points race over real HTTP, through the local host, for
//! one product with S units, each buying one unit at a time until it is sold out. Prints successful
//! redemptions per second, latency percentiles, and whether the invariants held.
//!
//!     cargo bench -p api-tests --bench flash_sale                 # N=200, S=1000
//!     FLASH_MEMBERS=50 FLASH_STOCK=200 cargo bench -p api-tests --bench flash_sale

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_api::{router, Emulator, LocalApi};
use serde_json::{json, Value};
use shared::Config;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Api {
    base: String,
    client: HttpClient,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        form: Option<String>,
    ) -> (u16, Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let bytes = if let Some(form) = form {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            Bytes::from(form)
        } else if let Some(body) = body {
            request = request.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&body).expect("json"))
        } else {
            Bytes::new()
        };
        let response = self
            .client
            .request(request.body(Full::new(bytes)).expect("request"))
            .await
            .expect("http");
        let status = response.status().as_u16();
        let raw = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
    }

    async fn member_with_points(&self, name: &str, amount: i64) -> String {
        let password = "benchmark password";
        let (status, _) = self
            .call("POST", "/api/auth/register/", Some(json!({"username": name, "email": format!("{name}@example.com"), "password": password, "role": "MEMBER"})), None, None)
            .await;
        assert_eq!(status, 201);
        let (_, login) = self
            .call(
                "POST",
                "/api/auth/login/",
                Some(json!({"username": name, "password": password})),
                None,
                None,
            )
            .await;
        let token = login["access"].as_str().expect("token").to_string();
        let (status, checkout) = self
            .call(
                "POST",
                "/api/members/points/recharge/",
                Some(json!({"amount": amount})),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, 201);
        let notification = api_tests::paid_notification(&checkout);
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(notification.iter())
            .finish();
        let (status, _) = self
            .call(
                "POST",
                "/api/payments/ecpay/callback/",
                None,
                None,
                Some(form),
            )
            .await;
        assert_eq!(status, 200);
        token
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

use api_tests::env_or;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let members = env_or("FLASH_MEMBERS", 200);
    let stock = env_or("FLASH_STOCK", 1000);
    // The product's stock shards: 0 lets the service choose from the stock (16 for 1,000 units).
    let shards = env_or("FLASH_SHARDS", 0);
    let price = 10;
    let points_each = 1000; // 100 units each: demand far beyond the stock

    // The local host, as `cargo run -p local-api` runs it: a file-backed emulator on its own thread.
    let dir = std::env::temp_dir().join(format!("flash-sale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let emulator = Emulator::open_file(&dir.join("points.db")).expect("emulator");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = Config::local(
        emulator.endpoint().to_string(),
        "points-redemption".into(),
        api_tests::TEST_SECRET.to_vec(),
    );
    config.payments = shared::config::PaymentsConfig::local(&base);
    let contention = local_api::contention::ContentionModel::from_env().expect("contention model");
    let mut host = LocalApi::connect_with(config, contention.clone())
        .await
        .expect("host");
    // Metrics are counted as on Lambda but kept in memory, so the figures print cleanly.
    host.ctx.metrics = shared::observe::MetricsSink::capture();
    let host = Arc::new(host);
    tokio::spawn(async move { axum::serve(listener, router(host)).await });

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(members)
        .build(connector);
    let api = Arc::new(Api { base, client });

    println!("flash sale: {members} members, one product with {stock} units, {price} points each");
    let setup = Instant::now();
    let password = "benchmark password";
    let (status, _) = api
        .call("POST", "/api/auth/register/", Some(json!({"username": "flash_shop", "email": "shop@example.com", "password": password, "role": "MERCHANT"})), None, None)
        .await;
    assert_eq!(status, 201);
    let (_, login) = api
        .call(
            "POST",
            "/api/auth/login/",
            Some(json!({"username": "flash_shop", "password": password})),
            None,
            None,
        )
        .await;
    let shop = login["access"].as_str().expect("token").to_string();
    let (status, product) = api
        .call(
            "POST",
            "/api/merchants/products/",
            Some(if shards > 0 {
                json!({"name": "Limited teapot", "points_required": price, "stock": stock, "stock_shards": shards})
            } else {
                json!({"name": "Limited teapot", "points_required": price, "stock": stock})
            }),
            Some(&shop),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let product_id = product["id"].as_str().expect("id").to_string();
    let mut tokens = Vec::new();
    for chunk in (0..members).collect::<Vec<_>>().chunks(16) {
        let batch = chunk.iter().map(|i| {
            let api = Arc::clone(&api);
            async move {
                api.member_with_points(&format!("fan{i}"), points_each)
                    .await
            }
        });
        tokens.extend(futures::future::join_all(batch).await);
    }
    println!(
        "setup (members registered and paid through ECPay notifications): {:.1?}",
        setup.elapsed()
    );

    let start = Instant::now();
    let tasks = tokens.into_iter().map(|token| {
        let (api, product_id) = (Arc::clone(&api), product_id.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let sent = Instant::now();
                let (status, body) = api
                    .call(
                        "POST",
                        "/api/members/orders/",
                        Some(json!({"product_id": product_id, "quantity": 1})),
                        Some(&token),
                        None,
                    )
                    .await;
                samples.push((status, sent.elapsed()));
                if status == 503 {
                    // Contention outlasted the server's retries: a client waits and tries again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if status != 201 {
                    assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (409, Some("insufficient_stock")),
                        "{body}"
                    );
                    return samples;
                }
            }
        })
    });
    let mut all = Vec::new();
    for task in futures::future::join_all(tasks).await {
        all.extend(task.expect("member task"));
    }
    let wall = start.elapsed();

    let placed: Vec<Duration> = all
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, d)| *d)
        .collect();
    let mut latencies: Vec<Duration> = all.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let mut placed_sorted = placed.clone();
    placed_sorted.sort();
    let unavailable = all.iter().filter(|(s, _)| *s == 503).count();
    let errors = all.iter().filter(|(s, _)| *s >= 500 && *s != 503).count();

    // Invariants, read back through the API.
    let (_, product) = api
        .call(
            "GET",
            &format!("/api/merchants/products/{product_id}/"),
            None,
            Some(&shop),
            None,
        )
        .await;
    let final_stock = product["stock"].as_i64().unwrap_or(-1);
    let mut held = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/merchants/orders/?limit=100&cursor={c}"),
            None => "/api/merchants/orders/?limit=100".to_string(),
        };
        let (_, page) = api.call("GET", &path, None, Some(&shop), None).await;
        held += page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|o| o["quantity"].as_i64().unwrap_or(0))
                    .sum::<i64>()
            })
            .unwrap_or(0);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let stock_ok = final_stock == 0 && held == stock as i64 && placed.len() == stock;

    println!(
        "requests: {} ({} placed, {} sold out, {} answered 503, {} other server errors)",
        all.len(),
        placed.len(),
        all.len() - placed.len() - errors - unavailable,
        unavailable,
        errors
    );
    println!("wall time: {wall:.2?}");
    if let Some(model) = &contention {
        let stats = model.stats();
        println!(
            "contention model: {} transactions committed, {} cancelled by conflicts, {} throttled; {} plain writes refused; {:.2} conflicts per placed order",
            stats.transactions_committed,
            stats.transactions_conflicted,
            stats.transactions_throttled,
            stats.writes_conflicted + stats.writes_throttled,
            stats.transactions_conflicted as f64 / placed.len().max(1) as f64
        );
    }
    println!(
        "successful redemptions/s: {:.0}",
        placed.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "latency, all requests:   p50 {:.1?}  p95 {:.1?}  p99 {:.1?}  max {:.1?}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "latency, placed orders:  p50 {:.1?}  p95 {:.1?}  p99 {:.1?}",
        percentile(&placed_sorted, 50.0),
        percentile(&placed_sorted, 95.0),
        percentile(&placed_sorted, 99.0)
    );
    println!(
        "invariants: stock {final_stock} (want 0), units in orders {held} (want {stock}), no 5xx but 503: {} => {}",
        errors == 0,
        if stock_ok && errors == 0 { "HELD" } else { "BROKEN" }
    );
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
    if !(stock_ok && errors == 0) {
        std::process::exit(1);
    }
}

//! A long run, measured: B buyers redeem one unit at a time, back to back, over real HTTP through
//! the local host (file-backed emulator, as `cargo run -p local-api` runs it), until N orders are
//! placed. Every 10,000 orders it prints that stretch's orders/s, the process's resident memory,
//! and the size of the database and its write-ahead log, so growth and slowdown show.
//!
//!     cargo bench -p api-tests --bench soak                      # N=100,000, B=8
//!     SOAK_ORDERS=30000 SOAK_BUYERS=8 cargo bench -p api-tests --bench soak

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use api_tests::over_http::{memory_mb, HttpApi};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_api::{router, Emulator, LocalApi};
use serde_json::json;
use shared::Config;

const EVERY: usize = 10_000;

use api_tests::env_or;

fn file_mb(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let orders = env_or("SOAK_ORDERS", 100_000);
    let buyers = env_or("SOAK_BUYERS", 8);
    let dir = std::env::temp_dir().join(format!("soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("points.db");
    let emulator = Emulator::open_file(&db).expect("emulator");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = Config::local(
        emulator.endpoint().to_string(),
        "points-redemption".into(),
        api_tests::TEST_SECRET.to_vec(),
    );
    let mut host = LocalApi::connect(config).await.expect("host");
    host.ctx.metrics = shared::observe::MetricsSink::Discard;
    let host = Arc::new(host);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(host).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let api = Arc::new(HttpApi {
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });

    let shop = api.signed_up("soak_shop", "MERCHANT").await;
    let (status, product) = api
        .post(
            "/api/merchants/products/",
            json!({"name": "Everyday tea", "points_required": 1, "stock": orders + buyers}),
            Some(&shop),
        )
        .await;
    assert_eq!(status, 201, "{product}");
    let product_id = product["id"].as_str().expect("id").to_string();
    let mut tokens = Vec::new();
    for i in 0..buyers {
        let token = api.signed_up(&format!("soaker{i}"), "MEMBER").await;
        // Points enough for the whole run, bought like anyone buys them (at most 50,000 a time).
        let mut funded = 0;
        while funded < orders as i64 + 10 {
            let amount = 50_000;
            api.buy_points(&token, amount).await;
            funded += amount;
        }
        tokens.push(token);
    }

    println!("soak: {orders} redemptions by {buyers} buyers, one unit each, back to back");
    println!(
        "{:>8}  {:>9}  {:>12}  {:>8}  {:>8}",
        "orders", "orders/s", "resident MB", "db MB", "wal MB"
    );
    let placed = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(std::sync::Mutex::new(Instant::now()));
    let tasks = tokens.into_iter().map(|token| {
        let (api, product_id, placed, window) = (
            Arc::clone(&api),
            product_id.clone(),
            Arc::clone(&placed),
            Arc::clone(&window),
        );
        let db = db.clone();
        tokio::spawn(async move {
            loop {
                if placed.load(Ordering::SeqCst) >= orders {
                    return;
                }
                let (status, body) = api
                    .post(
                        "/api/members/orders/",
                        json!({"product_id": product_id, "quantity": 1}),
                        Some(&token),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let n = placed.fetch_add(1, Ordering::SeqCst) + 1;
                if n % EVERY == 0 {
                    let mut started = window.lock().expect("window");
                    let rate = EVERY as f64 / started.elapsed().as_secs_f64();
                    *started = Instant::now();
                    let wal = db.with_extension("db-wal");
                    println!(
                        "{n:>8}  {rate:>9.0}  {:>12.0}  {:>8.1}  {:>8.1}",
                        memory_mb("VmRSS:"),
                        file_mb(&db),
                        file_mb(&wal)
                    );
                }
            }
        })
    });
    futures::future::join_all(tasks).await;
    drop(emulator);
    let _ = std::fs::remove_dir_all(&dir);
}

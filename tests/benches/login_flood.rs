//! A login flood, measured: C concurrent logins for made-up usernames (from 250 addresses, so
//! neither the per-user nor the per-address limit stops them) over real HTTP through the local host. Prints how
//! each was answered, how long the flood took, and the process's peak resident memory (client and
//! host together; the host is what grows). Every request must get an HTTP answer.
//!
//! Then the health of everything else: one buyer redeems 300 times, one order at a time, on a quiet
//! host and again while waves of the same flood keep arriving; it prints both latency distributions
//! (p50, p99, max) and how much of the host's CPU the flood's hashing took meanwhile.
//!
//!     cargo bench -p api-tests --bench login_flood                    # C=1000
//!     FLOOD_LOGINS=400 cargo bench -p api-tests --bench login_flood

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use api_tests::over_http::{memory_mb, HttpApi};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_api::{router, Emulator, LocalApi};
use shared::Config;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let logins: usize = std::env::var("FLOOD_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let emulator = Emulator::in_memory().expect("emulator");
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
    host.ctx.metrics = shared::observe::MetricsSink::capture();
    let host = Arc::new(host);
    let passwords = host.ctx.passwords.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router(host).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    // Each client connects from its own loopback address (all of 127/8 is the loopback on Linux),
    // so the host sees 250 different callers, as API Gateway would see 250 different sourceIps.
    let clients: Vec<Client<HttpConnector, Full<Bytes>>> = (1..=250u8)
        .map(|last| {
            let mut connector = HttpConnector::new();
            connector.set_local_address(Some(std::net::IpAddr::from([127, 0, 1, last])));
            Client::builder(TokioExecutor::new()).build(connector)
        })
        .collect();

    println!(
        "login flood: {logins} concurrent logins for unknown users; resident before: {:.0} MB",
        memory_mb("VmRSS:")
    );
    let started = Instant::now();
    let answers = flood_wave(&clients, &base, logins, "ghost").await;
    let wall = started.elapsed();
    println!("answers: {answers:?}");
    println!("wall time: {wall:.2?}");
    println!(
        "password hashes at once, at most: {} (budget {}); refused as overloaded: {}",
        passwords.peak_concurrency(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        passwords.refused()
    );
    println!(
        "resident memory: peak {:.0} MB, after the flood {:.0} MB",
        memory_mb("VmHWM:"),
        memory_mb("VmRSS:")
    );
    let unanswered = answers.get("no answer").copied().unwrap_or(0);
    println!(
        "every request answered: {}",
        if unanswered == 0 { "yes" } else { "NO" }
    );

    // Redemptions beside the flood.
    let buyer = {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(std::net::IpAddr::from([127, 0, 2, 1])));
        Client::builder(TokioExecutor::new()).build(connector)
    };
    let setup = HttpApi {
        client: buyer.clone(),
        base: base.clone(),
    };
    let member = setup.signed_up("flood_buyer", "MEMBER").await;
    let merchant = setup.signed_up("flood_seller", "MERCHANT").await;
    let (_, product) = setup
        .post(
            "/api/merchants/products/",
            serde_json::json!({"name": "Mug", "points_required": 1, "stock": 100000}),
            Some(&merchant),
        )
        .await;
    setup.buy_points(&member, 5000).await;
    let product_id = product["id"].as_str().expect("product id").to_string();
    let redeem = serde_json::json!({"product_id": product_id, "quantity": 1});

    let quiet = redemption_latencies(&setup, &member, &redeem, 300).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu_before = process_cpu_seconds();
    let flood_started = Instant::now();
    let flood = {
        let (stop, clients, base) = (stop.clone(), clients.clone(), base.clone());
        tokio::spawn(async move {
            let mut waves = 0;
            let mut answered: BTreeMap<String, usize> = BTreeMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                waves += 1;
                for (answer, count) in flood_wave(&clients, &base, logins, "wave").await {
                    *answered.entry(answer).or_default() += count;
                }
            }
            (waves, answered)
        })
    };
    let busy = redemption_latencies(&setup, &member, &redeem, 300).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (waves, answered) = flood.await.expect("flood");
    let flood_wall = flood_started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    println!("redemptions, one at a time (ms):   p50     p99     max");
    println!(
        "  quiet host                    {:7.2} {:7.2} {:7.2}",
        quiet.0, quiet.1, quiet.2
    );
    println!(
        "  during a login flood          {:7.2} {:7.2} {:7.2}",
        busy.0, busy.1, busy.2
    );
    println!(
        "flood meanwhile: {waves} waves of {logins} logins, answers {answered:?}; process CPU {:.0}% of {} cores",
        100.0 * cpu / flood_wall / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
}

/// `logins` logins at once for made-up users `{prefix}{i}`, spread over `clients` (one source
/// address each); how they were answered.
async fn flood_wave(
    clients: &[Client<HttpConnector, Full<Bytes>>],
    base: &str,
    logins: usize,
    prefix: &str,
) -> BTreeMap<String, usize> {
    let calls = (0..logins).map(|i| {
        let (client, base) = (clients[i % clients.len()].clone(), base.to_string());
        let body = format!(r#"{{"username":"{prefix}{i}","password":"not the password"}}"#);
        tokio::spawn(async move {
            let request = http::Request::post(format!("{base}/api/auth/login/"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            match client.request(request).await {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "no answer".to_string(),
            }
        })
    });
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for call in futures::future::join_all(calls).await {
        *answers
            .entry(call.unwrap_or_else(|_| "panicked".into()))
            .or_default() += 1;
    }
    answers
}

/// Seconds of CPU this process used (user + system), from /proc/self/stat.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name); 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// (p50, p99, max) in ms of `count` redemptions made one after another.
async fn redemption_latencies(
    api: &HttpApi,
    token: &str,
    body: &serde_json::Value,
    count: usize,
) -> (f64, f64, f64) {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let (status, answer) = api
            .post("/api/members/orders/", body.clone(), Some(token))
            .await;
        assert_eq!(status, 201, "{answer}");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

//! A login flood, measured: C concurrent logins for made-up usernames (from 250 addresses, so
//! neither the per-user nor the per-address limit stops them) over real HTTP through the local host. Prints how
//! each was answered, how long the flood took, and the process's peak resident memory (client and
//! host together; the host is what grows). Every request must get an HTTP answer.
//!
//!     cargo bench -p api-tests --bench login_flood                    # C=1000
//!     FLOOD_LOGINS=400 cargo bench -p api-tests --bench login_flood

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_api::{router, Emulator, LocalApi};
use shared::Config;

/// A field of /proc/self/status in MB (VmRSS now, VmHWM the peak).
fn memory_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

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
    let calls = (0..logins).map(|i| {
        let (client, base) = (clients[i % clients.len()].clone(), base.clone());
        tokio::spawn(async move {
            let body = format!(r#"{{"username":"ghost{i}","password":"not the password"}}"#);
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
}

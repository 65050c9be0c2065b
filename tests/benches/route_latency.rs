//! Latency as deployed: every DynamoDB call waits a draw of the latency model (`local_api::latency`,
//! `DYNAMODB_LATENCY`, default `p50=4ms,p99=12ms`), and each route is sent as Lambda serves it: many
//! clients at once, each waiting for its answer before sending the next (one request per instance).
//! Prints, per route, its DynamoDB round trips, p50 and p99, the embedded engine's CPU per request,
//! the p50 without it (on AWS, DynamoDB's own time is inside the modelled latency), and its target:
//! the round trips × the modelled p50 (a transaction's two phases count twice) + 3 ms.
//!
//! Run:
//!
//!     cargo bench -p api-tests --bench route_latency
//!     DYNAMODB_LATENCY=p50=6ms,p99=25ms LATENCY_CLIENTS=64 cargo bench -p api-tests --bench route_latency

// A harness: a failed unwrap is a failed run, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::{env_or, paid_notification, TestApi};
use serde_json::{json, Value};

/// What each client holds.
struct Client {
    member: String,
}

struct Fixture {
    api: Arc<TestApi>,
    clients: Vec<Client>,
    shop: String,
    operator: String,
    product: String,
}

#[derive(Clone, Copy)]
enum Route {
    Balance,
    Catalogue,
    Redeem,
    MyOrders,
    Ledger,
    Recharge,
    Notification,
    MerchantOrders,
    AuditLog,
}

impl Route {
    const ALL: [Route; 9] = [
        Route::Balance,
        Route::Catalogue,
        Route::Redeem,
        Route::MyOrders,
        Route::Ledger,
        Route::Recharge,
        Route::Notification,
        Route::MerchantOrders,
        Route::AuditLog,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Balance => "GET /api/members/points/",
            Route::Catalogue => "GET /api/members/products/",
            Route::Redeem => "POST /api/members/orders/",
            Route::MyOrders => "GET /api/members/orders/",
            Route::Ledger => "GET /api/members/transactions/",
            Route::Recharge => "POST /api/members/points/recharge/",
            Route::Notification => "POST /api/payments/ecpay/callback/",
            Route::MerchantOrders => "GET /api/merchants/orders/",
            Route::AuditLog => "GET /api/admin/audit/",
        }
    }
}

fn request(
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
    key: bool,
) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if key {
        builder = builder.header("idempotency-key", uuid::Uuid::new_v4().to_string());
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap(),
        None => builder.body(Vec::new()).unwrap(),
    }
}

/// Sends `route` once for `client`: its latency (what the client waited for the answer) and its
/// DynamoDB round trips.
async fn once(fixture: &Fixture, client: &Client, route: Route) -> (Duration, usize) {
    let api = &fixture.api;
    let member = client.member.as_str();
    let built = match route {
        Route::Balance => request("GET", "/api/members/points/", None, member, false),
        Route::Catalogue => request(
            "GET",
            "/api/members/products/?limit=20",
            None,
            member,
            false,
        ),
        Route::Redeem => request(
            "POST",
            "/api/members/orders/",
            Some(json!({"product_id": fixture.product, "quantity": 1})),
            member,
            true,
        ),
        Route::MyOrders => request("GET", "/api/members/orders/", None, member, false),
        Route::Ledger => request("GET", "/api/members/transactions/", None, member, false),
        Route::Recharge => request(
            "POST",
            "/api/members/points/recharge/",
            Some(json!({"amount": 100})),
            member,
            false,
        ),
        Route::Notification => {
            // The recharge it notifies is made first, outside the measurement.
            let started = api
                .send(request(
                    "POST",
                    "/api/members/points/recharge/",
                    Some(json!({"amount": 100})),
                    member,
                    false,
                ))
                .await;
            assert_eq!(started.status, 201, "{}", started.raw_text());
            api_tests::form_request(
                "/api/payments/ecpay/callback/",
                &paid_notification(&started.body),
            )
        }
        Route::MerchantOrders => {
            request("GET", "/api/merchants/orders/", None, &fixture.shop, false)
        }
        Route::AuditLog => request("GET", "/api/admin/audit/", None, &fixture.operator, false),
    };
    let before = round_trips(api);
    let started = Instant::now();
    let answer = api.send(built).await;
    let waited = started.elapsed();
    // Exact when the request runs alone (the first pass); mixed with others' when it does not.
    let trips = round_trips(api) - before;
    assert!(
        answer.status.is_success(),
        "{}: {} {}",
        route.name(),
        answer.status,
        answer.raw_text()
    );
    if matches!(route, Route::Recharge) {
        // Paid afterwards, outside the measurement: a member holds at most 5 unpaid recharges.
        let paid = api
            .send(api_tests::form_request(
                "/api/payments/ecpay/callback/",
                &paid_notification(&answer.body),
            ))
            .await;
        assert_eq!(paid.status, 200);
    }
    (waited, trips)
}

/// DynamoDB round trips so far: each call once, a transaction's two phases twice.
fn round_trips(api: &TestApi) -> usize {
    api.dynamodb_calls
        .by_operation()
        .iter()
        .map(|(operation, count)| {
            if operation.starts_with("Transact") {
                2 * count
            } else {
                *count
            }
        })
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// CPU seconds the embedded engine's threads (named `dynamodb…`) have used so far (Linux's
/// `/proc/self/task/*/stat`, in clock ticks of 1/100 s; 0 elsewhere).
fn engine_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with("dynamodb") {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        for index in [11, 12] {
            ticks += fields.get(index).and_then(|f| f.parse().ok()).unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let raw = std::env::var("DYNAMODB_LATENCY").unwrap_or_else(|_| "p50=4ms,p99=12ms".into());
    let model = local_api::latency::LatencyModel::parse(&raw).unwrap();
    let clients: usize = env_or("LATENCY_CLIENTS", 32);
    let rounds: usize = env_or("LATENCY_ROUNDS", 10);
    let api = TestApi::start_with_latency(model).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Tea", 10, 1_000_000).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members = api.members_with_points("member", clients, 50_000).await;
    let fixture = Arc::new(Fixture {
        api: Arc::clone(&api),
        clients: members
            .into_iter()
            .map(|(_, member)| Client { member })
            .collect(),
        shop,
        operator,
        product,
    });
    let p50 = model.p50.as_secs_f64() * 1000.0;
    println!(
        "== route latency: DynamoDB modelled at {raw}; {clients} clients at once, {rounds} requests each per route"
    );
    println!(
        "{:<38} {:>6} {:>9} {:>9} {:>9} {:>12} {:>10}  within",
        "route", "trips", "p50 ms", "p99 ms", "engine ms", "p50-engine", "target ms"
    );
    for route in Route::ALL {
        // Its round trips: one request alone.
        let (_, trips) = once(&fixture, &fixture.clients[0], route).await;
        let engine_before = engine_cpu_seconds();
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let fixture = Arc::clone(&fixture);
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(rounds);
                    for _ in 0..rounds {
                        waits.push(once(&fixture, &fixture.clients[i], route).await.0);
                    }
                    waits
                })
            })
            .collect();
        let mut waits = Vec::new();
        for task in tasks {
            waits.extend(task.await.unwrap());
        }
        // The embedded engine's own time per request: on AWS, DynamoDB's service time is inside
        // the modelled latency, so locally it is counted twice unless taken out.
        let engine_ms = (engine_cpu_seconds() - engine_before) * 1000.0 / waits.len() as f64;
        waits.sort();
        let (median, tail) = (percentile(&waits, 0.50), percentile(&waits, 0.99));
        let target = trips as f64 * p50 + 3.0;
        let as_deployed = median - engine_ms;
        println!(
            "{:<38} {:>6} {:>9.1} {:>9.1} {:>9.2} {:>12.1} {:>10.1}  {}",
            route.name(),
            trips,
            median,
            tail,
            engine_ms,
            as_deployed,
            target,
            if as_deployed <= target { "yes" } else { "NO" }
        );
    }
}

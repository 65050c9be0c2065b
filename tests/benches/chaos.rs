//! Chaos: thousands of mixed operations from many members, merchants and an operator while DynamoDB
//! fails calls the ways AWS documents (`local_api::faults`: throttling, internal errors, transaction
//! conflicts, and timeouts after the write committed), then the invariants, printed:
//! - every balance equals the sum of its ledger (and its kinds theirs), Σ balances = Σ ledger;
//! - every product's stock plus its live orders is what it started with;
//! - no payment credited twice (one RECHARGE row per paid payment, none for an unpaid one);
//! - every answer a 2xx, a 4xx the client caused, or a 503 with `Retry-After`, never a 500;
//! - every request retried with its Idempotency-Key got the first answer.
//!
//! Run:
//!
//!     cargo bench -p api-tests --bench chaos                  # 10,000 operations, 5% faults
//!     CHAOS_OPERATIONS=2000 CHAOS_FAULT_RATE=0.1 cargo bench -p api-tests --bench chaos

// A harness: a failed unwrap is a failed run, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use api_tests::{env_or, paid_notification, TestApi, TestResponse};
use rand::Rng;
use serde_json::{json, Value};

const MEMBERS: usize = 24;
const MERCHANTS: usize = 4;
const PRODUCTS_PER_MERCHANT: usize = 3;
const STOCK: i64 = 400;
const WORKERS: usize = 24;

/// What the run saw.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    /// Each refusal (4xx, 503), by operation and code.
    refusals: BTreeMap<String, usize>,
    /// 500s, and 503s without Retry-After: answers the client must never get.
    defects: Vec<String>,
    replays: usize,
    replay_mismatches: Vec<String>,
    /// Pickup codes of orders believed pending, by merchant.
    pending: Vec<(usize, String, String)>,
    recharges: Vec<String>,
}

struct Chaos {
    api: Arc<TestApi>,
    members: Vec<(String, String)>,
    shops: Vec<String>,
    products: Vec<(usize, String)>,
    operator: String,
    seen: Mutex<Seen>,
}

impl Chaos {
    fn note(&self, what: &str, answer: &TestResponse) {
        let status = answer.status.as_u16();
        let mut seen = self.seen.lock().unwrap();
        *seen.statuses.entry(status).or_default() += 1;
        if status >= 400 {
            *seen
                .refusals
                .entry(format!("{what} {status} {}", answer.error_code()))
                .or_default() += 1;
        }
        if status >= 500 && (status != 503 || answer.header("retry-after").is_none()) {
            seen.defects
                .push(format!("{what}: {status} {}", answer.raw_text()));
        }
    }

    /// Sends `request()` until it is not a 503 (each answer noted), at most 8 times.
    async fn send(&self, what: &str, request: impl Fn() -> http::Request<Vec<u8>>) -> TestResponse {
        let mut answer = self.api.send(request()).await;
        self.note(what, &answer);
        for _ in 0..8 {
            if answer.status.as_u16() != 503 {
                break;
            }
            answer = self.api.send(request()).await;
            self.note(what, &answer);
        }
        answer
    }

    fn json_request(
        method: &str,
        path: &str,
        body: &Value,
        token: &str,
        key: Option<&str>,
    ) -> http::Request<Vec<u8>> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder.body(serde_json::to_vec(body).unwrap()).unwrap()
    }

    /// A request with an Idempotency-Key, retried through 503s; sometimes sent once more after its
    /// answer, which must be the same.
    async fn idempotent(&self, what: &str, path: &str, body: Value, token: &str) -> TestResponse {
        let key = uuid::Uuid::new_v4().to_string();
        let request = || Self::json_request("POST", path, &body, token, Some(&key));
        let replay = rand::thread_rng().gen_bool(0.2);
        let first = self.send(what, request).await;
        if first.status.is_success() && replay {
            let again = self.send(what, request).await;
            let mut seen = self.seen.lock().unwrap();
            seen.replays += 1;
            if again.status != first.status || again.body != first.body {
                seen.replay_mismatches.push(format!(
                    "{what}: first {} {}, replay {} {}",
                    first.status,
                    first.raw_text(),
                    again.status,
                    again.raw_text()
                ));
            }
        }
        first
    }

    async fn one(&self) {
        let (member, roll) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(0..self.members.len()), rng.gen_range(0..100))
        };
        let token = self.members[member].1.clone();
        match roll {
            // Redemptions, the bulk of a sale.
            0..=39 => {
                let (merchant, product) = {
                    let mut rng = rand::thread_rng();
                    self.products[rng.gen_range(0..self.products.len())].clone()
                };
                let placed = self
                    .idempotent(
                        "redeem",
                        "/api/members/orders/",
                        json!({"product_id": product, "quantity": 1}),
                        &token,
                    )
                    .await;
                if placed.status.as_u16() == 201 {
                    let id = placed.body["id"].as_str().unwrap().to_string();
                    let code = placed.body["pickup_code"].as_str().unwrap().to_string();
                    self.seen.lock().unwrap().pending.push((merchant, id, code));
                }
            }
            // A merchant hands a gift over, or a member cancels one.
            40..=59 => {
                let picked = {
                    let mut seen = self.seen.lock().unwrap();
                    if seen.pending.is_empty() {
                        None
                    } else {
                        let i = rand::thread_rng().gen_range(0..seen.pending.len());
                        Some(seen.pending.swap_remove(i))
                    }
                };
                let Some((merchant, order, code)) = picked else {
                    return;
                };
                if roll < 52 {
                    let shop = self.shops[merchant].clone();
                    self.send("hand over", || {
                        Self::json_request(
                            "POST",
                            "/api/merchants/orders/redeem-code/",
                            &json!({"code": code}),
                            &shop,
                            None,
                        )
                    })
                    .await;
                } else {
                    let owner = self.owner_of(&order).await;
                    if let Some(owner) = owner {
                        self.send("cancel", || {
                            Self::json_request(
                                "POST",
                                &format!("/api/members/orders/{order}/cancel/"),
                                &json!({}),
                                &owner,
                                None,
                            )
                        })
                        .await;
                    }
                }
            }
            // An operator's adjustment, either way.
            60..=69 => {
                let (member_id, amount) = {
                    let mut rng = rand::thread_rng();
                    (self.members[member].0.clone(), rng.gen_range(-30..=50))
                };
                if amount != 0 {
                    self.idempotent(
                        "adjust",
                        &format!("/api/admin/members/{member_id}/points/adjustments/"),
                        json!({"amount": amount, "reason": "chaos"}),
                        &self.operator,
                    )
                    .await;
                }
            }
            // A recharge, its notification duplicated (and sometimes repeated late).
            70..=89 => {
                let amount = rand::thread_rng().gen_range(100..=300);
                let started = self
                    .send("recharge", || {
                        Self::json_request(
                            "POST",
                            "/api/members/points/recharge/",
                            &json!({"amount": amount}),
                            &token,
                            None,
                        )
                    })
                    .await;
                if started.status.as_u16() == 201 {
                    let notification = paid_notification(&started.body);
                    for _ in 0..2 {
                        self.send("notify", || {
                            api_tests::form_request("/api/payments/ecpay/callback/", &notification)
                        })
                        .await;
                    }
                    self.seen
                        .lock()
                        .unwrap()
                        .recharges
                        .push(started.body["merchant_trade_no"].as_str().unwrap().into());
                }
            }
            // A refund of a few purchased points.
            _ => {
                self.idempotent(
                    "refund",
                    "/api/members/points/refunds/",
                    json!({"points": 10}),
                    &token,
                )
                .await;
            }
        }
    }

    async fn owner_of(&self, order: &str) -> Option<String> {
        let id = shared::domain::OrderId::parse(order)?;
        let found = self.api.ctx.store.get_order(&id).await.ok()??;
        self.members
            .iter()
            .find(|(member, _)| *member == found.member_id.to_string())
            .map(|(_, token)| token.clone())
    }
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_stack_size(16 * 1024 * 1024)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let operations: usize = env_or("CHAOS_OPERATIONS", 10_000);
    let rate: f64 = env_or("CHAOS_FAULT_RATE", 0.05);
    let faults = local_api::faults::FaultModel::new(0.0).unwrap();
    let api = TestApi::start_with_faults(faults.clone()).await;
    // Set up without faults: the run is about what happens under them.
    let (_, operator) = api.signed_in_admin("olive").await;
    let members = api.members_with_points("member", MEMBERS, 2_000).await;
    let mut shops = Vec::new();
    let mut products = Vec::new();
    for m in 0..MERCHANTS {
        let (_, shop, _) = api.signed_up(&format!("shop{m}"), "MERCHANT").await;
        for p in 0..PRODUCTS_PER_MERCHANT {
            let product = api
                .create_product(&shop, &format!("gift {m}-{p}"), 20 + 10 * p as i64, STOCK)
                .await;
            products.push((m, product["id"].as_str().unwrap().to_string()));
        }
        shops.push(shop);
    }
    let chaos = Arc::new(Chaos {
        api: Arc::clone(&api),
        members,
        shops,
        products,
        operator,
        seen: Mutex::default(),
    });

    faults.set_rate(rate).unwrap();
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let chaos = Arc::clone(&chaos);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while done.fetch_add(1, Ordering::Relaxed) < operations {
                    Box::pin(chaos.one()).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    faults.set_rate(0.0).unwrap();

    // The invariants, with faults off.
    let member_ids: Vec<String> = chaos.members.iter().map(|(id, _)| id.clone()).collect();
    api.assert_points_invariants(&member_ids).await;
    let mut balances = 0;
    let mut ledger = 0;
    let mut recharges_by_payment: HashMap<String, usize> = HashMap::new();
    for id in &member_ids {
        let member = api_tests::user_id(id);
        balances += api
            .ctx
            .store
            .get_point_account(&member)
            .await
            .unwrap()
            .unwrap()
            .balance;
        for row in api.ctx.store.all_ledger_rows(&member).await.unwrap() {
            ledger += row.amount;
            if row.transaction_type == shared::domain::TransactionType::Recharge {
                *recharges_by_payment
                    .entry(row.payment_id.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(balances, ledger, "Σ balances is not Σ ledger");
    for (m, product) in &chaos.products {
        api.assert_stock_invariant(&chaos.shops[*m], product, STOCK)
            .await;
    }
    let seen = std::mem::take(&mut *chaos.seen.lock().unwrap());
    let mut credited_twice = Vec::new();
    let mut paid = 0;
    for trade_no in &seen.recharges {
        let payment = api
            .ctx
            .store
            .get_payment(&api_tests::trade_no(trade_no))
            .await
            .unwrap()
            .unwrap();
        // The RECHARGE row names the paid payment's MerchantTradeNo.
        let rows = recharges_by_payment.get(trade_no).copied().unwrap_or(0);
        if payment.status == shared::domain::PaymentStatus::Paid {
            paid += 1;
        }
        let expected = usize::from(payment.status == shared::domain::PaymentStatus::Paid);
        if rows != expected {
            credited_twice.push(format!(
                "{trade_no}: {:?} with {rows} RECHARGE rows",
                payment.status
            ));
        }
    }

    println!(
        "== chaos: {operations} operations by {WORKERS} clients in {:.1} s under {:.0}% faults",
        elapsed.as_secs_f64(),
        rate * 100.0
    );
    println!("   faults: {}", faults.counts.summary());
    println!("   answers: {:?}", seen.statuses);
    println!("   refusals: {:?}", seen.refusals);
    println!(
        "   Σ balances {balances} = Σ ledger {ledger}; {} members' ledgers exact",
        member_ids.len()
    );
    println!("   stock conserved on {} products", chaos.products.len());
    println!(
        "   recharges: {} started, {paid} paid, {} credited other than once",
        seen.recharges.len(),
        credited_twice.len()
    );
    println!(
        "   idempotent replays: {} sent, {} differed from the first answer",
        seen.replays,
        seen.replay_mismatches.len()
    );
    println!(
        "   answers a client must never get (500, 503 without Retry-After): {}",
        seen.defects.len()
    );
    for defect in seen.defects.iter().take(10) {
        println!("     {defect}");
    }
    for mismatch in seen.replay_mismatches.iter().take(10) {
        println!("     {mismatch}");
    }
    for twice in credited_twice.iter().take(10) {
        println!("     {twice}");
    }
    assert!(
        seen.defects.is_empty() && seen.replay_mismatches.is_empty() && credited_twice.is_empty(),
        "chaos found defects"
    );
    println!("== chaos: every invariant held");
}

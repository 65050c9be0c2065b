//! What each user journey costs in DynamoDB capacity units: each operation is run `CAPACITY_RUNS`
//! times (default 20, each by its own member), and the bench prints the read and write units per
//! operation as DynamoDB reported them (`ReturnConsumedCapacity = INDEXES`, read off the wire),
//! where they were spent (the table and each index), and the units the request's own metrics
//! counted (`DynamoDbReadUnits` / `DynamoDbWriteUnits`), which must be the same. docs/cost.md turns
//! these figures into a bill.
//!
//! Run:
//!
//!     cargo bench -p api-tests --bench capacity

// A harness: a failed unwrap is a failed run, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use api_tests::{env_or, paid_notification, TestApi, PASSWORD};
use serde_json::{json, Value};
use shared::observe::Metric;

/// What the runs of one operation consumed, summed.
#[derive(Default)]
struct Tally {
    runs: usize,
    read: f64,
    write: f64,
    /// Write units by where they were spent (`table`, `gsi1`…).
    write_by_target: BTreeMap<String, f64>,
    read_by_target: BTreeMap<String, f64>,
    /// Items written in transactions, and the table units they cost.
    transacted_items: usize,
    transacted_table_units: f64,
    calls: usize,
    /// What the requests' metrics counted.
    emitted_read: f64,
    emitted_write: f64,
}

impl Tally {
    fn per_run(&self, value: f64) -> f64 {
        value / self.runs.max(1) as f64
    }
}

/// Runs `op` once with the recorder and the metrics cleared, and adds what it consumed to `tally`.
async fn measure<F, Fut>(api: &TestApi, tally: &mut Tally, op: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    api.dynamodb_calls.clear();
    let before = (
        api.metric_total(Metric::DynamoDbReadUnits),
        api.metric_total(Metric::DynamoDbWriteUnits),
    );
    op().await;
    tally.runs += 1;
    tally.emitted_read += api.metric_total(Metric::DynamoDbReadUnits) - before.0;
    tally.emitted_write += api.metric_total(Metric::DynamoDbWriteUnits) - before.1;
    for call in api.dynamodb_calls.consumed() {
        tally.calls += 1;
        let (total, by_target) = if call.is_write() {
            (&mut tally.write, &mut tally.write_by_target)
        } else {
            (&mut tally.read, &mut tally.read_by_target)
        };
        *total += call.total();
        for (target, units) in &call.units {
            *by_target.entry(target.clone()).or_insert(0.0) += units;
        }
        if call.operation == "TransactWriteItems" {
            tally.transacted_items += call.items;
            tally.transacted_table_units += call.units.get("table").copied().unwrap_or(0.0);
        }
    }
}

fn targets(tally: &Tally, map: &BTreeMap<String, f64>) -> String {
    map.iter()
        .filter(|(_, units)| **units > 0.0)
        .map(|(target, units)| format!("{target} {:.2}", tally.per_run(*units)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = env_or("CAPACITY_RUNS", 20);
    let api: Arc<TestApi> = TestApi::start().await;
    let (_, shop, _) = api.signed_up("units_shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Lantern", 100, 100_000).await;
    let product_id = product["id"].as_str().unwrap().to_string();

    let mut tallies: Vec<(&str, Tally)> = Vec::new();
    let mut sign_up = Tally::default();
    let mut login = Tally::default();
    let mut recharge = Tally::default();
    let mut notification = Tally::default();
    let mut redeem = Tally::default();
    let mut hand_over = Tally::default();
    let mut cancel = Tally::default();
    let mut balance = Tally::default();
    let mut orders_page = Tally::default();
    let mut ledger_page = Tally::default();
    let mut merchant_page = Tally::default();
    let mut refresh = Tally::default();
    let mut checkout_opened = Tally::default();
    let mut scheduled = Tally::default();
    let mut catalogue = Tally::default();

    for i in 0..runs {
        let name = format!("units_member_{i}");
        measure(&api, &mut sign_up, || async {
            api.register(&name, "MEMBER").await.assert_status(201);
        })
        .await;
        let mut token = String::new();
        let mut refresh_token = String::new();
        measure(&api, &mut login, || async {
            let answer = api.login(&name, PASSWORD).await;
            answer.assert_status(200);
            token = answer.body["access"].as_str().unwrap().to_string();
            refresh_token = answer.body["refresh"].as_str().unwrap().to_string();
        })
        .await;
        measure(&api, &mut refresh, || async {
            api.post(
                "/api/auth/refresh/",
                json!({"refresh": refresh_token}),
                None,
            )
            .await
            .assert_status(200);
        })
        .await;
        measure(&api, &mut catalogue, || async {
            api.get("/api/members/products/?limit=20", Some(&token))
                .await
                .assert_status(200);
        })
        .await;
        let mut checkout = Value::Null;
        measure(&api, &mut recharge, || async {
            checkout = api.start_recharge(&token, 1_000).await;
        })
        .await;
        let link = checkout["checkout_url"].as_str().unwrap();
        let path = link[link.find("/api/").unwrap()..].to_string();
        measure(&api, &mut checkout_opened, || async {
            api.get(&path, None).await.assert_status(200);
        })
        .await;
        measure(&api, &mut notification, || async {
            let answer = api.notify(&paid_notification(&checkout)).await;
            assert_eq!(answer.raw, b"1|OK");
        })
        .await;
        let mut kept = Value::Null;
        measure(&api, &mut redeem, || async {
            let placed = api.redeem(&token, &product_id, 1).await;
            placed.assert_status(201);
            kept = placed.body;
        })
        .await;
        measure(&api, &mut hand_over, || async {
            api.hand_over(&shop, &kept).await.assert_status(200);
        })
        .await;
        let placed = api.redeem(&token, &product_id, 2).await;
        placed.assert_status(201);
        let id = placed.body["id"].as_str().unwrap().to_string();
        measure(&api, &mut cancel, || async {
            api.post(
                &format!("/api/members/orders/{id}/cancel/"),
                json!({}),
                Some(&token),
            )
            .await
            .assert_status(200);
        })
        .await;
        measure(&api, &mut balance, || async {
            api.get("/api/members/points/", Some(&token))
                .await
                .assert_status(200);
        })
        .await;
        measure(&api, &mut orders_page, || async {
            api.get("/api/members/orders/?limit=20", Some(&token))
                .await
                .assert_status(200);
        })
        .await;
        measure(&api, &mut ledger_page, || async {
            api.get("/api/members/transactions/?limit=20", Some(&token))
                .await
                .assert_status(200);
        })
        .await;
        measure(&api, &mut merchant_page, || async {
            api.get("/api/merchants/orders/?limit=20", Some(&shop))
                .await
                .assert_status(200);
        })
        .await;
    }
    // One run of the scheduled function (every job it runs), on the table the runs above left.
    for _ in 0..runs {
        measure(&api, &mut scheduled, || async {
            shared::observe::in_job(&api.ctx.metrics, async {
                fn_reconcile::run(&api.ctx).await.unwrap();
                fn_reconcile::run_fulfilment(&api.ctx).await.unwrap();
                fn_reconcile::run_refunds(&api.ctx).await.unwrap();
                fn_reconcile::run_invoices(&api.ctx).await.unwrap();
                fn_reconcile::run_expiry(&api.ctx).await.unwrap();
                fn_reconcile::run_settlements(&api.ctx).await.unwrap();
            })
            .await;
        })
        .await;
    }
    tallies.push(("sign-up (POST /api/auth/register/)", sign_up));
    tallies.push(("login (POST /api/auth/login/)", login));
    tallies.push(("token refresh (POST /api/auth/refresh/)", refresh));
    tallies.push(("catalogue page (GET /api/members/products/)", catalogue));
    tallies.push(("recharge started (POST …/points/recharge/)", recharge));
    tallies.push(("checkout link opened (the signed form)", checkout_opened));
    tallies.push(("ECPay's paid notification (callback)", notification));
    tallies.push(("redemption (POST /api/members/orders/)", redeem));
    tallies.push(("pickup by code (merchant)", hand_over));
    tallies.push(("cancellation (member)", cancel));
    tallies.push(("balance (GET /api/members/points/)", balance));
    tallies.push(("orders page (GET /api/members/orders/)", orders_page));
    tallies.push(("ledger page (GET /api/members/transactions/)", ledger_page));
    tallies.push(("merchant's orders page", merchant_page));
    tallies.push(("scheduled run (every job, idle queues)", scheduled));

    println!("== DynamoDB capacity per operation ({runs} runs each, units per run; on-demand bills read and write request units alike)");
    println!(
        "{:<46} {:>6} {:>7} {:>7}  {:<40} {:<30} transactions: items, table units",
        "operation", "calls", "read", "write", "write units spent on", "read units spent on",
    );
    let mut mismatches = 0;
    for (name, tally) in &tallies {
        let transacted = if tally.transacted_items > 0 {
            format!(
                "{:.1} items, {:.1} units ({:.2}/item)",
                tally.per_run(tally.transacted_items as f64),
                tally.per_run(tally.transacted_table_units),
                tally.transacted_table_units / tally.transacted_items as f64
            )
        } else {
            String::new()
        };
        println!(
            "{:<46} {:>6.1} {:>7.2} {:>7.2}  {:<40} {:<30} {}",
            name,
            tally.per_run(tally.calls as f64),
            tally.per_run(tally.read),
            tally.per_run(tally.write),
            targets(tally, &tally.write_by_target),
            targets(tally, &tally.read_by_target),
            transacted
        );
        if (tally.emitted_read - tally.read).abs() > 1e-9
            || (tally.emitted_write - tally.write).abs() > 1e-9
        {
            mismatches += 1;
            println!(
                "   !! the request's metrics counted read {:.2} write {:.2}",
                tally.per_run(tally.emitted_read),
                tally.per_run(tally.emitted_write)
            );
        }
    }
    println!("== a transaction's item costs 2 write units per started KB: above 2.00/item, some item is over 1 KB");
    // The largest item of each kind: a write costs a unit per started KB of the larger of the item
    // before and after (twice in a transaction), so these are where units go.
    let mut largest: BTreeMap<String, usize> = BTreeMap::new();
    for (kind, size) in api.ctx.store.item_sizes().await.unwrap() {
        let entry = largest.entry(kind).or_insert(0);
        *entry = (*entry).max(size);
    }
    let mut largest: Vec<(String, usize)> = largest.into_iter().collect();
    largest.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    println!("== largest item of each kind (bytes, as DynamoDB sizes them)");
    for (kind, size) in largest.iter().take(12) {
        let flag = if *size > 1024 { "  > 1 KB" } else { "" };
        println!("   {kind:<40} {size:>6}{flag}");
    }
    assert_eq!(mismatches, 0, "metrics disagree with what DynamoDB charged");
}

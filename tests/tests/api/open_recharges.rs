//! Unpaid recharges cannot starve reconciliation: a member holds at most five open at once (told
//! which ones when refused), and a payment checked and still open goes to the back of the queue,
//! so a real member's lost payment is found within a few runs whatever the backlog.

use std::time::Duration;

use api_tests::{paid_notification, TestApi};
use futures::future::join_all;
use serde_json::{json, Value};

async fn open_recharge(api: &TestApi, token: &str, amount: i64) -> api_tests::TestResponse {
    api.post(
        "/api/members/points/recharge/",
        json!({"amount": amount}),
        Some(token),
    )
    .await
}

fn trade_no_of(checkout: &Value) -> String {
    checkout["merchant_trade_no"].as_str().unwrap().to_string()
}

async fn balance(api: &TestApi, token: &str) -> i64 {
    api.get("/api/members/points/", Some(token)).await.body["balance"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_sixth_open_recharge_is_refused_naming_the_five_and_paying_one_frees_a_slot() {
    let api = TestApi::start().await;
    let (member, token, _) = api.signed_up("amy", "MEMBER").await;
    let mut open = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        open.push(api.start_recharge(&token, amount).await);
    }
    let before = api.item_count().await;
    let sixth = open_recharge(&api, &token, 600).await;
    sixth.assert_status(409);
    assert_eq!(sixth.error_code(), "too_many_open_recharges");
    let mut named: Vec<String> = sixth.body["error"]["fields"]["open_recharges"]
        .as_str()
        .unwrap()
        .split(", ")
        .map(str::to_string)
        .collect();
    named.sort();
    let mut expected: Vec<String> = open.iter().map(trade_no_of).collect();
    expected.sort();
    assert_eq!(named, expected);
    assert_eq!(api.item_count().await, before, "the refusal wrote nothing");

    // Paid, one recharge leaves the open ones: a new one may start.
    assert_eq!(api.notify(&paid_notification(&open[0])).await.raw, b"1|OK");
    open_recharge(&api, &token, 600).await.assert_status(201);
    open_recharge(&api, &token, 700).await.assert_status(409);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn twenty_recharges_opened_at_once_by_one_member_open_exactly_five() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let answers = join_all((0..20).map(|_| open_recharge(&api, &token, 100))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.error_code() == "too_many_open_recharges")
        .count();
    assert_eq!((created, refused), (5, 15));
    let listed = api.walk("/api/members/payments/", 100, &token).await;
    assert_eq!(listed.len(), 5);
}

#[tokio::test]
async fn an_expired_recharge_frees_its_slot() {
    let api = TestApi::start_with(|config| {
        config.payments.reconcile_after = Duration::ZERO;
        config.payments.checkout_window = Duration::from_secs(3600);
        config.payments.query_spacing = Duration::from_millis(250);
        config.payments.max_open_recharges = 1;
    })
    .await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    api.start_recharge(&token, 100).await;
    open_recharge(&api, &token, 100).await.assert_status(409);
    api.advance_clock(Duration::from_secs(3601));
    let token = api.login("amy", api_tests::PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    open_recharge(&api, &token, 100).await.assert_status(201);
}

#[tokio::test]
async fn a_backlog_of_unpaid_recharges_cannot_keep_a_lost_payment_from_being_found() {
    // Three queries per run, so a backlog of six unpaid recharges fills two runs.
    let api = TestApi::start_with(|config| {
        config.payments.reconcile_after = Duration::ZERO;
        config.payments.reconcile_batch = 3;
        // Above the simulator's 200 ms minimum gap between queries.
        config.payments.query_spacing = Duration::from_millis(250);
    })
    .await;
    for spammer in ["spam_a", "spam_b"] {
        let (_, token, _) = api.signed_up(spammer, "MEMBER").await;
        for _ in 0..3 {
            api.start_recharge(&token, 100).await;
        }
    }
    // The real member pays at ECPay, and the notification is lost: only reconciliation finds it.
    let (member, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    api.paid_without_notification(&checkout).await;

    // Every run checks three; each checked and still open goes behind the rest. Seven open
    // payments, three per run: the lost one is found by the third run at the latest.
    let mut credited_in = None;
    for run in 1..=3 {
        let report = fn_reconcile::run(&api.ctx).await.unwrap();
        assert!(!report.cooling_down, "{report:?}");
        if report.credited == 1 {
            credited_in = Some(run);
            break;
        }
    }
    assert!(
        credited_in.is_some(),
        "the lost payment waited behind the backlog"
    );
    assert_eq!(balance(&api, &token).await, 500);
    api.assert_points_invariants(&[member]).await;
}

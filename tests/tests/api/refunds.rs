//! Refunds of purchased points: a member hands points back, the scheduled job returns the NT$ to the
//! cards they were paid with through the ECPay simulator's QueryTrade/V2 and DoAction, and neither a
//! race, a run killed mid-way nor a bank's refusal ever loses or doubles money.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_tests::{form_request, TestApi};
use serde_json::{json, Value};
use shared::gateway::{GatewayTransport, TransportFuture};

/// Queries paced as ECPay allows (the simulator refuses closer than 200 ms).
pub(crate) fn paced(config: &mut shared::Config) {
    config.payments.query_spacing = Duration::from_millis(250);
}

/// The member pays `amount` through the simulator's checkout (optionally in installments), and
/// ECPay's notification reaches the callback. The payment's MerchantTradeNo.
pub(crate) async fn paid_through_ecpay(
    api: &TestApi,
    token: &str,
    amount: i64,
    installments: u32,
) -> String {
    let checkout = api.start_recharge(token, amount).await;
    let fields: BTreeMap<String, String> = checkout["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    api.send(form_request("/dev/ecpay/Cashier/AioCheckOut/V5", &fields))
        .await
        .assert_status(200);
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    let pay = BTreeMap::from([
        ("MerchantTradeNo".to_string(), trade_no.clone()),
        ("notify".to_string(), "0".to_string()),
        ("installments".to_string(), installments.to_string()),
    ]);
    api.send(form_request("/dev/ecpay/pay", &pay))
        .await
        .assert_status(200);
    let notification = api.host.simulator.notification_of(&trade_no).unwrap();
    let answer = api.notify(&notification).await;
    answer.assert_status(200);
    assert_eq!(answer.raw, b"1|OK");
    trade_no
}

pub(crate) async fn request_refund(
    api: &TestApi,
    token: &str,
    points: Value,
    key: Option<&str>,
) -> api_tests::TestResponse {
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri("/api/members/points/refunds/")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    api.send(
        builder
            .body(serde_json::to_vec(&json!({ "points": points })).unwrap())
            .unwrap(),
    )
    .await
}

async fn balance(api: &TestApi, token: &str) -> Value {
    let answer = api.get("/api/members/points/", Some(token)).await;
    answer.assert_status(200);
    answer.body
}

async fn refunds(api: &TestApi, token: &str) -> Vec<Value> {
    api.walk("/api/members/points/refunds/", 50, token).await
}

#[tokio::test]
async fn a_member_refunds_part_then_the_rest_across_two_card_payments() {
    let api = TestApi::start_with(paced).await;
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    let older = paid_through_ecpay(&api, &mia, 1_000, 0).await;
    let newer = paid_through_ecpay(&api, &mia, 500, 0).await;
    assert_eq!(balance(&api, &mia).await["purchased"], 1_500);

    // 700 points: the newer payment whole (authorised: N), then 200 of the older (C, then R).
    let asked = request_refund(&api, &mia, json!(700), None).await;
    asked.assert_status(201);
    assert_eq!(asked.body["state"], "requested");
    assert_eq!(asked.body["twd"], 700);
    let after = balance(&api, &mia).await;
    assert_eq!(
        (after["balance"].as_i64(), after["purchased"].as_i64()),
        (Some(800), Some(800))
    );
    let report = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    let refund = &refunds(&api, &mia).await[0];
    assert_eq!(report.refunded, 1, "{report:?} {refund}");
    assert_eq!(refund["state"], "refunded");
    assert_eq!(refund["refunded_twd"], 700);
    let draws: Vec<(String, i64, Value)> = refund["draws"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["merchant_trade_no"].as_str().unwrap().to_string(),
                d["twd"].as_i64().unwrap(),
                d["actions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        draws,
        [
            (newer.clone(), 500, json!(["N"])),
            (older.clone(), 200, json!(["C", "R"]))
        ]
    );
    let cards = &api.host.simulator.cards;
    assert_eq!(cards.refunded(&newer).unwrap(), (500, vec![('N', 500)]));
    assert_eq!(
        cards.refunded(&older).unwrap(),
        (200, vec![('C', 1_000), ('R', 200)])
    );

    // The rest, the next day: ECPay's daily close has closed the older trade; R takes 800 back.
    api.advance_clock(Duration::from_secs(24 * 3600));
    // Our pacing of queries reads the (moved) clock; ECPay's real one has not moved: keep them apart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, mia) = {
        let login = api.login("mia", api_tests::PASSWORD).await;
        (
            member.clone(),
            login.body["access"].as_str().unwrap().to_string(),
        )
    };
    request_refund(&api, &mia, json!(800), None)
        .await
        .assert_status(201);
    let report = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert_eq!(
        report.refunded,
        1,
        "{report:?} {}",
        refunds(&api, &mia).await[0]
    );
    assert_eq!(cards.refunded(&older).unwrap().0, 1_000);
    let after = balance(&api, &mia).await;
    assert_eq!(
        (after["balance"].as_i64(), after["refundable_twd"].as_i64()),
        (Some(0), Some(0))
    );
    // Nothing left to refund: 409, nothing changed.
    let more = request_refund(&api, &mia, json!(1), None).await;
    more.assert_status(409);
    assert_eq!(more.error_code(), "insufficient_refundable_points");
    assert_eq!(refunds(&api, &mia).await.len(), 2);
    // Each payment records every call made for it.
    let evidence = api
        .ctx
        .store
        .gateway_records(&api_tests::trade_no(&older))
        .await
        .unwrap();
    assert!(
        evidence.iter().any(|r| r.source == "do_action:R"),
        "{evidence:?}"
    );
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn the_fee_is_kept_and_rounded_down_and_only_purchased_points_refund() {
    let api = TestApi::start_with(|config| {
        paced(config);
        config.payments.refund_fee_percent = 3;
    })
    .await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    paid_through_ecpay(&api, &mia, 1_000, 0).await;
    crate::admin::adjust(&api, &operator, &member, 300, "welcome gift", None)
        .await
        .assert_status(201);
    // 999 points: NT$999 less 3% is 969.03, paid as 969; the fee shown is 30.
    let asked = request_refund(&api, &mia, json!(999), None).await;
    asked.assert_status(201);
    assert_eq!(
        (
            asked.body["gross_twd"].as_i64(),
            asked.body["fee_twd"].as_i64(),
            asked.body["twd"].as_i64()
        ),
        (Some(999), Some(30), Some(969))
    );
    // Given points are not sold value: 2 more than the one purchased point left is refused whole.
    let promotional = request_refund(&api, &mia, json!(3), None).await;
    promotional.assert_status(409);
    assert_eq!(promotional.error_code(), "insufficient_refundable_points");
    assert_eq!(promotional.body["error"]["fields"]["purchased"], "1");
    let after = balance(&api, &mia).await;
    assert_eq!(
        (after["purchased"].as_i64(), after["promotional"].as_i64()),
        (Some(1), Some(300))
    );
    fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert_eq!(refunds(&api, &mia).await[0]["refunded_twd"], 969);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn bad_requests_change_nothing_and_a_repeated_key_replays() {
    let api = TestApi::start_with(paced).await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    for bad in [
        json!(0),
        json!(-5),
        json!("ten"),
        json!(1.5),
        json!(null),
        json!(10_000_001),
    ] {
        let answer = request_refund(&api, &mia, bad.clone(), None).await;
        answer.assert_status(400);
        assert!(
            answer.body["error"]["fields"]["points"].is_string(),
            "{bad}"
        );
    }
    let first = request_refund(&api, &mia, json!(200), Some("refund-1")).await;
    first.assert_status(201);
    let again = request_refund(&api, &mia, json!(200), Some("refund-1")).await;
    again.assert_status(201);
    assert_eq!(first.body, again.body);
    request_refund(&api, &mia, json!(100), Some("refund-1"))
        .await
        .assert_status(422);
    assert_eq!(refunds(&api, &mia).await.len(), 1);
    assert_eq!(balance(&api, &mia).await["balance"], 300);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn a_refund_racing_a_redemption_of_the_same_points_lets_exactly_one_win() {
    let api = TestApi::start_with(paced).await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let mug = api.create_product(&shop, "Mug", 300, 50).await;
    let racers = api.members_with_points("racer", 12, 300).await;
    let mut tasks = Vec::new();
    for (_, token) in &racers {
        let (api, token, mug) = (
            Arc::clone(&api),
            token.clone(),
            mug["id"].as_str().unwrap().to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let refund = request_refund(&api, &token, json!(300), None);
            let order = api.redeem(&token, &mug, 1);
            let (refund, order) = tokio::join!(refund, order);
            (refund.status.as_u16(), order.status.as_u16())
        }));
    }
    for task in tasks {
        let (refund, order) = task.await.unwrap();
        assert!(
            matches!((refund, order), (201, 409) | (409, 201)),
            "exactly one of the two takes the 300 points: refund {refund}, order {order}"
        );
    }
    let ids: Vec<String> = racers.iter().map(|(id, _)| id.clone()).collect();
    api.assert_points_invariants(&ids).await;
}

/// QueryTradeInfo, QueryTrade/V2 and DoAction reach the simulator; while `hang` is set, a DoAction's
/// answer never comes back after the simulator acted on it (the job dies between the call and its
/// record).
struct Hangs {
    simulator: Arc<local_api::ecpay_simulator::EcpaySimulator>,
    hang: AtomicBool,
}

impl GatewayTransport for Hangs {
    fn post_form<'a>(
        &'a self,
        url: &'a str,
        form: &'a BTreeMap<String, String>,
    ) -> TransportFuture<'a> {
        Box::pin(async move {
            let reply = local_api::ecpay_simulator::SimulatorTransport(Arc::clone(&self.simulator))
                .post_form(url, form)
                .await;
            if url.ends_with("/DoAction") && self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            reply
        })
    }
}

#[tokio::test]
async fn a_run_killed_between_do_action_and_its_record_refunds_nothing_twice() {
    let hangs: Arc<std::sync::OnceLock<Arc<Hangs>>> = Default::default();
    let slot = Arc::clone(&hangs);
    let api = TestApi::start_with_gateway(paced, move |simulator| {
        let transport = Arc::new(Hangs {
            simulator,
            hang: AtomicBool::new(true),
        });
        let _ = slot.set(Arc::clone(&transport));
        transport as Arc<dyn GatewayTransport>
    })
    .await;
    let transport = hangs.get().unwrap();
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    let paid = paid_through_ecpay(&api, &mia, 800, 0).await;
    request_refund(&api, &mia, json!(800), None)
        .await
        .assert_status(201);
    // The run is killed while waiting for DoAction's answer: ECPay acted, nothing was recorded.
    let killed =
        tokio::time::timeout(Duration::from_secs(3), fn_reconcile::run_refunds(&api.ctx)).await;
    assert!(killed.is_err(), "the run should have hung");
    assert_eq!(
        api.host.simulator.cards.refunded(&paid).unwrap(),
        (800, vec![('N', 800)])
    );
    assert_eq!(refunds(&api, &mia).await[0]["state"], "processing");
    // A run within the lease leaves it alone; after the lease, the rerun reads ECPay's state and
    // records the money back without calling DoAction again.
    transport.hang.store(false, Ordering::SeqCst);
    let early = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert_eq!(early.refunded, 0);
    api.advance_clock(Duration::from_secs(6 * 60));
    let rerun = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert_eq!(rerun.refunded, 1, "{rerun:?}");
    assert_eq!(
        api.host.simulator.cards.refunded(&paid).unwrap(),
        (800, vec![('N', 800)]),
        "one N, never a second"
    );
    let login = api.login("mia", api_tests::PASSWORD).await;
    let mia = login.body["access"].as_str().unwrap();
    let refund = &refunds(&api, mia).await[0];
    assert_eq!(refund["state"], "refunded");
    assert_eq!(refund["draws"][0]["actions"], json!(["found"]));
    // Later runs find nothing to do.
    assert_eq!(
        fn_reconcile::run_refunds(&api.ctx).await.unwrap().refunded,
        0
    );
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn a_refused_do_action_gives_the_points_back_with_ecpays_message() {
    let api = TestApi::start_with(paced).await;
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    paid_through_ecpay(&api, &mia, 600, 0).await;
    request_refund(&api, &mia, json!(600), None)
        .await
        .assert_status(201);
    assert_eq!(balance(&api, &mia).await["balance"], 0);
    api.host.simulator.cards.fail_next_action("發卡行拒絕退刷");
    let report = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let refund = &refunds(&api, &mia).await[0];
    assert_eq!(refund["state"], "failed");
    assert_eq!(refund["returned_points"], 600);
    assert!(
        refund["message"]
            .as_str()
            .unwrap()
            .contains("發卡行拒絕退刷"),
        "{refund}"
    );
    let after = balance(&api, &mia).await;
    assert_eq!(
        (after["balance"].as_i64(), after["purchased"].as_i64()),
        (Some(600), Some(600))
    );
    let ledger = api.walk("/api/members/transactions/", 10, &mia).await;
    let rows: Vec<i64> = ledger
        .iter()
        .filter(|r| r["transaction_type"] == "REFUND")
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [600, -600], "handed in, then given back");
    // The payment is free again: a new refund goes through.
    request_refund(&api, &mia, json!(600), None)
        .await
        .assert_status(201);
    assert_eq!(
        fn_reconcile::run_refunds(&api.ctx).await.unwrap().refunded,
        1
    );
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn installment_payments_refund_only_whole_and_nothing_moves_during_the_daily_close() {
    let api = TestApi::start_with(paced).await;
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    let paid = paid_through_ecpay(&api, &mia, 1_200, 3).await;
    // A part of an installment trade cannot go back: the refund fails and the points return.
    request_refund(&api, &mia, json!(600), None)
        .await
        .assert_status(201);
    assert_eq!(fn_reconcile::run_refunds(&api.ctx).await.unwrap().failed, 1);
    assert_eq!(balance(&api, &mia).await["balance"], 1_200);
    assert_eq!(api.host.simulator.cards.refunded(&paid).unwrap().0, 0);
    // The whole of it can, but not between 20:15 and 20:30 Taipei time.
    let now = api.ctx.clock.now();
    let taipei = shared::domain::codes::in_taipei(now);
    let minutes_now = i64::from(chrono::Timelike::hour(&taipei)) * 60
        + i64::from(chrono::Timelike::minute(&taipei));
    let until_close = (20 * 60 + 20 - minutes_now).rem_euclid(24 * 60);
    api.advance_clock(Duration::from_secs(until_close as u64 * 60));
    // Our pacing of queries reads the (moved) clock; ECPay's real one has not moved: keep them apart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let login = api.login("mia", api_tests::PASSWORD).await;
    let mia = login.body["access"].as_str().unwrap().to_string();
    request_refund(&api, &mia, json!(1_200), None)
        .await
        .assert_status(201);
    let closed = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert!(closed.daily_close, "{closed:?}");
    assert_eq!(refunds(&api, &mia).await[0]["state"], "requested");
    api.advance_clock(Duration::from_secs(15 * 60));
    assert_eq!(
        fn_reconcile::run_refunds(&api.ctx).await.unwrap().refunded,
        1
    );
    assert_eq!(api.host.simulator.cards.refunded(&paid).unwrap().0, 1_200);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn operators_see_refunds_retry_them_and_close_one_by_bank_transfer() {
    // No 商家檢查碼 configured: the job cannot ask ECPay, so refunds wait.
    let api = TestApi::start_with(|config| {
        paced(config);
        config.payments.credit_check_code = None;
    })
    .await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    let asked = request_refund(&api, &mia, json!(500), None).await;
    asked.assert_status(201);
    let id = asked.body["id"].as_str().unwrap().to_string();
    let report = fn_reconcile::run_refunds(&api.ctx).await.unwrap();
    assert!(report.no_check_code);
    let listed = api.walk("/api/admin/refunds/", 10, &operator).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["member_id"], member);
    // Members never reach the operators' routes.
    api.get("/api/admin/refunds/", Some(&mia))
        .await
        .assert_status(403);

    api.post(
        &format!("/api/admin/refunds/{id}/retry/"),
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    let close = format!("/api/admin/refunds/{id}/close/");
    api.post(&close, json!({"reference": ""}), Some(&operator))
        .await
        .assert_status(400);
    let closed = api
        .post(
            &close,
            json!({"reference": "TRF-20261206-0042"}),
            Some(&operator),
        )
        .await;
    closed.assert_status(200);
    assert_eq!(closed.body["state"], "refunded");
    assert_eq!(closed.body["manual_reference"], "TRF-20261206-0042");
    assert_eq!(closed.body["refunded_twd"], 500);
    let again = api
        .post(&close, json!({"reference": "TRF-2"}), Some(&operator))
        .await;
    again.assert_status(409);
    assert_eq!(again.error_code(), "refund_not_open");
    let retry = api
        .post(
            &format!("/api/admin/refunds/{id}/retry/"),
            json!({}),
            Some(&operator),
        )
        .await;
    assert_eq!(retry.error_code(), "refund_not_open");
    api.post(
        "/api/admin/refunds/0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f/retry/",
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(404);
    let audit = api.walk("/api/admin/audit/", 20, &operator).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "refund_closed_manually"),
        "{audit:?}"
    );
    api.assert_points_invariants(&[member]).await;
}

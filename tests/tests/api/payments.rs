//! Money that is never lost or faked: reconciliation with ECPay's QueryTradeInfo (answered by the
//! local simulator), failures that are not final, a checkout link opened again and again, and
//! notifications confirmed by a query before anything is credited.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api_tests::{form_request, paid_notification, TestApi, TestResponse};
use serde_json::Value;
use shared::ecpay::{self, Credentials};
use shared::observe::Metric;

/// A host whose reconciliation looks at every open payment at once, with the checkout window given.
async fn api_with_window(window: Duration, confirm_with_query: bool) -> Arc<TestApi> {
    TestApi::start_with(move |config| {
        config.payments.reconcile_after = Duration::ZERO;
        config.payments.checkout_window = window;
        // Above the simulator's 200 ms minimum gap, so no query is refused for coming too fast.
        config.payments.query_spacing = Duration::from_millis(250);
        config.payments.confirm_with_query = confirm_with_query;
    })
    .await
}

fn fields_of(checkout: &Value) -> BTreeMap<String, String> {
    checkout["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// The member's browser posts the form to ECPay (the simulator).
async fn post_to_ecpay(api: &TestApi, form: &BTreeMap<String, String>) -> TestResponse {
    api.send(form_request("/dev/ecpay/Cashier/AioCheckOut/V5", form))
        .await
}

/// The member pays at ECPay; with `notify` false the notification is lost.
async fn pay_at_ecpay(api: &TestApi, trade_no: &str, notify: bool) {
    let mut fields = BTreeMap::from([("MerchantTradeNo".to_string(), trade_no.to_string())]);
    if !notify {
        fields.insert("notify".into(), "0".into());
    }
    api.send(form_request("/dev/ecpay/pay", &fields))
        .await
        .assert_status(200);
}

async fn balance(api: &TestApi, token: &str) -> i64 {
    api.get("/api/members/points/", Some(token)).await.body["balance"]
        .as_i64()
        .unwrap()
}

async fn payment(api: &TestApi, token: &str, trade_no: &str) -> Value {
    let response = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(token))
        .await;
    response.assert_status(200);
    response.body
}

/// The checkout link as a browser opens it: the page's form is a fresh attempt.
async fn open_checkout_link(api: &TestApi, checkout: &Value) -> TestResponse {
    let url = checkout["checkout_url"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    api.get(path, None).await
}

fn form_in_page(page: &TestResponse) -> BTreeMap<String, String> {
    let html = String::from_utf8_lossy(&page.raw);
    let mut form = BTreeMap::new();
    for input in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = start + input[start..].find('"').unwrap();
            input[start..end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        form.insert(attr("name"), attr("value"));
    }
    form
}

#[tokio::test]
async fn a_payment_whose_notification_is_lost_is_found_and_credited_by_reconciliation() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (member_id, token, _) = api.signed_up("lost_lu", "MEMBER").await;
    let checkout = api.start_recharge(&token, 700).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    post_to_ecpay(&api, &fields_of(&checkout))
        .await
        .assert_status(200);
    pay_at_ecpay(&api, &trade_no, false).await;
    assert_eq!(balance(&api, &token).await, 0, "nobody told us yet");

    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!((report.checked, report.credited), (1, 1), "{report:?}");
    assert_eq!(balance(&api, &token).await, 700);
    let view = payment(&api, &token, &trade_no).await;
    assert_eq!(view["status"], "paid");
    assert!(view["trade_no"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(api.metric_total(Metric::PointsCredited), 700.0);

    // The payment has left the open set; a second run finds nothing, and the notification that
    // finally arrives is a repeat.
    let again = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!(again.checked, 0);
    api.notify(&paid_notification(&checkout))
        .await
        .assert_status(200);
    assert_eq!(balance(&api, &token).await, 700);
    api.assert_points_invariants(&[member_id]).await;
    let records = api
        .ctx
        .recharge()
        .gateway_records(&api_tests::trade_no(&trade_no))
        .await
        .unwrap();
    assert_eq!(records[0].source, "query");
    assert_eq!(records[0].verdict, "credited");
    assert_eq!(records[0].fields["TradeStatus"], "1");
}

#[tokio::test]
async fn unpaid_checkouts_expire_after_the_window_and_a_late_payment_is_still_credited() {
    let api = api_with_window(Duration::ZERO, false).await;
    let (member_id, token, _) = api.signed_up("late_lee", "MEMBER").await;
    // One checkout reached ECPay and was never paid; one never reached ECPay at all.
    let reached = api.start_recharge(&token, 300).await;
    post_to_ecpay(&api, &fields_of(&reached))
        .await
        .assert_status(200);
    let abandoned = api.start_recharge(&token, 400).await;

    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!((report.checked, report.expired), (2, 2), "{report:?}");
    for checkout in [&reached, &abandoned] {
        let view = payment(
            &api,
            &token,
            checkout["merchant_trade_no"].as_str().unwrap(),
        )
        .await;
        assert_eq!(view["status"], "expired");
        assert!(view["last_gateway_message"]
            .as_str()
            .unwrap()
            .contains("expired unpaid"));
    }

    // The member did pay after all: ECPay's verified word wins over our giving up.
    let trade_no = reached["merchant_trade_no"].as_str().unwrap();
    pay_at_ecpay(&api, trade_no, false).await;
    api.notify(&paid_notification(&reached))
        .await
        .assert_status(200);
    assert_eq!(payment(&api, &token, trade_no).await["status"], "paid");
    assert_eq!(balance(&api, &token).await, 300);
    assert_eq!(api.metric_total(Metric::PaidAfterFailure), 1.0);
    api.assert_points_invariants(&[member_id]).await;
}

#[tokio::test]
async fn a_reopened_checkout_is_paid_and_a_member_who_pays_twice_is_credited_for_each() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (member_id, token, _) = api.signed_up("twice_tao", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    let origin = checkout["merchant_trade_no"].as_str().unwrap().to_string();

    // The first opening posts the recharge's own number; back button, refresh, a second tab: each
    // later opening posts a number ECPay has not seen.
    let first = open_checkout_link(&api, &checkout).await;
    first.assert_status(200);
    let first_form = form_in_page(&first);
    assert_eq!(first_form["MerchantTradeNo"], origin);
    let second = open_checkout_link(&api, &checkout).await;
    second.assert_status(200);
    let second_form = form_in_page(&second);
    assert_ne!(second_form["MerchantTradeNo"], origin);
    for form in [&first_form, &second_form] {
        let page = post_to_ecpay(&api, form).await;
        page.assert_status(200);
        assert!(!String::from_utf8_lossy(&page.raw).contains("重覆"));
    }

    // The member really pays in both tabs: both are credited, once each, and both are visible.
    pay_at_ecpay(&api, &first_form["MerchantTradeNo"], false).await;
    pay_at_ecpay(&api, &second_form["MerchantTradeNo"], false).await;
    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!(
        (report.checked, report.credited, report.still_open),
        (2, 2, 0),
        "{report:?}"
    );
    assert_eq!(balance(&api, &token).await, 1000);
    // One recharge, its second checkout inside it; either number shows the recharge.
    let listed = api.walk("/api/members/payments/", 100, &token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["merchant_trade_no"], origin.as_str());
    assert_eq!(listed[0]["status"], "paid");
    assert_eq!(listed[0]["attempts"][0]["status"], "paid");
    assert_eq!(listed[0]["payment_id"], checkout["payment_id"]);
    for number in [&origin, &second_form["MerchantTradeNo"]] {
        let seen = payment(&api, &token, number).await;
        assert_eq!(seen["merchant_trade_no"], origin.as_str());
        assert_eq!(seen["attempts"].as_array().unwrap().len(), 1);
    }
    // Once paid, the link opens nothing more.
    let after = open_checkout_link(&api, &checkout).await;
    after.assert_status(409);
    // Each MerchantTradeNo is credited at most once, whatever repeats.
    fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!(balance(&api, &token).await, 1000);
    api.assert_points_invariants(&[member_id]).await;
}

#[tokio::test]
async fn a_checkout_link_cannot_be_opened_without_end() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (_, token, _) = api.signed_up("clicky_cai", "MEMBER").await;
    let checkout = api.start_recharge(&token, 200).await;
    // The first opening, then as many re-openings as attempts are allowed.
    for _ in 0..=api.ctx.config.payments.max_checkout_attempts {
        open_checkout_link(&api, &checkout).await.assert_status(200);
    }
    let refused = open_checkout_link(&api, &checkout).await;
    refused.assert_status(409);
    assert!(String::from_utf8_lossy(&refused.raw).contains("start a new recharge"));
}

/// A notification for `checkout` signed with the (leaked, here: public stage) HashKey.
fn forged_success(checkout: &Value) -> BTreeMap<String, String> {
    paid_notification(checkout)
}

#[tokio::test]
async fn with_query_confirmation_a_notification_signed_with_a_leaked_key_mints_nothing() {
    let api = api_with_window(Duration::from_secs(3600), true).await;
    let (member_id, token, _) = api.signed_up("prod_pat", "MEMBER").await;
    let checkout = api.start_recharge(&token, 900).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    post_to_ecpay(&api, &fields_of(&checkout))
        .await
        .assert_status(200);

    // Correctly signed, but ECPay knows the trade is unpaid: refused, so nothing is credited.
    let answer = api.notify(&forged_success(&checkout)).await;
    answer.assert_status(400);
    assert_eq!(answer.raw, b"0|not confirmed by QueryTradeInfo");
    assert_eq!(balance(&api, &token).await, 0);
    assert_eq!(payment(&api, &token, &trade_no).await["status"], "pending");

    // When ECPay cannot be asked (it refuses queries for now), the answer is not 1|OK: ECPay sends
    // the notification again later.
    pay_at_ecpay(&api, &trade_no, false).await;
    let until = chrono::Utc::now().timestamp() + 1800;
    api.ctx.store.set_gateway_cooldown(until).await.unwrap();
    let unconfirmed = api.notify(&paid_notification(&checkout)).await;
    unconfirmed.assert_status(503);
    assert_ne!(unconfirmed.raw, b"1|OK");
    assert_eq!(balance(&api, &token).await, 0);

    // Once ECPay answers again, the genuine notification is confirmed and credited once.
    api.ctx.store.set_gateway_cooldown(0).await.unwrap();
    api.notify(&paid_notification(&checkout))
        .await
        .assert_status(200);
    assert_eq!(balance(&api, &token).await, 900);
    api.assert_points_invariants(&[member_id]).await;
    let verdicts: Vec<String> = api
        .ctx
        .recharge()
        .gateway_records(&api_tests::trade_no(&trade_no))
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.source, r.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            "query:contradicts",
            "notification:refused: not confirmed",
            "query:confirms",
            "notification:credited"
        ]
    );
}

/// Between us and ECPay, someone turns "not paid" into "paid" without the HashKey.
struct Tampering(Arc<local_api::ecpay_simulator::EcpaySimulator>);

impl shared::gateway::GatewayTransport for Tampering {
    fn post_form<'a>(
        &'a self,
        _url: &'a str,
        form: &'a BTreeMap<String, String>,
    ) -> shared::gateway::TransportFuture<'a> {
        Box::pin(async move {
            let pairs: Vec<(String, String)> =
                form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut reply = self.0.query_trade_info(&pairs);
            reply.body = reply.body.replace("TradeStatus=0", "TradeStatus=1");
            Ok(reply)
        })
    }
}

#[tokio::test]
async fn a_query_answer_that_fails_verification_credits_nothing() {
    let api = TestApi::start_with_gateway(
        |config| {
            config.payments.reconcile_after = Duration::ZERO;
            config.payments.query_spacing = Duration::from_millis(250);
        },
        |simulator| Arc::new(Tampering(simulator)),
    )
    .await;
    let (_, token, _) = api.signed_up("mac_mo", "MEMBER").await;
    let checkout = api.start_recharge(&token, 300).await;
    post_to_ecpay(&api, &fields_of(&checkout))
        .await
        .assert_status(200);
    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!((report.checked, report.suspicious), (1, 1), "{report:?}");
    assert_eq!(balance(&api, &token).await, 0);
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    assert_eq!(payment(&api, &token, trade_no).await["status"], "pending");
    assert_eq!(api.metric_total(Metric::GatewayAnswersRefused), 1.0);
}

#[tokio::test]
async fn queries_that_come_too_fast_get_403_and_every_query_waits_thirty_minutes() {
    let api = TestApi::start_with(|config| {
        config.payments.reconcile_after = Duration::ZERO;
        // Faster than ECPay (the simulator) accepts.
        config.payments.query_spacing = Duration::ZERO;
    })
    .await;
    let (_, token, _) = api.signed_up("fast_fu", "MEMBER").await;
    for _ in 0..3 {
        api.start_recharge(&token, 100).await;
    }
    let report = fn_reconcile::run(&api.ctx).await.unwrap();
    assert!(report.cooling_down, "{report:?}");
    assert!(
        report.still_open < 3,
        "the run stopped at the 403, before every payment was answered: {report:?}"
    );
    let until = api.ctx.store.gateway_cooldown().await.unwrap().unwrap();
    assert!(until >= chrono::Utc::now().timestamp() + 29 * 60);
    // The next run does not query at all while the cool-down lasts.
    let next = fn_reconcile::run(&api.ctx).await.unwrap();
    assert!(next.cooling_down && next.credited == 0 && next.expired == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_sends_a_notification_again_until_it_is_answered_1_ok() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let base_for_config = base.clone();
    let api = TestApi::start_with(move |config| {
        let mut payments = shared::config::PaymentsConfig::local(&base_for_config);
        payments.confirm_with_query = true;
        payments.query_spacing = Duration::from_millis(250);
        config.payments = payments;
    })
    .await;
    let app = local_api::router(Arc::clone(&api.host));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (member_id, token, _) = api.signed_up("retry_ray", "MEMBER").await;
    let checkout = api.start_recharge(&token, 600).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    post_to_ecpay(&api, &fields_of(&checkout))
        .await
        .assert_status(200);
    // Our first answer is not 1|OK (ECPay cannot be asked to confirm right now).
    let until = chrono::Utc::now().timestamp() + 1800;
    api.ctx.store.set_gateway_cooldown(until).await.unwrap();
    pay_at_ecpay(&api, &trade_no, true).await;
    assert_eq!(api.host.simulator.deliveries(&trade_no), 1);
    assert_eq!(balance(&api, &token).await, 0);
    api.ctx.store.set_gateway_cooldown(0).await.unwrap();

    // The simulator sends it again by itself, as ECPay does, until it hears 1|OK.
    let mut waited = Duration::ZERO;
    while balance(&api, &token).await == 0 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(balance(&api, &token).await, 600);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        api.host.simulator.deliveries(&trade_no),
        2,
        "no more re-sends after 1|OK"
    );
    let records = api
        .ctx
        .recharge()
        .gateway_records(&api_tests::trade_no(&trade_no))
        .await
        .unwrap();
    let credited = records
        .iter()
        .find(|r| r.source == "notification" && r.verdict == "credited")
        .expect("the re-sent notification credited");
    assert_eq!(
        credited.fields["RtnMsg"], "paid",
        "re-sends say paid, as ECPay's do"
    );
    api.assert_points_invariants(&[member_id]).await;
}

#[test]
fn query_requests_are_signed_for_the_simulators_independent_verifier() {
    // Our signer and the simulator's independent check agree on the request we send.
    let now = chrono::Utc::now();
    let form = ecpay::query_trade_info_form("PT2611290000ABCDEF", now, &Credentials::stage());
    let pairs: Vec<(String, String)> = form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(
        local_api::ecpay_simulator::independent_check_mac(
            &pairs,
            ecpay::STAGE_HASH_KEY,
            ecpay::STAGE_HASH_IV
        ),
        form["CheckMacValue"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_racing_ecpays_late_notifications_credits_the_payment_once() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (member_id, token, _) = api.signed_up("race_rin", "MEMBER").await;
    let checkout = api.start_recharge(&token, 800).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    post_to_ecpay(&api, &fields_of(&checkout))
        .await
        .assert_status(200);
    pay_at_ecpay(&api, &trade_no, false).await;
    // Two reconciliation runs and five copies of the late notification, all at once.
    let notifications = (0..5).map(|_| {
        let api = api.clone();
        let checkout = checkout.clone();
        tokio::spawn(async move { api.notify(&paid_notification(&checkout)).await.status })
    });
    let runs = (0..2).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { fn_reconcile::run(&api.ctx).await.unwrap() })
    });
    let (answers, reports) = tokio::join!(
        futures::future::join_all(notifications),
        futures::future::join_all(runs)
    );
    for answer in answers {
        assert_eq!(answer.unwrap(), 200);
    }
    let credited_by_runs: u32 = reports.into_iter().map(|r| r.unwrap().credited).sum();
    assert!(credited_by_runs <= 1, "at most one path credits");
    assert_eq!(balance(&api, &token).await, 800, "credited exactly once");
    assert_eq!(api.metric_total(Metric::PointsCredited), 800.0);
    api.assert_points_invariants(&[member_id]).await;
    let ledger = api.get("/api/members/transactions/", Some(&token)).await;
    assert_eq!(ledger.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_query_waits_for_the_moment_another_function_took_and_ecpay_never_locks_us_out() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (_, token, _) = api.signed_up("pace_pat", "MEMBER").await;
    let checkout = api.start_recharge(&token, 300).await;
    let trade_no = api_tests::trade_no(checkout["merchant_trade_no"].as_str().unwrap());
    // Another function (say, the reconcile job on another Lambda instance) takes the current moment
    // in the shared pacing and queries ECPay with it.
    let now_ms = api.ctx.clock.now().timestamp_millis();
    let taken = api
        .ctx
        .store
        .reserve_query_slot(now_ms, 250, 10_000)
        .await
        .unwrap();
    assert_eq!(taken, shared::store::QuerySlot::At(now_ms));
    let form = ecpay::query_trade_info_form(
        &trade_no,
        api.ctx.clock.now(),
        &api.ctx.config.payments.credentials,
    );
    let pairs: Vec<(String, String)> = form.into_iter().collect();
    assert_eq!(api.host.simulator.query_trade_info(&pairs).status, 200);
    // This function's query waits for the next moment: ECPay sees two queries far enough apart.
    let answer = api.ctx.recharge().query_trade(&trade_no).await;
    assert!(answer.is_ok(), "{answer:?}");
    assert!(api.ctx.store.gateway_cooldown().await.unwrap().is_none());
}

#[tokio::test]
async fn functions_querying_ecpay_at_once_share_one_pace() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (_, token, _) = api.signed_up("pace_pia", "MEMBER").await;
    let mut trades = Vec::new();
    for amount in [100, 200, 300] {
        let checkout = api.start_recharge(&token, amount).await;
        trades.push(api_tests::trade_no(
            checkout["merchant_trade_no"].as_str().unwrap(),
        ));
    }
    // Three contexts over one table, as three functions would be: only the table is shared.
    let contexts: Vec<shared::AppContext> = (0..3).map(|_| api.ctx.clone()).collect();
    let answers = futures::future::join_all(
        contexts
            .iter()
            .zip(trades.iter().cycle())
            .flat_map(|(ctx, trade)| [(ctx, trade), (ctx, trade)])
            .map(|(ctx, trade)| async move { ctx.recharge().query_trade(trade).await }),
    )
    .await;
    for answer in &answers {
        assert!(answer.is_ok(), "{answer:?}");
    }
    assert!(api.ctx.store.gateway_cooldown().await.unwrap().is_none());
}

#[tokio::test]
async fn one_reconciliation_run_at_a_time_and_a_dead_runs_lease_runs_out() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (_, token, _) = api.signed_up("lease_lu", "MEMBER").await;
    for amount in [100, 200] {
        api.start_recharge(&token, amount).await;
    }
    // Two instances start a run at once (Scheduler, and a late retry): one runs, one does nothing.
    let other = api.ctx.clone();
    let (a, b) = futures::join!(fn_reconcile::run(&api.ctx), fn_reconcile::run(&other));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.skipped != b.skipped, "exactly one ran: {a:?} / {b:?}");
    let ran = if a.skipped { b } else { a };
    assert_eq!(ran.checked, 2, "{ran:?}");
    // The lease was handed back: the next run runs.
    assert!(!fn_reconcile::run(&api.ctx).await.unwrap().skipped);

    // A run cut off by its timeout never hands the lease back: others wait until it runs out.
    let now = api.ctx.clock.unix_now();
    let taken = api
        .ctx
        .store
        .take_job_lease("reconcile", "a-run-that-died", now, now + 240)
        .await
        .unwrap();
    assert_eq!(taken, shared::store::Lease::Taken);
    assert!(fn_reconcile::run(&api.ctx).await.unwrap().skipped);
    api.advance_clock(Duration::from_secs(241));
    assert!(!fn_reconcile::run(&api.ctx).await.unwrap().skipped);
}

#[tokio::test]
async fn two_first_openings_at_once_give_the_recharges_own_number_to_exactly_one() {
    let api = api_with_window(Duration::from_secs(3600), false).await;
    let (_, token, _) = api.signed_up("tabby_tan", "MEMBER").await;
    for round in 0..5 {
        let checkout = api.start_recharge(&token, 100).await;
        let origin = checkout["merchant_trade_no"].as_str().unwrap().to_string();
        let (a, b) = futures::join!(
            open_checkout_link(&api, &checkout),
            open_checkout_link(&api, &checkout)
        );
        let numbers: Vec<String> = [a, b]
            .iter()
            .map(|page| form_in_page(page)["MerchantTradeNo"].clone())
            .collect();
        assert_eq!(
            numbers.iter().filter(|n| **n == origin).count(),
            1,
            "round {round}: {numbers:?}"
        );
        assert_ne!(numbers[0], numbers[1]);
        let seen = payment(&api, &token, &origin).await;
        assert_eq!(seen["attempts"].as_array().unwrap().len(), 1);
    }
}

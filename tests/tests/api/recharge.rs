//! Scenarios of members buying points through ECPay, and of ECPay's notifications, genuine or not.

use std::collections::BTreeMap;
use std::sync::Arc;

use api_tests::{paid_notification, TestApi};
use base64::Engine;
use futures::future::join_all;
use serde_json::{json, Value};
use shared::ecpay::{self, Credentials};

/// `fields` signed as ECPay (or a forger holding `credentials`) would, by the independent
/// implementation.
fn re_signed(
    fields: BTreeMap<String, String>,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    use secrecy::ExposeSecret;
    local_api::ecpay_simulator::independently_signed(
        fields,
        credentials.hash_key.expose_secret(),
        credentials.hash_iv.expose_secret(),
    )
}

async fn payment_status(api: &TestApi, token: &str, trade_no: &str) -> Value {
    let response = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(token))
        .await;
    response.assert_status(200);
    response.body["status"].clone()
}

async fn balance(api: &TestApi, token: &str) -> Value {
    let response = api.get("/api/members/points/", Some(token)).await;
    response.assert_status(200);
    response.body
}

#[tokio::test]
async fn a_member_recharges_and_the_paid_notification_credits_the_account_and_ledger() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    assert_eq!(
        balance(&api, &token).await,
        json!({"balance": 0, "purchased": 0, "promotional": 0, "refundable_twd": 0, "total_earned": 0, "total_spent": 0})
    );

    let checkout = api.start_recharge(&token, 500).await;
    assert_eq!(checkout["status"], "pending");
    assert_eq!(checkout["amount"], 500);
    assert_eq!(checkout["points"], 500);
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    assert!(trade_no.len() <= 20 && trade_no.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        checkout["action_url"],
        "http://127.0.0.1:3000/dev/ecpay/Cashier/AioCheckOut/V5"
    );
    let fields = checkout["fields"].as_object().unwrap();
    for (key, expected) in [
        ("MerchantID", "3002607"),
        ("PaymentType", "aio"),
        ("TotalAmount", "500"),
        ("ChoosePayment", "Credit"),
        ("EncryptType", "1"),
        (
            "ReturnURL",
            "http://127.0.0.1:3000/api/payments/ecpay/callback/",
        ),
    ] {
        assert_eq!(fields[key], expected, "{key}");
    }
    assert_eq!(fields["MerchantTradeNo"], trade_no);
    // ECPay allows no '-' in CustomField: the payment id's 32 hex digits.
    assert_eq!(
        fields["CustomField1"].as_str().unwrap(),
        checkout["payment_id"].as_str().unwrap().replace('-', "")
    );
    for key in [
        "MerchantTradeDate",
        "TradeDesc",
        "ItemName",
        "CheckMacValue",
    ] {
        assert!(fields[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    let pairs: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert!(ecpay::verify(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &Credentials::stage()
    ));
    assert!(checkout["checkout_url"]
        .as_str()
        .unwrap()
        .contains(&format!(
            "/api/payments/ecpay/checkout/{trade_no}/?expires="
        )));

    let pending = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(&token))
        .await;
    pending.assert_status(200);
    assert_eq!(pending.body["status"], "pending");

    let answer = api.notify(&paid_notification(&checkout)).await;
    answer.assert_status(200);
    assert_eq!(answer.raw, b"1|OK");
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));

    assert_eq!(
        balance(&api, &token).await,
        json!({"balance": 500, "purchased": 500, "promotional": 0, "refundable_twd": 500, "total_earned": 500, "total_spent": 0})
    );
    let ledger = api.get("/api/members/transactions/", Some(&token)).await;
    ledger.assert_status(200);
    let rows = ledger.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["transaction_type"], "RECHARGE");
    assert_eq!(rows[0]["amount"], 500);
    assert_eq!(rows[0]["balance_after"], 500);
    assert_eq!(rows[0]["payment_id"], trade_no);

    let paid = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(&token))
        .await;
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["trade_no"], "2611270030051234");
    assert!(paid.body["paid_at"].is_string());
    let list = api.get("/api/members/payments/", Some(&token)).await;
    assert_eq!(list.body["items"][0]["merchant_trade_no"], trade_no);
}

#[tokio::test]
async fn forged_tampered_and_foreign_notifications_are_refused_and_change_nothing() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    let genuine = paid_notification(&checkout);
    let before = api.item_count().await;

    let mut forged = genuine.clone();
    forged.insert("CheckMacValue".into(), "0".repeat(64));
    let mut unsigned_amount = genuine.clone();
    unsigned_amount.insert("TradeAmt".into(), "50000".into());
    let mut tampered_amount = genuine.clone();
    tampered_amount.insert("TradeAmt".into(), "50000".into());
    let tampered_amount = re_signed(tampered_amount, &Credentials::stage());
    let mut unknown = genuine.clone();
    unknown.insert("MerchantTradeNo".into(), "PT000000000000NOPE00".into());
    let unknown = re_signed(unknown, &Credentials::stage());
    let mut foreign_merchant = genuine.clone();
    foreign_merchant.insert("MerchantID".into(), "2000132".into());
    let foreign_merchant = re_signed(foreign_merchant, &Credentials::stage());
    let wrong_key = re_signed(
        genuine.clone(),
        &Credentials {
            hash_key: "5294y06JbISpM5x9".into(),
            hash_iv: "v77hoKGq4kWxNNIS".into(),
            ..Credentials::stage()
        },
    );
    let mut no_mac = genuine.clone();
    no_mac.remove("CheckMacValue");

    for (case, fields, reason) in [
        ("forged MAC", forged, "0|CheckMacValue mismatch"),
        (
            "amount changed after signing",
            unsigned_amount,
            "0|CheckMacValue mismatch",
        ),
        ("amount re-signed", tampered_amount, "0|TradeAmt mismatch"),
        (
            "unknown MerchantTradeNo",
            unknown,
            "0|unknown MerchantTradeNo",
        ),
        (
            "another MerchantID",
            foreign_merchant,
            "0|MerchantID mismatch",
        ),
        (
            "signed with other keys",
            wrong_key,
            "0|CheckMacValue mismatch",
        ),
        ("no MAC", no_mac, "0|CheckMacValue missing"),
    ] {
        let answer = api.notify(&fields).await;
        answer.assert_status(400);
        assert_eq!(String::from_utf8_lossy(&answer.raw), reason, "{case}");
    }
    // Nothing but the audit trail of the one refusal about a known payment (the re-signed amount).
    assert_eq!(api.item_count().await, before + 1, "nothing else written");
    assert_eq!(balance(&api, &token).await["balance"], 0);
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    assert_eq!(payment_status(&api, &token, trade_no).await, "pending");
    // The genuine one still works afterwards.
    assert_eq!(api.notify(&genuine).await.raw, b"1|OK");
    assert_eq!(balance(&api, &token).await["balance"], 500);
}

#[tokio::test]
async fn a_declined_payment_stays_open_and_a_later_verified_success_credits_it_once() {
    let api = TestApi::start().await;
    let (member_id, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 300).await;
    let mut declined = paid_notification(&checkout);
    declined.insert("RtnCode".into(), "10100248".into());
    declined.insert("RtnMsg".into(), "拒絕交易".into());
    let declined = re_signed(declined, &Credentials::stage());
    assert_eq!(api.notify(&declined).await.raw, b"1|OK");
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    // ECPay calls non-1 codes "abnormal", not final: the payment stays open with ECPay's message.
    let view = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(&token))
        .await;
    assert_eq!(view.body["status"], "pending");
    assert_eq!(
        view.body["last_gateway_message"],
        "RtnCode 10100248: 拒絕交易"
    );
    assert_eq!(balance(&api, &token).await["balance"], 0);

    // The genuine success that follows credits once, however often it comes.
    for _ in 0..3 {
        assert_eq!(api.notify(&paid_notification(&checkout)).await.raw, b"1|OK");
    }
    assert_eq!(payment_status(&api, &token, trade_no).await, "paid");
    assert_eq!(balance(&api, &token).await["balance"], 300);
    api.assert_points_invariants(&[member_id]).await;
    // A failure arriving after the success changes nothing.
    assert_eq!(api.notify(&declined).await.raw, b"1|OK");
    assert_eq!(payment_status(&api, &token, trade_no).await, "paid");
    assert_eq!(balance(&api, &token).await["balance"], 300);
    // Everything ECPay said is kept for the payment, without the MAC.
    let records = api
        .ctx
        .recharge()
        .gateway_records(&api_tests::trade_no(trade_no))
        .await
        .unwrap();
    let verdicts: Vec<&str> = records.iter().map(|r| r.verdict.as_str()).collect();
    assert_eq!(
        verdicts,
        ["recorded", "credited", "repeat", "repeat", "recorded"]
    );
    assert!(records
        .iter()
        .all(|r| r.source == "notification" && !r.fields.contains_key("CheckMacValue")));
}

#[tokio::test]
async fn a_simulated_payment_from_the_back_office_is_acknowledged_but_not_credited() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 300).await;
    let mut simulated = paid_notification(&checkout);
    simulated.insert("SimulatePaid".into(), "1".into());
    let simulated = re_signed(simulated, &Credentials::stage());
    assert_eq!(api.notify(&simulated).await.raw, b"1|OK");
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    assert_eq!(payment_status(&api, &token, trade_no).await, "pending");
    assert_eq!(balance(&api, &token).await["balance"], 0);
    // The real notification later still credits it.
    assert_eq!(api.notify(&paid_notification(&checkout)).await.raw, b"1|OK");
    assert_eq!(balance(&api, &token).await["balance"], 300);
}

#[tokio::test]
async fn ten_identical_notifications_racing_credit_exactly_once() {
    let api = TestApi::start().await;
    let (id, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 1000).await;
    let notification = paid_notification(&checkout);
    let racers = (0..10).map(|_| {
        let (api, notification) = (api.clone(), notification.clone());
        tokio::spawn(async move { api.notify(&notification).await })
    });
    for answer in join_all(racers).await {
        let answer = answer.unwrap();
        answer.assert_status(200);
        assert_eq!(answer.raw, b"1|OK");
    }
    assert_eq!(
        balance(&api, &token).await,
        json!({"balance": 1000, "purchased": 1000, "promotional": 0, "refundable_twd": 1000, "total_earned": 1000, "total_spent": 0})
    );
    let rows = api
        .ctx
        .store
        .all_ledger_rows(&api_tests::user_id(&id))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    // A repeat long after changes nothing either.
    assert_eq!(api.notify(&notification).await.raw, b"1|OK");
    assert_eq!(
        api.ctx
            .store
            .all_ledger_rows(&api_tests::user_id(&id))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn recharges_racing_notifications_on_one_account_keep_balance_and_ledger_exact() {
    // Six open at once: one more than a member may hold by default.
    let api = TestApi::start_with(|config| config.payments.max_open_recharges = 6).await;
    let (id, token, _) = api.signed_up("amy", "MEMBER").await;
    let mut notifications = Vec::new();
    for amount in [100, 200, 300, 400, 500, 600] {
        notifications.push(paid_notification(&api.start_recharge(&token, amount).await));
    }
    let racers = notifications.into_iter().map(|n| {
        let api = api.clone();
        tokio::spawn(async move { api.notify(&n).await })
    });
    for answer in join_all(racers).await {
        assert_eq!(answer.unwrap().raw, b"1|OK");
    }
    let account = balance(&api, &token).await;
    assert_eq!(account["balance"], 2100);
    let mut rows = api
        .ctx
        .store
        .all_ledger_rows(&api_tests::user_id(&id))
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.amount).sum::<i64>(), 2100);
    // Oldest first, each balance_after is the running sum: exact, not merely plausible.
    rows.reverse();
    let mut running = 0;
    for row in rows {
        running += row.amount;
        assert_eq!(row.balance_after, running);
    }
}

#[tokio::test]
async fn the_notification_may_arrive_base64_encoded_from_api_gateway() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 700).await;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(paid_notification(&checkout).iter())
        .finish();
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /api/payments/ecpay/callback",
        "rawPath": "/api/payments/ecpay/callback",
        "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "POST", "path": "/api/payments/ecpay/callback", "protocol": "HTTP/1.1", "sourceIp": "175.99.72.1", "userAgent": "ECPay"},
            "requestId": "req-1", "routeKey": "POST /api/payments/ecpay/callback", "stage": "$default",
            "time": "27/Nov/2026:00:31:00 +0000", "timeEpoch": 1795710660000u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    });
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event");
    let response = fn_ecpay_callback::handle(&api.ctx, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"1|OK");
    assert_eq!(balance(&api, &token).await["balance"], 700);
}

#[tokio::test]
async fn recharge_amounts_are_validated() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let (_, merchant, _) = api.signed_up("shop", "MERCHANT").await;
    let before = api.item_count().await;
    for amount in [json!(99), json!(50_001), json!(0), json!(-100)] {
        let response = api
            .post(
                "/api/members/points/recharge/",
                json!({"amount": amount}),
                Some(&token),
            )
            .await;
        response.assert_status(400);
        assert!(response.body["error"]["fields"]["amount"].is_string());
    }
    for amount in [json!(100.5), json!("500")] {
        let response = api
            .post(
                "/api/members/points/recharge/",
                json!({"amount": amount}),
                Some(&token),
            )
            .await;
        response.assert_status(400);
        assert_eq!(response.error_code(), "invalid_body");
    }
    api.post("/api/members/points/recharge/", json!({}), Some(&token))
        .await
        .assert_status(400);
    api.post(
        "/api/members/points/recharge/",
        json!({"amount": 500}),
        Some(&merchant),
    )
    .await
    .assert_status(403);
    api.post(
        "/api/members/points/recharge/",
        json!({"amount": 500}),
        None,
    )
    .await
    .assert_status(401);
    assert_eq!(api.item_count().await, before);
    // The bounds are inclusive.
    api.start_recharge(&token, 100).await;
    api.start_recharge(&token, 50_000).await;
}

#[tokio::test]
async fn a_members_payments_are_private() {
    let api = TestApi::start().await;
    let (_, amy, _) = api.signed_up("amy", "MEMBER").await;
    let (_, ben, _) = api.signed_up("ben", "MEMBER").await;
    let checkout = api.start_recharge(&amy, 500).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    let peek = api
        .get(&format!("/api/members/payments/{trade_no}/"), Some(&ben))
        .await;
    peek.assert_status(404);
    assert_eq!(peek.error_code(), "payment_not_found");
    assert_eq!(
        api.get("/api/members/payments/", Some(&ben)).await.body["items"],
        json!([])
    );
    api.get("/api/members/payments/not-a-trade-no!/", Some(&amy))
        .await
        .assert_status(404);
}

fn path_and_query(url: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    without_scheme[without_scheme.find('/').unwrap()..].to_string()
}

#[tokio::test]
async fn a_recharge_stored_before_its_form_had_an_item_of_its_own_still_serves_its_form() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("early_amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    api.ctx
        .store
        .fold_checkout_as_earlier_version(&format!("PAYMENT#{trade_no}"))
        .await
        .unwrap();
    let link = path_and_query(checkout["checkout_url"].as_str().unwrap());
    let page = api.get(&link, None).await;
    page.assert_status(200);
    let html = String::from_utf8_lossy(&page.raw).to_string();
    assert!(html.contains("action=\"http://127.0.0.1:3000/dev/ecpay/Cashier/AioCheckOut/V5\""));
    for (key, value) in checkout["fields"].as_object().unwrap() {
        let same = html.contains(&shared::http::escape_html(value.as_str().unwrap()));
        assert!(same, "{key} value differs");
    }
    // And the notification credits it as any other.
    api.notify(&paid_notification(&checkout))
        .await
        .assert_status(200);
    let balance = api.get("/api/members/points/", Some(&token)).await;
    assert_eq!(balance.body["balance"], 500);
}

#[tokio::test]
async fn the_checkout_link_serves_the_signed_form_while_it_is_valid() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    let link = path_and_query(checkout["checkout_url"].as_str().unwrap());

    let page = api.get(&link, None).await;
    page.assert_status(200);
    let html = String::from_utf8_lossy(&page.raw).to_string();
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(html.contains("action=\"http://127.0.0.1:3000/dev/ecpay/Cashier/AioCheckOut/V5\""));
    // The first opening is the recharge's own form, exactly as signed.
    for (key, value) in checkout["fields"].as_object().unwrap() {
        assert!(html.contains(&format!("name=\"{key}\"")), "{key} missing");
        let same = html.contains(&shared::http::escape_html(value.as_str().unwrap()));
        assert!(same, "{key} value differs");
    }
    assert!(html.contains(".submit()"));
    // Opened again: a fresh checkout attempt with its own MerchantTradeNo, date and MAC (ECPay
    // refuses a number it has seen), everything else as the recharge's form.
    let again = String::from_utf8_lossy(&api.get(&link, None).await.raw).to_string();
    for (key, value) in checkout["fields"].as_object().unwrap() {
        let same = again.contains(&shared::http::escape_html(value.as_str().unwrap()));
        match key.as_str() {
            "MerchantTradeNo" | "CheckMacValue" => assert!(!same, "{key} must be new"),
            "MerchantTradeDate" => {}
            _ => assert!(same, "{key} value missing"),
        }
    }
    // Still one recharge, its second checkout inside it.
    let payments = api.get("/api/members/payments/", Some(&token)).await;
    let items = payments.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["merchant_trade_no"], checkout["merchant_trade_no"]);
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(items[0]["attempts"][0]["status"], "pending");

    let trade_no = checkout["merchant_trade_no"].as_str().unwrap();
    let forged = link.replace("signature=", "signature=x");
    api.get(&forged, None).await.assert_status(403);
    let extended = link.replace("expires=", "expires=9");
    api.get(&extended, None).await.assert_status(403);
    let expired_at = chrono::Utc::now().timestamp() - 1;
    let expired = format!(
        "/api/payments/ecpay/checkout/{trade_no}/?expires={expired_at}&signature={}",
        api.ctx
            .links
            .sign(&api_tests::trade_no(trade_no), expired_at)
    );
    api.get(&expired, None).await.assert_status(403);
    api.get(&format!("/api/payments/ecpay/checkout/{trade_no}/"), None)
        .await
        .assert_status(403);

    api.notify(&paid_notification(&checkout))
        .await
        .assert_status(200);
    let settled = api.get(&link, None).await;
    settled.assert_status(409);
}

#[tokio::test]
async fn the_callback_answers_with_and_without_its_trailing_slash() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(paid_notification(&checkout).iter())
        .finish();
    let request = http::Request::builder()
        .method("POST")
        .uri("/api/payments/ecpay/callback")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .unwrap();
    assert_eq!(api.send(request).await.raw, b"1|OK");
    // Garbage is refused, never a 5xx.
    let junk = http::Request::builder()
        .method("POST")
        .uri("/api/payments/ecpay/callback/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"%%%&&&==".to_vec())
        .unwrap();
    assert_eq!(api.send(junk).await.status, 400);
}

/// A whole recharge through the local ECPay simulator, over real HTTP: the simulator delivers its
/// notification to ReturnURL on a real socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_simulator_takes_a_member_from_checkout_to_credited_points() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let base_for_config = base.clone();
    let api = TestApi::start_with(move |config| {
        config.payments = shared::config::PaymentsConfig::local(&base_for_config);
    })
    .await;
    let app = local_api::router(Arc::clone(&api.host));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 800).await;
    assert_eq!(
        checkout["action_url"],
        format!("{base}/dev/ecpay/Cashier/AioCheckOut/V5")
    );
    let form: BTreeMap<String, String> = checkout["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let post = api_tests::form_request;

    let page = api
        .send(post("/dev/ecpay/Cashier/AioCheckOut/V5", &form))
        .await;
    page.assert_status(200);
    let html = String::from_utf8_lossy(&page.raw).to_string();
    assert!(html.contains("id=\"pay\"") && html.contains("NT$ 800"));
    // ECPay refuses a MerchantTradeNo it has seen, and a form whose MAC does not match.
    let again = api
        .send(post("/dev/ecpay/Cashier/AioCheckOut/V5", &form))
        .await;
    again.assert_status(400);
    assert!(String::from_utf8_lossy(&again.raw).contains("duplicated"));
    let mut tampered = form.clone();
    tampered.insert("TotalAmount".into(), "1".into());
    assert_eq!(
        api.send(post("/dev/ecpay/Cashier/AioCheckOut/V5", &tampered))
            .await
            .status,
        400
    );

    let trade = BTreeMap::from([(
        "MerchantTradeNo".to_string(),
        form["MerchantTradeNo"].clone(),
    )]);
    let result = api.send(post("/dev/ecpay/pay", &trade)).await;
    result.assert_status(200);
    let html = String::from_utf8_lossy(&result.raw).to_string();
    assert!(html.contains("200 1|OK"), "{html}");
    assert_eq!(balance(&api, &token).await["balance"], 800);

    // "Send again" re-delivers the same notification: acknowledged, not credited twice.
    let resent = api.send(post("/dev/ecpay/notify-again", &trade)).await;
    assert!(String::from_utf8_lossy(&resent.raw).contains("200 1|OK"));
    assert_eq!(balance(&api, &token).await["balance"], 800);
}

#[tokio::test]
async fn without_a_configured_public_url_links_use_the_api_gateway_domain() {
    let api = TestApi::start_with(|config| {
        config.payments.public_base_url = None;
        config.payments.environment = shared::config::EcpayEnvironment::Stage;
    })
    .await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    let domain = "abc123.execute-api.ap-northeast-1.amazonaws.com";
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /api/members/points/recharge/",
        "rawPath": "/api/members/points/recharge/",
        "rawQueryString": "",
        // A forged Host header must not leak into the links.
        "headers": {"content-type": "application/json", "authorization": format!("Bearer {token}"), "host": "evil.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": domain, "domainPrefix": "abc123",
            "http": {"method": "POST", "path": "/api/members/points/recharge/", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "test"},
            "requestId": "req-2", "routeKey": "POST /api/members/points/recharge/", "stage": "$default",
            "time": "27/Nov/2026:00:31:00 +0000", "timeEpoch": 1795710660000u64
        },
        "body": "{\"amount\": 500}",
        "isBase64Encoded": false
    });
    let request = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event");
    let response = fn_members::handle(&api.ctx, request).await;
    assert_eq!(response.status(), 201);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert!(body["checkout_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("https://{domain}/api/payments/ecpay/checkout/")));
    assert_eq!(
        body["fields"]["ReturnURL"],
        format!("https://{domain}/api/payments/ecpay/callback/")
    );
    assert_eq!(body["action_url"], ecpay::STAGE_ACTION_URL);
}

#[tokio::test]
async fn credited_points_and_refused_notifications_are_counted_as_metrics() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("metric_mia", "MEMBER").await;
    let checkout = api.start_recharge(&token, 700).await;
    let mut forged = paid_notification(&checkout);
    forged.insert("CheckMacValue".into(), "0".repeat(64));
    api.notify(&forged).await.assert_status(400);
    assert_eq!(
        api.metric_total(shared::observe::Metric::RechargeCallbacksRefused),
        1.0
    );
    assert_eq!(
        api.metric_total(shared::observe::Metric::PointsCredited),
        0.0
    );

    let genuine = paid_notification(&checkout);
    api.notify(&genuine).await.assert_status(200);
    // ECPay's repeat of the same notification credits nothing more.
    api.notify(&genuine).await.assert_status(200);
    assert_eq!(
        api.metric_total(shared::observe::Metric::PointsCredited),
        700.0
    );
    // Every document is an EMF document in the stack's namespace.
    for document in api.host.ctx.metrics.captured() {
        assert!(document["_aws"]["CloudWatchMetrics"][0]["Namespace"].is_string());
    }
}

#[tokio::test]
async fn crediting_a_paid_recharge_costs_two_dynamodb_round_trips() {
    let api = TestApi::start().await;
    let (member_id, token, _) = api.signed_up("amy", "MEMBER").await;
    let checkout = api.start_recharge(&token, 500).await;
    // The checkout names the member in CustomField2 (hex, as ECPay allows no '-').
    assert_eq!(
        checkout["fields"]["CustomField2"],
        member_id.replace('-', "")
    );
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();

    api.dynamodb_calls.clear();
    let answer = api.notify(&paid_notification(&checkout)).await;
    answer.assert_status(200);
    assert_eq!(answer.raw, b"1|OK");
    assert_eq!(
        api.dynamodb_calls.by_operation(),
        BTreeMap::from([
            ("BatchGetItem".to_string(), 1),
            ("TransactWriteItems".to_string(), 1),
        ]),
        "payment and account read together; credit, ledger row and audit row written together"
    );
    assert_eq!(balance(&api, &token).await["balance"], 500);
    let records = api
        .ctx
        .recharge()
        .gateway_records(&api_tests::trade_no(&trade_no))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict, "credited");

    // A notification naming another member (signed, so only ECPay or a leaked key could send
    // it) costs one more read and still credits the payment's own member only.
    let (bob_id, bob, _) = api.signed_up("bob", "MEMBER").await;
    let second = api.start_recharge(&token, 300).await;
    let mut misnamed = paid_notification(&second);
    misnamed.insert("CustomField2".into(), bob_id.replace('-', ""));
    let misnamed = re_signed(misnamed, &Credentials::stage());
    api.dynamodb_calls.clear();
    assert_eq!(api.notify(&misnamed).await.raw, b"1|OK");
    assert_eq!(api.dynamodb_calls.by_operation()["GetItem"], 1);
    assert_eq!(balance(&api, &token).await["balance"], 800);
    assert_eq!(balance(&api, &bob).await["balance"], 0);
    api.assert_points_invariants(&[bob_id]).await;
    api.assert_points_invariants(&[member_id]).await;
}

//! E-invoices issued after the fact: a sale writes an invoice item in its own transaction, and the
//! scheduled job issues, voids and allows it through the simulator's B2C invoice office, exactly
//! once whatever ECPay does meanwhile (down, answers lost, a RelateNumber already used, a refusal).

use std::time::Duration;

use api_tests::TestApi;
use serde_json::{json, Value};
use shared::domain::e_invoice::InvoiceMode;

use crate::refunds::{paced, paid_through_ecpay, request_refund};

fn invoicing(mode: InvoiceMode) -> impl FnOnce(&mut shared::Config) {
    move |config| {
        paced(config);
        config.invoices.mode = mode;
    }
}

async fn invoices(api: &TestApi, token: &str) -> Vec<Value> {
    api.walk("/api/members/invoices/", 50, token).await
}

async fn run(api: &TestApi) -> shared::services::invoice_job::InvoiceReport {
    fn_reconcile::run_invoices(&api.ctx).await.unwrap()
}

/// Moves time past every backoff, then signs `username` in again (tokens last 15 minutes).
async fn later(api: &TestApi, by: Duration, username: &str) -> String {
    api.advance_clock(by);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let login = api.login(username, api_tests::PASSWORD).await;
    login.body["access"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn at_recharge_a_paid_recharge_is_invoiced_once_and_a_refund_comes_off_it() {
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRecharge)).await;
    let (member, mia, _) = api.signed_up("mia", "MEMBER").await;
    api.put(
        "/api/members/invoice-preference/",
        json!({"kind": "mobile_barcode", "carrier_num": "/ABC+123"}),
        Some(&mia),
    )
    .await
    .assert_status(200);
    let trade_no = paid_through_ecpay(&api, &mia, 1_000, 0).await;
    // Credited at once; the invoice waits for the job.
    let listed = invoices(&api, &mia).await;
    assert_eq!(listed.len(), 1);
    let relate = format!("R{trade_no}");
    assert_eq!(
        (
            &listed[0]["state"],
            &listed[0]["amount"],
            &listed[0]["invoice_number"],
            &listed[0]["relate_number"],
            &listed[0]["source_id"]
        ),
        (
            &json!("pending"),
            &json!(1_000),
            &Value::Null,
            &json!(relate),
            &json!(trade_no)
        )
    );
    assert_eq!(api.host.simulator.invoices.issued_count(), 0);

    let report = run(&api).await;
    assert_eq!(report.issued, 1, "{report:?}");
    let held = api.host.simulator.invoices.held(&relate).expect("issued");
    let invoice = &invoices(&api, &mia).await[0];
    assert_eq!(invoice["state"], "issued");
    assert_eq!(invoice["invoice_number"], json!(held.invoice_no));
    assert_eq!(held.amount, 1_000);
    assert!(invoice["date"].as_str().is_some_and(|d| d.len() == 19));
    assert_eq!(
        invoice["carrier"],
        json!({"kind": "mobile_barcode", "carrier_num": "/ABC+123"})
    );
    // Nothing more to do: a second run calls nothing.
    assert_eq!(run(&api).await, Default::default());

    // 300 points back to the card: the same NT$ come off the invoice (an allowance).
    request_refund(&api, &mia, json!(300), None)
        .await
        .assert_status(201);
    assert_eq!(
        fn_reconcile::run_refunds(&api.ctx).await.unwrap().refunded,
        1
    );
    let report = run(&api).await;
    assert_eq!(report.allowed, 1, "{report:?}");
    let held = api.host.simulator.invoices.held(&relate).unwrap();
    assert_eq!((held.remaining, held.allowances), (700, 1));
    let invoice = &invoices(&api, &mia).await[0];
    assert_eq!(invoice["allowances"][0]["amount"], 300);
    assert_eq!(invoice["allowances"][0]["state"], "issued");
    assert!(invoice["allowances"][0]["allowance_number"].is_string());
    assert_eq!(run(&api).await, Default::default());
    assert_eq!(api.host.simulator.invoices.issued_count(), 1);
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn at_redemption_an_order_is_invoiced_for_its_purchased_points_and_voided_when_cancelled() {
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRedemption)).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    crate::admin::adjust(&api, &operator, &member, 100, "welcome gift", None)
        .await
        .assert_status(201);
    // No invoice for the recharge in this mode.
    assert!(invoices(&api, &mia).await.is_empty());

    // 150 points: the 100 given first, then 50 purchased → an invoice of NT$50.
    let mug = api.create_product(&shop, "Mug", 150, 5).await;
    let placed = api.redeem(&mia, mug["id"].as_str().unwrap(), 1).await;
    placed.assert_status(201);
    assert!(
        invoices(&api, &mia).await.is_empty(),
        "only once handed over"
    );
    api.hand_over(&shop, &placed.body).await.assert_status(200);
    // An order paid wholly with given points is never invoiced (no zero-amount invoice).
    crate::admin::adjust(&api, &operator, &member, 150, "another gift", None)
        .await
        .assert_status(201);
    let gift = api.redeem(&mia, mug["id"].as_str().unwrap(), 1).await;
    gift.assert_status(201);
    api.hand_over(&shop, &gift.body).await.assert_status(200);
    let listed = invoices(&api, &mia).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            &listed[0]["amount"],
            &listed[0]["source"],
            &listed[0]["source_id"]
        ),
        (&json!(50), &json!("order"), &placed.body["id"])
    );
    assert_eq!(run(&api).await.issued, 1);
    let relate = listed[0]["relate_number"].as_str().unwrap().to_string();
    assert!(relate.len() <= 30 && relate.bytes().all(|b| b.is_ascii_alphanumeric()));

    // An operator cancels the completed order: its invoice is voided by the job.
    api.post(
        &format!(
            "/api/admin/orders/{}/cancel/",
            placed.body["id"].as_str().unwrap()
        ),
        json!({"reason": "never handed over"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    assert_eq!(invoices(&api, &mia).await[0]["state"], "issued");
    assert_eq!(run(&api).await.voided, 1);
    assert!(api.host.simulator.invoices.held(&relate).unwrap().void);
    assert_eq!(invoices(&api, &mia).await[0]["state"], "void");
    assert_eq!(run(&api).await, Default::default());
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn ecpay_down_for_a_while_delays_only_the_invoice_which_is_then_issued_exactly_once() {
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRecharge)).await;
    let office = &api.host.simulator.invoices;
    office.go_down_for(3);
    let (member, mia) = api.member_with_points("mia", 800).await;
    // The money path never waited on ECPay's invoice API.
    assert_eq!(
        api.get("/api/members/points/", Some(&mia)).await.body["balance"],
        800
    );
    // Issue (503), then two lookups of what became of it (503, 503), each after its backoff.
    assert_eq!(run(&api).await.waiting, 1);
    assert_eq!(
        run(&api).await,
        Default::default(),
        "not due before its backoff"
    );
    later(&api, Duration::from_secs(61), "mia").await;
    assert_eq!(run(&api).await.waiting, 1);
    let mut mia = later(&api, Duration::from_secs(121), "mia").await;
    assert_eq!(run(&api).await.waiting, 1);
    assert_eq!(invoices(&api, &mia).await[0]["state"], "pending");
    mia = later(&api, Duration::from_secs(241), "mia").await;
    // Back: the lookup finds nothing issued, so it is issued now, once.
    assert_eq!(run(&api).await.issued, 1);
    assert_eq!(office.issued_count(), 1);
    let invoice = &invoices(&api, &mia).await[0];
    assert_eq!(invoice["state"], "issued");
    // Every attempt is on the audit trail.
    let relate = invoice["relate_number"].as_str().unwrap();
    let stored = api.ctx.store.invoice(relate).await.unwrap().unwrap();
    let calls: Vec<&str> = stored.attempts.iter().map(|a| a.call.as_str()).collect();
    assert_eq!(
        calls,
        ["Issue", "GetIssue", "GetIssue", "GetIssue", "Issue"]
    );
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn an_answer_lost_or_a_relate_number_already_used_is_settled_through_get_issue() {
    use shared::ecpay_invoice as wire;
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRecharge)).await;
    let office = &api.host.simulator.invoices;

    // ECPay issues, but its answer never arrives: the next run finds it by GetIssue.
    office.lose_answers(1);
    api.member_with_points("mia", 500).await;
    assert_eq!(run(&api).await.waiting, 1);
    assert_eq!(office.issued_count(), 1, "ECPay did issue it");
    let mia = later(&api, Duration::from_secs(61), "mia").await;
    assert_eq!(run(&api).await.issued, 1);
    let relate = invoices(&api, &mia).await[0]["relate_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        invoices(&api, &mia).await[0]["invoice_number"],
        json!(office.held(&relate).unwrap().invoice_no)
    );
    assert_eq!(office.issued_count(), 1);

    // A RelateNumber ECPay already holds (issued by an earlier process): 10000009, then GetIssue
    // names the invoice, and no second one is issued.
    let (_, max) = api.member_with_points("max", 300).await;
    let pending = &invoices(&api, &max).await[0];
    let relate = pending["relate_number"].as_str().unwrap();
    let stage = wire::InvoiceCredentials::stage();
    let draft = wire::InvoiceDraft {
        relate_number: relate.to_string(),
        amount: 300,
        item_name: "點數 300 點".into(),
        preference: Default::default(),
        email: "max@example.com".into(),
    };
    let envelope = wire::envelope(
        &wire::issue_data(&draft, &stage.merchant_id),
        api.ctx.clock.now().timestamp(),
        &stage,
    )
    .unwrap();
    let reply = office.handle(wire::ISSUE_PATH, &envelope.to_string(), api.ctx.clock.now());
    let first = wire::issued_invoice(&wire::open_answer(&reply.body, &stage).unwrap()).unwrap();
    assert_eq!(run(&api).await.issued, 1);
    assert_eq!(office.issued_count(), 2);
    let invoice = &invoices(&api, &max).await[0];
    assert_eq!(invoice["invoice_number"], json!(first.invoice_no));
    let stored = api.ctx.store.invoice(relate).await.unwrap().unwrap();
    assert!(
        stored.attempts[0].outcome.starts_with("10000009"),
        "{:?}",
        stored.attempts
    );
}

#[tokio::test]
async fn a_refused_or_never_answered_invoice_is_failed_for_operators_who_retry_it() {
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRecharge)).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let office = &api.host.simulator.invoices;
    office.refuse_next_issue("載具號碼不存在");
    let (_, mia) = api.member_with_points("mia", 500).await;
    assert_eq!(run(&api).await.failed, 1);
    let invoice = &invoices(&api, &mia).await[0];
    assert_eq!(invoice["state"], "failed");
    let relate = invoice["relate_number"].as_str().unwrap().to_string();
    let failed = api
        .get("/api/admin/invoices/failed/", Some(&operator))
        .await;
    failed.assert_status(200);
    assert_eq!(failed.body["items"][0]["relate_number"], json!(relate));
    assert!(failed.body["items"][0]["failure"]
        .as_str()
        .unwrap()
        .contains("載具號碼不存在"));
    // Failed invoices wait for an operator: the job leaves them alone.
    assert_eq!(run(&api).await, Default::default());

    let retry = format!("/api/admin/invoices/{relate}/retry/");
    let retried = api.post(&retry, json!({}), Some(&operator)).await;
    retried.assert_status(200);
    assert_eq!(retried.body["state"], "pending");
    assert_eq!(run(&api).await.issued, 1);
    assert_eq!(invoices(&api, &mia).await[0]["state"], "issued");
    let again = api.post(&retry, json!({}), Some(&operator)).await;
    again.assert_status(409);
    assert_eq!(again.error_code(), "invoice_not_failed");
    let unknown = api
        .post(
            "/api/admin/invoices/RNOSUCHTHING/retry/",
            json!({}),
            Some(&operator),
        )
        .await;
    unknown.assert_status(404);
    assert_eq!(unknown.error_code(), "invoice_not_found");
    api.post(
        "/api/admin/invoices/not-a-relate!/retry/",
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(404);
    // Members never reach the operators' routes.
    api.get("/api/admin/invoices/failed/", Some(&mia))
        .await
        .assert_status(403);

    // ECPay never answering: failed after the last attempt, then retried once it is back.
    office.go_down_for(1_000);
    api.member_with_points("max", 300).await;
    let mut rounds = 0;
    loop {
        let report = run(&api).await;
        rounds += 1;
        if report.failed == 1 {
            break;
        }
        assert!(rounds < 20, "never failed: {report:?}");
        later(&api, Duration::from_secs(7 * 3600), "olive").await;
    }
    assert_eq!(rounds, 10, "UNREACHABLE_ATTEMPTS_MAX calls");
    let operator = later(&api, Duration::from_secs(1), "olive").await;
    let failed = api
        .get("/api/admin/invoices/failed/", Some(&operator))
        .await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 1);
    office.go_down_for(0);
    let relate = failed.body["items"][0]["relate_number"].as_str().unwrap();
    api.post(
        &format!("/api/admin/invoices/{relate}/retry/"),
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    assert_eq!(run(&api).await.issued, 1);
    let max = later(&api, Duration::from_secs(1), "max").await;
    assert_eq!(invoices(&api, &max).await[0]["state"], "issued");
    assert_eq!(office.issued_count(), 2);
    let audit = api.get("/api/admin/audit/", Some(&operator)).await;
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "invoice_retried")
            .count()
            == 2,
        "{}",
        audit.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_runs_racing_each_other_and_a_cancellation_issue_each_invoice_once_and_void_it() {
    let api = TestApi::start_with(invoicing(InvoiceMode::AtRedemption)).await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let mug = api.create_product(&shop, "Mug", 10, 100).await;
    let members = api.members_with_points("racer", 4, 200).await;
    let mut orders = Vec::new();
    for (_, token) in &members {
        for _ in 0..3 {
            let placed = api.redeem(token, mug["id"].as_str().unwrap(), 1).await;
            placed.assert_status(201);
            api.hand_over(&shop, &placed.body).await.assert_status(200);
            orders.push(placed.body["id"].as_str().unwrap().to_string());
        }
    }
    // Four runs at once, while an operator cancels one of the completed orders.
    let cancelled = orders[0].clone();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { fn_reconcile::run_invoices(&api.ctx).await.unwrap() })
        })
        .collect();
    let cancel = {
        let api = api.clone();
        let operator = operator.clone();
        tokio::spawn(async move {
            api.post(
                &format!("/api/admin/orders/{cancelled}/cancel/"),
                json!({"reason": "wrong item"}),
                Some(&operator),
            )
            .await
            .assert_status(200);
        })
    };
    let mut issued = 0;
    for run in runs {
        issued += run.await.unwrap().issued;
    }
    cancel.await.unwrap();
    // Whatever the interleaving, later runs settle it: every invoice issued once, the cancelled
    // order's voided.
    for _ in 0..3 {
        let report = run(&api).await;
        issued += report.issued;
        later(&api, Duration::from_secs(301), "olive").await;
    }
    let office = &api.host.simulator.invoices;
    let relate_of = |order: &String| {
        shared::domain::e_invoice::InvoiceSource::Order(order.clone().try_into().unwrap())
            .relate_number()
    };
    for order in &orders[1..] {
        let relate = relate_of(order);
        let stored = api.ctx.store.invoice(&relate).await.unwrap().unwrap();
        assert_eq!(stored.shown_state(), "issued", "{stored:?}");
        assert_eq!(
            stored.invoice_number,
            office.held(&relate).map(|h| h.invoice_no)
        );
    }
    // The cancelled order's: void, at ECPay too if it ever reached ECPay.
    let relate = relate_of(&orders[0]);
    let stored = api.ctx.store.invoice(&relate).await.unwrap().unwrap();
    assert_eq!(stored.shown_state(), "void", "{stored:?}");
    let reached = office.held(&relate);
    assert!(reached.as_ref().is_none_or(|h| h.void), "{reached:?}");
    assert_eq!(office.issued_count(), 11 + usize::from(reached.is_some()));
    assert!(
        issued as usize <= office.issued_count(),
        "counted twice: {issued}"
    );
    let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
    api.assert_points_invariants(&ids).await;
}

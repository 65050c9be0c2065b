//! Merchants paid for what they hand over: a line per completed order (written with the
//! completion), reversals, statements that are exactly the sum of their lines, each line in one
//! statement however many closes race, and what merchants and operators see.

use std::sync::Arc;
use std::time::Duration;

use api_tests::{TestApi, PASSWORD};
use serde_json::{json, Value};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn token(api: &TestApi, name: &str) -> String {
    api.login(name, PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string()
}

fn today(api: &TestApi) -> String {
    shared::domain::codes::in_taipei(api.ctx.clock.now())
        .date_naive()
        .to_string()
}

async fn close(api: &TestApi, operator: &str, period_end: &str) -> Value {
    let answer = api
        .post(
            "/api/admin/settlements/close/",
            json!({ "period_end": period_end }),
            Some(operator),
        )
        .await;
    answer.assert_status(200);
    answer.body
}

/// Every line of `merchant` is in at most one statement; each issued or paid statement's totals
/// are the sums of its lines; and what statements and open lines owe is what the merchant's
/// completed orders earned less their reversals.
async fn assert_settlement_invariants(api: &TestApi, merchant: &str) -> i64 {
    let store = &api.ctx.store;
    let merchant = api_tests::user_id(merchant);
    let mut seen = std::collections::BTreeSet::new();
    let mut owed = 0;
    let mut page = shared::pagination::PageRequest {
        limit: 100,
        cursor: None,
    };
    let statements = store.merchant_statements(&merchant, &page).await.unwrap();
    page.cursor = None;
    for statement in &statements.items {
        let lines = store.statement_lines(&statement.id).await.unwrap();
        let totals = shared::domain::settlement::Totals::of(lines.iter().map(|line| &line.amounts));
        if statement.state != shared::store::StatementState::Failed {
            assert_eq!(
                statement.totals, totals,
                "{} is not the sum of its lines",
                statement.id
            );
            owed += totals.net_twd;
        } else {
            assert!(lines.is_empty(), "a failed statement keeps no line");
        }
        for line in lines {
            assert!(
                seen.insert((line.order_id.to_string(), line.line_type.as_str())),
                "a line in two statements"
            );
        }
    }
    for line in store.all_open_lines(&merchant).await.unwrap() {
        assert!(
            seen.insert((line.order_id.to_string(), line.line_type.as_str())),
            "an open line also in a statement"
        );
        owed += line.amounts.net_twd;
    }
    owed
}

#[tokio::test]
async fn a_month_of_mixed_orders_settles_exactly_and_each_party_sees_only_its_own() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (shop_id, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, other_shop, _) = api.signed_up("rival_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 5_000).await;
    let odd = api.create_product(&shop, "Odd tea", 1_005, 10).await;
    let even = api.create_product(&shop, "Mug", 300, 10).await;
    let redeem = |product: &Value| {
        let (api, mia, id) = (
            api.clone(),
            mia.clone(),
            product["id"].as_str().unwrap().to_string(),
        );
        async move {
            let placed = api.redeem(&mia, &id, 1).await;
            placed.assert_status(201);
            placed.body
        }
    };
    // Completed at 10%: 1,005 points → gross 1,005, commission 100.5 → 101, net 904.
    let first = redeem(&odd).await;
    api.hand_over(&shop, &first).await.assert_status(200);
    // Cancelled before completion: no line.
    let dropped = redeem(&even).await;
    api.post(
        &format!(
            "/api/members/orders/{}/cancel/",
            dropped["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&mia),
    )
    .await
    .assert_status(200);
    // The rate changes mid-month: 8% from now; the first line keeps its 10%.
    let set = api
        .put(
            &format!("/api/admin/merchants/{shop_id}/commission/"),
            json!({"percent": 8, "reason": "launch partner"}),
            Some(&operator),
        )
        .await;
    set.assert_status(200);
    assert_eq!(set.body["percent"], 8);
    api.put(
        &format!("/api/admin/merchants/{shop_id}/commission/"),
        json!({"percent": 51, "reason": "too much"}),
        Some(&operator),
    )
    .await
    .assert_status(400);
    // Completed at 8% (300 → commission 24, net 276), then cancelled by an operator: a reversal.
    let reversed = redeem(&even).await;
    api.hand_over(&shop, &reversed).await.assert_status(200);
    let cancel = format!(
        "/api/admin/orders/{}/cancel/",
        reversed["id"].as_str().unwrap()
    );
    api.post(
        &cancel,
        json!({"reason": "never handed over"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    api.post(&cancel, json!({"reason": "again"}), Some(&operator))
        .await
        .assert_status(409);
    // Completed at 8%: 1,005 → commission 80.4 → 80, net 925.
    let last = redeem(&odd).await;
    api.hand_over(&shop, &last).await.assert_status(200);
    api.assert_points_invariants(std::slice::from_ref(&member))
        .await;
    assert_eq!(
        assert_settlement_invariants(&api, &shop_id).await,
        904 + 925
    );

    // Nothing is available before the hold ends: closing now makes no statement.
    let early = close(&api, &operator, &today(&api)).await;
    assert_eq!(early["statements"], json!([]));
    api.advance_clock(8 * DAY);
    let operator = token(&api, "olive").await;
    let closed = close(&api, &operator, &today(&api)).await;
    let statements = closed["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(
        (
            statement["gross_twd"].as_i64(),
            statement["commission_twd"].as_i64(),
            statement["net_twd"].as_i64(),
            statement["lines"].as_i64()
        ),
        (
            Some(1_005 + 300 - 300 + 1_005),
            Some(101 + 24 - 24 + 80),
            Some(904 + 925),
            Some(4)
        )
    );
    let id = statement["id"].as_str().unwrap().to_string();
    // Closing again finds the same statement, unchanged.
    let again = close(&api, &operator, &today(&api)).await;
    assert_eq!(again["statements"], json!([]));
    assert_eq!(
        assert_settlement_invariants(&api, &shop_id).await,
        904 + 925
    );

    let shop = token(&api, "tea_shop").await;
    let listed = api.get("/api/merchants/settlements/", Some(&shop)).await;
    listed.assert_status(200);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    let detail = api
        .get(&format!("/api/merchants/settlements/{id}/"), Some(&shop))
        .await;
    detail.assert_status(200);
    let types: Vec<&str> = detail.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "reversal").count(), 1);
    let csv = api
        .get(
            &format!("/api/merchants/settlements/{id}/export.csv"),
            Some(&shop),
        )
        .await;
    csv.assert_status(200);
    let text = csv.raw_text();
    assert!(text.starts_with('\u{feff}'));
    assert!(text.contains("statement_id,period,order_number,completed_at,points,gross_twd,commission_twd,net_twd,line_type"));
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains(",-300,-300,-24,-276,reversal"), "{text}");
    // Another merchant sees nothing of it.
    let rival = token(&api, "rival_shop").await;
    let _ = other_shop;
    api.get(&format!("/api/merchants/settlements/{id}/"), Some(&rival))
        .await
        .assert_status(404);
    api.get(
        &format!("/api/merchants/settlements/{id}/export.csv"),
        Some(&rival),
    )
    .await
    .assert_status(404);

    // Paid by bank transfer: the reference shows on the statement; paid twice is 409.
    let paid = api
        .post(
            &format!("/api/admin/settlements/{id}/paid/"),
            json!({"reference": "TRF-20261207-01"}),
            Some(&operator),
        )
        .await;
    paid.assert_status(200);
    assert_eq!(paid.body["state"], "paid");
    assert_eq!(paid.body["reference"], "TRF-20261207-01");
    api.post(
        &format!("/api/admin/settlements/{id}/failed/"),
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(409);
    let listed = api
        .get("/api/admin/settlements/?state=paid", Some(&operator))
        .await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(
        assert_settlement_invariants(&api, &shop_id).await,
        904 + 925
    );
}

#[tokio::test]
async fn a_failed_transfer_puts_its_lines_into_the_next_periods_statement() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (shop_id, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let mug = api.create_product(&shop, "Mug", 250, 5).await;
    let placed = api.redeem(&mia, mug["id"].as_str().unwrap(), 1).await.body;
    api.hand_over(&shop, &placed).await.assert_status(200);
    api.advance_clock(8 * DAY);
    let operator2 = token(&api, "olive").await;
    let _ = operator;
    let first = close(&api, &operator2, &today(&api)).await;
    let id = first["statements"][0]["id"].as_str().unwrap().to_string();
    let failed = api
        .post(
            &format!("/api/admin/settlements/{id}/failed/"),
            json!({}),
            Some(&operator2),
        )
        .await;
    failed.assert_status(200);
    assert_eq!(failed.body["state"], "failed");
    assert_eq!(assert_settlement_invariants(&api, &shop_id).await, 225);
    // The next day's close takes the line again, into a new statement.
    api.advance_clock(DAY);
    let operator2 = token(&api, "olive").await;
    let next = close(&api, &operator2, &today(&api)).await;
    let statements = next["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    assert_ne!(statements[0]["id"], id.as_str());
    assert_eq!(statements[0]["net_twd"], 225);
    assert_eq!(assert_settlement_invariants(&api, &shop_id).await, 225);
}

#[tokio::test]
async fn closes_racing_each_other_and_completions_never_put_a_line_in_two_statements() {
    let api = TestApi::start().await;
    api.signed_in_admin("olive").await;
    let (shop_id, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let tea = api.create_product(&shop, "Tea", 101, 200).await;
    let members = api.members_with_points("buyer", 12, 1_000).await;
    // Twelve orders completed, then held long enough to be owed.
    for (_, token) in &members {
        let placed = api.redeem(token, tea["id"].as_str().unwrap(), 1).await.body;
        api.hand_over(&shop, &placed).await.assert_status(200);
    }
    api.advance_clock(8 * DAY);
    let operator = token(&api, "olive").await;
    let shop = token(&api, "tea_shop").await;
    // More completions while eight closes of the same period race.
    let mut placed = Vec::new();
    for (_, _) in &members {
        let name = format!("late{}", placed.len());
        let (_, late) = api.member_with_points(&name, 500).await;
        placed.push(api.redeem(&late, tea["id"].as_str().unwrap(), 1).await.body);
    }
    let day = today(&api);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (api, operator, day) = (Arc::clone(&api), operator.clone(), day.clone());
        tasks.push(tokio::spawn(
            async move { close(&api, &operator, &day).await },
        ));
    }
    for order in &placed {
        let (api, shop, order) = (Arc::clone(&api), shop.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            api.hand_over(&shop, &order).await.assert_status(200);
            Value::Null
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        for statement in task.await.unwrap()["statements"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            ids.insert(statement["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(ids.len(), 1, "one statement for the period: {ids:?}");
    // 101 points at 10%: commission 10.1 → 10, net 91; 24 completed orders in all.
    assert_eq!(assert_settlement_invariants(&api, &shop_id).await, 24 * 91);
    let id = ids.into_iter().next().unwrap();
    let statement = api
        .get(&format!("/api/admin/settlements/{id}/"), Some(&operator))
        .await;
    statement.assert_status(200);
    assert_eq!(statement.body["lines"].as_array().unwrap().len(), 12);
    assert_eq!(statement.body["net_twd"], 12 * 91);
}

#[tokio::test]
async fn a_payout_account_is_checked_masked_for_its_merchant_and_whole_for_operators() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    api.get("/api/merchants/payout-account/", Some(&shop))
        .await
        .assert_status(404);
    let bad = api
        .put(
            "/api/merchants/payout-account/",
            json!({"bank_code": "81", "account_number": "12ab", "holder_name": ""}),
            Some(&shop),
        )
        .await;
    bad.assert_status(400);
    for field in ["bank_code", "account_number", "holder_name"] {
        assert!(
            bad.body["error"]["fields"][field].is_string(),
            "{field}: {}",
            bad.body
        );
    }
    let kept = api
        .put(
            "/api/merchants/payout-account/",
            json!({"bank_code": "812", "account_number": "00012345678901", "holder_name": "茶舖有限公司"}),
            Some(&shop),
        )
        .await;
    kept.assert_status(200);
    assert_eq!(kept.body["account_number"], "**********8901");
    let read = api.get("/api/merchants/payout-account/", Some(&shop)).await;
    assert_eq!(read.body["account_number"], "**********8901");
    assert_eq!(read.body["holder_name"], "茶舖有限公司");
    let (_, operator) = api.signed_in_admin("olive").await;
    let audit = api.walk("/api/admin/audit/", 20, &operator).await;
    let change = audit
        .iter()
        .find(|e| e["action"] == "payout_account_changed")
        .unwrap();
    assert!(
        !change.to_string().contains("00012345678901"),
        "the audit keeps it masked"
    );
}

//! The operators' back office: an ADMIN role nobody can register for, every route closed to
//! everyone else, and each change written with its audit entry in one transaction — including
//! adjustments racing redemptions and recharges with every balance still the sum of its ledger.

use std::sync::Arc;
use std::time::Duration;

use api_tests::TestApi;
use futures::future::join_all;
use http::Method;
use serde_json::{json, Value};

const NOBODY: &str = "0b5e2c1e-7d4f-4a55-9a59-0f3c3f4f9b21";

async fn audit(api: &TestApi, token: &str) -> Vec<Value> {
    api.walk("/api/admin/audit/", 100, token).await
}

async fn balance(api: &TestApi, token: &str) -> i64 {
    api.get("/api/members/points/", Some(token)).await.body["balance"]
        .as_i64()
        .unwrap()
}

pub(crate) async fn adjust(
    api: &TestApi,
    operator: &str,
    member: &str,
    amount: i64,
    reason: &str,
    key: Option<&str>,
) -> api_tests::TestResponse {
    let mut builder = http::Request::builder()
        .method(Method::POST)
        .uri(format!("/api/admin/members/{member}/points/adjustments/"))
        .header("authorization", format!("Bearer {operator}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    let body = serde_json::to_vec(&json!({"amount": amount, "reason": reason})).unwrap();
    api.send(builder.body(body).unwrap()).await
}

#[tokio::test]
async fn nobody_can_register_as_an_operator() {
    let api = TestApi::start().await;
    let before = api.item_count().await;
    let refused = api.register("mallory", "ADMIN").await;
    refused.assert_status(400);
    assert_eq!(
        refused.body["error"]["fields"]["role"],
        "must be MEMBER or MERCHANT"
    );
    assert_eq!(api.item_count().await, before, "nothing was written");
    // The one way in is the command's service call; the operator then signs in like anyone.
    let (_, token) = api.signed_in_admin("olive").await;
    let me = api.get("/api/auth/me/", Some(&token)).await;
    me.assert_status(200);
    assert_eq!(me.body["role"], "ADMIN");
    let log = audit(&api, &token).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "admin_created");
}

#[tokio::test]
async fn every_admin_route_refuses_members_merchants_and_strangers() {
    let api = TestApi::start().await;
    let (_, member) = api.member_with_points("mia", 500).await;
    let (_, merchant, _) = api.signed_up("shop", "MERCHANT").await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let before = api.item_count().await;
    let body = json!({"reason": "x", "amount": 5});
    for key in fn_admin::AdminApi::router().keys() {
        let (method, template) = (key.method, key.template);
        if template.ends_with("/console/") {
            continue;
        }
        let path = template
            .replace("{id}", NOBODY)
            .replace("{merchant_trade_no}", "PR0000000000000000X1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let payload = (method == Method::POST).then(|| body.clone());
        for token in [&member, &merchant] {
            let refused = api
                .call(method.clone(), &path, payload.clone(), Some(token))
                .await;
            refused.assert_status(403);
            assert_eq!(refused.error_code(), "forbidden", "{path}");
        }
        let anonymous = api.call(method.clone(), &path, payload.clone(), None).await;
        anonymous.assert_status(401);
        // The operator gets past authorisation (to whatever the route answers).
        let answered = api
            .call(method.clone(), &path, payload.clone(), Some(&operator))
            .await;
        assert!(
            ![401, 403].contains(&answered.status.as_u16()) && answered.status.as_u16() < 500,
            "{path}: {}",
            answered.status
        );
    }
    assert_eq!(
        api.item_count().await,
        before,
        "no refused request wrote anything"
    );
    // The console page is static and public; what it calls is not.
    let page = api.get("/api/admin/console/", None).await;
    page.assert_status(200);
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let html = String::from_utf8_lossy(&page.raw);
    assert!(
        html.contains("id=\"login-form\"")
            && !html.contains("http://")
            && !html.contains("https://"),
        "self-contained: no CDN or other origin"
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"));
    // The page's own inline script and style run by their hashes; nothing else inline does.
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let script = html
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap()
        .0;
    let hash = shared::http::inline_source_hash(
        &format!("<script>{script}</script>"),
        "<script>",
        "</script>",
    );
    assert!(csp.contains(&format!("script-src {hash};")), "{csp}");
    assert_eq!(
        html.matches("<script").count(),
        1,
        "one inline script, the hashed one"
    );

    // The API's docs page may not be framed either.
    let docs = api.get("/api/docs/", None).await;
    docs.assert_status(200);
    let docs_csp = docs.header("content-security-policy").unwrap();
    assert!(docs_csp.contains("frame-ancestors 'none'") && docs_csp.contains("script-src 'self'"));
    assert!(!docs_csp.contains("script-src 'self' 'unsafe-inline'"));
}

#[tokio::test]
async fn an_operator_finds_users_by_prefix_role_and_state() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (amy, _, _) = api.signed_up("Amy", "MEMBER").await;
    api.signed_up("amelia", "MEMBER").await;
    let (bob, _, _) = api.signed_up("bob_shop", "MERCHANT").await;

    let names = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    // Case-insensitive prefix, alphabetical, walked one per page.
    let found = api.walk("/api/admin/users/?q=AM", 1, &operator).await;
    assert_eq!(names(&found), ["amelia", "Amy"]);
    assert!(found.iter().all(|u| u.get("password_hash").is_none()));
    // An email prefix when q holds an @.
    let by_email = api
        .walk("/api/admin/users/?q=bob_shop@ex", 10, &operator)
        .await;
    assert_eq!(names(&by_email), ["bob_shop"]);
    assert_eq!(by_email[0]["id"], bob.as_str());
    let merchants = api
        .walk("/api/admin/users/?role=MERCHANT", 10, &operator)
        .await;
    assert_eq!(names(&merchants), ["bob_shop"]);
    let everyone = api.walk("/api/admin/users/", 2, &operator).await;
    assert_eq!(everyone.len(), 4, "three users and the operator");

    api.post(
        &format!("/api/admin/users/{amy}/disable/"),
        json!({"reason": "chargeback fraud"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    let disabled = api
        .walk("/api/admin/users/?is_active=false", 10, &operator)
        .await;
    assert_eq!(names(&disabled), ["Amy"]);
    let active_members = api
        .walk(
            "/api/admin/users/?role=MEMBER&is_active=true",
            10,
            &operator,
        )
        .await;
    assert_eq!(names(&active_members), ["amelia"]);

    for bad in ["?role=ROOT", "?is_active=yes", "?limit=0"] {
        let refused = api
            .get(&format!("/api/admin/users/{bad}"), Some(&operator))
            .await;
        refused.assert_status(400);
        assert_eq!(refused.error_code(), "invalid_query", "{bad}");
    }
    // A cursor issued for one search is refused by another.
    let first = api
        .get("/api/admin/users/?q=am&limit=1", Some(&operator))
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let crossed = api
        .get(
            &format!("/api/admin/users/?q=bo&cursor={cursor}"),
            Some(&operator),
        )
        .await;
    crossed.assert_status(400);
}

#[tokio::test]
async fn disabling_is_audited_idempotent_and_never_of_oneself() {
    let api = TestApi::start().await;
    let (operator_id, operator) = api.signed_in_admin("olive").await;
    let (member, _, _) = api.signed_up("dora", "MEMBER").await;
    let path = format!("/api/admin/users/{member}/disable/");
    let missing_reason = api.post(&path, json!({}), Some(&operator)).await;
    missing_reason.assert_status(400);
    assert!(missing_reason.body["error"]["fields"]["reason"].is_string());
    let blank = api
        .post(&path, json!({"reason": "   "}), Some(&operator))
        .await;
    blank.assert_status(400);

    let first = api
        .post(&path, json!({"reason": "spam"}), Some(&operator))
        .await;
    first.assert_status(200);
    assert_eq!(first.body["is_active"], false);
    let again = api
        .post(&path, json!({"reason": "spam"}), Some(&operator))
        .await;
    again.assert_status(200);
    let me = api
        .post(
            &format!("/api/admin/users/{operator_id}/disable/"),
            json!({"reason": "oops"}),
            Some(&operator),
        )
        .await;
    me.assert_status(409);
    assert_eq!(me.error_code(), "cannot_disable_self");

    let log = audit(&api, &operator).await;
    let disables: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "user_disabled")
        .collect();
    assert_eq!(
        disables.len(),
        1,
        "the repeat changed nothing and logged nothing"
    );
    let entry = disables[0];
    assert_eq!(entry["admin_id"], operator_id.as_str());
    assert_eq!(entry["target"], format!("user:{member}"));
    assert_eq!(entry["before"], json!({"is_active": true}));
    assert_eq!(entry["after"], json!({"is_active": false}));
    assert_eq!(entry["reason"], "spam");
    // Append-only: the log has no write route.
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let refused = api
            .call(
                method,
                "/api/admin/audit/",
                Some(json!({})),
                Some(&operator),
            )
            .await;
        refused.assert_status(405);
    }
}

#[tokio::test]
async fn an_adjustment_moves_the_balance_with_its_ledger_row_and_audit_entry_or_not_at_all() {
    let api = TestApi::start().await;
    let (operator_id, operator) = api.signed_in_admin("olive").await;
    let (member, token) = api.member_with_points("mia", 1000).await;
    let (merchant, _, _) = api.signed_up("shop", "MERCHANT").await;

    let made = adjust(&api, &operator, &member, 250, "goodwill: parcel lost", None).await;
    made.assert_status(201);
    assert_eq!(made.body["transaction_type"], "ADJUSTMENT");
    assert_eq!(made.body["amount"], 250);
    assert_eq!(made.body["balance_after"], 1250);
    assert_eq!(balance(&api, &token).await, 1250);
    // The member sees the row and its reason on their ledger.
    let ledger = api.walk("/api/members/transactions/", 10, &token).await;
    assert_eq!(ledger[0]["transaction_type"], "ADJUSTMENT");
    assert_eq!(ledger[0]["reason"], "goodwill: parcel lost");
    assert!(
        ledger[0].get("adjusted_by").is_none(),
        "operators stay anonymous to members"
    );

    // Never below zero, and a refusal writes nothing (no row, no audit entry).
    let before = api.item_count().await;
    let too_much = adjust(&api, &operator, &member, -1251, "clawback", None).await;
    too_much.assert_status(409);
    assert_eq!(too_much.error_code(), "insufficient_points");
    // i64::MIN too: its absolute value does not fit an i64, and must still be a plain 400.
    for (amount, reason) in [
        (0, "zero"),
        (10_000_001, "huge"),
        (-10_000_001, "huge"),
        (i64::MIN, "the most negative integer"),
        (5, ""),
    ] {
        adjust(&api, &operator, &member, amount, reason, None)
            .await
            .assert_status(400);
    }
    let not_a_member = adjust(
        &api,
        &operator,
        &merchant,
        5,
        "merchants hold no points",
        None,
    )
    .await;
    not_a_member.assert_status(404);
    adjust(&api, &operator, NOBODY, 5, "who", None)
        .await
        .assert_status(404);
    adjust(&api, &operator, "not-an-id", 5, "who", None)
        .await
        .assert_status(404);
    assert_eq!(api.item_count().await, before);

    // An Idempotency-Key makes a retried adjustment safe.
    let first = adjust(&api, &operator, &member, -250, "reversal", Some("adj-1")).await;
    first.assert_status(201);
    let replay = adjust(&api, &operator, &member, -250, "reversal", Some("adj-1")).await;
    replay.assert_status(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.raw, first.raw);
    let reused = adjust(&api, &operator, &member, -100, "reversal", Some("adj-1")).await;
    reused.assert_status(422);
    assert_eq!(balance(&api, &token).await, 1000);

    let log = audit(&api, &operator).await;
    let adjustments: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "points_adjusted")
        .collect();
    assert_eq!(adjustments.len(), 2);
    assert_eq!(adjustments[0]["before"], json!({"balance": 1250}));
    assert_eq!(
        adjustments[0]["after"],
        json!({"balance": 1000, "amount": -250})
    );
    assert_eq!(adjustments[0]["admin_id"], operator_id.as_str());
    assert_eq!(adjustments[0]["target"], format!("member:{member}"));
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn adjustments_racing_redemptions_and_recharges_keep_every_balance_the_sum_of_its_ledger() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Mug", 30, 60).await;
    let product_id = product["id"].as_str().unwrap().to_string();
    let members = api.members_with_points("racer", 6, 300).await;

    // Per member at once: 4 redemptions, 3 credits, 3 debits (some refused for going below zero),
    // and a recharge paid by ECPay's notification.
    let mut work = Vec::new();
    for (member, token) in &members {
        for _ in 0..4 {
            let (api, token, product_id) = (Arc::clone(&api), token.clone(), product_id.clone());
            work.push(tokio::spawn(async move {
                let r = api.redeem(&token, &product_id, 2).await;
                assert!([201, 409].contains(&r.status.as_u16()), "{}", r.status);
                r.status.as_u16()
            }));
        }
        for amount in [40, -120, 25, -200, 10, -90] {
            let (api, operator, member) = (Arc::clone(&api), operator.clone(), member.clone());
            work.push(tokio::spawn(async move {
                let r = adjust(&api, &operator, &member, amount, "race", None).await;
                assert!([201, 409].contains(&r.status.as_u16()), "{}", r.status);
                r.status.as_u16()
            }));
        }
        let (api2, token) = (Arc::clone(&api), token.clone());
        work.push(tokio::spawn(async move {
            let checkout = api2.start_recharge(&token, 150).await;
            let answer = api2.notify(&api_tests::paid_notification(&checkout)).await;
            assert_eq!(answer.raw, b"1|OK");
            200
        }));
    }
    let statuses: Vec<u16> = join_all(work)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(statuses.contains(&201));

    let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
    api.assert_points_invariants(&ids).await;
    api.assert_stock_invariant(&shop, &product_id, 60).await;
    // Every committed adjustment has exactly one audit entry, and vice versa.
    let log = audit(&api, &operator).await;
    let audited = log
        .iter()
        .filter(|e| e["action"] == "points_adjusted")
        .count();
    let mut rows = 0;
    for id in &ids {
        rows += api
            .ctx
            .store
            .all_ledger_rows(&api_tests::user_id(id))
            .await
            .unwrap()
            .iter()
            .filter(|r| r.transaction_type == shared::domain::TransactionType::Adjustment)
            .count();
    }
    assert_eq!(audited, rows);
    assert!(rows > 0);
}

#[tokio::test]
async fn stuck_payments_are_listed_oldest_first_and_reconciled_now_through_the_jobs_path() {
    let api = TestApi::start_with(|config| {
        config.payments.query_spacing = Duration::from_millis(250);
    })
    .await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (member, token, _) = api.signed_up("lulu", "MEMBER").await;
    let first = api.start_recharge(&token, 700).await;
    let second = api.start_recharge(&token, 300).await;
    // Paid at ECPay, notification lost.
    let first_no = api.paid_without_notification(&first).await;

    let stuck = api.walk("/api/admin/payments/", 10, &operator).await;
    let numbers: Vec<&str> = stuck
        .iter()
        .map(|p| p["merchant_trade_no"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [
            first_no.as_str(),
            second["merchant_trade_no"].as_str().unwrap()
        ]
    );
    assert_eq!(stuck[0]["member_id"], member.as_str());
    api.get("/api/admin/payments/?status=paid", Some(&operator))
        .await
        .assert_status(400);

    let reconciled = api
        .post(
            &format!("/api/admin/payments/{first_no}/reconcile/"),
            json!({}),
            Some(&operator),
        )
        .await;
    reconciled.assert_status(200);
    assert_eq!(reconciled.body["result"], "credited");
    assert_eq!(reconciled.body["payment"]["status"], "paid");
    assert_eq!(balance(&api, &token).await, 700);
    // Once paid, there is nothing left to reconcile; the other is still open at ECPay.
    let settled = api
        .post(
            &format!("/api/admin/payments/{first_no}/reconcile/"),
            json!({}),
            Some(&operator),
        )
        .await;
    settled.assert_status(409);
    assert_eq!(settled.error_code(), "payment_settled");
    let open = api
        .post(
            &format!(
                "/api/admin/payments/{}/reconcile/",
                second["merchant_trade_no"].as_str().unwrap()
            ),
            json!({}),
            Some(&operator),
        )
        .await;
    open.assert_status(200);
    assert_eq!(open.body["result"], "still_open");
    let missing = api
        .post(
            "/api/admin/payments/PR0000000000000000X1/reconcile/",
            json!({}),
            Some(&operator),
        )
        .await;
    missing.assert_status(404);
    // The scheduled job finds nothing more to credit: the credit happened once.
    fn_reconcile::run(&api.ctx).await.unwrap();
    assert_eq!(balance(&api, &token).await, 700);
    api.assert_points_invariants(&[member]).await;
    let log = audit(&api, &operator).await;
    let entries: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "payment_reconciled")
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["after"]["result"], "credited");
    assert_eq!(entries[1]["before"]["status"], "pending");
}

#[tokio::test]
async fn operators_see_every_order_and_take_any_product_off_the_catalogue() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (merchant_a, shop_a, _) = api.signed_up("shop_a", "MERCHANT").await;
    let (_, shop_b, _) = api.signed_up("shop_b", "MERCHANT").await;
    let mug = api.create_product(&shop_a, "Mug", 10, 50).await;
    let pen = api.create_product(&shop_b, "Pen", 5, 50).await;
    let (mia, mia_token) = api.member_with_points("mia", 500).await;
    let (_, leo_token) = api.member_with_points("leo", 500).await;
    for (token, product) in [
        (&mia_token, &mug),
        (&mia_token, &pen),
        (&leo_token, &pen),
        (&leo_token, &mug),
    ] {
        api.redeem(token, product["id"].as_str().unwrap(), 1)
            .await
            .assert_status(201);
    }
    let all = api.walk("/api/admin/orders/", 1, &operator).await;
    assert_eq!(all.len(), 4, "a bounded scan still finds every order");
    let of_a = api
        .walk(
            &format!("/api/admin/orders/?merchant_id={merchant_a}"),
            10,
            &operator,
        )
        .await;
    assert_eq!(of_a.len(), 2);
    let of_mia_at_a = api
        .walk(
            &format!("/api/admin/orders/?member_id={mia}&merchant_id={merchant_a}"),
            10,
            &operator,
        )
        .await;
    assert_eq!(of_mia_at_a.len(), 1);
    assert_eq!(of_mia_at_a[0]["product_id"], mug["id"]);
    let cancelled = api
        .walk("/api/admin/orders/?status=cancelled", 10, &operator)
        .await;
    assert!(cancelled.is_empty());
    api.get("/api/admin/orders/?member_id=nope", Some(&operator))
        .await
        .assert_status(400);

    let mug_id = mug["id"].as_str().unwrap();
    let path = format!("/api/admin/products/{mug_id}/deactivate/");
    let down = api
        .post(&path, json!({"reason": "counterfeit"}), Some(&operator))
        .await;
    down.assert_status(200);
    assert_eq!(down.body["is_active"], false);
    api.post(&path, json!({"reason": "counterfeit"}), Some(&operator))
        .await
        .assert_status(200);
    let gone = api.redeem(&mia_token, mug_id, 1).await;
    gone.assert_status(404);
    assert_eq!(gone.error_code(), "product_not_found");
    let browse = api.walk("/api/members/products/", 10, &mia_token).await;
    assert!(browse.iter().all(|p| p["id"] != mug["id"]));
    api.post(
        &format!("/api/admin/products/{NOBODY}/deactivate/"),
        json!({"reason": "x"}),
        Some(&operator),
    )
    .await
    .assert_status(404);
    let log = audit(&api, &operator).await;
    let takedowns: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "product_deactivated")
        .collect();
    assert_eq!(takedowns.len(), 1);
    assert_eq!(takedowns[0]["before"]["merchant_id"], merchant_a.as_str());
}

#[tokio::test]
async fn two_operators_toggling_one_user_at_once_leave_one_consistent_history() {
    let api = TestApi::start().await;
    let (_, olive) = api.signed_in_admin("olive").await;
    let (_, omar) = api.signed_in_admin("omar").await;
    let (member, token, _) = api.signed_up("dora", "MEMBER").await;
    // Forty requests at once: each operator disabling and enabling, interleaved.
    let calls = (0..40).map(|i| {
        let (api, member) = (Arc::clone(&api), member.clone());
        let operator = if i % 2 == 0 {
            olive.clone()
        } else {
            omar.clone()
        };
        let verb = if i % 4 < 2 { "disable" } else { "enable" };
        tokio::spawn(async move {
            let answer = api
                .post(
                    &format!("/api/admin/users/{member}/{verb}/"),
                    json!({"reason": format!("race {i}")}),
                    Some(&operator),
                )
                .await;
            answer.assert_status(200);
        })
    });
    for call in join_all(calls).await {
        call.unwrap();
    }
    // Every committed change has its entry, and the entries chain: each starts where the one
    // before ended (a change conditioned on a stale read would break the chain or lose an entry).
    let mut changes: Vec<Value> = audit(&api, &olive)
        .await
        .into_iter()
        .filter(|e| e["target"] == format!("user:{member}"))
        .collect();
    changes.reverse();
    assert!(!changes.is_empty());
    let mut state = json!({"is_active": true});
    for change in &changes {
        assert_eq!(change["before"], state, "{changes:?}");
        assert_ne!(change["before"], change["after"]);
        state = change["after"].clone();
    }
    let found = api.walk("/api/admin/users/?q=dora", 10, &olive).await;
    assert_eq!(json!({"is_active": found[0]["is_active"]}), state);
    // Whatever the end state, the member's token from before the first disable is dead.
    let old = api.get("/api/members/points/", Some(&token)).await;
    old.assert_status(401);
}

#[tokio::test]
async fn the_console_shows_people_by_name_and_bad_lookups_are_refused() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (mia, mia_token, _) = api.signed_up("mia", "MEMBER").await;
    let (shop, _, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let nobody = shared::domain::UserId::generate();
    let found = api
        .get(
            &format!("/api/admin/users/names/?ids={mia},{shop},{nobody}"),
            Some(&operator),
        )
        .await;
    found.assert_status(200);
    assert_eq!(
        found.body["names"],
        json!({ mia.clone(): "mia", shop.clone(): "tea_shop" })
    );
    for bad in ["?ids=not-an-id", "", "?ids="] {
        let refused = api
            .get(&format!("/api/admin/users/names/{bad}"), Some(&operator))
            .await;
        refused.assert_status(400);
        assert_eq!(refused.error_code(), "invalid_query", "{bad}");
    }
    let many = vec![mia.clone(); 101].join(",");
    api.get(
        &format!("/api/admin/users/names/?ids={many}"),
        Some(&operator),
    )
    .await
    .assert_status(400);
    api.get(
        &format!("/api/admin/users/names/?ids={mia}"),
        Some(&mia_token),
    )
    .await
    .assert_status(403);
}

//! Gifts sent by parcel: the address a redemption needs (given or saved), shipping, receipt, the
//! order completing by itself, who may cancel when, who sees the address and for how long, and the
//! merchant's packing list.

use api_tests::{TestApi, PASSWORD};
use serde_json::{json, Value};

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_string()
}

fn address() -> Value {
    json!({
        "recipient_name": "王小明",
        "phone": "+886 912-345-678",
        "postal_code": "10617",
        "address": "臺北市大安區羅斯福路四段1號"
    })
}

async fn delivered_product(api: &TestApi, shop: &str, name: &str) -> String {
    let product = api
        .post(
            "/api/merchants/products/",
            json!({"name": name, "points_required": 100, "stock": 20, "fulfilment": "delivery"}),
            Some(shop),
        )
        .await;
    product.assert_status(201);
    id_of(&product.body)
}

async fn redeem_to(
    api: &TestApi,
    token: &str,
    product: &str,
    extra: Value,
) -> api_tests::TestResponse {
    let mut body = json!({"product_id": product, "quantity": 1});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    api.post("/api/members/orders/", body, Some(token)).await
}

async fn step(
    api: &TestApi,
    side: &str,
    order: &str,
    action: &str,
    token: &str,
    body: Value,
) -> api_tests::TestResponse {
    api.post(
        &format!("/api/{side}/orders/{order}/{action}/"),
        body,
        Some(token),
    )
    .await
}

/// The merchant ships `order` with tracking number `tracking`.
async fn ship(api: &TestApi, shop: &str, order: &str, tracking: &str) -> api_tests::TestResponse {
    step(
        api,
        "merchants",
        order,
        "ship",
        shop,
        json!({"carrier": "T-Cat", "tracking_number": tracking}),
    )
    .await
}

#[tokio::test]
async fn a_delivery_needs_an_address_and_each_problem_of_one_is_named_before_anything_is_charged() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 1_000).await;
    let parcel = delivered_product(&api, &shop, "Tea box").await;
    let mug = api.create_product(&shop, "Mug", 100, 5).await;

    let before = api.item_count().await;
    let missing = redeem_to(&api, &mia, &parcel, json!({})).await;
    missing.assert_status(400);
    assert!(missing.body["error"]["fields"]["shipping"].is_string());
    let bad = redeem_to(
        &api,
        &mia,
        &parcel,
        json!({"shipping": {"recipient_name": "", "phone": "0212345678", "postal_code": "1234", "address": "x".repeat(201)}}),
    )
    .await;
    bad.assert_status(400);
    let fields = bad.body["error"]["fields"].as_object().unwrap();
    for field in ["recipient_name", "phone", "postal_code", "address"] {
        assert!(
            fields.contains_key(&format!("shipping.{field}")),
            "{field}: {fields:?}"
        );
    }
    let to_a_pickup = redeem_to(&api, &mia, &id_of(&mug), json!({"shipping": address()})).await;
    to_a_pickup.assert_status(400);
    assert_eq!(api.item_count().await, before, "nothing written");
    assert_eq!(
        api.get("/api/members/points/", Some(&mia)).await.body["balance"],
        1_000
    );

    let placed = redeem_to(&api, &mia, &parcel, json!({"shipping": address()})).await;
    placed.assert_status(201);
    assert_eq!(placed.body["fulfilment"], "delivery");
    assert_eq!(placed.body["status"], "pending");
    assert!(placed.body.get("pickup_code").is_none());
    assert_eq!(
        placed.body["shipping"]["phone"], "0912345678",
        "kept in the 09 form"
    );
    assert_eq!(placed.body["shipping"]["recipient_name"], "王小明");
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn a_member_keeps_ten_addresses_and_an_order_keeps_its_own_copy() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let (_, max) = api.member_with_points("max", 1_000).await;
    let parcel = delivered_product(&api, &shop, "Tea box").await;
    let mut saved = Vec::new();
    for i in 0..10 {
        let mut body = address();
        body["address"] = json!(format!("臺北市 {i} 號"));
        let answer = api.post("/api/members/addresses/", body, Some(&mia)).await;
        answer.assert_status(201);
        saved.push(answer.body);
    }
    let eleventh = api
        .post("/api/members/addresses/", address(), Some(&mia))
        .await;
    eleventh.assert_status(409);
    assert_eq!(eleventh.error_code(), "too_many_addresses");
    let listed = api.get("/api/members/addresses/", Some(&mia)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 10);
    assert!(
        api.get("/api/members/addresses/", Some(&max)).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let first = id_of(&saved[0]);
    let both = redeem_to(
        &api,
        &mia,
        &parcel,
        json!({"shipping": address(), "shipping_address_id": first}),
    )
    .await;
    both.assert_status(400);
    let not_mine = redeem_to(&api, &max, &parcel, json!({"shipping_address_id": first})).await;
    not_mine.assert_status(404);
    assert_eq!(not_mine.error_code(), "address_not_found");

    let placed = redeem_to(&api, &mia, &parcel, json!({"shipping_address_id": first})).await;
    placed.assert_status(201);
    assert_eq!(placed.body["shipping"]["address"], "臺北市 0 號");
    api.delete(&format!("/api/members/addresses/{first}/"), Some(&max))
        .await
        .assert_status(404);
    api.delete(&format!("/api/members/addresses/{first}/"), Some(&mia))
        .await
        .assert_status(204);
    api.delete(&format!("/api/members/addresses/{first}/"), Some(&mia))
        .await
        .assert_status(404);
    // A slot is free again, and the order still has its copy.
    api.post("/api/members/addresses/", address(), Some(&mia))
        .await
        .assert_status(201);
    let order = api
        .get(
            &format!("/api/members/orders/{}/", id_of(&placed.body)),
            Some(&mia),
        )
        .await;
    assert_eq!(order.body["shipping"]["address"], "臺北市 0 號");
}

#[tokio::test]
async fn a_delivery_ships_then_its_member_confirms_or_it_completes_by_itself() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 1_000).await;
    let parcel = delivered_product(&api, &shop, "Tea box").await;
    let mug = api.create_product(&shop, "Mug", 100, 5).await;
    let order = id_of(
        &redeem_to(&api, &mia, &parcel, json!({"shipping": address()}))
            .await
            .body,
    );
    let pickup = redeem_to(&api, &mia, &id_of(&mug), json!({})).await.body;

    // Not yet shipped: neither the member nor the merchant completes it.
    let early = step(&api, "members", &order, "confirm-receipt", &mia, json!({})).await;
    early.assert_status(409);
    assert_eq!(early.error_code(), "not_shipped");
    let direct = step(&api, "merchants", &order, "complete", &shop, json!({})).await;
    direct.assert_status(409);
    assert_eq!(direct.error_code(), "not_shipped");
    // Shipping takes a carrier and a tracking number, and only a delivery ships.
    let bad = step(
        &api,
        "merchants",
        &order,
        "ship",
        &shop,
        json!({"carrier": ""}),
    )
    .await;
    bad.assert_status(400);
    assert!(bad.body["error"]["fields"]["tracking_number"].is_string());
    let pickup_shipped = ship(&api, &shop, &id_of(&pickup), "1").await;
    pickup_shipped.assert_status(409);
    assert_eq!(pickup_shipped.error_code(), "not_a_delivery");

    let shipped = step(
        &api,
        "merchants",
        &order,
        "ship",
        &shop,
        json!({"carrier": "黑貓宅急便", "tracking_number": "9012-3456-7890"}),
    )
    .await;
    shipped.assert_status(200);
    assert_eq!(shipped.body["status"], "shipped");
    assert_eq!(shipped.body["carrier"], "黑貓宅急便");
    assert!(shipped.body["shipped_at"].is_string());
    let again = ship(&api, &shop, &order, "2").await;
    again.assert_status(409);
    // Shipped: the member can no longer cancel; they confirm receipt.
    let cancel = step(&api, "members", &order, "cancel", &mia, json!({})).await;
    cancel.assert_status(409);
    assert_eq!(cancel.error_code(), "already_shipped");
    let seen = api
        .get(&format!("/api/members/orders/{order}/"), Some(&mia))
        .await;
    assert_eq!(seen.body["tracking_number"], "9012-3456-7890");
    let received = step(&api, "members", &order, "confirm-receipt", &mia, json!({})).await;
    received.assert_status(200);
    assert_eq!(received.body["status"], "completed");
    step(&api, "members", &order, "confirm-receipt", &mia, json!({}))
        .await
        .assert_status(409);

    // Another, shipped and never confirmed: it completes by itself after seven days, not before.
    let quiet = id_of(
        &redeem_to(&api, &mia, &parcel, json!({"shipping": address()}))
            .await
            .body,
    );
    ship(&api, &shop, &quiet, "3").await.assert_status(200);
    api.advance_clock(std::time::Duration::from_secs(6 * 24 * 3600));
    let before = fn_reconcile::run_fulfilment(&api.ctx).await.unwrap();
    assert_eq!(before.deliveries.completed, 0);
    api.advance_clock(std::time::Duration::from_secs(2 * 24 * 3600));
    let run = fn_reconcile::run_fulfilment(&api.ctx).await.unwrap();
    assert_eq!(run.deliveries.completed, 1, "{run:?}");
    let mia = api.login("mia", PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let done = api
        .get(&format!("/api/members/orders/{quiet}/"), Some(&mia))
        .await;
    assert_eq!(done.body["status"], "completed");
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn a_lost_parcel_is_cancelled_by_its_merchant_with_the_points_back() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 1_000).await;
    let parcel = delivered_product(&api, &shop, "Tea box").await;
    let order = id_of(
        &redeem_to(&api, &mia, &parcel, json!({"shipping": address()}))
            .await
            .body,
    );
    ship(&api, &shop, &order, "1").await.assert_status(200);
    let lost = step(&api, "merchants", &order, "cancel", &shop, json!({})).await;
    lost.assert_status(200);
    assert_eq!(lost.body["status"], "cancelled");
    assert_eq!(
        api.get("/api/members/points/", Some(&mia)).await.body["balance"],
        1_000
    );
    api.assert_stock_invariant(&shop, &parcel, 20).await;
    // Its auto-completion is off the queue: a week later nothing completes it.
    api.advance_clock(std::time::Duration::from_secs(8 * 24 * 3600));
    let run = fn_reconcile::run_fulfilment(&api.ctx).await.unwrap();
    assert_eq!(run.deliveries.completed, 0, "{run:?}");
    api.assert_points_invariants(&[member]).await;
}

#[tokio::test]
async fn only_the_member_the_merchant_and_operators_see_an_address_and_only_for_180_days() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, rival, _) = api.signed_up("rival_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let (_, max) = api.member_with_points("max", 1_000).await;
    let parcel = delivered_product(&api, &shop, "Tea box").await;
    let order = id_of(
        &redeem_to(&api, &mia, &parcel, json!({"shipping": address()}))
            .await
            .body,
    );
    let phone = "0912345678";

    for (path, token) in [
        (format!("/api/members/orders/{order}/"), &mia),
        (format!("/api/merchants/orders/{order}/"), &shop),
        ("/api/merchants/orders/".to_string(), &shop),
        ("/api/admin/orders/".to_string(), &operator),
    ] {
        let seen = api.get(&path, Some(token)).await;
        seen.assert_status(200);
        assert!(
            seen.raw_text().contains(phone),
            "{path} shows it to its party"
        );
    }
    for (path, token) in [
        (format!("/api/members/orders/{order}/"), &max),
        (format!("/api/merchants/orders/{order}/"), &rival),
    ] {
        let refused = api.get(&path, Some(token)).await;
        refused.assert_status(404);
        assert!(!refused.raw_text().contains(phone));
    }
    for (path, token) in [
        ("/api/members/orders/".to_string(), &max),
        ("/api/merchants/orders/".to_string(), &rival),
        ("/api/merchants/orders/export.csv".to_string(), &rival),
    ] {
        assert!(
            !api.get(&path, Some(token)).await.raw_text().contains(phone),
            "{path}"
        );
    }

    // Ended today: kept for 180 days, then "redacted" everywhere.
    step(&api, "members", &order, "cancel", &mia, json!({}))
        .await
        .assert_status(200);
    api.advance_clock(std::time::Duration::from_secs(179 * 24 * 3600));
    assert_eq!(
        fn_reconcile::run_fulfilment(&api.ctx)
            .await
            .unwrap()
            .deliveries
            .redacted,
        0
    );
    api.advance_clock(std::time::Duration::from_secs(2 * 24 * 3600));
    assert_eq!(
        fn_reconcile::run_fulfilment(&api.ctx)
            .await
            .unwrap()
            .deliveries
            .redacted,
        1
    );
    let mia = api.login("mia", PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = api
        .get(&format!("/api/members/orders/{order}/"), Some(&mia))
        .await;
    for field in ["recipient_name", "phone", "postal_code", "address"] {
        assert_eq!(kept.body["shipping"][field], "redacted", "{field}");
    }
    assert_eq!(kept.body["status"], "cancelled");
}

#[tokio::test]
async fn the_packing_list_opens_in_excel_with_chinese_taipei_times_and_no_formulas() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let parcel = delivered_product(&api, &shop, "=HYPERLINK(\"http://evil\")").await;
    let mut hostile = address();
    hostile["address"] = json!("@SUM(A1), 臺北市 \"頂樓\"");
    let first = redeem_to(&api, &mia, &parcel, json!({"shipping": hostile}))
        .await
        .body;
    let second = redeem_to(&api, &mia, &parcel, json!({"shipping": address()}))
        .await
        .body;
    ship(&api, &shop, &id_of(&second), "1")
        .await
        .assert_status(200);

    let export = api
        .get(
            "/api/merchants/orders/export.csv?status=pending",
            Some(&shop),
        )
        .await;
    export.assert_status(200);
    assert_eq!(
        export.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert!(export.header("link").is_none(), "one part");
    assert!(export.raw.starts_with(&[0xEF, 0xBB, 0xBF]), "a UTF-8 BOM");
    let text = export.raw_text();
    let rows: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(
        rows[0],
        "order_number,created_at,product,quantity,recipient_name,phone,postal_code,address,status"
    );
    assert_eq!(
        rows.len(),
        3,
        "the header, the pending order, the end: {rows:?}"
    );
    let created = chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert_eq!(
        rows[1],
        format!(
            "{},{created},\"'=HYPERLINK(\"\"http://evil\"\")\",1,王小明,0912345678,10617,\"'@SUM(A1), 臺北市 \"\"頂樓\"\"\",pending",
            first["order_number"].as_str().unwrap()
        )
    );
    let all = api
        .get("/api/merchants/orders/export.csv", Some(&shop))
        .await;
    assert_eq!(all.raw_text().matches("\r\n").count(), 3);
    api.get("/api/merchants/orders/export.csv?status=lost", Some(&shop))
        .await
        .assert_status(400);
    api.get(
        "/api/merchants/orders/export.csv?cursor=forged",
        Some(&shop),
    )
    .await
    .assert_status(400);
    // Filtered lists: what is left to ship.
    let to_ship = api
        .walk(
            "/api/merchants/orders/?status=pending&fulfilment=delivery",
            10,
            &shop,
        )
        .await;
    assert_eq!(to_ship.len(), 1);
    assert_eq!(to_ship[0]["id"], first["id"]);
    assert!(api
        .walk("/api/merchants/orders/?fulfilment=pickup", 10, &shop)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_packing_list_of_more_than_five_thousand_orders_comes_in_parts_that_join_up_exactly() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("bulk_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("bulk_mia", 6_000).await;
    let mug = api.create_product(&shop, "Mug", 1, 6_000).await;
    let orders = 5_003;
    use futures::StreamExt;
    let placed: Vec<_> = futures::stream::iter(0..orders)
        .map(|_| {
            let (api, mia, mug) = (api.clone(), mia.clone(), id_of(&mug));
            async move { api.redeem(&mia, &mug, 1).await.status }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(placed.iter().all(|s| *s == 201), "every order placed");

    let first = api
        .get("/api/merchants/orders/export.csv", Some(&shop))
        .await;
    first.assert_status(200);
    let cursor = first.header("x-next-cursor").unwrap().to_string();
    let link = first.header("link").unwrap().to_string();
    assert!(
        link.starts_with("<export.csv?cursor=") && link.ends_with(">; rel=\"next\""),
        "{link}"
    );
    let rows = |text: &str| -> Vec<String> {
        text.trim_start_matches('\u{feff}')
            .split("\r\n")
            .skip(1)
            .filter(|row| !row.is_empty())
            .map(|row| row.split(',').next().unwrap().to_string())
            .collect()
    };
    let head = rows(&first.raw_text());
    assert_eq!(head.len(), 5_000);
    let rest = api
        .get(
            &format!("/api/merchants/orders/export.csv?cursor={cursor}"),
            Some(&shop),
        )
        .await;
    rest.assert_status(200);
    assert!(rest.header("link").is_none());
    let tail = rows(&rest.raw_text());
    assert_eq!(tail.len(), 3);
    let mut every: Vec<String> = head.into_iter().chain(tail).collect();
    let total = every.len();
    every.sort();
    every.dedup();
    assert_eq!(every.len(), total, "no order twice");
    assert_eq!(total, orders);
}

#[tokio::test]
async fn twelve_addresses_saved_at_once_keep_exactly_ten() {
    let api = TestApi::start().await;
    let (_, mia) = api.member_with_points("mia", 100).await;
    let saves = (0..12).map(|i| {
        let (api, mia) = (api.clone(), mia.clone());
        async move {
            let mut body = address();
            body["address"] = json!(format!("臺北市 {i} 號"));
            api.post("/api/members/addresses/", body, Some(&mia)).await
        }
    });
    let answers = futures::future::join_all(saves).await;
    let saved = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.error_code() == "too_many_addresses")
        .count();
    assert_eq!((saved, refused), (10, 2));
    let listed = api.get("/api/members/addresses/", Some(&mia)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 10);
}

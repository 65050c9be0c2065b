//! Scenarios of merchants managing products and members browsing them.

use std::collections::HashSet;

use api_tests::TestApi;
use futures::future::join_all;
use serde_json::{json, Value};

fn id_of(product: &Value) -> String {
    product["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_merchant_lists_edits_and_retires_a_product() {
    let api = TestApi::start().await;
    let (merchant_id, token, _) = api.signed_up("tea_shop", "MERCHANT").await;

    let created = api
        .post(
            "/api/merchants/products/",
            json!({"name": "  Oolong gift box  ", "description": "150 g", "points_required": 1200, "stock": 5}),
            Some(&token),
        )
        .await;
    created.assert_status(201);
    let product = created.body.clone();
    assert_eq!(product["name"], "Oolong gift box", "name is trimmed");
    assert_eq!(product["merchant_id"], merchant_id);
    assert_eq!(product["is_active"], true);
    assert_eq!(product["version"], 1);
    assert_eq!(product["points_required"], 1200);
    assert_eq!(product["stock"], 5);
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert!(product["created_at"].is_string() && product["updated_at"].is_string());
    let path = format!("/api/merchants/products/{}/", id_of(&product));

    let fetched = api.get(&path, Some(&token)).await;
    fetched.assert_status(200);
    assert_eq!(fetched.body, product);

    let updated = api
        .put(
            &path,
            json!({"stock": 8, "points_required": 1000, "version": 1}),
            Some(&token),
        )
        .await;
    updated.assert_status(200);
    assert_eq!(updated.body["version"], 2);
    assert_eq!(updated.body["stock"], 8);
    assert_eq!(updated.body["points_required"], 1000);
    assert_eq!(updated.body["name"], "Oolong gift box");

    api.delete(&path, Some(&token)).await.assert_status(204);
    api.delete(&path, Some(&token)).await.assert_status(204);
    let retired = api.get(&path, Some(&token)).await;
    assert_eq!(retired.body["is_active"], false);
    assert_eq!(
        retired.body["version"], 3,
        "the second delete changed nothing"
    );

    let mine = api.get("/api/merchants/products/", Some(&token)).await;
    mine.assert_status(200);
    assert_eq!(
        mine.body["items"].as_array().unwrap().len(),
        1,
        "inactive products stay in my list"
    );
    assert_eq!(mine.body["next_cursor"], Value::Null);

    let (_, member, _) = api.signed_up("amy", "MEMBER").await;
    let browse = api.get("/api/members/products/", Some(&member)).await;
    assert_eq!(browse.body["items"], json!([]));
    let member_view = api
        .get(
            &format!("/api/members/products/{}/", id_of(&product)),
            Some(&member),
        )
        .await;
    member_view.assert_status(404);
    assert_eq!(member_view.error_code(), "product_not_found");

    // Reactivating puts it back on the catalogue.
    api.put(
        &path,
        json!({"is_active": true, "version": 3}),
        Some(&token),
    )
    .await
    .assert_status(200);
    let browse = api.get("/api/members/products/", Some(&member)).await;
    assert_eq!(browse.body["items"][0]["id"], product["id"]);
}

#[tokio::test]
async fn every_product_field_is_validated_and_nothing_is_written() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let before = api.item_count().await;
    let valid = json!({"name": "Tea", "description": "", "points_required": 10, "stock": 0});
    let cases = [
        ("name", json!("   ")),
        ("name", json!("x".repeat(201))),
        ("description", json!("x".repeat(2001))),
        ("points_required", json!(0)),
        ("points_required", json!(10_000_001)),
        ("stock", json!(-1)),
        ("stock", json!(1_000_001)),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        body[field] = value.clone();
        let response = api
            .post("/api/merchants/products/", body, Some(&token))
            .await;
        response.assert_status(400);
        assert!(
            response.body["error"]["fields"][field].is_string(),
            "{field}={value}: {}",
            response.body
        );
    }
    for (field, value) in [
        ("points_required", json!(1.5)),
        ("stock", json!("5")),
        ("name", json!(7)),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        let response = api
            .post("/api/merchants/products/", body, Some(&token))
            .await;
        response.assert_status(400);
        assert_eq!(response.error_code(), "invalid_body");
        assert!(response.body["error"]["fields"][field].is_string());
    }
    let missing = api
        .post("/api/merchants/products/", json!({}), Some(&token))
        .await;
    missing.assert_status(400);
    for field in ["name", "points_required", "stock"] {
        assert_eq!(missing.body["error"]["fields"][field], "is required");
    }
    assert_eq!(api.item_count().await, before);

    // The same rules on update, and nothing changes.
    let product = api.create_product(&token, "Tea", 10, 3).await;
    let path = format!("/api/merchants/products/{}/", id_of(&product));
    for (field, value) in [
        ("name", json!("")),
        ("points_required", json!(0)),
        ("stock", json!(-5)),
        ("description", json!("x".repeat(2001))),
    ] {
        let response = api
            .put(&path, json!({field: value, "version": 1}), Some(&token))
            .await;
        response.assert_status(400);
        assert!(response.body["error"]["fields"][field].is_string());
    }
    let no_version = api.put(&path, json!({"stock": 4}), Some(&token)).await;
    no_version.assert_status(400);
    assert!(no_version.body["error"]["fields"]["version"].is_string());
    let nothing = api.put(&path, json!({"version": 1}), Some(&token)).await;
    nothing.assert_status(400);
    assert_eq!(api.get(&path, Some(&token)).await.body, product);
}

#[tokio::test]
async fn a_stale_version_is_refused_and_changes_nothing() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let product = api.create_product(&token, "Tea", 10, 3).await;
    let path = format!("/api/merchants/products/{}/", id_of(&product));

    api.put(&path, json!({"stock": 4, "version": 1}), Some(&token))
        .await
        .assert_status(200);
    let stale = api
        .put(&path, json!({"stock": 99, "version": 1}), Some(&token))
        .await;
    stale.assert_status(409);
    assert_eq!(stale.error_code(), "version_conflict");
    let now = api.get(&path, Some(&token)).await;
    assert_eq!(
        (now.body["stock"].as_i64(), now.body["version"].as_i64()),
        (Some(4), Some(2))
    );

    // The version may come as If-Match instead.
    let request = http::Request::builder()
        .method("PUT")
        .uri(&path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("if-match", "\"2\"")
        .body(br#"{"stock": 7}"#.to_vec())
        .unwrap();
    let via_header = api.send(request).await;
    via_header.assert_status(200);
    assert_eq!(via_header.body["version"], 3);
    assert_eq!(via_header.header("etag"), Some("\"3\""));
    let request = http::Request::builder()
        .method("PUT")
        .uri(&path)
        .header("authorization", format!("Bearer {token}"))
        .header("if-match", "\"2\"")
        .body(br#"{"stock": 1}"#.to_vec())
        .unwrap();
    api.send(request).await.assert_status(409);
}

#[tokio::test]
async fn two_edits_racing_on_the_same_version_cannot_both_win() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let product = api.create_product(&token, "Tea", 10, 3).await;
    let path = format!("/api/merchants/products/{}/", id_of(&product));
    let racers = (0..10).map(|i| {
        let (api, path, token) = (api.clone(), path.clone(), token.clone());
        tokio::spawn(async move {
            api.put(&path, json!({"stock": 100 + i, "version": 1}), Some(&token))
                .await
        })
    });
    let responses: Vec<_> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<_> = responses.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(responses.iter().filter(|r| r.status == 409).count(), 9);
    let now = api.get(&path, Some(&token)).await;
    assert_eq!(now.body["stock"], winners[0].body["stock"]);
    assert_eq!(now.body["version"], 2);
}

#[tokio::test]
async fn roles_are_enforced_on_both_sides() {
    let api = TestApi::start().await;
    let (_, merchant, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, member, _) = api.signed_up("amy", "MEMBER").await;
    let product = api.create_product(&merchant, "Tea", 10, 3).await;
    let merchant_path = format!("/api/merchants/products/{}/", id_of(&product));

    for response in [
        api.get("/api/merchants/products/", Some(&member)).await,
        api.post(
            "/api/merchants/products/",
            json!({"name": "x", "points_required": 1, "stock": 1}),
            Some(&member),
        )
        .await,
        api.get(&merchant_path, Some(&member)).await,
        api.put(
            &merchant_path,
            json!({"stock": 0, "version": 1}),
            Some(&member),
        )
        .await,
        api.delete(&merchant_path, Some(&member)).await,
        api.get("/api/members/products/", Some(&merchant)).await,
    ] {
        response.assert_status(403);
        assert_eq!(response.error_code(), "forbidden");
    }
    api.get("/api/merchants/products/", None)
        .await
        .assert_status(401);
    api.get("/api/members/products/", None)
        .await
        .assert_status(401);
    assert_eq!(api.get(&merchant_path, Some(&merchant)).await.body, product);
}

#[tokio::test]
async fn another_merchants_product_is_invisible_and_untouchable() {
    let api = TestApi::start().await;
    let (_, owner, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, rival, _) = api.signed_up("coffee_shop", "MERCHANT").await;
    let product = api.create_product(&owner, "Tea", 10, 3).await;
    let path = format!("/api/merchants/products/{}/", id_of(&product));

    for response in [
        api.get(&path, Some(&rival)).await,
        api.put(&path, json!({"stock": 0, "version": 1}), Some(&rival))
            .await,
        api.delete(&path, Some(&rival)).await,
    ] {
        response.assert_status(404);
        assert_eq!(response.error_code(), "product_not_found");
    }
    // Same answer as for an id that does not exist at all, or is not an id.
    let unknown = api
        .get(
            "/api/merchants/products/01890000-0000-7000-8000-000000000000/",
            Some(&rival),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        api.get("/api/merchants/products/not-an-id/", Some(&rival))
            .await
            .status,
        404
    );
    assert_eq!(
        api.get(&path, Some(&owner)).await.body,
        product,
        "unchanged"
    );
    assert_eq!(
        api.get("/api/merchants/products/", Some(&rival)).await.body["items"],
        json!([])
    );
}

#[tokio::test]
async fn two_hundred_and_fifty_products_page_at_seven_without_loss_or_repeat() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, member, _) = api.signed_up("amy", "MEMBER").await;
    let mut created = Vec::new();
    for i in 0..250 {
        created.push(id_of(
            &api.create_product(&token, &format!("Gift {i}"), 10, i % 3)
                .await,
        ));
    }
    let walked: Vec<String> = api
        .walk("/api/merchants/products/", 7, &token)
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(walked.len(), 250);
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 250);
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(walked, newest_first);

    let catalogue = api.walk("/api/members/products/", 7, &member).await;
    assert_eq!(catalogue.len(), 250);
    assert!(catalogue
        .iter()
        .all(|p| p["in_stock"] == json!(p["stock"].as_i64().unwrap() > 0)));
    assert!(
        catalogue.iter().any(|p| p["in_stock"] == false),
        "sold-out products are listed, marked"
    );

    // 250 = 5 full pages of 50: the fifth says it is the last, no cursor leads to an empty page.
    let mut url = "/api/merchants/products/?limit=50".to_string();
    for page_number in 1..=5 {
        let page = api.get(&url, Some(&token)).await;
        assert_eq!(page.body["items"].as_array().unwrap().len(), 50);
        match page.body["next_cursor"].as_str() {
            Some(next) => url = format!("/api/merchants/products/?limit=50&cursor={next}"),
            None => assert_eq!(page_number, 5),
        }
        if page_number == 5 {
            assert_eq!(page.body["next_cursor"], Value::Null);
        }
    }
}

#[tokio::test]
async fn walking_pages_while_products_are_added_returns_each_existing_one_once() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let mut existing = HashSet::new();
    for i in 0..30 {
        existing.insert(id_of(
            &api.create_product(&token, &format!("Gift {i}"), 10, 1)
                .await,
        ));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/merchants/products/?limit=4&cursor={c}"),
            None => "/api/merchants/products/?limit=4".to_string(),
        };
        let page = api.get(&url, Some(&token)).await;
        seen.extend(page.body["items"].as_array().unwrap().iter().map(id_of));
        api.create_product(&token, &format!("Late {added}"), 10, 1)
            .await;
        added += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let seen_set: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), seen_set.len(), "no product twice");
    assert!(
        existing.is_subset(&seen_set),
        "every product that existed is seen"
    );
}

#[tokio::test]
async fn bad_page_parameters_and_forged_cursors_are_400s() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, rival, _) = api.signed_up("coffee_shop", "MERCHANT").await;
    let (_, member, _) = api.signed_up("amy", "MEMBER").await;
    for i in 0..5 {
        api.create_product(&token, &format!("Gift {i}"), 10, 1)
            .await;
    }
    for query in ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=2.5"] {
        let response = api
            .get(&format!("/api/merchants/products/?{query}"), Some(&token))
            .await;
        response.assert_status(400);
        assert_eq!(response.error_code(), "invalid_query", "{query}");
    }
    let first = api
        .get("/api/merchants/products/?limit=2", Some(&token))
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();

    // Flip one character of the signed key.
    let mut tampered: Vec<char> = cursor.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for bad in [tampered.as_str(), "garbage", "a.b"] {
        let response = api
            .get(
                &format!("/api/merchants/products/?cursor={bad}"),
                Some(&token),
            )
            .await;
        response.assert_status(400);
        assert_eq!(response.error_code(), "invalid_cursor");
    }
    // A genuine cursor, used by another merchant or on another list, is refused too.
    let foreign = api
        .get(
            &format!("/api/merchants/products/?cursor={cursor}"),
            Some(&rival),
        )
        .await;
    foreign.assert_status(400);
    let other_list = api
        .get(
            &format!("/api/members/products/?cursor={cursor}"),
            Some(&member),
        )
        .await;
    other_list.assert_status(400);
    let bad_filter = api
        .get("/api/members/products/?merchant_id=someone", Some(&member))
        .await;
    bad_filter.assert_status(400);
    assert!(bad_filter.body["error"]["fields"]["merchant_id"].is_string());
}

#[tokio::test]
async fn members_browse_the_active_catalogue_and_filter_by_merchant() {
    let api = TestApi::start().await;
    let (tea_id, tea, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, coffee, _) = api.signed_up("coffee_shop", "MERCHANT").await;
    let (_, member, _) = api.signed_up("amy", "MEMBER").await;
    let oolong = api.create_product(&tea, "Oolong", 100, 2).await;
    let retired = api.create_product(&tea, "Old blend", 100, 2).await;
    let sold_out = api.create_product(&tea, "Rare pu-erh", 900, 0).await;
    let beans = api.create_product(&coffee, "Beans", 300, 9).await;
    api.delete(
        &format!("/api/merchants/products/{}/", id_of(&retired)),
        Some(&tea),
    )
    .await
    .assert_status(204);

    let all = api.walk("/api/members/products/", 2, &member).await;
    let ids: Vec<String> = all.iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&beans), id_of(&sold_out), id_of(&oolong)]);
    assert_eq!(all[1]["in_stock"], false);
    assert!(all[0].get("version").is_none() && all[0].get("is_active").is_none());

    let tea_only = api
        .walk(
            &format!("/api/members/products/?merchant_id={tea_id}"),
            1,
            &member,
        )
        .await;
    let ids: Vec<String> = tea_only.iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&sold_out), id_of(&oolong)]);

    let one = api
        .get(
            &format!("/api/members/products/{}/", id_of(&oolong)),
            Some(&member),
        )
        .await;
    one.assert_status(200);
    assert_eq!(one.body["name"], "Oolong");
    assert_eq!(one.body["in_stock"], true);
    api.get("/api/members/products/nope/", Some(&member))
        .await
        .assert_status(404);
}

//! What the two indexes carry: every attribute the lists read, never a password hash; and the lists
//! whose index keys are spread over several partitions (the catalogue, one merchant's orders) read
//! back whole and in order, page after page.

use std::collections::BTreeMap;

use api_tests::TestApi;
use serde_json::{json, Value};

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_indexes_carry_every_attribute_but_the_password() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    // Every kind of indexed item in every state: products on sale, withdrawn and taken down; a paid
    // recharge, an open one and a retried checkout; orders pending and cancelled; users of each role.
    let mug = api.create_product(&shop, "Mug", 10, 50).await;
    let cup = api.create_product(&shop, "Cup", 10, 50).await;
    let tea = api.create_product(&shop, "Tea", 10, 50).await;
    let cup_id = cup["id"].as_str().unwrap();
    let version = api
        .get(&format!("/api/merchants/products/{cup_id}/"), Some(&shop))
        .await
        .body["version"]
        .clone();
    api.put(
        &format!("/api/merchants/products/{cup_id}/"),
        json!({"is_active": false, "version": version}),
        Some(&shop),
    )
    .await
    .assert_status(200);
    let tea_id = tea["id"].as_str().unwrap();
    api.post(
        &format!("/api/admin/products/{tea_id}/deactivate/"),
        json!({"reason": "counterfeit"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    let (_, mia) = api.member_with_points("mia", 500).await;
    api.start_recharge(&mia, 300).await;
    let mug_id = mug["id"].as_str().unwrap();
    api.redeem(&mia, mug_id, 1).await.assert_status(201);
    let order = api.redeem(&mia, mug_id, 2).await;
    order.assert_status(201);
    let order_id = order.body["id"].as_str().unwrap();
    api.post(
        &format!("/api/members/orders/{order_id}/cancel/"),
        json!({}),
        Some(&mia),
    )
    .await
    .assert_status(200);

    let differences = api.ctx.store.index_copy_differences().await.unwrap();
    assert!(differences.is_empty(), "{differences:#?}");

    // Every list read from an index still answers whole (no attribute it reads is missing).
    assert_eq!(api.walk("/api/members/products/", 2, &mia).await.len(), 1);
    assert_eq!(
        api.walk("/api/merchants/products/", 2, &shop).await.len(),
        3
    );
    assert_eq!(api.walk("/api/members/orders/", 1, &mia).await.len(), 2);
    assert_eq!(api.walk("/api/merchants/orders/", 1, &shop).await.len(), 2);
    assert_eq!(api.walk("/api/members/payments/", 1, &mia).await.len(), 2);
    let directory = api.walk("/api/admin/users/", 1, &operator).await;
    let names: Vec<&str> = directory
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mia", "olive", "tea_shop"]);
    assert!(directory.iter().all(|u| u.get("password_hash").is_none()));
}

#[tokio::test]
async fn the_spread_catalogue_reads_back_whole_and_newest_first_at_every_page_size() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 100).await;
    let mut created = Vec::new();
    for i in 0..23 {
        let product = api.create_product(&shop, &format!("Gift {i}"), 10, 5).await;
        created.push(product["id"].as_str().unwrap().to_string());
    }
    created.reverse();
    for limit in [1, 2, 5, 7, 20, 100] {
        let listed = ids(&api.walk("/api/members/products/", limit, &mia).await);
        assert_eq!(listed, created, "page size {limit}");
    }
}

#[tokio::test]
async fn a_merchants_spread_orders_read_back_whole_by_status_and_newest_first() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let gift = api.create_product(&shop, "Gift", 10, 100).await;
    let gift_id = gift["id"].as_str().unwrap();
    let mut statuses = BTreeMap::<String, Vec<String>>::new();
    let mut every = Vec::new();
    for i in 0..30 {
        let order = api.redeem(&mia, gift_id, 1).await;
        order.assert_status(201);
        let id = order.body["id"].as_str().unwrap().to_string();
        // Every third one cancelled: a status filter skips rows on every partition.
        let status = if i % 3 == 0 {
            api.post(
                &format!("/api/members/orders/{id}/cancel/"),
                json!({}),
                Some(&mia),
            )
            .await
            .assert_status(200);
            "cancelled"
        } else {
            "pending"
        };
        statuses
            .entry(status.into())
            .or_default()
            .insert(0, id.clone());
        every.insert(0, id);
    }
    for limit in [1, 3, 8, 50] {
        let listed = ids(&api.walk("/api/merchants/orders/", limit, &shop).await);
        assert_eq!(listed, every, "page size {limit}");
        for (status, expected) in &statuses {
            let path = format!("/api/merchants/orders/?status={status}");
            let listed = ids(&api.walk(&path, limit, &shop).await);
            assert_eq!(&listed, expected, "{status}, page size {limit}");
        }
    }
    // A status no order has: an empty list, not an endless one.
    assert!(api
        .walk("/api/merchants/orders/?status=completed", 4, &shop)
        .await
        .is_empty());
}

#[tokio::test]
async fn data_from_before_the_spread_keys_is_moved_to_them_and_lists_whole_again() {
    let api = TestApi::start().await;
    let (merchant_id, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 1_000).await;
    let mut products = Vec::new();
    for i in 0..5 {
        let product = api.create_product(&shop, &format!("Gift {i}"), 10, 5).await;
        products.insert(0, product["id"].as_str().unwrap().to_string());
    }
    let mut orders = Vec::new();
    for product in &products {
        let order = api.redeem(&mia, product, 1).await;
        order.assert_status(201);
        orders.insert(0, order.body["id"].as_str().unwrap().to_string());
    }
    // As the version before the spread wrote them: one catalogue partition, one per merchant.
    let store = &api.ctx.store;
    for id in &products {
        store
            .write_as_earlier_version(&format!("PRODUCT#{id}"), "PRODUCT", "gsi2pk", "CATALOGUE")
            .await
            .unwrap();
    }
    for id in &orders {
        store
            .write_as_earlier_version(
                &format!("ORDER#{id}"),
                "ORDER",
                "gsi2pk",
                &format!("MERCHANT_ORDERS#{merchant_id}"),
            )
            .await
            .unwrap();
    }
    assert!(api.walk("/api/members/products/", 3, &mia).await.is_empty());

    assert_eq!(store.spread_legacy_index_keys().await.unwrap(), 10);
    assert_eq!(store.spread_legacy_index_keys().await.unwrap(), 0, "once");
    assert_eq!(
        ids(&api.walk("/api/members/products/", 3, &mia).await),
        products
    );
    assert_eq!(
        ids(&api.walk("/api/merchants/orders/", 3, &shop).await),
        orders
    );
    let differences = store.index_copy_differences().await.unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
}

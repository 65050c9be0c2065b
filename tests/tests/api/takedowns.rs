//! Who may put a product on sale: an operator's takedown holds until an operator lifts it, and a
//! disabled merchant's products leave the catalogue and come back as they were when re-enabled.

use api_tests::TestApi;
use futures::future::join_all;
use serde_json::{json, Value};

async fn catalogue_ids(api: &TestApi, token: &str) -> Vec<String> {
    api.walk("/api/members/products/", 100, token)
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

async fn version(api: &TestApi, shop: &str, id: &str) -> i64 {
    api.get(&format!("/api/merchants/products/{id}/"), Some(shop))
        .await
        .body["version"]
        .as_i64()
        .unwrap()
}

async fn operator_action(api: &TestApi, operator: &str, path: String, reason: &str) -> Value {
    let answer = api
        .post(&path, json!({"reason": reason}), Some(operator))
        .await;
    answer.assert_status(200);
    answer.body
}

#[tokio::test]
async fn a_merchant_cannot_undo_an_operators_takedown_until_an_operator_lifts_it() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 500).await;
    let mug = api.create_product(&shop, "Mug", 10, 50).await;
    let id = mug["id"].as_str().unwrap();

    let down = operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{id}/deactivate/"),
        "counterfeit",
    )
    .await;
    assert_eq!(down["is_active"], false);
    assert_eq!(down["blocked"], true);

    // What the attack run did: the merchant puts it back on sale with the version they read.
    let path = format!("/api/merchants/products/{id}/");
    let before = api.item_count().await;
    let undo = api
        .put(
            &path,
            json!({"is_active": true, "version": version(&api, &shop, id).await}),
            Some(&shop),
        )
        .await;
    undo.assert_status(409);
    assert_eq!(undo.error_code(), "product_blocked");
    assert_eq!(api.item_count().await, before);
    api.redeem(&mia, id, 1).await.assert_status(404);
    assert!(!catalogue_ids(&api, &mia).await.contains(&id.to_string()));

    // Other edits still go through, and leave it off sale.
    let edit = api
        .put(
            &path,
            json!({"description": "now with a certificate", "version": version(&api, &shop, id).await}),
            Some(&shop),
        )
        .await;
    edit.assert_status(200);
    assert_eq!(edit.body["is_active"], false);
    assert_eq!(edit.body["blocked"], true);

    let lifted = operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{id}/reinstate/"),
        "certificate checked",
    )
    .await;
    assert_eq!(lifted["blocked"], false);
    assert_eq!(lifted["is_active"], true, "the merchant still lists it");
    api.redeem(&mia, id, 1).await.assert_status(201);
    // Lifting twice changes nothing and logs nothing.
    operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{id}/reinstate/"),
        "again",
    )
    .await;

    let log = api.walk("/api/admin/audit/", 100, &operator).await;
    let actions: Vec<&str> = log
        .iter()
        .filter(|e| e["target"] == format!("product:{id}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["product_reinstated", "product_deactivated"]);
    api.assert_points_invariants(&[member]).await;
    api.assert_stock_invariant(&shop, id, 50).await;
}

#[tokio::test]
async fn lifting_a_takedown_does_not_list_what_the_merchant_withdrew_meanwhile() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 500).await;
    let id = api.create_product(&shop, "Mug", 10, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{id}/deactivate/"),
        "counterfeit",
    )
    .await;
    // Withdrawing stays allowed while it is taken down.
    api.delete(&format!("/api/merchants/products/{id}/"), Some(&shop))
        .await
        .assert_status(204);
    let lifted = operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{id}/reinstate/"),
        "appeal",
    )
    .await;
    assert_eq!(lifted["is_active"], false);
    api.redeem(&mia, &id, 1).await.assert_status(404);
    // The merchant lists it again: now nothing stands in the way.
    let listed = api
        .put(
            &format!("/api/merchants/products/{id}/"),
            json!({"is_active": true, "version": version(&api, &shop, &id).await}),
            Some(&shop),
        )
        .await;
    listed.assert_status(200);
    assert_eq!(listed.body["is_active"], true);
    api.redeem(&mia, &id, 1).await.assert_status(201);
}

#[tokio::test]
async fn a_disabled_merchants_products_leave_the_catalogue_and_return_as_they_were() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (merchant, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, other_shop, _) = api.signed_up("pen_shop", "MERCHANT").await;
    let (member, mia) = api.member_with_points("mia", 5_000).await;
    let on_sale = api.create_product(&shop, "Mug", 10, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let withdrawn = api.create_product(&shop, "Cup", 10, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let taken_down = api.create_product(&shop, "Fake", 10, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let elsewhere = api.create_product(&other_shop, "Pen", 5, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.delete(
        &format!("/api/merchants/products/{withdrawn}/"),
        Some(&shop),
    )
    .await
    .assert_status(204);
    operator_action(
        &api,
        &operator,
        format!("/api/admin/products/{taken_down}/deactivate/"),
        "counterfeit",
    )
    .await;

    // Members race for the merchant's product while an operator disables the merchant.
    let path = format!("/api/admin/users/{merchant}/disable/");
    let disabling = api.post(&path, json!({"reason": "fraud"}), Some(&operator));
    let racing = join_all((0..10).map(|_| api.redeem(&mia, &on_sale, 1)));
    let (disabled, raced) = futures::join!(disabling, racing);
    disabled.assert_status(200);
    assert!(raced
        .iter()
        .all(|r| [201, 404].contains(&r.status.as_u16())));

    let refused = api.redeem(&mia, &on_sale, 1).await;
    refused.assert_status(404);
    assert_eq!(refused.error_code(), "product_not_found");
    api.get(&format!("/api/members/products/{on_sale}/"), Some(&mia))
        .await
        .assert_status(404);
    assert_eq!(
        catalogue_ids(&api, &mia).await,
        std::slice::from_ref(&elsewhere)
    );
    let by_merchant = api
        .walk(
            &format!("/api/members/products/?merchant_id={merchant}"),
            10,
            &mia,
        )
        .await;
    assert!(by_merchant.is_empty());

    api.post(
        &format!("/api/admin/users/{merchant}/enable/"),
        json!({"reason": "cleared"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    let mut back = catalogue_ids(&api, &mia).await;
    back.sort();
    let mut expected = vec![on_sale.clone(), elsewhere];
    expected.sort();
    assert_eq!(back, expected, "only what was on sale before returns");
    api.redeem(&mia, &on_sale, 1).await.assert_status(201);
    // The merchant's own session ended with the disable; a new one sees their products as before.
    let shop = api.login("tea_shop", api_tests::PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = api.walk("/api/merchants/products/", 10, &shop).await;
    let state = |id: &str| {
        let p = mine.iter().find(|p| p["id"] == id).unwrap();
        (
            p["is_active"].as_bool().unwrap(),
            p["blocked"].as_bool().unwrap(),
        )
    };
    assert_eq!(state(&on_sale), (true, false));
    assert_eq!(state(&withdrawn), (false, false));
    assert_eq!(state(&taken_down), (false, true));
    api.assert_points_invariants(&[member]).await;
    api.assert_stock_invariant(&shop, &on_sale, 50).await;
}

#[tokio::test]
async fn two_operators_disabling_each_other_at_once_leave_one_operator() {
    let api = TestApi::start().await;
    let (olive_id, olive) = api.signed_in_admin("olive").await;
    let (omar_id, omar) = api.signed_in_admin("omar").await;
    let (disable_omar, disable_olive) = (
        format!("/api/admin/users/{omar_id}/disable/"),
        format!("/api/admin/users/{olive_id}/disable/"),
    );
    let (a, b) = futures::join!(
        api.post(&disable_omar, json!({"reason": "rogue"}), Some(&olive)),
        api.post(&disable_olive, json!({"reason": "rogue"}), Some(&omar)),
    );
    let succeeded = [&a, &b].iter().filter(|r| r.status == 200).count();
    assert_eq!(succeeded, 1, "exactly one of the two disables goes through");
    let loser = if a.status == 200 { &b } else { &a };
    assert_eq!(loser.status, 401);
    assert_eq!(loser.error_code(), "account_disabled");
    let mut active = 0;
    for id in [&olive_id, &omar_id] {
        let user = api.ctx.store.get_user(&api_tests::user_id(id)).await;
        active += usize::from(user.unwrap().unwrap().is_active);
    }
    assert_eq!(active, 1);
}

#[tokio::test]
async fn a_takedown_racing_the_merchants_own_edits_holds_whichever_lands_first() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 500).await;
    let id = api.create_product(&shop, "Mug", 10, 50).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/merchants/products/{id}/");
    // The merchant toggles the product off and on as fast as they can, each edit based on the
    // version they just read, while an operator takes it down.
    let merchant = async {
        let mut answers = Vec::new();
        for turn in 0..20 {
            let version = version(&api, &shop, &id).await;
            let listed = turn % 2 == 1;
            let answer = api
                .put(
                    &path,
                    json!({"is_active": listed, "version": version}),
                    Some(&shop),
                )
                .await;
            answers.push((answer.status.as_u16(), answer.error_code().to_string()));
        }
        answers
    };
    let takedown = async {
        tokio::task::yield_now().await;
        api.post(
            &format!("/api/admin/products/{id}/deactivate/"),
            json!({"reason": "counterfeit"}),
            Some(&operator),
        )
        .await
    };
    let (answers, down) = futures::join!(merchant, takedown);
    down.assert_status(200);
    for (status, code) in &answers {
        assert!(
            *status == 200
                || (*status == 409
                    && ["product_blocked", "version_conflict"].contains(&code.as_str())),
            "{status} {code}"
        );
    }
    // Whatever the interleaving, the takedown held.
    let now = api.get(&path, Some(&shop)).await;
    assert_eq!(
        (now.body["blocked"].clone(), now.body["is_active"].clone()),
        (json!(true), json!(false))
    );
    api.redeem(&mia, &id, 1).await.assert_status(404);
    assert!(!catalogue_ids(&api, &mia).await.contains(&id));
}

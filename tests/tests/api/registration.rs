//! Scenarios of people signing up.

use api_tests::{TestApi, PASSWORD};
use futures::future::join_all;
use serde_json::json;

#[tokio::test]
async fn a_member_registers_and_gets_an_empty_point_account() {
    let api = TestApi::start().await;
    let response = api.register("amy", "MEMBER").await;
    response.assert_status(201);
    assert_eq!(response.body["username"], "amy");
    assert_eq!(response.body["email"], "amy@example.com");
    assert_eq!(response.body["role"], "MEMBER");
    assert!(response.body.get("password").is_none());
    assert!(
        !String::from_utf8_lossy(&response.raw).contains("argon2"),
        "hash leaked"
    );

    let id = response.body["id"].as_str().unwrap();
    let account = api
        .ctx
        .store
        .get_point_account(&api_tests::user_id(id))
        .await
        .unwrap()
        .expect("account exists");
    assert_eq!(
        (account.balance, account.total_earned, account.total_spent),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_member_signs_up_and_logs_in_at_the_production_password_cost() {
    let api = TestApi::start_with(|config| {
        config.password_cost = shared::auth::password::PasswordCost::PRODUCTION;
    })
    .await;
    let response = api.register("amy", "MEMBER").await;
    response.assert_status(201);
    let id = response.body["id"].as_str().unwrap();
    let user = api
        .ctx
        .store
        .get_user(&api_tests::user_id(id))
        .await
        .unwrap()
        .expect("user exists");
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "stored at the production cost: {}",
        &user.password_hash[..30]
    );
    api.login("amy", PASSWORD).await.assert_status(200);
    api.login("amy", "wrong password").await.assert_status(401);
    // An unknown username costs the same verification, at the same cost.
    api.login("nobody", PASSWORD).await.assert_status(401);
}

#[tokio::test]
async fn a_merchant_registers_without_a_point_account() {
    let api = TestApi::start().await;
    let response = api.register("tea_shop", "MERCHANT").await;
    response.assert_status(201);
    assert_eq!(response.body["role"], "MERCHANT");
    let id = response.body["id"].as_str().unwrap();
    assert!(api
        .ctx
        .store
        .get_point_account(&api_tests::user_id(id))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let api = TestApi::start().await;
    api.register("Amy", "MEMBER").await.assert_status(201);

    let same_name = api
        .post(
            "/api/auth/register/",
            json!({"username": "aMY", "email": "other@example.com", "password": PASSWORD, "role": "MEMBER"}),
            None,
        )
        .await;
    same_name.assert_status(409);
    assert_eq!(same_name.error_code(), "username_taken");
    assert!(same_name.body["error"]["fields"]["username"].is_string());

    let same_email = api
        .post(
            "/api/auth/register/",
            json!({"username": "someone", "email": "AMY@Example.COM", "password": PASSWORD, "role": "MERCHANT"}),
            None,
        )
        .await;
    same_email.assert_status(409);
    assert_eq!(same_email.error_code(), "email_taken");
    assert!(same_email.body["error"]["fields"]["email"].is_string());
}

#[tokio::test]
async fn a_refused_duplicate_leaves_no_half_registered_user() {
    let api = TestApi::start().await;
    api.register("amy", "MEMBER").await.assert_status(201);
    let before = api.item_count().await;
    // Username free, email taken: neither the new username guard nor a user may remain.
    let response = api
        .post(
            "/api/auth/register/",
            json!({"username": "brand_new", "email": "amy@example.com", "password": PASSWORD, "role": "MEMBER"}),
            None,
        )
        .await;
    response.assert_status(409);
    assert_eq!(api.item_count().await, before);
    api.login("brand_new", PASSWORD).await.assert_status(401);
}

#[tokio::test]
async fn twenty_people_race_for_one_username_and_exactly_one_wins() {
    let api = TestApi::start().await;
    let attempts = (0..20).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            api.post(
                "/api/auth/register/",
                json!({"username": "popular", "email": format!("racer{i}@example.com"), "password": PASSWORD, "role": "MEMBER"}),
                None,
            )
            .await
        })
    });
    let responses: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let created = responses.iter().filter(|r| r.status == 201).count();
    let conflicts = responses
        .iter()
        .filter(|r| r.status == 409 && r.error_code() == "username_taken")
        .count();
    assert_eq!(
        (created, conflicts),
        (1, 19),
        "statuses: {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // One user, two guards, one account: nothing from the nineteen losers.
    assert_eq!(api.item_count().await, 4);
}

#[tokio::test]
async fn every_field_is_validated_and_nothing_is_written() {
    let api = TestApi::start().await;
    let cases = [
        (
            json!({"username": "ab", "email": "a@example.com", "password": PASSWORD, "role": "MEMBER"}),
            "username",
        ),
        (
            json!({"username": "a".repeat(151), "email": "a@example.com", "password": PASSWORD, "role": "MEMBER"}),
            "username",
        ),
        (
            json!({"username": "amy lin", "email": "a@example.com", "password": PASSWORD, "role": "MEMBER"}),
            "username",
        ),
        (
            json!({"username": "amy", "email": "not-an-email", "password": PASSWORD, "role": "MEMBER"}),
            "email",
        ),
        (
            json!({"username": "amy", "email": "a@example.com", "password": "short", "role": "MEMBER"}),
            "password",
        ),
        (
            json!({"username": "amy", "email": "a@example.com", "password": "1234567890", "role": "MEMBER"}),
            "password",
        ),
        (
            json!({"username": "amy", "email": "a@example.com", "password": PASSWORD, "role": "ADMIN"}),
            "role",
        ),
        (
            json!({"username": "amy", "email": "a@example.com", "password": PASSWORD, "role": "member"}),
            "role",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "role": "MEMBER"}),
            "username",
        ),
        (
            json!({"username": "amy", "email": "a@example.com", "password": PASSWORD}),
            "role",
        ),
        (
            json!({"username": "amy", "email": null, "password": PASSWORD, "role": "MEMBER"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let response = api.post("/api/auth/register/", body.clone(), None).await;
        response.assert_status(400);
        assert_eq!(response.error_code(), "validation_failed", "{body}");
        assert!(
            response.body["error"]["fields"][field].is_string(),
            "{field} not reported for {body}: {}",
            response.body
        );
    }
    assert_eq!(api.item_count().await, 0);
}

#[tokio::test]
async fn all_missing_fields_are_reported_together() {
    let api = TestApi::start().await;
    let response = api.post("/api/auth/register/", json!({}), None).await;
    response.assert_status(400);
    let fields = response.body["error"]["fields"].as_object().unwrap();
    for field in ["username", "email", "password", "role"] {
        assert_eq!(fields[field], "is required");
    }
}

async fn register_as(api: &TestApi, username: &str, email: &str) -> api_tests::TestResponse {
    api.post(
        "/api/auth/register/",
        json!({"username": username, "email": email, "password": PASSWORD, "role": "MEMBER"}),
        None,
    )
    .await
}

#[tokio::test]
async fn look_alike_usernames_cannot_register_beside_the_original() {
    let api = TestApi::start().await;
    register_as(&api, "alice", "alice@example.com")
        .await
        .assert_status(201);
    for (twin, email) in [
        ("ａｌｉｃｅ", "twin1@example.com"), // fullwidth
        ("аlice", "twin2@example.com"),      // Cyrillic а
        ("alіce", "twin4@example.com"),      // Cyrillic і
    ] {
        let answer = register_as(&api, twin, email).await;
        answer.assert_status(409);
        assert_eq!(answer.error_code(), "username_taken", "{twin}");
    }
    // Emails are ASCII (the documented `format: email`): a fullwidth form is refused outright, and
    // another case of the same address collides.
    let answer = register_as(&api, "alice2", "ＡＬＩＣＥ@example.com").await;
    answer.assert_status(400);
    assert!(answer.body["error"]["fields"]["email"].is_string());
    let answer = register_as(&api, "alice3", "ALICE@Example.com").await;
    answer.assert_status(409);
    assert_eq!(answer.error_code(), "email_taken");
    // The owner signs in with the fullwidth form of her own name as well.
    api.login("ａｌｉｃｅ", PASSWORD).await.assert_status(200);
}

#[tokio::test]
async fn invisible_and_control_characters_are_refused_everywhere_people_read_names() {
    let api = TestApi::start().await;
    for (username, email) in [
        ("adm\u{202E}nim", "rlo@example.com"),
        ("zero\u{200B}width", "zw@example.com"),
        ("nul\u{0}byte", "nul@example.com"),
        ("fine_name", "in\u{200D}visible@example.com"),
    ] {
        let answer = register_as(&api, username, email).await;
        answer.assert_status(400);
        assert_eq!(answer.error_code(), "validation_failed", "{username:?}");
    }
    let (_, shop, _) = api.signed_up("clean_shop", "MERCHANT").await;
    for body in [
        json!({"name": "Tea\u{202E}gift", "description": "", "points_required": 10, "stock": 1}),
        json!({"name": "Tea", "description": "a\u{2066}b", "points_required": 10, "stock": 1}),
        json!({"name": "Tea\u{7}", "description": "", "points_required": 10, "stock": 1}),
    ] {
        let answer = api
            .post("/api/merchants/products/", body.clone(), Some(&shop))
            .await;
        answer.assert_status(400);
        assert_eq!(answer.error_code(), "validation_failed", "{body}");
    }
    // Line breaks stay allowed in a description.
    api.post(
        "/api/merchants/products/",
        json!({"name": "Tea", "description": "150 g\nloose leaf", "points_required": 10, "stock": 1}),
        Some(&shop),
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn a_short_username_that_normalisation_expands_is_a_clear_400_not_a_500() {
    let api = TestApi::start().await;
    // "ﷺ" is one character that NFKC turns into eighteen (54 bytes): within the 150-character
    // limit, its canonical form overflows DynamoDB's 2,048-byte key.
    let expanding = "ﷺ".repeat(150);
    let before = api.item_count().await;
    let register = api
        .post(
            "/api/auth/register/",
            json!({"username": expanding, "email": "x@example.com", "password": PASSWORD, "role": "MEMBER"}),
            None,
        )
        .await;
    register.assert_status(400);
    assert!(register.body["error"]["fields"]["username"].is_string());
    let login = api.login(&"ﷺ".repeat(62), PASSWORD).await;
    login.assert_status(400);
    assert!(login.body["error"]["fields"]["username"].is_string());
    assert_eq!(api.item_count().await, before);
    // Under the domain's checks, DynamoDB's own size refusal is still the client's 400.
    let refused = api
        .ctx
        .store
        .find_user_by_username(&"ﷺ".repeat(200))
        .await
        .expect_err("a key over 2,048 bytes is refused");
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.code(), "value_too_long");
}

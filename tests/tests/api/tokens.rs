//! Scenarios of signing in, staying signed in, and attacks on the tokens.

use std::time::Duration;

use api_tests::{TestApi, PASSWORD, TEST_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::join_all;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

#[tokio::test]
async fn a_member_logs_in_and_reads_their_profile() {
    let api = TestApi::start().await;
    let registered = api.register("amy", "MEMBER").await;
    let login = api.login("AMY", PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 900);
    assert_eq!(login.header("cache-control"), Some("no-store"));

    let access = claims_of(login.body["access"].as_str().unwrap());
    assert_eq!(access["typ"], "access");
    assert_eq!(access["role"], "MEMBER");
    assert_eq!(access["sub"], registered.body["id"]);
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        900
    );
    assert!(access["jti"].is_string());
    let refresh = claims_of(login.body["refresh"].as_str().unwrap());
    assert_eq!(refresh["typ"], "refresh");
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        14 * 24 * 3600
    );

    let me = api
        .get("/api/auth/me/", login.body["access"].as_str())
        .await;
    me.assert_status(200);
    assert_eq!(me.body["id"], registered.body["id"]);
    assert_eq!(me.body["username"], "amy");
    assert_eq!(me.body["role"], "MEMBER");
}

#[tokio::test]
async fn wrong_username_and_wrong_password_look_the_same() {
    let api = TestApi::start().await;
    api.register("amy", "MEMBER").await.assert_status(201);
    let wrong_password = api.login("amy", "not the password").await;
    let unknown_user = api.login("nobody", "not the password").await;
    wrong_password.assert_status(401);
    unknown_user.assert_status(401);
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(wrong_password.error_code(), "invalid_credentials");
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_and_each_refresh_token_works_once() {
    let api = TestApi::start().await;
    let (_, _, first_refresh) = api.signed_up("amy", "MEMBER").await;

    let rotated = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": first_refresh}),
            None,
        )
        .await;
    rotated.assert_status(200);
    let second_refresh = rotated.body["refresh"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first_refresh);
    api.get("/api/auth/me/", rotated.body["access"].as_str())
        .await
        .assert_status(200);

    // The second token keeps working while nobody replays the first.
    let again = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": second_refresh}),
            None,
        )
        .await;
    again.assert_status(200);
    let third_refresh = again.body["refresh"].as_str().unwrap().to_string();

    // Replaying an old token is theft: it is refused and the whole family dies with it.
    let replay = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": first_refresh}),
            None,
        )
        .await;
    replay.assert_status(401);
    assert_eq!(replay.error_code(), "token_reused");
    let after = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": third_refresh}),
            None,
        )
        .await;
    after.assert_status(401);
    assert_eq!(after.error_code(), "token_revoked");
}

#[tokio::test]
async fn two_tabs_racing_to_refresh_the_same_token_both_get_the_same_new_pair() {
    let api = TestApi::start().await;
    let (_, _, refresh) = api.signed_up("amy", "MEMBER").await;
    let racers = (0..10).map(|_| {
        let api = api.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            api.post("/api/auth/refresh/", json!({"refresh": refresh}), None)
                .await
        })
    });
    let responses: Vec<_> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // Within the grace window a duplicate exchange is not theft: every racer gets the one successor
    // pair, identical to the byte, and the session lives on.
    for response in &responses {
        response.assert_status(200);
        assert_eq!(response.body["refresh"], responses[0].body["refresh"]);
        assert_eq!(response.body["access"], responses[0].body["access"]);
    }
    let successor = responses[0].body["refresh"].as_str().unwrap();
    assert_ne!(successor, refresh);
    api.post("/api/auth/refresh/", json!({"refresh": successor}), None)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_refresh_token_presented_again_after_the_grace_window_revokes_the_session() {
    let api = TestApi::start().await;
    let (_, _, refresh) = api.signed_up("amy", "MEMBER").await;
    let first = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    first.assert_status(200);
    // Past the default grace window (10 s).
    api.advance_clock(Duration::from_secs(11));
    let replay = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    replay.assert_status(401);
    assert_eq!(replay.error_code(), "token_reused");
    let successor = first.body["refresh"].as_str().unwrap();
    let after = api
        .post("/api/auth/refresh/", json!({"refresh": successor}), None)
        .await;
    after.assert_status(401);
    assert_eq!(after.error_code(), "token_revoked");
}

#[tokio::test]
async fn a_disabled_users_tokens_stop_working_on_every_route_at_once() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (member_id, access, refresh) = api.signed_up("dora", "MEMBER").await;
    let (merchant_id, shop, _) = api.signed_up("dora_shop", "MERCHANT").await;
    api.get("/api/members/points/", Some(&access))
        .await
        .assert_status(200);

    for user in [&member_id, &merchant_id] {
        api.post(
            &format!("/api/admin/users/{user}/disable/"),
            json!({"reason": "abuse report #12"}),
            Some(&operator),
        )
        .await
        .assert_status(200);
    }
    for (path, token) in [
        ("/api/members/points/", &access),
        ("/api/members/orders/", &access),
        ("/api/auth/me/", &access),
        ("/api/merchants/products/", &shop),
    ] {
        let refused = api.get(path, Some(token)).await;
        refused.assert_status(401);
        assert_eq!(refused.error_code(), "account_disabled", "{path}");
    }
    // A redemption checks it in the same read as the product and the account.
    let redeem = api
        .post(
            "/api/members/orders/",
            json!({"product_id": "0b5e2c1e-7d4f-4a55-9a59-0f3c3f4f9b21", "quantity": 1}),
            Some(&access),
        )
        .await;
    redeem.assert_status(401);
    assert_eq!(redeem.error_code(), "account_disabled");
    let refreshed = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    refreshed.assert_status(401);
    assert_eq!(refreshed.error_code(), "account_disabled");
    // The right password of a disabled account answers as a wrong one does: nothing confirms it.
    let login = api.login("dora", api_tests::PASSWORD).await;
    login.assert_status(401);
    assert_eq!(login.error_code(), "invalid_credentials");
    let wrong = api.login("dora", "not the password").await;
    assert_eq!(wrong.body, login.body);

    // Enabled again, the tokens from before stay dead (their sessions were revoked): only a new
    // sign-in works.
    api.post(
        &format!("/api/admin/users/{member_id}/enable/"),
        json!({"reason": "cleared"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    let old_access = api.get("/api/members/points/", Some(&access)).await;
    old_access.assert_status(401);
    assert_eq!(old_access.error_code(), "token_revoked");
    let old_refresh = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    old_refresh.assert_status(401);
    assert_eq!(old_refresh.error_code(), "token_revoked");
    let again = api.login("dora", api_tests::PASSWORD).await;
    again.assert_status(200);
    let fresh = again.body["access"].as_str().unwrap();
    api.get("/api/members/points/", Some(fresh))
        .await
        .assert_status(200);
    let refreshed = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": again.body["refresh"]}),
            None,
        )
        .await;
    refreshed.assert_status(200);
    let unknown = api
        .post(
            "/api/admin/users/0b5e2c1e-7d4f-4a55-9a59-0f3c3f4f9b21/disable/",
            json!({"reason": "x"}),
            Some(&operator),
        )
        .await;
    unknown.assert_status(404);
    assert_eq!(unknown.error_code(), "user_not_found");
}

#[tokio::test]
async fn logout_ends_the_session_family() {
    let api = TestApi::start().await;
    let (_, _, refresh) = api.signed_up("amy", "MEMBER").await;
    let rotated = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    let current = rotated.body["refresh"].as_str().unwrap().to_string();

    api.post("/api/auth/logout/", json!({"refresh": current}), None)
        .await
        .assert_status(204);
    let after = api
        .post("/api/auth/refresh/", json!({"refresh": current}), None)
        .await;
    after.assert_status(401);
    assert_eq!(after.error_code(), "token_revoked");
    // Logging out twice is harmless.
    api.post("/api/auth/logout/", json!({"refresh": current}), None)
        .await
        .assert_status(204);
    // Another login is a new, independent family.
    let fresh = api.login("amy", PASSWORD).await;
    api.post(
        "/api/auth/refresh/",
        json!({"refresh": fresh.body["refresh"]}),
        None,
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let api = TestApi::start().await;
    let (_, access, refresh) = api.signed_up("amy", "MEMBER").await;
    let me_with_refresh = api.get("/api/auth/me/", Some(&refresh)).await;
    me_with_refresh.assert_status(401);
    assert_eq!(me_with_refresh.error_code(), "wrong_token_type");
    assert_eq!(me_with_refresh.header("www-authenticate"), Some("Bearer"));
    let refresh_with_access = api
        .post("/api/auth/refresh/", json!({"refresh": access}), None)
        .await;
    refresh_with_access.assert_status(401);
    assert_eq!(refresh_with_access.error_code(), "wrong_token_type");
    api.post("/api/auth/logout/", json!({"refresh": access}), None)
        .await
        .assert_status(401);
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let api = TestApi::start().await;
    let (_, access, _) = api.signed_up("amy", "MEMBER").await;
    let mut claims = claims_of(&access);

    // alg: none, with and without a signature part.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    for forged in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}"),
    ] {
        let response = api.get("/api/auth/me/", Some(&forged)).await;
        response.assert_status(401);
        assert_eq!(response.error_code(), "invalid_token");
    }

    // Same secret, other algorithm.
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(TEST_SECRET),
    )
    .unwrap();
    api.get("/api/auth/me/", Some(&hs384))
        .await
        .assert_status(401);

    // Right algorithm, wrong key.
    let wrong_key = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    api.get("/api/auth/me/", Some(&wrong_key))
        .await
        .assert_status(401);

    // A member promoting themselves by editing the payload.
    claims["role"] = json!("MERCHANT");
    let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    api.get("/api/auth/me/", Some(&parts.join(".")))
        .await
        .assert_status(401);

    // Garbage and missing headers.
    api.get("/api/auth/me/", Some("not-a-jwt"))
        .await
        .assert_status(401);
    let missing = api.get("/api/auth/me/", None).await;
    missing.assert_status(401);
    assert_eq!(missing.error_code(), "missing_token");
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let api = TestApi::start().await;
    let (_, access, _) = api.signed_up("amy", "MEMBER").await;
    let mut claims = claims_of(&access);
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 1000);
    claims["exp"] = json!(now - 10);
    let expired = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(TEST_SECRET),
    )
    .unwrap();
    let response = api.get("/api/auth/me/", Some(&expired)).await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "token_expired");
}

#[tokio::test]
async fn an_expired_refresh_token_cannot_be_exchanged() {
    let api = TestApi::start().await;
    let (_, _, refresh) = api.signed_up("amy", "MEMBER").await;
    // The default refresh lifetime is 14 days: one second past it.
    api.advance_clock(Duration::from_secs(14 * 24 * 3600 + 1));
    let response = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    response.assert_status(401);
    assert_eq!(response.error_code(), "token_expired");
}

#[tokio::test]
async fn with_no_grace_window_a_refresh_token_presented_twice_at_once_revokes_the_session() {
    let api = TestApi::start_with(|config| config.refresh_reuse_grace = Duration::ZERO).await;
    let (_, _, refresh) = api.signed_up("amy", "MEMBER").await;
    let first = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    first.assert_status(200);
    // The same second, no clock moved: without a grace window this is reuse.
    let replay = api
        .post("/api/auth/refresh/", json!({"refresh": refresh}), None)
        .await;
    replay.assert_status(401);
    assert_eq!(replay.error_code(), "token_reused");
    let successor = first.body["refresh"].as_str().unwrap();
    let after = api
        .post("/api/auth/refresh/", json!({"refresh": successor}), None)
        .await;
    after.assert_status(401);
}

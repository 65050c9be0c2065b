//! Scenarios of someone guessing passwords.

use std::time::Duration;

use api_tests::{TestApi, PASSWORD};
use futures::future::join_all;

#[tokio::test]
async fn ten_failed_logins_lock_the_username_for_the_window() {
    let api = TestApi::start().await;
    api.register("amy", "MEMBER").await.assert_status(201);
    for attempt in 1..=10 {
        let response = api.login("amy", &format!("guess number {attempt}")).await;
        response.assert_status(401);
    }
    // The eleventh attempt is refused before the password is even checked, right password or not.
    for password in ["guess number 11", PASSWORD] {
        let locked = api.login("AMY", password).await;
        locked.assert_status(429);
        assert_eq!(locked.error_code(), "too_many_failed_logins");
        let retry_after: u64 = locked
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(
            (1..=900).contains(&retry_after),
            "retry after {retry_after}"
        );
    }
}

#[tokio::test]
async fn one_users_lockout_and_logins_do_not_touch_another_users_counter() {
    let api = TestApi::start().await;
    api.register("amy", "MEMBER").await.assert_status(201);
    api.register("ben", "MEMBER").await.assert_status(201);
    for _ in 0..9 {
        api.login("amy", "wrong password").await.assert_status(401);
    }
    // Ben is locked out of nothing, and his successful login does not reset Amy's nine failures.
    for _ in 0..10 {
        api.login("ben", "wrong password").await.assert_status(401);
    }
    api.login("ben", PASSWORD).await.assert_status(429);
    api.login("amy", PASSWORD).await.assert_status(200);
    api.login("amy", "wrong password").await.assert_status(401);
    api.login("amy", PASSWORD).await.assert_status(429);
}

#[tokio::test]
async fn a_burst_of_concurrent_failures_is_counted_in_full() {
    let api = TestApi::start().await;
    api.register("amy", "MEMBER").await.assert_status(201);
    let burst = (0..10).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { api.login("amy", "wrong password").await })
    });
    for response in join_all(burst).await {
        response.unwrap().assert_status(401);
    }
    api.login("amy", PASSWORD).await.assert_status(429);
}

#[tokio::test]
async fn unknown_usernames_are_limited_too_so_lockouts_reveal_nothing() {
    let api = TestApi::start().await;
    for _ in 0..10 {
        api.login("ghost", "wrong password")
            .await
            .assert_status(401);
    }
    api.login("ghost", "wrong password")
        .await
        .assert_status(429);
}

#[tokio::test]
async fn the_lock_lifts_when_the_window_passes() {
    let api = TestApi::start_with(|config| {
        config.login_failure_window = Duration::from_secs(2);
        config.login_max_failures = 3;
    })
    .await;
    api.register("amy", "MEMBER").await.assert_status(201);
    for _ in 0..3 {
        api.login("amy", "wrong password").await.assert_status(401);
    }
    api.login("amy", PASSWORD).await.assert_status(429);
    // The emulator has not swept the expired counter: reads must ignore it by its timestamp.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    api.login("amy", PASSWORD).await.assert_status(200);
    // A fresh window starts counting from one.
    api.login("amy", "wrong password").await.assert_status(401);
    api.login("amy", PASSWORD).await.assert_status(200);
}

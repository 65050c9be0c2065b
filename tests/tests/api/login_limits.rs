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
        config.login_failure_window = Duration::from_secs(15 * 60);
        config.login_max_failures = 3;
    })
    .await;
    api.register("amy", "MEMBER").await.assert_status(201);
    for _ in 0..3 {
        api.login("amy", "wrong password").await.assert_status(401);
    }
    api.login("amy", PASSWORD).await.assert_status(429);
    // Half a minute short of the window (real time also passes under a loaded test run), still
    // locked.
    api.advance_clock(Duration::from_secs(15 * 60 - 30));
    api.login("amy", PASSWORD).await.assert_status(429);
    // The emulator has not swept the expired counter: reads must ignore it by its timestamp.
    api.advance_clock(Duration::from_secs(31));
    api.login("amy", PASSWORD).await.assert_status(200);
    // A fresh window starts counting from one.
    api.login("amy", "wrong password").await.assert_status(401);
    api.login("amy", PASSWORD).await.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_parallel_guesses_check_at_most_the_limits_worth_of_passwords() {
    let api = TestApi::start().await;
    api.register("vault", "MEMBER").await.assert_status(201);
    // 100 guesses at once from one address, the right password hidden among them.
    let burst = (0..100).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let password = if i == 57 {
                PASSWORD.to_string()
            } else {
                format!("guess {i}")
            };
            api.login_from("198.51.100.7", "vault", &password).await
        })
    });
    // 401 and 200 are the only answers for which a password was checked. The limit counts failed
    // guesses: the right password, if it gets through, hands its reservation back (it is not a
    // failure), so one more guess may be checked after it — never more than ten wrong ones.
    let (mut failed, mut succeeded) = (0, 0);
    for response in join_all(burst).await {
        let response = response.unwrap();
        match response.status.as_u16() {
            401 => failed += 1,
            200 => succeeded += 1,
            429 => assert_eq!(response.error_code(), "too_many_failed_logins"),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(failed <= 10, "{failed} wrong passwords checked");
    assert!(succeeded <= 1);
    assert!(failed + succeeded >= 1);
}

#[tokio::test]
async fn spraying_one_password_over_many_usernames_is_limited_per_address() {
    let api = TestApi::start_with(|config| config.login_max_failures_per_ip = 12).await;
    let mut refused = 0;
    for i in 0..20 {
        let answer = api
            .login_from("203.0.113.50", &format!("user{i}"), "Summer2026!")
            .await;
        match answer.status.as_u16() {
            401 => {}
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 8, "only 12 guesses from one address");
    // Another address is untouched.
    api.login_from("203.0.113.51", "user0", "Summer2026!")
        .await
        .assert_status(401);
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_from_another_address() {
    let api = TestApi::start_with(|config| {
        config.login_username_backoff = Duration::from_secs(1);
    })
    .await;
    api.register("owner", "MEMBER").await.assert_status(201);
    for i in 0..10 {
        api.login_from("192.0.2.66", "owner", &format!("wrong {i}"))
            .await
            .assert_status(401);
    }
    // The attacker's address is locked for this username, right password or not.
    api.login_from("192.0.2.66", "owner", PASSWORD)
        .await
        .assert_status(429);
    // The owner, elsewhere, signs in at once (past the username's limit only a short back-off
    // applies, and the attacker's refused attempts do not even reach it).
    api.login_from("192.0.2.10", "owner", PASSWORD)
        .await
        .assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_spread_over_many_addresses_get_one_try_per_back_off() {
    let api = TestApi::start_with(|config| {
        config.login_username_backoff = Duration::from_secs(30);
    })
    .await;
    api.register("target", "MEMBER").await.assert_status(201);
    for i in 0..10 {
        api.login_from(&format!("10.0.0.{i}"), "target", "wrong")
            .await
            .assert_status(401);
    }
    // Thirty more addresses at once: past the username's limit, one attempt per back-off passes.
    let burst = (0..30).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            api.login_from(&format!("10.0.1.{i}"), "target", "wrong")
                .await
        })
    });
    let statuses: Vec<u16> = join_all(burst)
        .await
        .into_iter()
        .map(|r| r.unwrap().status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 29);
}

#[tokio::test]
async fn an_absurdly_long_username_is_a_400_not_a_500() {
    let api = TestApi::start().await;
    let answer = api.login(&"a".repeat(4096), "whatever password").await;
    answer.assert_status(400);
    assert_eq!(answer.error_code(), "validation_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_logins_for_made_up_users_is_answered_within_the_hashing_budget() {
    let api = TestApi::start_with(|config| {
        config.password_hash_concurrency = 2;
        config.password_hash_queue = 6;
    })
    .await;
    api.register("amy", "MEMBER").await.assert_status(201);
    // Sixty made-up usernames from sixty addresses: no per-user or per-address limit applies, so
    // only the hashing budget stands between them and the machine's memory.
    let flood = (0..60).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            api.login_from(
                &format!("198.51.100.{i}"),
                &format!("ghost{i}"),
                "wrong password",
            )
            .await
        })
    });
    let mut refused = 0;
    for response in join_all(flood).await {
        let response = response.unwrap();
        match response.status.as_u16() {
            401 => assert_eq!(response.error_code(), "invalid_credentials"),
            503 => {
                assert_eq!(response.error_code(), "overloaded");
                assert_eq!(response.header("retry-after"), Some("1"));
                refused += 1;
            }
            other => panic!("a login got {other}: {}", response.body),
        }
    }
    assert!(refused > 0, "past the queue, logins are refused at once");
    assert_eq!(api.ctx.passwords.refused(), refused);
    assert!(
        api.ctx.passwords.peak_concurrency() <= 2,
        "never more than the budget at once: {}",
        api.ctx.passwords.peak_concurrency()
    );
    // The flood is over: a real member signs in as usual.
    api.login("amy", PASSWORD).await.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_functions_cap_on_requests_in_flight_the_local_host_answers_503_and_serves_the_rest()
{
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (address, server) =
        api_tests::over_http::local_host_on_a_socket(|host| host.with_max_in_flight(3)).await;
    let base = format!("http://{address}");
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // Logins take an argon2 computation each: twenty at once overrun a cap of three.
    let calls = (0..20).map(|i| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let body = format!(r#"{{"username":"ghost{i}","password":"wrong password"}}"#);
            let request = http::Request::post(format!("{base}/api/auth/login/"))
                .header("content-type", "application/json")
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let response = client.request(request).await.expect("an HTTP answer");
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, retry_after, body)
        })
    });
    let calls: Vec<_> = calls.collect();
    // Meanwhile another function's requests are served: the cap is per function, as each Lambda
    // function scales on its own, so a login flood does not shut members out.
    for _ in 0..3 {
        let request = http::Request::get(format!("{base}/api/members/points/"))
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = client.request(request).await.expect("an HTTP answer");
        assert_eq!(response.status().as_u16(), 401, "served, not refused");
    }
    let mut overloaded = 0;
    for call in join_all(calls).await {
        let (status, retry_after, body) = call.unwrap();
        match status {
            401 => {}
            503 => {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["error"]["code"], "overloaded");
                assert!(retry_after.is_some());
                overloaded += 1;
            }
            other => panic!("got {other}"),
        }
    }
    assert!(overloaded > 0, "the cap refused some");
    assert!(overloaded < 20, "and served the rest");
    server.abort();
}

#[tokio::test]
async fn a_disabled_accounts_right_password_confirms_nothing_and_counts_as_a_failure() {
    let api = TestApi::start().await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let (dora, _, _) = api.signed_up("dora", "MEMBER").await;
    api.post(
        &format!("/api/admin/users/{dora}/disable/"),
        serde_json::json!({"reason": "chargebacks"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    // Right and wrong passwords answer alike, byte for byte, and each one is charged.
    for attempt in 1..=10 {
        let password = if attempt % 2 == 0 {
            PASSWORD.to_string()
        } else {
            format!("guess number {attempt}")
        };
        let answer = api.login("dora", &password).await;
        answer.assert_status(401);
        assert_eq!(answer.error_code(), "invalid_credentials");
        assert_eq!(
            answer.body["error"]["message"],
            "username or password is incorrect"
        );
    }
    api.login("dora", PASSWORD).await.assert_status(429);
}

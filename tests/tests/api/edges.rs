//! What every route does with clients that get things wrong, and the headers every answer carries.

use std::io::{Read, Write};
use std::sync::Arc;

use api_tests::{TestApi, PASSWORD};
use http::Method;
use serde_json::json;

fn raw_post(path: &str, content_type: Option<&str>, body: &[u8]) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(Method::POST).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body.to_vec()).unwrap()
}

#[tokio::test]
async fn malformed_bodies_are_400s_that_write_nothing() {
    let api = TestApi::start().await;
    let cases: [(&[u8], &str); 6] = [
        (b"{\"username\": ", "malformed_json"),
        (b"not json", "malformed_json"),
        (b"", "malformed_json"),
        (b"[]", "invalid_body"),
        (b"\"amy\"", "invalid_body"),
        (b"{\"username\": 12, \"email\": \"a@example.com\", \"password\": \"x\", \"role\": \"MEMBER\"}", "invalid_body"),
    ];
    for (body, code) in cases {
        let response = api
            .send(raw_post(
                "/api/auth/register/",
                Some("application/json"),
                body,
            ))
            .await;
        response.assert_status(400);
        assert_eq!(
            response.error_code(),
            code,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(response.body["error"]["message"].is_string());
    }
    let wrong_type = api
        .send(raw_post(
            "/api/auth/register/",
            Some("application/json"),
            br#"{"username": ["amy"]}"#,
        ))
        .await;
    assert!(wrong_type.body["error"]["fields"]["username"].is_string());
    assert_eq!(api.item_count().await, 0);
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let api = TestApi::start().await;
    let big = json!({"username": "amy", "email": "amy@example.com", "password": PASSWORD, "role": "MEMBER", "padding": "x".repeat(65 * 1024)});
    let response = api.post("/api/auth/register/", big, None).await;
    response.assert_status(413);
    assert_eq!(response.error_code(), "payload_too_large");
    assert_eq!(api.item_count().await, 0);
}

#[tokio::test]
async fn a_non_json_content_type_is_refused_with_415() {
    let api = TestApi::start().await;
    let response = api
        .send(raw_post(
            "/api/auth/login/",
            Some("application/x-www-form-urlencoded"),
            b"username=amy",
        ))
        .await;
    response.assert_status(415);
    assert_eq!(response.error_code(), "unsupported_media_type");
    // No content type at all is read as JSON, as curl users expect.
    let untyped = api
        .send(raw_post(
            "/api/auth/login/",
            None,
            br#"{"username":"amy","password":"whatever1"}"#,
        ))
        .await;
    untyped.assert_status(401);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_json() {
    let api = TestApi::start().await;
    for path in [
        "/",
        "/api/unknown/",
        "/api/auth/",
        "/api/auth/nope/",
        "/api/auth/register/extra/",
    ] {
        let response = api.get(path, None).await;
        response.assert_status(404);
        assert_eq!(response.error_code(), "route_not_found", "{path}");
    }
    let wrong_method = api.get("/api/auth/register/", None).await;
    wrong_method.assert_status(405);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let delete_me = api.call(Method::DELETE, "/api/auth/me/", None, None).await;
    delete_me.assert_status(405);
    assert_eq!(delete_me.header("allow"), Some("GET"));
}

#[tokio::test]
async fn paths_match_with_or_without_the_trailing_slash() {
    let api = TestApi::start().await;
    let response = api
        .post(
            "/api/auth/register",
            json!({"username": "amy", "email": "amy@example.com", "password": PASSWORD, "role": "MEMBER"}),
            None,
        )
        .await;
    response.assert_status(201);
}

#[tokio::test]
async fn every_answer_carries_the_standard_headers_and_echoes_the_request_id() {
    let api = TestApi::start().await;
    let request = http::Request::builder()
        .method(Method::GET)
        .uri("/api/auth/me/")
        .header("x-request-id", "trace-abc-123")
        .body(Vec::new())
        .unwrap();
    let response = api.send(request).await;
    response.assert_status(401);
    assert_eq!(response.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    // Without one, a fresh id is made up and still echoed.
    let generated = api.get("/api/auth/me/", None).await;
    assert!(generated
        .header("x-request-id")
        .is_some_and(|id| !id.is_empty()));
}

/// One request over a real socket, through the same axum server `cargo run -p local-api` starts.
fn http_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_host_serves_real_http() {
    let api = TestApi::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = local_api::router(Arc::new(local_api::LocalApi::new(api.ctx.clone())));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let body = r#"{"username":"amy","email":"amy@example.com","password":"correct horse","role":"MEMBER"}"#;
    let request = format!(
        "POST /api/auth/register/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = tokio::task::spawn_blocking(move || http_exchange(addr, &request))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id:"));
    assert!(response.contains("\"username\":\"amy\""));

    // A body declared far past the limit is refused by the host before a byte of it is read (so
    // only the head is sent: the answer comes without the body).
    let request = format!(
        "POST /api/auth/login/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 * 1024 * 1024
    );
    let response = tokio::task::spawn_blocking(move || http_exchange(addr, &request))
        .await
        .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "{}",
        &response[..response.len().min(200)]
    );
}

/// A path segment that is not even an id (or a MerchantTradeNo) is refused where it enters, with
/// the 404 of what the route names, for every route that takes one, for a caller allowed on it.
#[tokio::test]
async fn a_path_that_names_nothing_is_that_resources_404_on_every_route_and_writes_nothing() {
    let api = TestApi::start().await;
    let (_, member) = api.member_with_points("mia", 500).await;
    let (_, merchant, _) = api.signed_up("shop", "MERCHANT").await;
    let (_, operator) = api.signed_in_admin("olive").await;
    let before = api.item_count().await;
    let routers = [
        (fn_admin::AdminApi::router(), Some(&operator)),
        (fn_members::MembersApi::router(), Some(&member)),
        (fn_merchants::MerchantsApi::router(), Some(&merchant)),
        (fn_ecpay_callback::PaymentsApi::router(), None),
    ];
    let names_nothing = [
        "not-an-id".to_string(),
        // An id without its hyphens, and a MerchantTradeNo one character too long.
        "0191b1f0c2a37e4c9e1d7b2a3c4d5e6f".to_string(),
        "PT0000000000000000000".to_string(),
        "PT-1".to_string(),
        "x".repeat(300),
    ];
    let mut checked = 0;
    for (router, token) in routers {
        for key in router.keys() {
            let Some((before_param, _)) = key.template.split_once("/{") else {
                continue;
            };
            let resource = before_param.rsplit('/').next().unwrap();
            let method = Method::from_bytes(key.method.as_bytes()).unwrap();
            let body = (method != Method::GET)
                .then(|| json!({"reason": "checking", "amount": 5, "name": "x", "version": 1, "reference": "TRF-1", "percent": 5}));
            for raw in &names_nothing {
                if key.template.contains("{merchant_trade_no}") && raw.starts_with("0191") {
                    continue; // 32 letters and digits: too long for a MerchantTradeNo anyway
                }
                let path = key
                    .template
                    .replace("{id}", raw)
                    .replace("{merchant_trade_no}", raw)
                    .replace("{relate_number}", raw)
                    .replace("{delivery_id}", raw);
                let answer = api
                    .call(
                        method.clone(),
                        &path,
                        body.clone(),
                        token.map(String::as_str),
                    )
                    .await;
                if resource == "checkout" {
                    // The checkout link is opened by a browser: an HTML 403, as for a forged link.
                    answer.assert_status(403);
                } else {
                    answer.assert_status(404);
                    let expected = match resource {
                        "users" => "user_not_found",
                        "members" => "member_not_found",
                        "payments" => "payment_not_found",
                        "products" => "product_not_found",
                        "orders" => "order_not_found",
                        "addresses" => "address_not_found",
                        "refunds" => "refund_not_found",
                        "merchants" => "merchant_not_found",
                        "settlements" => "statement_not_found",
                        "invoices" => "invoice_not_found",
                        "webhooks" => "webhook_not_found",
                        other => panic!("no expectation for {other}"),
                    };
                    assert_eq!(answer.error_code(), expected, "{} {path}", key.method);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 60, "{checked} requests");
    assert_eq!(api.item_count().await, before, "nothing was written");
}

#[tokio::test]
async fn a_throttled_read_is_a_503_with_retry_after_never_a_500() {
    let budget = api_tests::faults::ConflictBudget::new(0);
    let api = TestApi::start_with_conflicts(budget.clone()).await;
    let (_, token, _) = api.signed_up("amy", "MEMBER").await;
    // More throttled answers in a row than the SDK retries by itself.
    budget.set_throttled_queries(10);
    let throttled = api.get("/api/members/products/", Some(&token)).await;
    throttled.assert_status(503);
    assert_eq!(throttled.error_code(), "service_unavailable");
    assert!(throttled.header("retry-after").is_some());
    assert_eq!(
        api.metric_total(shared::observe::Metric::DynamoDbUnavailable),
        1.0
    );
    // Once DynamoDB has capacity again, the same request is answered.
    budget.set_throttled_queries(0);
    api.get("/api/members/products/", Some(&token))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_partly_throttled_batch_read_is_asked_again_and_counted() {
    let budget = api_tests::faults::ConflictBudget::new(0);
    let api = TestApi::start_with_conflicts(budget.clone()).await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let product = api.create_product(&shop, "Oolong", 10, 5).await;
    let (member, token) = api.member_with_points("amy", 100).await;
    // The redemption's one read comes back with every key unprocessed, twice: the store asks again
    // (after a pause) and the order is placed all the same.
    budget.set_throttled_batch_reads(2);
    api.redeem(&token, product["id"].as_str().unwrap(), 1)
        .await
        .assert_status(201);
    assert!(api.metric_total(shared::observe::Metric::BatchReadsThrottled) >= 2.0);
    api.assert_points_invariants(&[member]).await;
}

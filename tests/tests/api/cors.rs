//! CORS as API Gateway's HTTP API does it for the template's `CorsConfiguration`: preflights are
//! answered at the front door for any path without invoking a function, allowed origins get the
//! configured headers on every answer, and any other origin gets none.

use api_tests::TestApi;
use http::{header, Method};

const ALLOWED: &str = "http://localhost:5173";

fn preflight(path: &str, origin: &str, method: &str) -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type,idempotency-key",
        )
        .body(Vec::new())
        .unwrap()
}

#[tokio::test]
async fn a_frontend_on_an_allowed_origin_is_answered_its_preflight_and_reads_the_answer() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("mia", "MEMBER").await;
    api.dynamodb_calls.clear();
    // Any path, even one no function serves: API Gateway answers, nothing runs.
    for path in ["/api/members/orders/", "/api/nowhere/at/all"] {
        let answer = api.send(preflight(path, ALLOWED, "POST")).await;
        answer.assert_status(204);
        assert_eq!(answer.header("access-control-allow-origin"), Some(ALLOWED));
        assert_eq!(
            answer.header("access-control-allow-methods"),
            Some("GET,POST,PUT,DELETE,OPTIONS")
        );
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("authorization,content-type,idempotency-key,if-match,x-request-id")
        );
        assert_eq!(answer.header("access-control-max-age"), Some("600"));
        assert!(answer.raw.is_empty());
    }
    assert_eq!(api.dynamodb_calls.total(), 0, "no function ran");

    let read = api
        .send(
            http::Request::builder()
                .uri("/api/members/points/")
                .header(header::ORIGIN, ALLOWED)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Vec::new())
                .unwrap(),
        )
        .await;
    read.assert_status(200);
    assert_eq!(read.header("access-control-allow-origin"), Some(ALLOWED));
    let exposed = read.header("access-control-expose-headers").unwrap();
    assert!(exposed.split(',').any(|h| h == "x-request-id"), "{exposed}");
    // Errors too: a frontend reads the code of a refusal.
    let refused = api
        .send(
            http::Request::builder()
                .uri("/api/members/points/")
                .header(header::ORIGIN, ALLOWED)
                .body(Vec::new())
                .unwrap(),
        )
        .await;
    refused.assert_status(401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(ALLOWED));
}

#[tokio::test]
async fn another_origin_gets_no_cors_header_so_the_browser_keeps_the_answer_from_it() {
    let api = TestApi::start().await;
    let (_, token, _) = api.signed_up("mia", "MEMBER").await;
    for origin in ["https://evil.example", "http://localhost:5174", "null"] {
        let answer = api
            .send(preflight("/api/members/orders/", origin, "POST"))
            .await;
        answer.assert_status(204);
        assert!(
            answer.header("access-control-allow-origin").is_none()
                && answer.header("access-control-allow-methods").is_none(),
            "{origin}"
        );
        let read = api
            .send(
                http::Request::builder()
                    .uri("/api/members/points/")
                    .header(header::ORIGIN, origin)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Vec::new())
                    .unwrap(),
            )
            .await;
        read.assert_status(200);
        assert!(
            read.header("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    // Without Access-Control-Request-Method an OPTIONS is no preflight: routed like any request.
    let plain = api
        .send(
            http::Request::builder()
                .method(Method::OPTIONS)
                .uri("/api/members/points/")
                .header(header::ORIGIN, ALLOWED)
                .body(Vec::new())
                .unwrap(),
        )
        .await;
    assert_ne!(plain.status, 204);
}

#[tokio::test]
async fn the_local_origins_are_configurable_as_the_stack_parameter_is() {
    let mut host = local_api::LocalApi::new(TestApi::start().await.ctx.clone()).with_cors_origins(
        local_api::cors::Cors::origins_from(Some("https://shop.example")),
    );
    host.query_simulator_in_process();
    let answer = host
        .dispatch(local_api::into_lambda_request(
            preflight("/api/members/orders/", "https://shop.example", "POST")
                .into_parts()
                .0,
            Vec::new(),
        ))
        .await;
    assert_eq!(answer.status(), 204);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
}

//! The API document is generated from the code and checked in; the docs page serves it.

use api_tests::TestApi;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

#[test]
fn the_checked_in_document_matches_the_code() {
    let generated = local_api::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).expect("write docs/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is stale. Regenerate it with:\n    UPDATE_OPENAPI=1 cargo test -p api-tests --test openapi\n"
    );
}

#[test]
fn every_served_route_is_documented_with_its_method() {
    let doc: serde_json::Value =
        serde_json::from_str(&local_api::openapi::document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Each function's router is built from its document: every operation must pair with a handler
    // of the same name, and every handler with an operation.
    for (function, router) in local_api::routers() {
        assert!(
            router.problems().is_empty(),
            "{function}: {:?}",
            router.problems()
        );
    }
    let routes = local_api::routes();
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            assert!(
                routes
                    .iter()
                    .any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path),
                "{method} {path} is documented but not served"
            );
        }
    }
    assert_eq!(
        documented,
        routes.len(),
        "a served route is missing from the document"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn every_operation_id_is_unique_across_the_document() {
    let doc: serde_json::Value =
        serde_json::from_str(&local_api::openapi::document_json()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id} names both {other} and {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn the_host_serves_the_document_and_the_docs_page() {
    let api = TestApi::start().await;
    let doc = api.get("/api/openapi.json", None).await;
    doc.assert_status(200);
    assert_eq!(doc.body["info"]["title"], "Points redemption API");

    let page = api.get("/api/docs/", None).await;
    page.assert_status(200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.raw).contains("swagger-ui"));
    let init = api.get("/api/docs/swagger-initializer.js", None).await;
    init.assert_status(200);
    // Relative links, so the page works behind a stage or a custom domain's base path too.
    assert!(String::from_utf8_lossy(&init.raw).contains("\"../openapi.json\""));
    let bundle = api.get("/api/docs/swagger-ui-bundle.js", None).await;
    bundle.assert_status(200);
    assert!(
        bundle.raw.len() > 100_000,
        "vendored Swagger UI bundle is served"
    );

    let bare = api.get("/api/docs", None).await;
    bare.assert_status(301);
    assert_eq!(bare.header("location"), Some("docs/"));
}

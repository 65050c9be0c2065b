//! Answers in the user's language: every error code has an English and a Traditional Chinese
//! message, `Accept-Language` chooses between them, and the `code` never changes.

use api_tests::TestApi;
use serde_json::json;
use shared::error::messages::MESSAGES;

fn catalogued(code: &str) -> bool {
    MESSAGES
        .iter()
        .any(|(c, english, chinese)| *c == code && !english.is_empty() && !chinese.is_empty())
}

#[test]
fn every_error_code_in_the_api_document_has_both_messages() {
    let doc: serde_json::Value =
        serde_json::from_str(&local_api::openapi::document_json()).unwrap();
    // The codes a response names are in backticks in its description; so are field names, which the
    // schemas' properties list.
    let mut properties = std::collections::BTreeSet::new();
    fn walk(value: &serde_json::Value, into: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if key == "properties" {
                        if let Some(fields) = child.as_object() {
                            into.extend(fields.keys().cloned());
                        }
                    }
                    walk(child, into);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, into)),
            _ => {}
        }
    }
    walk(&doc, &mut properties);
    let mut codes = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    continue;
                }
                let description = response["description"].as_str().unwrap_or_default();
                for (i, quoted) in description.split('`').enumerate() {
                    let is_code = i % 2 == 1
                        && quoted.contains('_')
                        && quoted.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                    if is_code && !properties.contains(quoted) {
                        codes.insert(quoted.to_string());
                    }
                }
            }
        }
    }
    assert!(codes.len() > 25, "{codes:?}");
    let missing: Vec<_> = codes.iter().filter(|c| !catalogued(c)).collect();
    assert!(
        missing.is_empty(),
        "codes in the document without messages: {missing:?}"
    );
}

#[test]
fn every_error_code_the_code_writes_has_both_messages() {
    // Each string literal shaped like a code (snake_case) shortly after `code:` or an `AppError`
    // constructor taking one.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files = Vec::new();
    let mut dirs = vec![
        std::path::PathBuf::from(root).join("shared/src"),
        std::path::PathBuf::from(root).join("functions"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let markers = [
        "conflict(",
        "not_found(",
        "bad_request(",
        "unauthenticated(",
        "code:",
    ];
    let mut seen = 0;
    let mut missing = std::collections::BTreeSet::new();
    for file in files.iter().filter(|f| !f.ends_with("messages.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, literal) in text.split('"').enumerate() {
            let code_like = i % 2 == 1
                && literal.contains('_')
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && literal.as_bytes()[0].is_ascii_lowercase();
            if !code_like {
                continue;
            }
            let offset: usize = text.split('"').take(i).map(|p| p.len() + 1).sum();
            let before = &text[offset.saturating_sub(80)..offset];
            if markers.iter().any(|m| before.contains(m)) {
                seen += 1;
                if !catalogued(literal) {
                    missing.insert(format!("{literal} ({})", file.display()));
                }
            }
        }
    }
    assert!(seen > 50, "the scan found only {seen} codes");
    assert!(missing.is_empty(), "codes without messages: {missing:?}");
}

#[tokio::test]
async fn accept_language_chooses_the_message_and_the_code_stays() {
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("tea_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("mia", 100).await;
    let product = api.create_product(&shop, "Tea", 500, 5).await;
    let redeem = |language: Option<&'static str>| {
        let mut builder = http::Request::builder()
            .method(http::Method::POST)
            .uri("/api/members/orders/")
            .header("authorization", format!("Bearer {mia}"))
            .header("content-type", "application/json");
        if let Some(language) = language {
            builder = builder.header("accept-language", language);
        }
        builder
            .body(serde_json::to_vec(&json!({"product_id": product["id"], "quantity": 1})).unwrap())
            .unwrap()
    };
    let english = api.send(redeem(None)).await;
    english.assert_status(409);
    assert_eq!(english.error_code(), "insufficient_points");
    assert_eq!(english.header("content-language"), Some("en"));
    assert!(english.body["error"]["message"]
        .as_str()
        .unwrap()
        .is_ascii());
    for language in ["zh-TW", "zh-Hant", "zh", "en;q=0.5, zh-TW;q=0.9"] {
        let chinese = api.send(redeem(Some(language))).await;
        chinese.assert_status(409);
        assert_eq!(chinese.error_code(), "insufficient_points", "{language}");
        assert_eq!(chinese.body["error"]["message"], "點數不足", "{language}");
        assert_eq!(chinese.header("content-language"), Some("zh-Hant-TW"));
    }
    for language in ["zh-CN", "fr", "en", "zh-TW;q=0, en"] {
        let answer = api.send(redeem(Some(language))).await;
        assert_eq!(answer.header("content-language"), Some("en"), "{language}");
    }
    // A 400's fields keep their keys (what a frontend reads), whatever the language.
    let bad = api
        .send(
            http::Request::builder()
                .method(http::Method::POST)
                .uri("/api/auth/register/")
                .header("content-type", "application/json")
                .header("accept-language", "zh-TW")
                .body(
                    br#"{"username":"x","email":"nope","password":"short","role":"MEMBER"}"#
                        .to_vec(),
                )
                .unwrap(),
        )
        .await;
    bad.assert_status(400);
    assert_eq!(bad.error_code(), "validation_failed");
    assert_eq!(bad.body["error"]["message"], "請求中有欄位不正確");
    assert!(bad.body["error"]["fields"]["email"].is_string());
}

#[tokio::test]
async fn the_checkout_page_and_the_simulators_pages_follow_the_same_choice() {
    let api = TestApi::start().await;
    let (_, mia, _) = api.signed_up("mia", "MEMBER").await;
    let checkout = api.start_recharge(&mia, 500).await;
    let link = checkout["checkout_url"].as_str().unwrap();
    let path = &link[link.find("/api/").unwrap()..];
    let open = |language: &'static str| {
        http::Request::builder()
            .uri(path)
            .header("accept-language", language)
            .body(Vec::new())
            .unwrap()
    };
    let chinese = api.send(open("zh-TW,zh;q=0.9,en;q=0.8")).await;
    chinese.assert_status(200);
    let page = chinese.raw_text();
    assert!(
        page.contains("lang=\"zh-Hant-TW\"") && page.contains("正在前往綠界付款"),
        "{page}"
    );
    assert!(!page.contains("Redirecting"));
    // Each opening is a new attempt; the English one reads in English.
    let english = api.send(open("en-US,en;q=0.9")).await;
    english.assert_status(200);
    assert!(english
        .raw_text()
        .contains("Redirecting to ECPay to pay NT$500"));

    let fields: std::collections::BTreeMap<String, String> = checkout["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let mut cashier = api_tests::form_request("/dev/ecpay/Cashier/AioCheckOut/V5", &fields);
    cashier
        .headers_mut()
        .insert("accept-language", http::HeaderValue::from_static("zh-TW"));
    let simulator = api.send(cashier).await;
    simulator.assert_status(200);
    assert!(simulator.raw_text().contains("綠界模擬器：信用卡付款"));
    // A broken link is explained in the member's language.
    let broken = api
        .send(
            http::Request::builder()
                .uri(format!("{path}x"))
                .header("accept-language", "zh-TW")
                .body(Vec::new())
                .unwrap(),
        )
        .await;
    assert!(
        broken.raw_text().contains("無法前往付款"),
        "{}",
        broken.raw_text()
    );
}

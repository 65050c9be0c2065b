//! Merchants told at once: webhooks registered, signed order events received by a real HTTP
//! receiver that verifies them with its own implementation of Standard Webhooks, a receiver that is
//! down for a while receiving every event, replays, rotation, 410, and the URLs refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_tests::TestApi;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

/// A message as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signatures: String,
    body: String,
}

/// A merchant's endpoint: records every message and answers with `status` (e.g. 503 while "down").
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (record, answer) = (Arc::clone(&got), Arc::clone(&status));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (record, answer) = (Arc::clone(&record), Arc::clone(&answer));
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    record.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signatures: header("webhook-signature"),
                        body,
                    });
                    StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got, status }
    }

    fn messages(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived (or fails after 20 s).
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.messages();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: the receiver got {:#?}", self.messages());
    }
}

/// The receiver's own check of a message, written from the specification and nothing of the
/// sender's: the key is the Base64 after `whsec_`; the signed content is `id.timestamp.body`; the
/// header holds space-separated `v1,<Base64 HMAC-SHA256>`, any one of which may match.
fn verifies(secret: &str, message: &Received) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("Base64 key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", message.id, message.timestamp, message.body).as_bytes());
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    message.signatures.split(' ').any(|sig| sig == expected)
}

fn body_of(message: &Received) -> Value {
    serde_json::from_str(&message.body).expect("a JSON body")
}

fn types_of(messages: &[Received]) -> Vec<String> {
    messages
        .iter()
        .map(|m| body_of(m)["type"].as_str().unwrap().to_string())
        .collect()
}

async fn webhook_host() -> Arc<TestApi> {
    let api = TestApi::start_with(|config| {
        config.webhooks.allow_private = true;
        // The schedule's 5 s … 10 h at a thousandth: 5 ms … 36 s.
        config.webhooks.retry_scale = 0.001;
    })
    .await;
    api.start_webhooks();
    api
}

async fn register(api: &TestApi, shop: &str, url: &str, events: Value) -> Value {
    let made = api
        .post(
            "/api/merchants/webhooks/",
            json!({"url": url, "events": events}),
            Some(shop),
        )
        .await;
    made.assert_status(201);
    made.body
}

const ALL: [&str; 4] = [
    "order.placed",
    "order.shipped",
    "order.completed",
    "order.cancelled",
];

#[tokio::test]
async fn a_merchant_receives_each_order_change_signed_and_without_the_address() {
    let api = webhook_host().await;
    let receiver = Receiver::start().await;
    let (shop_id, shop, _) = api.signed_up("hook_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("hook_mia", 500).await;
    let hook = register(&api, &shop, &receiver.url, json!(ALL)).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    // Listed, the secret is masked.
    let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
    listed.assert_status(200);
    let shown = listed.body["items"][0]["secret"].as_str().unwrap();
    assert!(shown.starts_with("whsec_…") && !shown.contains(&secret[6..30]));
    assert_eq!(listed.body["items"][0]["status"], "enabled");

    // A delivery: placed, shipped, completed by its member's confirmation.
    let parcel = api
        .post(
            "/api/merchants/products/",
            json!({"name": "Tea box", "points_required": 10, "stock": 5, "fulfilment": "delivery"}),
            Some(&shop),
        )
        .await;
    parcel.assert_status(201);
    let placed = api
        .post(
            "/api/members/orders/",
            json!({"product_id": parcel.body["id"], "quantity": 1, "points_required": 10,
                   "shipping": {"recipient_name": "Mia Lin", "phone": "0912345678",
                                "postal_code": "100", "address": "No. 1, Zhongzheng Rd"}}),
            Some(&mia),
        )
        .await;
    placed.assert_status(201);
    let order_id = placed.body["id"].as_str().unwrap().to_string();
    api.post(
        &format!("/api/merchants/orders/{order_id}/ship/"),
        json!({"carrier": "black-cat", "tracking_number": "TW123"}),
        Some(&shop),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/members/orders/{order_id}/confirm-receipt/"),
        json!({}),
        Some(&mia),
    )
    .await;
    // A pickup cancelled by the merchant.
    let mug = api.create_product(&shop, "Mug", 20, 5).await;
    let pickup = api.redeem(&mia, mug["id"].as_str().unwrap(), 1).await;
    pickup.assert_status(201);
    api.post(
        &format!(
            "/api/merchants/orders/{}/cancel/",
            pickup.body["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(200);

    let got = receiver.until("five events", |got| got.len() >= 5).await;
    let mut kinds = types_of(&got);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "order.cancelled",
            "order.completed",
            "order.placed",
            "order.placed",
            "order.shipped"
        ]
    );
    for message in &got {
        assert!(verifies(&secret, message), "{message:?} does not verify");
        let body = body_of(message);
        assert!(body["timestamp"].is_string());
        let data = &body["data"];
        assert_eq!(data["merchant_id"], shop_id.as_str());
        // The order as the merchant's API shows it, but no address or phone travels.
        assert!(data.get("shipping").is_none(), "{data}");
        assert!(!message.body.contains("0912345678") && !message.body.contains("Zhongzheng"));
        assert!(message.id.starts_with("msg_"));
    }
    let shipped = got
        .iter()
        .find(|m| body_of(m)["type"] == "order.shipped")
        .unwrap();
    assert_eq!(body_of(shipped)["data"]["id"], order_id.as_str());
    assert_eq!(body_of(shipped)["data"]["tracking_number"], "TW123");
    // A message tampered with does not verify.
    let mut forged = shipped.clone();
    forged.body = forged.body.replace("TW123", "TW999");
    assert!(!verifies(&secret, &forged));
    // Nothing more comes (each change once).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.messages().len(), 5);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_then_up_receives_every_event_and_duplicates_share_an_id() {
    let api = webhook_host().await;
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let (_, shop, _) = api.signed_up("down_shop", "MERCHANT").await;
    let members = api.members_with_points("down", 6, 100).await;
    let hook = register(&api, &shop, &receiver.url, json!(["order.placed"])).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let mug = api.create_product(&shop, "Mug", 10, 50).await;
    for (_, token) in &members {
        api.redeem(token, mug["id"].as_str().unwrap(), 1)
            .await
            .assert_status(201);
    }
    // Down: each event is tried, and tried again on the schedule (5 ms, 300 ms, 1.8 s, … here).
    receiver
        .until("at least two attempts of each event while down", |got| {
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            for m in got {
                *per.entry(m.id.as_str()).or_default() += 1;
            }
            per.len() == 6 && per.values().all(|n| *n >= 2)
        })
        .await;
    let deliveries = api
        .get(
            &format!(
                "/api/merchants/webhooks/{}/deliveries/",
                hook["id"].as_str().unwrap()
            ),
            Some(&shop),
        )
        .await;
    deliveries.assert_status(200);
    let items = deliveries.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    for d in items {
        assert_eq!(d["event"], "order.placed");
        assert!(d["attempt"].as_u64().unwrap() >= 1);
        if d["state"] == "pending" {
            assert_eq!(d["status_code"], 503);
            assert!(d["latency_ms"].is_u64());
            assert!(d["next_retry_at"].is_string());
        }
    }
    // Up again: every event arrives, verified; duplicates are recognised by their id.
    receiver.status.store(204, Ordering::SeqCst);
    let got = receiver
        .until("every event delivered once up", |got| {
            let delivered: std::collections::BTreeSet<&str> = got
                .iter()
                .filter(|m| verifies(&secret, m))
                .map(|m| m.id.as_str())
                .collect();
            delivered.len() == 6
        })
        .await;
    assert!(got.iter().all(|m| verifies(&secret, m)));
    let by_id: BTreeMap<&str, Vec<&Received>> = got.iter().fold(BTreeMap::new(), |mut all, m| {
        all.entry(m.id.as_str()).or_default().push(m);
        all
    });
    for (id, copies) in &by_id {
        // Every copy of one event is the same message (the body signed is the same).
        assert!(copies.iter().all(|c| c.body == copies[0].body), "{id}");
    }
    // The deliveries end succeeded, with the endpoint healthy again.
    for _ in 0..100 {
        let page = api
            .get(
                &format!(
                    "/api/merchants/webhooks/{}/deliveries/",
                    hook["id"].as_str().unwrap()
                ),
                Some(&shop),
            )
            .await;
        if page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "succeeded")
        {
            let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
            assert!(listed.body["items"][0].get("failing_since").is_none());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries did not all succeed");
}

#[tokio::test]
async fn test_messages_replays_and_a_rotated_secret_signing_beside_the_old_one() {
    let api = webhook_host().await;
    let receiver = Receiver::start().await;
    let (_, shop, _) = api.signed_up("test_shop", "MERCHANT").await;
    let hook = register(&api, &shop, &receiver.url, json!(["order.cancelled"])).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_string();
    let sent = api
        .post(
            &format!("/api/merchants/webhooks/{id}/test/"),
            json!({}),
            Some(&shop),
        )
        .await;
    sent.assert_status(202);
    assert_eq!(sent.body["event"], "webhook.test");
    let got = receiver
        .until("the test message", |got| got.len() == 1)
        .await;
    assert_eq!(body_of(&got[0])["type"], "webhook.test");
    assert!(verifies(&old, &got[0]));

    let rotated = api
        .post(
            &format!("/api/merchants/webhooks/{id}/rotate-secret/"),
            json!({}),
            Some(&shop),
        )
        .await;
    rotated.assert_status(200);
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    // A replay: the same webhook-id and body, signed by both secrets for a day.
    let replayed = api
        .post(
            &format!(
                "/api/merchants/webhooks/{id}/deliveries/{}/replay/",
                sent.body["id"].as_str().unwrap()
            ),
            json!({}),
            Some(&shop),
        )
        .await;
    replayed.assert_status(202);
    assert_ne!(replayed.body["id"], sent.body["id"]);
    let got = receiver.until("the replay", |got| got.len() == 2).await;
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(got[1].body, got[0].body);
    assert!(verifies(&new, &got[1]) && verifies(&old, &got[1]));
    assert_eq!(got[1].signatures.split(' ').count(), 2);
    // After the day, only the new secret signs.
    api.advance_clock(Duration::from_secs(25 * 3600));
    let login = api.login("test_shop", api_tests::PASSWORD).await;
    let shop = login.body["access"].as_str().unwrap().to_string();
    api.post(
        &format!("/api/merchants/webhooks/{id}/test/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(202);
    let got = receiver.until("a later test", |got| got.len() == 3).await;
    assert!(verifies(&new, &got[2]) && !verifies(&old, &got[2]));

    // Another merchant sees none of it.
    let (_, other, _) = api.signed_up("other_shop", "MERCHANT").await;
    api.post(
        &format!("/api/merchants/webhooks/{id}/test/"),
        json!({}),
        Some(&other),
    )
    .await
    .assert_status(404);
    api.get(
        &format!("/api/merchants/webhooks/{id}/deliveries/"),
        Some(&other),
    )
    .await
    .assert_status(404);
    // Deleted, it is gone.
    api.delete(&format!("/api/merchants/webhooks/{id}/"), Some(&shop))
        .await
        .assert_status(204);
    let again = api
        .delete(&format!("/api/merchants/webhooks/{id}/"), Some(&shop))
        .await;
    again.assert_status(404);
    assert_eq!(again.error_code(), "webhook_not_found");
}

#[tokio::test]
async fn an_endpoint_answering_410_is_disabled_at_once_and_shown_so() {
    let api = webhook_host().await;
    let receiver = Receiver::start().await;
    receiver.status.store(410, Ordering::SeqCst);
    let (_, shop, _) = api.signed_up("gone_shop", "MERCHANT").await;
    let hook = register(&api, &shop, &receiver.url, json!(ALL)).await;
    let id = hook["id"].as_str().unwrap();
    api.post(
        &format!("/api/merchants/webhooks/{id}/test/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(202);
    receiver.until("one attempt", |got| got.len() == 1).await;
    for _ in 0..100 {
        let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
        if listed.body["items"][0]["status"] == "disabled" {
            assert!(listed.body["items"][0]["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("410"));
            let refused = api
                .post(
                    &format!("/api/merchants/webhooks/{id}/test/"),
                    json!({}),
                    Some(&shop),
                )
                .await;
            refused.assert_status(409);
            assert_eq!(refused.error_code(), "webhook_disabled");
            // Never tried again.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(receiver.messages().len(), 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the endpoint was not disabled");
}

#[tokio::test]
async fn urls_inside_the_network_bad_events_and_a_sixth_webhook_are_refused() {
    // Production rules: https only, no private addresses.
    let api = TestApi::start().await;
    let (_, shop, _) = api.signed_up("strict_shop", "MERCHANT").await;
    for url in [
        "http://shop.example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
        "not a url",
    ] {
        let refused = api
            .post(
                "/api/merchants/webhooks/",
                json!({"url": url, "events": ["order.placed"]}),
                Some(&shop),
            )
            .await;
        refused.assert_status(400);
        assert!(
            refused.body["error"]["fields"]["url"].is_string(),
            "{url}: {}",
            refused.body
        );
    }
    let bad_events = api
        .post(
            "/api/merchants/webhooks/",
            json!({"url": "https://8.8.8.8/hook", "events": ["order.exploded"]}),
            Some(&shop),
        )
        .await;
    bad_events.assert_status(400);
    assert!(bad_events.body["error"]["fields"]["events"].is_string());
    api.post(
        "/api/merchants/webhooks/",
        json!({"url": "https://8.8.8.8/hook", "events": []}),
        Some(&shop),
    )
    .await
    .assert_status(400);
    // Five are kept (an address written as an IP is checked without DNS); a sixth is refused.
    for _ in 0..5 {
        register(&api, &shop, "https://8.8.8.8/hook", json!(["order.placed"])).await;
    }
    let sixth = api
        .post(
            "/api/merchants/webhooks/",
            json!({"url": "https://8.8.8.8/hook", "events": ["order.placed"]}),
            Some(&shop),
        )
        .await;
    sixth.assert_status(409);
    assert_eq!(sixth.error_code(), "too_many_webhooks");
    let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 5);
    // Members may not.
    let (_, mia) = api.member_with_points("strict_mia", 100).await;
    api.get("/api/merchants/webhooks/", Some(&mia))
        .await
        .assert_status(403);
}

#[tokio::test]
async fn a_retry_further_away_than_the_queue_can_wait_is_handed_back_by_the_scheduled_job() {
    use shared::domain::webhook::{Delivery, DeliveryState, EventType};
    use shared::services::webhook_delivery::AttemptReport;
    use shared::webhook_queue::DeliveryJob;
    // The schedule at full length: after the third attempt the next waits 30 minutes, longer
    // than SQS holds a message back.
    let api = TestApi::start_with(|config| config.webhooks.allow_private = true).await;
    api.start_webhooks();
    let receiver = Receiver::start().await;
    receiver.status.store(503, Ordering::SeqCst);
    let (shop_id, shop, _) = api.signed_up("due_shop", "MERCHANT").await;
    let hook = register(&api, &shop, &receiver.url, json!(["order.placed"])).await;
    let endpoint = shared::domain::WebhookId::parse(hook["id"].as_str().unwrap()).unwrap();
    // A delivery whose first two attempts failed.
    let now = api.ctx.clock.now();
    let delivery = Delivery {
        id: shared::domain::DeliveryId::generate(),
        endpoint_id: endpoint.clone(),
        merchant_id: api_tests::user_id(&shop_id),
        event_id: "msg_due_1".into(),
        event_type: EventType::WebhookTest,
        body: r#"{"type":"webhook.test","timestamp":"2026-12-06T00:00:00.000Z","data":{}}"#.into(),
        attempts: 2,
        state: DeliveryState::Pending,
        last_attempt: None,
        next_attempt_at: Some(now),
        created_at: now,
    };
    assert!(api.ctx.store.put_delivery(&delivery).await.unwrap());
    let job = DeliveryJob {
        endpoint_id: endpoint.clone(),
        delivery_id: delivery.id.clone(),
    };
    let fourth =
        local_api::host::as_function("fn-webhook-sender", api.ctx.webhooks().deliver(&job))
            .await
            .unwrap();
    assert_eq!(fourth, AttemptReport::WillRetry);
    assert_eq!(receiver.messages().len(), 1);
    // It waits on the due queue, not on the message queue.
    let due = api
        .ctx
        .store
        .due_deliveries(now + chrono::Duration::minutes(31), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery_id, delivery.id);
    // Half an hour is beyond the scheduled job's look-ahead: nothing handed over yet.
    assert_eq!(
        fn_reconcile::run_webhooks(&api.ctx).await.unwrap().queued,
        0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.messages().len(), 1);
    // When it is due, the job hands it to the queue and the fourth attempt is made.
    receiver.status.store(200, Ordering::SeqCst);
    api.advance_clock(Duration::from_secs(31 * 60));
    assert_eq!(
        fn_reconcile::run_webhooks(&api.ctx).await.unwrap().queued,
        1
    );
    let got = receiver
        .until("the fifth attempt", |got| got.len() == 2)
        .await;
    assert_eq!(got[1].id, "msg_due_1");
    // Taken off the due queue: the next run hands over nothing, and the delivery ended.
    assert_eq!(
        fn_reconcile::run_webhooks(&api.ctx).await.unwrap().queued,
        0
    );
    for _ in 0..100 {
        let stored = api
            .ctx
            .store
            .delivery(&endpoint, &delivery.id)
            .await
            .unwrap()
            .unwrap();
        if stored.state == DeliveryState::Succeeded {
            assert_eq!(stored.attempts, 4);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the fourth attempt was not recorded");
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_shown_so() {
    let api = webhook_host().await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let (_, shop, _) = api.signed_up("sick_shop", "MERCHANT").await;
    let hook = register(&api, &shop, &receiver.url, json!(["order.placed"])).await;
    let id = hook["id"].as_str().unwrap();
    api.post(
        &format!("/api/merchants/webhooks/{id}/test/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(202);
    receiver
        .until("a failed attempt", |got| !got.is_empty())
        .await;
    let mut failing = Value::Null;
    for _ in 0..100 {
        let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
        failing = listed.body["items"][0].clone();
        if failing["failing_since"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert_eq!(failing["status"], "enabled");
    // Five days of nothing but failures: the next failure disables it.
    api.advance_clock(Duration::from_secs(5 * 24 * 3600 + 60));
    let shop = api.login("sick_shop", api_tests::PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = api
        .post(
            &format!("/api/merchants/webhooks/{id}/test/"),
            json!({}),
            Some(&shop),
        )
        .await;
    for _ in 0..200 {
        let listed = api.get("/api/merchants/webhooks/", Some(&shop)).await;
        let shown = &listed.body["items"][0];
        if shown["status"] == "disabled" {
            assert!(
                shown["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("5 days"),
                "{shown}"
            );
            assert!(shown["disabled_at"].is_string());
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the endpoint was not disabled");
}

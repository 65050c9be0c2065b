//! A test harness: each [`TestApi`] owns its own in-memory DynamoDB emulator and drives the same
//! dispatch the local host and Lambda use, with `http::Request` values.

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

pub mod calls;
pub mod fakes;
pub mod faults;
pub mod iam;
pub mod over_http;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use local_api::{into_lambda_request, Emulator, LocalApi};
use serde_json::{json, Value};
use shared::{AppContext, Config};

/// The notification ECPay sends when the recharge behind `checkout` (a 201 body) is paid, signed
/// with the stage credentials the tests run with.
pub fn paid_notification(checkout: &Value) -> BTreeMap<String, String> {
    let fields = &checkout["fields"];
    let n: BTreeMap<String, String> = [
        (
            "MerchantID",
            fields["MerchantID"].as_str().unwrap_or_default(),
        ),
        (
            "MerchantTradeNo",
            fields["MerchantTradeNo"].as_str().unwrap_or_default(),
        ),
        ("StoreID", ""),
        ("RtnCode", "1"),
        ("RtnMsg", "交易成功"),
        ("TradeNo", "2611270030051234"),
        (
            "TradeAmt",
            fields["TotalAmount"].as_str().unwrap_or_default(),
        ),
        ("PaymentDate", "2026/11/27 00:31:00"),
        ("PaymentType", "Credit_CreditCard"),
        ("PaymentTypeChargeFee", "10"),
        (
            "TradeDate",
            fields["MerchantTradeDate"].as_str().unwrap_or_default(),
        ),
        ("SimulatePaid", "0"),
        (
            "CustomField1",
            fields["CustomField1"].as_str().unwrap_or_default(),
        ),
        (
            "CustomField2",
            fields["CustomField2"].as_str().unwrap_or_default(),
        ),
        ("CustomField3", ""),
        ("CustomField4", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Signed by the simulator's independent implementation, held to ECPay's published examples:
    // the shipped signer is what the callback verifies with, so it must not also make the oracle.
    local_api::ecpay_simulator::independently_signed(
        n,
        shared::ecpay::STAGE_HASH_KEY,
        shared::ecpay::STAGE_HASH_IV,
    )
}

/// A `POST` of `fields` as `application/x-www-form-urlencoded` (what ECPay and browsers send).
pub fn form_request(path: &str, fields: &BTreeMap<String, String>) -> http::Request<Vec<u8>> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    http::Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .expect("build request")
}

/// QueryTradeInfo answered by the host's simulator in process.
fn in_process(
    simulator: Arc<local_api::ecpay_simulator::EcpaySimulator>,
) -> Arc<dyn shared::gateway::GatewayTransport> {
    Arc::new(local_api::ecpay_simulator::SimulatorTransport(simulator))
}

pub const TEST_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApi {
    pub host: Arc<LocalApi>,
    pub ctx: AppContext,
    emulator: Emulator,
    /// Every DynamoDB call the host makes (see [`calls::CallLog`]).
    pub dynamodb_calls: Arc<calls::CallLog>,
}

#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl TestResponse {
    /// The `error.code` of a JSON error body.
    /// The body as text (an SVG, a CSV, or JSON to search).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.raw)
        );
        self
    }
}

impl TestApi {
    pub async fn start() -> Arc<TestApi> {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `tweak` (e.g. short token lifetimes).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Arc<TestApi> {
        Self::start_with_gateway(tweak, in_process).await
    }

    /// Like [`TestApi::start_with`], with QueryTradeInfo reaching ECPay (the host's simulator)
    /// through the transport `gateway` builds.
    pub async fn start_with_gateway(
        tweak: impl FnOnce(&mut Config),
        gateway: impl FnOnce(
            Arc<local_api::ecpay_simulator::EcpaySimulator>,
        ) -> Arc<dyn shared::gateway::GatewayTransport>,
    ) -> Arc<TestApi> {
        Self::assemble(tweak, None, gateway).await
    }

    /// Like [`TestApi::start`], with every DynamoDB call going through the contention model of real
    /// DynamoDB (`local_api::contention`).
    pub async fn start_with_contention(
        model: local_api::contention::ContentionModel,
    ) -> Arc<TestApi> {
        Self::assemble(
            |_| {},
            Some(Box::new(move |inner| model.wrap(inner))),
            in_process,
        )
        .await
    }

    /// Like [`TestApi::start`], with every DynamoDB call going through the fault model
    /// (`local_api::faults`): throttling, internal errors, conflicts and timeouts after commit.
    pub async fn start_with_faults(model: local_api::faults::FaultModel) -> Arc<TestApi> {
        Self::assemble(
            |_| {},
            Some(Box::new(move |inner| model.wrap(inner))),
            in_process,
        )
        .await
    }

    /// Like [`TestApi::start`], with every DynamoDB call delayed by the latency model
    /// (`local_api::latency`).
    pub async fn start_with_latency(model: local_api::latency::LatencyModel) -> Arc<TestApi> {
        Self::assemble(
            |_| {},
            Some(Box::new(move |inner| model.wrap(inner))),
            in_process,
        )
        .await
    }

    /// Like [`TestApi::start`], but the first `budget` `TransactWriteItems` calls are answered with
    /// a `TransactionConflict` cancellation by the client's own HTTP layer (see [`faults`]).
    pub async fn start_with_conflicts(budget: Arc<faults::ConflictBudget>) -> Arc<TestApi> {
        Self::assemble(
            |_| {},
            Some(Box::new(move |inner| {
                aws_smithy_runtime_api::client::http::SharedHttpClient::new(
                    faults::ConflictInjector::new(inner, budget),
                )
            })),
            in_process,
        )
        .await
    }

    /// The one way a test host is built: its own in-memory emulator, the configuration `tweak`
    /// adjusts, an optional layer under the DynamoDB client, metrics captured, and QueryTradeInfo
    /// through `gateway`.
    async fn assemble(
        tweak: impl FnOnce(&mut Config),
        wrap: Option<local_api::host::HttpClientWrapper>,
        gateway: impl FnOnce(
            Arc<local_api::ecpay_simulator::EcpaySimulator>,
        ) -> Arc<dyn shared::gateway::GatewayTransport>,
    ) -> Arc<TestApi> {
        let emulator = Emulator::in_memory().expect("start emulator");
        let mut config = Config::local(
            emulator.endpoint().to_string(),
            "points-test".to_string(),
            TEST_SECRET.to_vec(),
        );
        // Hundreds of sign-ups per race: the cheapest argon2 cost keeps the suite about the code
        // under test. `a_member_signs_up_and_logs_in_at_the_production_password_cost` keeps one
        // scenario at the real cost.
        config.password_cost = shared::auth::password::PasswordCost::CHEAPEST;
        tweak(&mut config);
        let dynamodb_calls = calls::CallLog::new();
        let recorder = Arc::clone(&dynamodb_calls);
        let wrap: local_api::host::HttpClientWrapper = Box::new(move |inner| {
            recorder.wrap(match wrap {
                Some(wrap) => wrap(inner),
                None => inner,
            })
        });
        let mut host = LocalApi::connect_through(config, Some(wrap))
            .await
            .expect("prepare table");
        // The emulator's stream costs every write a scan of every record kept, and an in-memory
        // emulator cannot be trimmed (`local_api::webhooks`): off unless the test runs webhooks.
        local_api::webhooks::set_stream(emulator.database(), &host.ctx.config.table_name, false)
            .expect("turn the stream off");
        host.ctx.metrics = shared::observe::MetricsSink::capture();
        // Tests move time forward instead of sleeping through windows (`advance_clock`).
        host.set_clock(shared::clock::Clock::adjustable());
        host.ctx.gateway = gateway(host.simulator.clone());
        let host = Arc::new(host);
        let ctx = host.ctx.clone();
        Arc::new(TestApi {
            host,
            ctx,
            emulator,
            dynamodb_calls,
        })
    }

    /// The sum of one business metric over every EMF document the requests so far emitted.
    pub fn metric_total(&self, metric: shared::observe::Metric) -> f64 {
        self.host.ctx.metrics.captured_total(metric)
    }

    /// Moves this host's clock forward: token lifetimes, grace and login windows pass at once.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.ctx
            .clock
            .advance(by)
            .expect("the test host's clock is adjustable");
    }

    /// Runs webhooks as the local host does (the stream dispatcher and the sender task), with the
    /// table's stream on (a test host keeps it off otherwise: see `local_api::webhooks::set_stream`).
    pub fn start_webhooks(&self) {
        local_api::webhooks::set_stream(
            self.emulator.database(),
            &self.ctx.config.table_name,
            true,
        )
        .expect("turn the stream on");
        self.host.start_webhooks(self.emulator.database().clone());
    }

    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Sends a raw request through the host's dispatch.
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> TestResponse {
        self.send_from(None, request).await
    }

    /// Sends a request as if from client address `ip` (API Gateway's `sourceIp`).
    pub async fn send_from(
        &self,
        ip: Option<&str>,
        request: http::Request<Vec<u8>>,
    ) -> TestResponse {
        let (parts, body) = request.into_parts();
        let request =
            local_api::with_source_ip(into_lambda_request(parts, body), ip.map(str::to_string));
        let response = self.host.dispatch(request).await;
        let (parts, body) = response.into_parts();
        let raw: Vec<u8> = body.as_ref().to_vec();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw).unwrap_or(Value::Null)
        };
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            raw,
        }
    }

    /// Sends a JSON request, with a bearer token when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> TestResponse {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                serde_json::to_vec(&body).expect("serialise body")
            }
            None => Vec::new(),
        };
        self.send(builder.body(bytes).expect("build request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, path, None, token).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.call(Method::POST, path, Some(body), token).await
    }

    pub async fn put(&self, path: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.call(Method::PUT, path, Some(body), token).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::DELETE, path, None, token).await
    }

    /// Lists a product as the merchant holding `token`; returns its JSON.
    pub async fn create_product(&self, token: &str, name: &str, points: i64, stock: i64) -> Value {
        let response = self
            .post(
                "/api/merchants/products/",
                json!({"name": name, "description": format!("{name}, boxed"), "points_required": points, "stock": stock}),
                Some(token),
            )
            .await;
        response.assert_status(201);
        response.body
    }

    /// A product whose stock is spread over `shards` items (a product expected to sell fast).
    pub async fn create_hot_product(
        &self,
        token: &str,
        name: &str,
        points: i64,
        stock: i64,
        shards: i64,
    ) -> Value {
        let response = self
            .post(
                "/api/merchants/products/",
                json!({"name": name, "points_required": points, "stock": stock, "stock_shards": shards}),
                Some(token),
            )
            .await;
        response.assert_status(201);
        assert_eq!(
            response.body["stock_shards"],
            shards.max(response.body["stock_shards"].as_i64().unwrap_or(0))
        );
        response.body
    }

    /// Every item of a paginated list, following `next_cursor` to the end.
    pub async fn walk(&self, path: &str, limit: usize, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{separator}limit={limit}");
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.get(&url, Some(token)).await;
            page.assert_status(200);
            let batch = page.body["items"].as_array().expect("items").clone();
            assert!(batch.len() <= limit);
            items.extend(batch);
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    pub async fn register(&self, username: &str, role: &str) -> TestResponse {
        self.post(
            "/api/auth/register/",
            json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
                "role": role,
            }),
            None,
        )
        .await
    }

    /// A login attempt from client address `ip`.
    pub async fn login_from(&self, ip: &str, username: &str, password: &str) -> TestResponse {
        let body = serde_json::to_vec(&json!({"username": username, "password": password}))
            .expect("serialise login");
        let request = http::Request::builder()
            .method(Method::POST)
            .uri("/api/auth/login/")
            .header("content-type", "application/json")
            .body(body)
            .expect("build login");
        self.send_from(Some(ip), request).await
    }

    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post(
            "/api/auth/login/",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    /// Registers and logs in; returns (user id, access token, refresh token).
    pub async fn signed_up(&self, username: &str, role: &str) -> (String, String, String) {
        let registered = self.register(username, role).await;
        registered.assert_status(201);
        let login = self.login(username, PASSWORD).await;
        login.assert_status(200);
        (
            registered.body["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            login.body["access"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            login.body["refresh"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// An operator made the only way there is (the `create-admin` command's service call), signed
    /// in through the ordinary login; returns (user id, access token).
    pub async fn signed_in_admin(&self, username: &str) -> (String, String) {
        let admin = self
            .ctx
            .admin()
            .create_admin(
                username.to_string(),
                format!("{username}@ops.example.com"),
                PASSWORD.to_string(),
            )
            .await
            .expect("create admin");
        let login = self.login(username, PASSWORD).await;
        login.assert_status(200);
        (
            admin.id,
            login.body["access"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// Posts an ECPay notification (form fields) to the callback.
    pub async fn notify(&self, fields: &BTreeMap<String, String>) -> TestResponse {
        self.send(form_request("/api/payments/ecpay/callback/", fields))
            .await
    }

    /// Starts a recharge of `amount` TWD for the member holding `token`; returns the 201 body.
    pub async fn start_recharge(&self, token: &str, amount: i64) -> Value {
        let response = self
            .post(
                "/api/members/points/recharge/",
                json!({"amount": amount}),
                Some(token),
            )
            .await;
        response.assert_status(201);
        response.body
    }

    /// The member's browser posts the recharge's checkout form (`checkout`, a 201 body) to ECPay (the
    /// simulator) and pays, and ECPay's notification is lost: only reconciliation can find the payment.
    /// Its MerchantTradeNo.
    pub async fn paid_without_notification(&self, checkout: &Value) -> String {
        let fields: BTreeMap<String, String> = checkout["fields"]
            .as_object()
            .expect("a checkout form")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        self.send(form_request("/dev/ecpay/Cashier/AioCheckOut/V5", &fields))
            .await
            .assert_status(200);
        let trade_no = checkout["merchant_trade_no"]
            .as_str()
            .expect("a MerchantTradeNo")
            .to_string();
        let pay = BTreeMap::from([
            ("MerchantTradeNo".to_string(), trade_no.clone()),
            ("notify".to_string(), "0".to_string()),
        ]);
        self.send(form_request("/dev/ecpay/pay", &pay))
            .await
            .assert_status(200);
        trade_no
    }

    /// A member with `amount` points, bought the real way: recharge, then ECPay's signed notification.
    pub async fn member_with_points(&self, username: &str, amount: i64) -> (String, String) {
        let (id, token, _) = self.signed_up(username, "MEMBER").await;
        let checkout = self.start_recharge(&token, amount).await;
        let answer = self.notify(&paid_notification(&checkout)).await;
        answer.assert_status(200);
        assert_eq!(answer.raw, b"1|OK");
        (id, token)
    }

    /// `count` members named `{prefix}{i}`, each holding `points` bought through ECPay; signed up
    /// a few at a time (argon2 needs 19 MiB per hash).
    pub async fn members_with_points(
        self: &Arc<Self>,
        prefix: &str,
        count: usize,
        points: i64,
    ) -> Vec<(String, String)> {
        use futures::StreamExt;
        futures::stream::iter(0..count)
            .map(|i| {
                let api = Arc::clone(self);
                let name = format!("{prefix}{i}");
                async move { api.member_with_points(&name, points).await }
            })
            .buffered(8)
            .collect()
            .await
    }

    /// Redeems `quantity` of a product as the member holding `token`.
    pub async fn redeem(&self, token: &str, product_id: &str, quantity: i64) -> TestResponse {
        self.post(
            "/api/members/orders/",
            json!({"product_id": product_id, "quantity": quantity}),
            Some(token),
        )
        .await
    }

    /// The merchant holding `shop` reads the pickup code of `placed` (a redemption's 201 body, as
    /// its member got it) at the counter: `POST /api/merchants/orders/redeem-code/`.
    pub async fn hand_over(&self, shop: &str, placed: &Value) -> TestResponse {
        let code = placed["pickup_code"]
            .as_str()
            .expect("a pickup order's code");
        self.post(
            "/api/merchants/orders/redeem-code/",
            json!({ "code": code }),
            Some(shop),
        )
        .await
    }

    /// Redeems with an Idempotency-Key: `body` as the member holding `token` sent it.
    pub async fn redeem_with_key(&self, token: &str, key: &str, body: Value) -> TestResponse {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri("/api/members/orders/")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(serde_json::to_vec(&body).expect("a JSON body"))
            .expect("build request");
        self.send(request).await
    }

    /// Checks the money invariants for `member_ids`: every balance equals the sum of its ledger
    /// rows and `total_earned − total_spent`, and every `balance_after` is a running sum.
    pub async fn assert_points_invariants(&self, member_ids: &[String]) {
        for member in member_ids {
            let member = &user_id(member);
            let account = self
                .ctx
                .store
                .get_point_account(member)
                .await
                .expect("read account")
                .expect("account exists");
            let mut rows = self
                .ctx
                .store
                .all_ledger_rows(member)
                .await
                .expect("read ledger");
            let sum: i64 = rows.iter().map(|r| r.amount).sum();
            assert_eq!(
                account.balance, sum,
                "balance of {member} is not the sum of its ledger"
            );
            assert_eq!(
                account.balance,
                account.total_earned - account.total_spent,
                "{member}"
            );
            assert!(account.balance >= 0, "{member} went negative");
            // The two kinds of points: they make up the balance, neither below zero, and each is
            // the sum of its column of the ledger.
            assert_eq!(
                account.balance,
                account.purchased + account.promotional,
                "{member}: the kinds do not make up the balance"
            );
            assert!(
                account.purchased >= 0 && account.promotional >= 0,
                "{member}"
            );
            let purchased: i64 = rows.iter().map(|r| r.purchased).sum();
            let promotional: i64 = rows.iter().map(|r| r.promotional).sum();
            assert_eq!(
                account.purchased, purchased,
                "{member}: purchased vs ledger"
            );
            assert_eq!(
                account.promotional, promotional,
                "{member}: promotional vs ledger"
            );
            assert!(rows.iter().all(|r| r.amount == r.purchased + r.promotional));
            // Newest first from the store; the oldest first is the order the changes happened in.
            rows.reverse();
            let mut running = 0;
            for row in rows {
                running += row.amount;
                assert_eq!(
                    row.balance_after, running,
                    "balance_after of {member} is not exact"
                );
            }
        }
    }

    /// Checks a product's stock against its orders: stock + units in pending or completed orders
    /// equals the initial stock plus the merchant's adjustments; and stock never went negative.
    pub async fn assert_stock_invariant(
        &self,
        merchant_token: &str,
        product_id: &str,
        initial_plus_adjustments: i64,
    ) {
        let product = self
            .get(
                &format!("/api/merchants/products/{product_id}/"),
                Some(merchant_token),
            )
            .await;
        product.assert_status(200);
        let stock = product.body["stock"].as_i64().expect("stock");
        assert!(stock >= 0, "stock went negative: {stock}");
        let orders = self
            .walk("/api/merchants/orders/", 100, merchant_token)
            .await;
        let held: i64 = orders
            .iter()
            .filter(|o| o["product_id"] == product_id && o["status"] != "cancelled")
            .map(|o| o["quantity"].as_i64().unwrap_or_default())
            .sum();
        assert_eq!(
            stock + held,
            initial_plus_adjustments,
            "stock {stock} + held {held}"
        );
    }

    /// How many items the table holds: the way tests prove a refused request wrote nothing.
    pub async fn item_count(&self) -> i64 {
        self.ctx.store.item_count().await.expect("count items")
    }
}

/// A user id from a response body (the test fails if it is not one).
pub fn user_id(raw: &str) -> shared::domain::UserId {
    shared::domain::UserId::parse(raw).unwrap_or_else(|| panic!("{raw:?} is not a user id"))
}

/// A MerchantTradeNo from a response body (the test fails if it is not one).
pub fn trade_no(raw: &str) -> shared::domain::MerchantTradeNo {
    shared::domain::MerchantTradeNo::parse(raw)
        .unwrap_or_else(|| panic!("{raw:?} is not a MerchantTradeNo"))
}

/// A benchmark's setting from the environment, else `default` (unset or unparsable).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

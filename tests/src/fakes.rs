//! Small fakes of the AWS services a function meets at start-up, each answering the way the service
//! documents it, so the real function binaries can run here:
//!
//! - [`FakeSecretsManager`]: `GetSecretValue` over the JSON 1.1 protocol (`POST /`,
//!   `X-Amz-Target: secretsmanager.GetSecretValue`, body `{"SecretId": ...}`; answer
//!   `{"ARN","Name","VersionId","SecretString","VersionStages","CreatedDate"}`; an unknown id is HTTP 400
//!   `{"__type":"ResourceNotFoundException"}`), per the Secrets Manager API reference.
//! - [`FakeLambdaRuntime`]: the Lambda Runtime API
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>): `GET
//!   /2018-06-01/runtime/invocation/next` long-polls for the next event and answers it with the
//!   `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` and
//!   `Lambda-Runtime-Invoked-Function-Arn` headers; `POST .../invocation/{id}/response` and
//!   `.../invocation/{id}/error` take the outcome (202); `POST /2018-06-01/runtime/init/error` takes an
//!   init failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a fake");
    let addr = listener.local_addr().expect("fake address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Secrets by id, and how many `GetSecretValue` calls arrived.
#[derive(Clone, Default)]
pub struct FakeSecretsManager {
    secrets: Arc<Mutex<HashMap<String, String>>>,
    calls: Arc<Mutex<u32>>,
    endpoint: String,
}

impl FakeSecretsManager {
    /// Starts on a free loopback port with `secrets` (id → SecretString).
    pub async fn start(secrets: &[(&str, Value)]) -> FakeSecretsManager {
        let mut fake = FakeSecretsManager::default();
        for (id, value) in secrets {
            let text = match value {
                Value::String(raw) => raw.clone(),
                other => other.to_string(),
            };
            fake.secrets
                .lock()
                .expect("secrets")
                .insert(id.to_string(), text);
        }
        let app = axum::Router::new()
            .route("/", post(get_secret_value))
            .with_state(fake.clone());
        fake.endpoint = format!("http://{}", serve(app).await);
        fake
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn calls(&self) -> u32 {
        *self.calls.lock().expect("calls")
    }
}

async fn get_secret_value(
    State(fake): State<FakeSecretsManager>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *fake.calls.lock().expect("calls") += 1;
    let error = |status: StatusCode, kind: &str, message: &str| {
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            json!({"__type": kind, "message": message}).to_string(),
        )
            .into_response()
    };
    if headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        != Some("secretsmanager.GetSecretValue")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "unknown operation",
        );
    }
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "request is not signed",
        );
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(id) = request["SecretId"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "SecretId is required",
        );
    };
    let secret = fake.secrets.lock().expect("secrets").get(id).cloned();
    match secret {
        Some(text) => (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.1")],
            json!({
                "ARN": format!("arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:{id}-AbCdEf"),
                "Name": id,
                "VersionId": "00000000-0000-0000-0000-000000000001",
                "SecretString": text,
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_795_660_800.0,
            })
            .to_string(),
        )
            .into_response(),
        None => error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    }
}

/// What a function posted back for one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

struct RuntimeState {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<Value>>,
    first_next: Mutex<Option<Instant>>,
}

/// A Lambda Runtime API serving the events handed to [`FakeLambdaRuntime::invoke`].
pub struct FakeLambdaRuntime {
    state: Arc<RuntimeState>,
    sender: mpsc::UnboundedSender<(String, Value)>,
    address: SocketAddr,
    counter: Mutex<u32>,
}

impl FakeLambdaRuntime {
    pub async fn start() -> FakeLambdaRuntime {
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(RuntimeState {
            events: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
            first_next: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let address = serve(app).await;
        FakeLambdaRuntime {
            state,
            sender,
            address,
            counter: Mutex::new(0),
        }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn api(&self) -> String {
        self.address.to_string()
    }

    /// When the function first asked for an event: the end of its init.
    pub fn first_next(&self) -> Option<Instant> {
        *self.state.first_next.lock().expect("first next")
    }

    pub fn init_errors(&self) -> Vec<Value> {
        self.state.init_errors.lock().expect("init errors").clone()
    }

    /// Hands `event` to the function and waits (up to `timeout`) for its outcome. Returns the
    /// request id used and the outcome.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> (String, Option<Outcome>) {
        let id = {
            let mut counter = self.counter.lock().expect("counter");
            *counter += 1;
            format!("lambda-req-{counter}")
        };
        let (tx, rx) = oneshot::channel();
        self.state
            .waiting
            .lock()
            .expect("waiting")
            .insert(id.clone(), tx);
        let _ = self.sender.send((id.clone(), event));
        let outcome = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok);
        (id, outcome)
    }
}

async fn next_invocation(State(state): State<Arc<RuntimeState>>) -> Response {
    state
        .first_next
        .lock()
        .expect("first next")
        .get_or_insert_with(Instant::now);
    let next = state.events.lock().await.recv().await;
    let Some((id, event)) = next else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 10_000;
    (
        StatusCode::OK,
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:ap-northeast-1:123456789012:function:fn-auth".to_string(),
            ),
            ("content-type", "application/json".to_string()),
        ],
        event.to_string(),
    )
        .into_response()
}

fn finish(state: &RuntimeState, id: &str, outcome: Outcome) -> StatusCode {
    match state.waiting.lock().expect("waiting").remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn invocation_response(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&state, &id, Outcome::Response(value))
}

async fn invocation_error(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&state, &id, Outcome::Error(value))
}

async fn init_error(State(state): State<Arc<RuntimeState>>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.init_errors.lock().expect("init errors").push(value);
    StatusCode::ACCEPTED
}

/// The event API Gateway (HTTP API, payload format 2.0) sends for `method raw_path` on `stage`, after
/// it matched `route_key` (with `proxy` as the greedy parameter, if any), as documented for Lambda
/// proxy integrations.
#[allow(clippy::too_many_arguments)]
pub fn http_api_event_on(
    method: &str,
    raw_path: &str,
    stage: &str,
    route_key: &str,
    proxy: Option<&str>,
    headers: Value,
    body: Option<&str>,
    request_id: &str,
) -> Value {
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": proxy.map(|p| json!({"proxy": p})),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.ap-northeast-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "fake-api-gateway"},
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": "29/Nov/2026:03:00:00 +0000",
            "timeEpoch": 1_795_921_200_000i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The event for a request on the `$default` stage that matched the greedy route
/// `ANY <prefix>/{proxy+}`, with a fresh API Gateway request id.
pub fn http_api_event(
    method: &str,
    path: &str,
    route_prefix: &str,
    headers: Value,
    body: Option<&str>,
) -> Value {
    let proxy = path
        .strip_prefix(route_prefix)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or_default();
    http_api_event_on(
        method,
        path,
        "$default",
        &format!("ANY {route_prefix}/{{proxy+}}"),
        Some(proxy),
        headers,
        body,
        &format!("apigw-{}", uuid::Uuid::new_v4()),
    )
}

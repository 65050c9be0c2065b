//! The SDK's HTTP client for the embedded emulator, without HTTP: each request the aws-sdk-dynamodb
//! client builds (the same calls, bodies and headers it sends to AWS) is handed to the emulator's
//! engine in this process, and its answer comes back as the HTTP response DynamoDB would give. This
//! skips the loopback socket, the HTTP framing on both sides and a connection pool, which were a
//! sizeable share of each call here. `DYNAMODB_TRANSPORT=http` keeps the loopback HTTP path (the
//! emulator's server still runs either way, for other tools).
//!
//! `ClientRequestToken` replay for transactions is kept here (see [`RequestTokens`]), with
//! DynamoDB's rules, because the engine's own bookkeeping slows down as tokens accumulate.
//!
//! One thread owns the engine and serves calls one at a time, as the emulator's HTTP server does
//! (SQLite serialises them anyway), so the API's runtime threads never block on SQLite.

use std::collections::HashMap;
use std::sync::{mpsc, Mutex, OnceLock};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use dynoxide::Database;
use tokio::sync::oneshot;

struct Call {
    operation: String,
    body: Vec<u8>,
    reply: oneshot::Sender<(u16, String)>,
    /// Served before the others waiting (see [`InProcessDynamo::start`]).
    urgent: bool,
}

/// The engine's thread, reached through a channel.
#[derive(Debug, Clone)]
pub struct InProcessDynamo {
    calls: mpsc::Sender<CallBox>,
}

/// `Call` made `Debug` for the client's derive without printing bodies.
struct CallBox(Call);

impl std::fmt::Debug for CallBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({})", self.0.operation)
    }
}

/// The DynamoDB operation an SDK request calls (`TransactWriteItems`, …), from its `X-Amz-Target`.
pub fn operation_of(request: &HttpRequest) -> String {
    request
        .headers()
        .get("x-amz-target")
        .unwrap_or_default()
        .trim_start_matches("DynamoDB_20120810.")
        .to_string()
}

/// How many actions a transaction's request carries (`TransactItems`); `None` for a body that is
/// not one. DynamoDB's cancellation reasons are positional, one per action, so the models that
/// cancel a transaction need it, and the tests' recorder counts items with it.
pub fn transact_items_of(request: &HttpRequest) -> Option<usize> {
    let body = request.body().bytes()?;
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["TransactItems"].as_array().map(Vec::len)
}

/// Emulators of this process by endpoint, so that a client configured for an emulator's URL can be
/// given the in-process path to it (see [`crate::host::LocalApi::connect_through`]).
fn registry() -> &'static Mutex<HashMap<String, InProcessDynamo>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, InProcessDynamo>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl InProcessDynamo {
    /// Starts the engine's thread over `database`.
    pub fn start(database: Database) -> std::io::Result<Self> {
        let (calls, incoming) = mpsc::channel::<CallBox>();
        std::thread::Builder::new()
            .name("dynamodb-in-process".into())
            .spawn(move || {
                let mut tokens = RequestTokens::default();
                // The webhook dispatcher's calls go first. On AWS nothing queues them behind a
                // sale's requests; here one thread serves every call in turn, and while the
                // dispatcher waits, the stream records it has not handled pile up, which the
                // emulator scans on every write (docs/webhooks.md, "The emulator's stream").
                let mut urgent = std::collections::VecDeque::new();
                let mut waiting = std::collections::VecDeque::new();
                loop {
                    let mut arrived = Vec::new();
                    if urgent.is_empty() && waiting.is_empty() {
                        match incoming.recv() {
                            Ok(CallBox(call)) => arrived.push(call),
                            Err(_) => break,
                        }
                    }
                    arrived.extend(incoming.try_iter().map(|CallBox(call)| call));
                    for call in arrived {
                        if call.urgent {
                            urgent.push_back(call);
                        } else {
                            waiting.push_back(call);
                        }
                    }
                    let Some(call) = urgent.pop_front().or_else(|| waiting.pop_front()) else {
                        continue;
                    };
                    let answer = if call.operation == "TransactWriteItems" {
                        tokens.transact(&database, &call.body)
                    } else {
                        run(&database, &call.operation, &call.body)
                    };
                    let _ = call.reply.send(answer);
                }
            })?;
        Ok(InProcessDynamo { calls })
    }

    pub fn register(&self, endpoint: &str) {
        if let Ok(mut registry) = registry().lock() {
            registry.insert(endpoint.to_string(), self.clone());
        }
    }

    pub fn unregister(endpoint: &str) {
        if let Ok(mut registry) = registry().lock() {
            registry.remove(endpoint);
        }
    }

    /// The in-process path to the emulator serving `endpoint`, unless `DYNAMODB_TRANSPORT=http`.
    pub fn for_endpoint(endpoint: &str) -> Option<Self> {
        if std::env::var("DYNAMODB_TRANSPORT").is_ok_and(|t| t.eq_ignore_ascii_case("http")) {
            return None;
        }
        registry().lock().ok()?.get(endpoint).cloned()
    }

    pub fn http_client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }
}

/// How long DynamoDB remembers a `ClientRequestToken`: "A client request token is valid for 10
/// minutes after the first request that uses it is completed" (API reference, `TransactWriteItems`).
const TOKEN_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// `ClientRequestToken` idempotency for `TransactWriteItems`, kept here rather than by the engine.
///
/// The engine keeps tokens too, but scans every remembered token on every transaction to drop the
/// expired ones. A long run remembers tens of thousands (every transaction of the last 10 minutes),
/// so that scan became most of the CPU: the soak benchmark measured orders/s falling from 367 to 83
/// over 100,000 redemptions, with `HashMap::retain` and the clock at 42% of all samples. Here tokens
/// expire in the order they were first used, so expiring them is one look at the oldest.
///
/// The rules are DynamoDB's: the same token with the same request within the window answers the
/// first call's result without applying anything; the same token with a different request is
/// `IdempotentParameterMismatchException`. Only committed transactions are remembered (a cancelled
/// one wrote nothing, and its retry is evaluated afresh).
#[derive(Default)]
struct RequestTokens {
    by_token: HashMap<String, (u64, String)>,
    order: std::collections::VecDeque<(std::time::Instant, String)>,
}

impl RequestTokens {
    fn transact(&mut self, database: &Database, body: &[u8]) -> (u16, String) {
        let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
            return run(database, "TransactWriteItems", body);
        };
        let token = match request
            .as_object_mut()
            .and_then(|fields| fields.remove("ClientRequestToken"))
        {
            Some(serde_json::Value::String(token)) => token,
            // No token (or not a string, which the engine refuses as DynamoDB does).
            _ => return run(database, "TransactWriteItems", body),
        };
        let now = std::time::Instant::now();
        while let Some((first_used, _)) = self.order.front() {
            if now.duration_since(*first_used) < TOKEN_WINDOW {
                break;
            }
            if let Some((_, expired)) = self.order.pop_front() {
                self.by_token.remove(&expired);
            }
        }
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            request["TransactItems"].to_string().hash(&mut hasher);
            hasher.finish()
        };
        if let Some((known, response)) = self.by_token.get(&token) {
            return if *known == fingerprint {
                (200, response.clone())
            } else {
                (
                    400,
                    serde_json::json!({
                        "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                        "message": "The request uses the same client token as a previous, but non-identical request.",
                    })
                    .to_string(),
                )
            };
        }
        let (status, response) = run(
            database,
            "TransactWriteItems",
            request.to_string().as_bytes(),
        );
        if status == 200 {
            self.by_token
                .insert(token.clone(), (fingerprint, response.clone()));
            self.order.push_back((now, token));
        }
        (status, response)
    }
}

/// Runs one operation on the engine: the status and JSON body DynamoDB would answer with.
fn run(database: &Database, operation: &str, body: &[u8]) -> (u16, String) {
    macro_rules! op {
        ($method:ident) => {
            match serde_json::from_slice(body) {
                Ok(request) => match database.$method(request) {
                    Ok(response) => match serde_json::to_string(&response) {
                        Ok(json) => (200, json),
                        Err(err) => (500, internal_error(&err.to_string())),
                    },
                    Err(err) => {
                        // As the emulator's HTTP server does: an internal tag for validation errors
                        // never reaches the wire (the typed API already wraps the ones PutItem,
                        // UpdateItem and DeleteItem report in DynamoDB's envelope).
                        let err = match err {
                            dynoxide::DynoxideError::EnvelopedValidation(message) => {
                                dynoxide::DynoxideError::ValidationException(message)
                            }
                            other => other,
                        };
                        (err.status_code(), err.to_json())
                    }
                },
                // The engine's request types check some constraints while being read, and tag
                // those failures (the HTTP server turns them into ValidationException too).
                Err(err) => {
                    let message = err.to_string();
                    match message.strip_prefix("VALIDATION:") {
                        Some(problem) => (
                            400,
                            dynoxide::DynoxideError::ValidationException(
                                problem.split(" at line ").next().unwrap_or(problem).to_string(),
                            )
                            .to_json(),
                        ),
                        None => (
                            400,
                            serde_json::json!({
                                "__type": "com.amazon.coral.service#SerializationException",
                                "Message": message,
                            })
                            .to_string(),
                        ),
                    }
                }
            }
        };
    }
    match operation {
        "GetItem" => op!(get_item),
        "PutItem" => op!(put_item),
        "UpdateItem" => op!(update_item),
        "DeleteItem" => op!(delete_item),
        "Query" => op!(query),
        "Scan" => op!(scan),
        "BatchGetItem" => op!(batch_get_item),
        "BatchWriteItem" => op!(batch_write_item),
        "TransactWriteItems" => op!(transact_write_items),
        "TransactGetItems" => op!(transact_get_items),
        "CreateTable" => op!(create_table),
        "DescribeTable" => op!(describe_table),
        "UpdateTable" => op!(update_table),
        "UpdateTimeToLive" => op!(update_time_to_live),
        "DescribeTimeToLive" => op!(describe_time_to_live),
        _ => (
            400,
            r#"{"__type":"com.amazon.coral.service#UnknownOperationException"}"#.to_string(),
        ),
    }
}

fn internal_error(message: &str) -> String {
    serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": message,
    })
    .to_string()
}

impl HttpClient for InProcessDynamo {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for InProcessDynamo {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = operation_of(&request);
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let (reply, answer) = oneshot::channel();
        let urgent = crate::host::current_function() == Some("fn-webhook-dispatcher");
        let sent = self.calls.send(CallBox(Call {
            operation,
            body,
            reply,
            urgent,
        }));
        HttpConnectorFuture::new(async move {
            if sent.is_err() {
                return Err(ConnectorError::io(
                    "the in-process emulator has stopped".into(),
                ));
            }
            let (status, body) = answer
                .await
                .map_err(|_| ConnectorError::io("the in-process emulator dropped a call".into()))?;
            let mut response = HttpResponse::new(
                status.try_into().map_err(|_| {
                    ConnectorError::other("bad status from the emulator".into(), None)
                })?,
                SdkBody::from(body),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transaction(token: &str, value: &str) -> Vec<u8> {
        serde_json::json!({
            "ClientRequestToken": token,
            "TransactItems": [{"Put": {"TableName": "tea", "Item": {"pk": {"S": "a"}, "sk": {"S": value}}}}],
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_token_replays_its_first_result_and_refuses_another_request() {
        let database = Database::memory().unwrap();
        let create = serde_json::json!({
            "TableName": "tea",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        let created = run(&database, "CreateTable", create.to_string().as_bytes());
        assert_eq!(created.0, 200, "{}", created.1);
        // A request DynamoDB refuses comes back as its ValidationException.
        let refused = run(&database, "DescribeTable", br#"{"TableName":"t"}"#);
        assert_eq!(refused.0, 400);
        assert!(refused.1.contains("ValidationException"), "{}", refused.1);
        let mut tokens = RequestTokens::default();
        assert_eq!(tokens.transact(&database, &transaction("t-1", "x")).0, 200);
        // Replayed, not applied again (a second item would show in the count).
        assert_eq!(tokens.transact(&database, &transaction("t-1", "x")).0, 200);
        let scan = run(&database, "Scan", br#"{"TableName":"tea"}"#);
        assert!(scan.1.contains(r#""Count":1"#), "{}", scan.1);
        // The same token with another request.
        let mismatch = tokens.transact(&database, &transaction("t-1", "y"));
        assert_eq!(mismatch.0, 400);
        assert!(mismatch.1.contains("IdempotentParameterMismatchException"));
        // Another token is another transaction.
        assert_eq!(tokens.transact(&database, &transaction("t-2", "y")).0, 200);
        let scan = run(&database, "Scan", br#"{"TableName":"tea"}"#);
        assert!(scan.1.contains(r#""Count":2"#), "{}", scan.1);
    }
}

//! The SDK's HTTP client for the embedded emulator, without HTTP: each request the aws-sdk-dynamodb
//! client builds (the same calls, bodies and headers it sends to AWS) is handed to the emulator's
//! engine in this process, and its answer comes back as the HTTP response DynamoDB would give. This
//! skips the loopback socket, the HTTP framing on both sides and a connection pool, which were a
//! sizeable share of each call here. `DYNAMODB_TRANSPORT=http` keeps the loopback HTTP path (the
//! emulator's server still runs either way, for other tools).
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
                for CallBox(call) in incoming {
                    let answer = run(&database, &call.operation, &call.body);
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
                    Err(err) => (err.status_code(), err.to_json()),
                },
                Err(err) => (
                    400,
                    serde_json::json!({
                        "__type": "com.amazon.coral.service#SerializationException",
                        "Message": err.to_string(),
                    })
                    .to_string(),
                ),
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
        let operation = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .trim_start_matches("DynamoDB_20120810.")
            .to_string();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let (reply, answer) = oneshot::channel();
        let sent = self.calls.send(CallBox(Call {
            operation,
            body,
            reply,
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

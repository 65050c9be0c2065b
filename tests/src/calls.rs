//! A record of every DynamoDB call the code under test makes, by operation: how tests count round
//! trips. It wraps the SDK's HTTP client outermost, so a call refused by a fault or the contention
//! model still counts (it was a round trip).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The data-plane operations, each of which must ask for its consumed capacity.
const DATA_PLANE: [&str; 10] = [
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// What one answered call reported it consumed, as DynamoDB put it on the wire (`ConsumedCapacity`
/// under `INDEXES`): units by where they were spent (`table`, or an index's name).
#[derive(Debug, Clone, PartialEq)]
pub struct Consumed {
    pub operation: String,
    pub units: BTreeMap<String, f64>,
    /// Items the call wrote or read by key (a transaction's or a batch's count; 1 otherwise, 0
    /// for a query or a scan).
    pub items: usize,
}

impl Consumed {
    pub fn total(&self) -> f64 {
        self.units.values().sum()
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self.operation.as_str(),
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
        )
    }

    /// Reads `ConsumedCapacity` (one object, or a list for batches and transactions) from a
    /// response body; `None` when the answer carries none (an error).
    fn from_response(operation: &str, items: usize, body: &[u8]) -> Option<Self> {
        let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
        let entries = match answer.get("ConsumedCapacity")? {
            serde_json::Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        let mut units = BTreeMap::new();
        for entry in entries {
            let table = entry["Table"]["CapacityUnits"]
                .as_f64()
                .or_else(|| entry["CapacityUnits"].as_f64())
                .unwrap_or(0.0);
            *units.entry("table".to_string()).or_insert(0.0) += table;
            for kind in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
                if let Some(indexes) = entry[kind].as_object() {
                    for (name, detail) in indexes {
                        let spent = detail["CapacityUnits"].as_f64().unwrap_or(0.0);
                        *units.entry(name.clone()).or_insert(0.0) += spent;
                    }
                }
            }
        }
        Some(Consumed {
            operation: operation.to_string(),
            units,
            items,
        })
    }
}

/// How many items a request names: a transaction's actions, a batch's keys, one for a single-item
/// call, none for a query or a scan.
fn items_in(operation: &str, request: &HttpRequest) -> usize {
    let body = || -> serde_json::Value {
        serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap_or_default()
    };
    match operation {
        "TransactWriteItems" | "TransactGetItems" => {
            local_api::in_process::transact_items_of(request).unwrap_or(0)
        }
        "BatchGetItem" => body()["RequestItems"].as_object().map_or(0, |tables| {
            tables
                .values()
                .map(|t| t["Keys"].as_array().map_or(0, Vec::len))
                .sum()
        }),
        "BatchWriteItem" => body()["RequestItems"].as_object().map_or(0, |tables| {
            tables
                .values()
                .map(|t| t.as_array().map_or(0, Vec::len))
                .sum()
        }),
        "Query" | "Scan" => 0,
        _ => 1,
    }
}

#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<String>>,
    /// What each answered call consumed, since the last clear.
    consumed: Arc<Mutex<Vec<Consumed>>>,
    /// Data-plane calls sent without `ReturnConsumedCapacity = INDEXES`, since the host started.
    not_metered: Mutex<Vec<String>>,
    /// What each call needed from IAM, by the function that made it (see [`crate::iam`]). Never
    /// cleared: a test may look at everything a host did.
    permissions: Mutex<Vec<(&'static str, crate::iam::Permission)>>,
}

impl CallLog {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.calls.lock().expect("call log").clear();
        self.consumed.lock().expect("call log").clear();
    }

    /// What each call answered since the last [`CallLog::clear`] reported it consumed.
    pub fn consumed(&self) -> Vec<Consumed> {
        self.consumed.lock().expect("call log").clone()
    }

    /// Data-plane calls that went out without asking for their consumed capacity (should be none).
    pub fn not_metered(&self) -> Vec<String> {
        self.not_metered.lock().expect("call log").clone()
    }

    /// Calls since the last [`CallLog::clear`], counted by operation (`GetItem`, `BatchGetItem`…).
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.calls.lock().expect("call log").iter() {
            *counts.entry(call.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Every (function, permission) the functions' calls needed since the host started. Calls made
    /// outside any function (test set-up reading the table directly) are not in it.
    pub fn permissions(&self) -> Vec<(&'static str, crate::iam::Permission)> {
        self.permissions.lock().expect("call log").clone()
    }

    pub fn total(&self) -> usize {
        self.calls.lock().expect("call log").len()
    }

    pub fn wrap(self: &Arc<Self>, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(Recorder {
            inner,
            log: Arc::clone(self),
        })
    }
}

#[derive(Debug, Clone)]
struct Recorder {
    inner: SharedHttpClient,
    log: Arc<CallLog>,
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: Arc<CallLog>,
}

impl HttpClient for Recorder {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            log: Arc::clone(&self.log),
        })
    }
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = local_api::in_process::operation_of(&request);
        let body = request.body().bytes().unwrap_or_default();
        if let Some(function) = local_api::host::current_function() {
            let needed = crate::iam::required_permissions(&operation, body);
            if let Ok(mut permissions) = self.log.permissions.lock() {
                permissions.extend(needed.into_iter().map(|p| (function, p)));
            }
        }
        if DATA_PLANE.contains(&operation.as_str())
            && !String::from_utf8_lossy(body).contains(r#""ReturnConsumedCapacity":"INDEXES""#)
        {
            if let Ok(mut not_metered) = self.log.not_metered.lock() {
                not_metered.push(operation.clone());
            }
        }
        if let Ok(mut calls) = self.log.calls.lock() {
            calls.push(operation.clone());
        }
        let items = items_in(&operation, &request);
        let answer = self.inner.call(request);
        let consumed = Arc::clone(&self.log.consumed);
        HttpConnectorFuture::new(async move {
            let response = answer.await?;
            if let Some(spent) = response
                .body()
                .bytes()
                .and_then(|body| Consumed::from_response(&operation, items, body))
            {
                if let Ok(mut consumed) = consumed.lock() {
                    consumed.push(spent);
                }
            }
            Ok(response)
        })
    }
}

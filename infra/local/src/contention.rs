//! A model of how real DynamoDB treats contended items, for the local host, tests and benchmarks
//! (`DYNAMODB_CONTENTION=aws`). The embedded emulator serialises transactions and never refuses one;
//! DynamoDB does neither. This layer sits between the SDK and the emulator (it wraps the SDK's HTTP
//! client, so the code under test makes exactly the calls it makes on AWS) and applies these rules:
//!
//! 1. **A transaction holds what it touches until it commits.** DynamoDB transactions use optimistic
//!    timestamp ordering with a prepare phase and a commit phase; an item being prepared for one
//!    transaction cannot be accepted by another (Idziorek et al., "Distributed Transactions at Scale
//!    in Amazon DynamoDB", USENIX ATC 2023, §4). Here a `TransactWriteItems` holds its items for
//!    `DYNAMODB_TX_HOLD_MS` (default 10) before it is committed (forwarded to the emulator).
//! 2. **Conflicting transactions are cancelled, not queued.** "An item within a TransactWriteItems
//!    request is part of another ongoing TransactWriteItems request" is a transaction conflict
//!    (DynamoDB developer guide, "Transaction conflict handling in DynamoDB"): the request fails with
//!    `TransactionCanceledException`, the reason `TransactionConflict` at the position of each
//!    contended item and `None` elsewhere, and nothing is written. Items that both transactions only
//!    condition-check do not conflict (a check does not write).
//! 3. **A plain write to a held item fails.** "A PutItem, UpdateItem, or DeleteItem request for an
//!    item conflicts with an ongoing TransactWriteItems request that includes the same item" (same
//!    page): it gets `TransactionConflictException`.
//! 4. **One item takes at most 1,000 write units per second.** DynamoDB's per-partition limit
//!    ("Best practices for designing and using partition keys effectively": 1,000 WCU per second per
//!    partition) bounds a single item at best to that; a standard write costs 1 WCU per KB (rounded
//!    up) and a transactional write 2 WCU per KB ("Capacity unit consumption for writes"). Past it a
//!    plain write gets `ThrottlingException` and a transaction is cancelled with `ThrottlingError` at
//!    that item's position. The budget is a token bucket of 1,000 units refilled continuously.
//!
//! 5. **A transactional read of an item being written is refused.** "DynamoDB rejects the entire
//!    TransactGetItems request if ... a conflicting operation is in the process of updating an item
//!    to be read" (API reference, `TransactGetItems`): it fails with `TransactionCanceledException`,
//!    `TransactionConflict` at that item's position. An item only condition-checked is not being
//!    updated, so it does not refuse a read.
//!
//! Other reads (`GetItem`, `BatchGetItem`, `Query`, strongly consistent or not) return the last
//! committed state and are not refused; their throughput is not modelled.
//!
//! One job (the model), kept in one file with the tests that hold it to AWS's documentation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};

/// Write units one item accepts per second.
pub const ITEM_WCU_PER_SECOND: f64 = 1_000.0;
pub const DEFAULT_HOLD: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Write,
    Check,
}

#[derive(Debug)]
struct Hold {
    transaction: u64,
    access: Access,
}

#[derive(Debug)]
struct Bucket {
    units: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<String, Vec<Hold>>,
    buckets: HashMap<String, Bucket>,
    next_transaction: u64,
}

/// What the model counted (for benchmarks and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ContentionStats {
    pub transactions_committed: u64,
    pub transactions_conflicted: u64,
    pub transactions_throttled: u64,
    pub writes_conflicted: u64,
    pub writes_throttled: u64,
    pub reads_conflicted: u64,
}

/// The shared model: every client built with it sees the same held items and budgets.
#[derive(Debug, Clone)]
pub struct ContentionModel {
    state: Arc<Mutex<State>>,
    stats: Arc<Mutex<ContentionStats>>,
    hold: Duration,
}

impl ContentionModel {
    pub fn new(hold: Duration) -> Self {
        ContentionModel {
            state: Arc::default(),
            stats: Arc::default(),
            hold,
        }
    }

    /// From the environment: `Some` when `DYNAMODB_CONTENTION=aws`.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("DYNAMODB_CONTENTION").ok().as_deref() {
            None | Some("") | Some("none") => Ok(None),
            Some("aws") => {
                let hold = match std::env::var("DYNAMODB_TX_HOLD_MS") {
                    Ok(raw) if !raw.trim().is_empty() => {
                        Duration::from_millis(raw.trim().parse().map_err(|_| {
                            format!("DYNAMODB_TX_HOLD_MS must be a number, got {raw:?}")
                        })?)
                    }
                    _ => DEFAULT_HOLD,
                };
                Ok(Some(ContentionModel::new(hold)))
            }
            Some(other) => Err(format!(
                "DYNAMODB_CONTENTION must be aws or none, got {other:?}"
            )),
        }
    }

    pub fn stats(&self) -> ContentionStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Wraps the HTTP client the SDK would use.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(ContentionClient {
            inner,
            model: self.clone(),
        })
    }

    fn count(&self, f: impl FnOnce(&mut ContentionStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(&mut stats);
        }
    }

    /// Takes `cost` write units from `key`'s bucket, if it has them.
    fn spend(state: &mut State, key: &str, cost: f64, now: Instant) -> bool {
        let bucket = state.buckets.entry(key.to_string()).or_insert(Bucket {
            units: ITEM_WCU_PER_SECOND,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * ITEM_WCU_PER_SECOND;
        bucket.units = (bucket.units + refill).min(ITEM_WCU_PER_SECOND);
        bucket.at = now;
        if bucket.units >= cost {
            bucket.units -= cost;
            true
        } else {
            false
        }
    }

    /// Admits a transaction's items or says, per position, why not.
    fn admit(&self, items: &[(String, Access, f64)]) -> Result<u64, Vec<&'static str>> {
        let Ok(mut state) = self.state.lock() else {
            return Err(vec!["TransactionConflict"; items.len()]);
        };
        let reasons: Vec<&'static str> = items
            .iter()
            .map(|(key, access, _)| {
                let contended = state.held.get(key).is_some_and(|holds| {
                    holds
                        .iter()
                        .any(|h| *access == Access::Write || h.access == Access::Write)
                });
                if contended {
                    "TransactionConflict"
                } else {
                    "None"
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != "None") {
            return Err(reasons);
        }
        // Throughput: every written item must afford its transactional write units.
        let now = Instant::now();
        let mut throttled = vec!["None"; items.len()];
        let mut any = false;
        for (i, (key, access, cost)) in items.iter().enumerate() {
            if *access == Access::Write && !Self::spend(&mut state, key, *cost, now) {
                throttled[i] = "ThrottlingError";
                any = true;
            }
        }
        if any {
            return Err(throttled);
        }
        state.next_transaction += 1;
        let id = state.next_transaction;
        for (key, access, _) in items {
            state.held.entry(key.clone()).or_default().push(Hold {
                transaction: id,
                access: *access,
            });
        }
        Ok(id)
    }

    fn release(&self, transaction: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.held.retain(|_, holds| {
                holds.retain(|h| h.transaction != transaction);
                !holds.is_empty()
            });
        }
    }

    /// A transactional read: per position, `TransactionConflict` where a transaction is writing the
    /// item.
    fn transactional_read(&self, keys: &[String]) -> Result<(), Vec<&'static str>> {
        let Ok(state) = self.state.lock() else {
            return Err(vec!["TransactionConflict"; keys.len()]);
        };
        let reasons: Vec<&'static str> = keys
            .iter()
            .map(|key| {
                let written = state
                    .held
                    .get(key)
                    .is_some_and(|holds| holds.iter().any(|h| h.access == Access::Write));
                if written {
                    "TransactionConflict"
                } else {
                    "None"
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != "None") {
            Err(reasons)
        } else {
            Ok(())
        }
    }

    /// A plain write: refused while a transaction holds the item, throttled past its budget.
    fn plain_write(&self, key: &str, cost: f64) -> Result<(), &'static str> {
        let Ok(mut state) = self.state.lock() else {
            return Err("TransactionConflictException");
        };
        if state.held.contains_key(key) {
            return Err("TransactionConflictException");
        }
        if !Self::spend(&mut state, key, cost, Instant::now()) {
            return Err("ThrottlingException");
        }
        Ok(())
    }
}

/// `table|pk|sk` of an item key given as DynamoDB JSON.
fn item_key(table: &str, key: &Value) -> String {
    format!("{table}|{}|{}", key["pk"], key["sk"])
}

/// Write units of an item of about `bytes` (1 per KB, rounded up; at least 1).
fn units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// The items of a `TransactWriteItems` body in order: key, access, transactional write units.
fn transaction_items(body: &Value) -> Vec<(String, Access, f64)> {
    body["TransactItems"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    if let Some(put) = item.get("Put") {
                        let table = put["TableName"].as_str().unwrap_or_default();
                        let size = put["Item"].to_string().len();
                        (
                            item_key(table, &put["Item"]),
                            Access::Write,
                            2.0 * units(size),
                        )
                    } else if let Some(op) = item.get("Update").or_else(|| item.get("Delete")) {
                        let table = op["TableName"].as_str().unwrap_or_default();
                        // The item's size after the update is unknown here: at least 1 KB.
                        (item_key(table, &op["Key"]), Access::Write, 2.0)
                    } else {
                        let check = &item["ConditionCheck"];
                        let table = check["TableName"].as_str().unwrap_or_default();
                        (item_key(table, &check["Key"]), Access::Check, 0.0)
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A DynamoDB error answer (`__type` `kind`), with cancellation reasons for a cancelled transaction.
pub fn error_response(kind: &str, message: &str, reasons: Option<&[&str]>) -> HttpResponse {
    let mut body = json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "Message": message,
    });
    if let Some(reasons) = reasons {
        body["CancellationReasons"] = reasons
            .iter()
            .map(|code| json!({"Code": code}))
            .collect::<Vec<_>>()
            .into();
    }
    let mut response = HttpResponse::new(
        400.try_into().expect("400 is a status code"),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

/// A transaction's hold on its items, released when dropped.
struct Held {
    model: ContentionModel,
    transaction: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.model.release(self.transaction);
    }
}

#[derive(Debug, Clone)]
struct ContentionClient {
    inner: SharedHttpClient,
    model: ContentionModel,
}

#[derive(Debug)]
struct ContentionConnector {
    inner: SharedHttpConnector,
    model: ContentionModel,
}

impl HttpClient for ContentionClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ContentionConnector {
            inner: self.inner.http_connector(settings, components),
            model: self.model.clone(),
        })
    }
}

impl HttpConnector for ContentionConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = crate::in_process::operation_of(&request);
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        match target.as_str() {
            "TransactWriteItems" => {
                let items = transaction_items(&body);
                match self.model.admit(&items) {
                    Err(reasons) => {
                        let throttled = reasons.contains(&"ThrottlingError");
                        self.model.count(|s| {
                            if throttled {
                                s.transactions_throttled += 1
                            } else {
                                s.transactions_conflicted += 1
                            }
                        });
                        HttpConnectorFuture::ready(Ok(error_response(
                            "TransactionCanceledException",
                            "Transaction cancelled, please refer cancellation reasons for specific reasons",
                            Some(&reasons),
                        )))
                    }
                    Ok(transaction) => {
                        let model = self.model.clone();
                        let forwarded = self.inner.call(request);
                        // Released however the call ends, even if its future is dropped midway
                        // (a client timeout): a hold that outlived its transaction would refuse
                        // every later writer of those items forever.
                        let held = Held {
                            model: model.clone(),
                            transaction,
                        };
                        HttpConnectorFuture::new(async move {
                            // Prepared: the items are held until the commit.
                            tokio::time::sleep(model.hold).await;
                            let answer = forwarded.await;
                            drop(held);
                            model.count(|s| s.transactions_committed += 1);
                            answer
                        })
                    }
                }
            }
            "TransactGetItems" => {
                let keys: Vec<String> = body["TransactItems"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|item| {
                                let get = &item["Get"];
                                item_key(get["TableName"].as_str().unwrap_or_default(), &get["Key"])
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                match self.model.transactional_read(&keys) {
                    Ok(()) => self.inner.call(request),
                    Err(reasons) => {
                        self.model.count(|s| s.reads_conflicted += 1);
                        HttpConnectorFuture::ready(Ok(error_response(
                            "TransactionCanceledException",
                            "Transaction cancelled, please refer cancellation reasons for specific reasons",
                            Some(&reasons),
                        )))
                    }
                }
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = body["TableName"].as_str().unwrap_or_default();
                let (key, size) = if target == "PutItem" {
                    (
                        item_key(table, &body["Item"]),
                        body["Item"].to_string().len(),
                    )
                } else {
                    (item_key(table, &body["Key"]), 1024)
                };
                match self.model.plain_write(&key, units(size)) {
                    Ok(()) => self.inner.call(request),
                    Err(kind) => {
                        self.model.count(|s| {
                            if kind == "ThrottlingException" {
                                s.writes_throttled += 1
                            } else {
                                s.writes_conflicted += 1
                            }
                        });
                        HttpConnectorFuture::ready(Ok(error_response(
                            kind,
                            "Transaction is ongoing for the item",
                            None,
                        )))
                    }
                }
            }
            _ => self.inner.call(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str) -> String {
        item_key("t", &json!({"pk": {"S": pk}, "sk": {"S": "X"}}))
    }

    #[test]
    fn a_held_item_cancels_other_writers_at_its_position_only() {
        let model = ContentionModel::new(DEFAULT_HOLD);
        let first = model
            .admit(&[
                (key("product"), Access::Write, 2.0),
                (key("a"), Access::Write, 2.0),
            ])
            .unwrap();
        let refused = model
            .admit(&[
                (key("b"), Access::Write, 2.0),
                (key("product"), Access::Write, 2.0),
            ])
            .unwrap_err();
        assert_eq!(refused, ["None", "TransactionConflict"]);
        // A condition check on an item another transaction writes conflicts too.
        let refused = model.admit(&[(key("a"), Access::Check, 0.0)]).unwrap_err();
        assert_eq!(refused, ["TransactionConflict"]);
        // A plain write to a held item is refused.
        assert_eq!(
            model.plain_write(&key("product"), 1.0),
            Err("TransactionConflictException")
        );
        model.release(first);
        assert!(model.admit(&[(key("product"), Access::Write, 2.0)]).is_ok());
    }

    #[test]
    fn a_transactional_read_of_an_item_being_written_is_refused_at_its_position() {
        let model = ContentionModel::new(DEFAULT_HOLD);
        let writing = model
            .admit(&[
                (key("stock"), Access::Write, 2.0),
                (key("product"), Access::Check, 0.0),
            ])
            .unwrap();
        assert_eq!(
            model
                .transactional_read(&[key("account"), key("stock")])
                .unwrap_err(),
            ["None", "TransactionConflict"]
        );
        // Only checked, not being updated: readable.
        assert!(model.transactional_read(&[key("product")]).is_ok());
        model.release(writing);
        assert!(model.transactional_read(&[key("stock")]).is_ok());
    }

    #[test]
    fn items_only_condition_checked_by_both_do_not_conflict() {
        let model = ContentionModel::new(DEFAULT_HOLD);
        model
            .admit(&[
                (key("guard"), Access::Check, 0.0),
                (key("x"), Access::Write, 2.0),
            ])
            .unwrap();
        assert!(model
            .admit(&[
                (key("guard"), Access::Check, 0.0),
                (key("y"), Access::Write, 2.0)
            ])
            .is_ok());
    }

    #[test]
    fn one_item_takes_at_most_a_thousand_write_units_per_second() {
        let model = ContentionModel::new(DEFAULT_HOLD);
        // A write of ~500 KB in a transaction spends the item's whole second (2 units per KB).
        let id = model
            .admit(&[(key("hot"), Access::Write, 2.0 * units(500 * 1024))])
            .unwrap();
        model.release(id);
        assert_eq!(
            model
                .admit(&[(key("hot"), Access::Write, 2.0)])
                .unwrap_err(),
            ["ThrottlingError"]
        );
        assert_eq!(
            model.plain_write(&key("hot"), 1.0),
            Err("ThrottlingException")
        );
        // Another item is not affected, and the budget refills with time.
        assert!(model.plain_write(&key("cold"), 1.0).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert!(model.plain_write(&key("hot"), 1.0).is_ok());
    }

    #[test]
    fn transactional_writes_cost_two_units_per_kilobyte() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "p"}, "sk": {"S": "s"}, "blob": {"S": "x".repeat(3000)}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "q"}, "sk": {"S": "s"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "r"}, "sk": {"S": "s"}}}},
        ]});
        let items = transaction_items(&body);
        assert_eq!(items[0].1, Access::Write);
        assert_eq!(items[0].2, 6.0);
        assert_eq!(items[1].2, 2.0);
        assert_eq!(items[2].1, Access::Check);
    }
}

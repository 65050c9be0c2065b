//! Fault injection into the real DynamoDB client. The emulator serialises transactions, so it never
//! answers `TransactionConflict`; this wraps the client's HTTP connector and answers the next
//! `TransactWriteItems` calls itself, exactly as DynamoDB does when another transaction holds an item:
//! a `TransactionCanceledException` whose reasons say `TransactionConflict`. Those calls never reach
//! the emulator, so nothing is written by them. It can also lose a transaction's response: the
//! emulator applies it, the client sees a 500. Every other call goes through untouched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// How many faults are left to inject, and how many were.
#[derive(Debug, Default)]
pub struct ConflictBudget {
    remaining: AtomicUsize,
    injected: AtomicUsize,
    /// Transactions that reach the emulator (and commit) but whose response is replaced by a 500,
    /// as when a response is lost on the way back: the SDK then retries the very same request.
    lost_remaining: AtomicUsize,
    lost: AtomicUsize,
    /// `Query` calls answered `ProvisionedThroughputExceededException` (a throttled read), before
    /// they reach the emulator.
    throttled_queries: AtomicUsize,
    /// `BatchGetItem` calls answered with every key unprocessed (throttled), as DynamoDB does when
    /// a batch's reads are throttled: a 200 carrying `UnprocessedKeys`, not an error.
    throttled_batches: AtomicUsize,
}

impl ConflictBudget {
    pub fn new(conflicts: usize) -> Arc<Self> {
        Arc::new(ConflictBudget {
            remaining: AtomicUsize::new(conflicts),
            ..ConflictBudget::default()
        })
    }

    /// Sets how many of the next `TransactWriteItems` calls conflict.
    pub fn set_remaining(&self, conflicts: usize) {
        self.remaining.store(conflicts, Ordering::SeqCst);
    }

    pub fn set_lost_responses(&self, count: usize) {
        self.lost_remaining.store(count, Ordering::SeqCst);
    }

    /// Sets how many of the next `Query` calls are throttled (the SDK retries a few itself).
    pub fn set_throttled_queries(&self, count: usize) {
        self.throttled_queries.store(count, Ordering::SeqCst);
    }

    /// Sets how many of the next `BatchGetItem` calls leave every key unprocessed.
    pub fn set_throttled_batch_reads(&self, count: usize) {
        self.throttled_batches.store(count, Ordering::SeqCst);
    }

    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    fn take(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn take_throttled_batch(&self) -> bool {
        self.throttled_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn take_throttled_query(&self) -> bool {
        self.throttled_queries
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn take_lost(&self) -> bool {
        self.lost_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[derive(Debug, Clone)]
pub struct ConflictInjector {
    inner: SharedHttpClient,
    budget: Arc<ConflictBudget>,
}

#[derive(Debug)]
struct ConflictConnector {
    inner: SharedHttpConnector,
    budget: Arc<ConflictBudget>,
}

impl ConflictInjector {
    pub fn new(inner: SharedHttpClient, budget: Arc<ConflictBudget>) -> Self {
        ConflictInjector { inner, budget }
    }
}

impl HttpClient for ConflictInjector {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ConflictConnector {
            inner: self.inner.http_connector(settings, components),
            budget: Arc::clone(&self.budget),
        })
    }
}

impl HttpConnector for ConflictConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let is_transaction = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target == "DynamoDB_20120810.TransactWriteItems");
        let is_query = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target == "DynamoDB_20120810.Query");
        let is_batch_read = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|target| target == "DynamoDB_20120810.BatchGetItem");
        if is_batch_read && self.budget.take_throttled_batch() {
            let asked = request
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .map(|v| v["RequestItems"].clone())
                .unwrap_or_default();
            let tables = asked.as_object().cloned().unwrap_or_default();
            let responses: serde_json::Map<String, serde_json::Value> = tables
                .keys()
                .map(|table| (table.clone(), serde_json::json!([])))
                .collect();
            let body = serde_json::json!({"Responses": responses, "UnprocessedKeys": asked});
            let mut response = HttpResponse::new(
                200.try_into().expect("200 is a status code"),
                SdkBody::from(body.to_string()),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            return HttpConnectorFuture::ready(Ok(response));
        }
        if is_query && self.budget.take_throttled_query() {
            return HttpConnectorFuture::ready(Ok(local_api::contention::error_response(
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded (injected)",
                None,
            )));
        }
        if is_transaction && self.budget.take() {
            self.budget.injected.fetch_add(1, Ordering::SeqCst);
            let items = local_api::in_process::transact_items_of(&request).unwrap_or(1);
            // DynamoDB lists one reason per item, in order; the contended one says TransactionConflict.
            let mut reasons = vec!["None"; items];
            reasons[0] = "TransactionConflict";
            let response = local_api::contention::error_response(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                Some(&reasons),
            );
            return HttpConnectorFuture::ready(Ok(response));
        }
        if is_transaction && self.budget.take_lost() {
            self.budget.lost.fetch_add(1, Ordering::SeqCst);
            let delivered = self.inner.call(request);
            return HttpConnectorFuture::new(async move {
                // The emulator receives and applies it; the answer never arrives.
                let _ = delivered.await;
                let body = serde_json::json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "message": "Internal server error (injected: the response was lost)",
                });
                let mut response = HttpResponse::new(
                    500.try_into().expect("500 is a status code"),
                    SdkBody::from(body.to_string()),
                );
                response
                    .headers_mut()
                    .insert("content-type", "application/x-amz-json-1.0");
                Ok(response)
            });
        }
        self.inner.call(request)
    }
}

//! A model of DynamoDB failing calls the ways AWS documents, for the local host, tests and benchmarks
//! (`DYNAMODB_FAULTS=rate=0.05`): at that rate, at random, a call meets one of four faults, chosen
//! evenly. Like the contention model it sits between the SDK and the emulator (it wraps the SDK's HTTP
//! client), so the code under test makes exactly the calls, and the SDK exactly the retries, it does
//! on AWS.
//!
//! 1. **Throttling.** "ThrottlingException … Rate of requests exceeds the allowed throughput" and
//!    "ProvisionedThroughputExceededException": an HTTP 400 the SDK retries with backoff (DynamoDB
//!    developer guide, "Error handling with DynamoDB", error codes table).
//! 2. **An internal error.** "InternalServerError (HTTP 500): DynamoDB could not process your request"
//!    (same page); "OK to retry? Yes".
//! 3. **A transaction conflict.** A `TransactWriteItems` is cancelled with `TransactionConflict` at
//!    an item's position; a `PutItem`, `UpdateItem` or `DeleteItem` gets `TransactionConflictException`
//!    ("Transaction conflict handling in DynamoDB"). Reads do not conflict, so a read meets
//!    throttling instead.
//! 4. **A timeout after the write committed.** The call reaches DynamoDB and is applied, but its
//!    answer never reaches the caller, which sees a timeout and (the SDK does) sends it again. AWS:
//!    "an operation might be applied on the server but the response could be lost … make your
//!    operations idempotent"; for transactions, "a ClientRequestToken … makes the call idempotent,
//!    meaning that multiple identical calls have the same effect as one single call"
//!    (`TransactWriteItems` API reference). Here the call is forwarded to the emulator, its answer is
//!    dropped, and the SDK is told the connection timed out.
//!
//! One job (the model); `FaultCounts` says what it did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use rand::Rng;
use serde_json::json;

/// The most the model injects: past it a run measures nothing but the SDK giving up.
pub const MAX_RATE: f64 = 0.5;

/// What the model did, by fault.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub calls: AtomicU64,
    pub throttled: AtomicU64,
    pub internal_errors: AtomicU64,
    pub conflicts: AtomicU64,
    pub timeouts_after_commit: AtomicU64,
}

impl FaultCounts {
    pub fn injected(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
            + self.internal_errors.load(Ordering::Relaxed)
            + self.conflicts.load(Ordering::Relaxed)
            + self.timeouts_after_commit.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} calls: {} throttled, {} internal errors, {} conflicts, {} timeouts after commit",
            self.calls.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
            self.internal_errors.load(Ordering::Relaxed),
            self.conflicts.load(Ordering::Relaxed),
            self.timeouts_after_commit.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, Clone)]
pub struct FaultModel {
    /// The rate's `f64` bits: a bench sets up with none, then turns faults on.
    rate: Arc<AtomicU64>,
    /// Plain writes still to meet a conflict whatever the rate (a test reproducing one).
    forced_conflicts: Arc<AtomicU64>,
    pub counts: Arc<FaultCounts>,
}

impl FaultModel {
    pub fn new(rate: f64) -> Result<Self, String> {
        let model = FaultModel {
            rate: Arc::new(AtomicU64::new(0)),
            forced_conflicts: Arc::default(),
            counts: Arc::default(),
        };
        model.set_rate(rate)?;
        Ok(model)
    }

    /// From now on, `rate` of the calls meet a fault.
    pub fn set_rate(&self, rate: f64) -> Result<(), String> {
        if !(0.0..=MAX_RATE).contains(&rate) {
            return Err(format!("a fault rate is from 0 to {MAX_RATE}, got {rate}"));
        }
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// The next `writes` `PutItem`, `UpdateItem` or `DeleteItem` calls get
    /// `TransactionConflictException`.
    pub fn conflict_next_plain_writes(&self, writes: u64) {
        self.forced_conflicts.store(writes, Ordering::SeqCst);
    }

    fn take_forced_conflict(&self) -> bool {
        self.forced_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// `rate=0.05` (the share of calls that meet a fault).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rate = raw
            .trim()
            .strip_prefix("rate=")
            .and_then(|r| r.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                format!("DYNAMODB_FAULTS must be rate=<0 to {MAX_RATE}>, got {raw:?}")
            })?;
        Self::new(rate)
    }

    /// The model `DYNAMODB_FAULTS` asks for, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("DYNAMODB_FAULTS") {
            Ok(raw) if !raw.trim().is_empty() && raw.trim() != "none" => {
                Self::parse(&raw).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `inner` with the faults in front of it.
    pub fn wrap(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(FaultClient {
            inner,
            model: self.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttling,
    InternalError,
    Conflict,
    TimeoutAfterCommit,
}

fn error_answer(status: u16, kind: &str, message: &str, reasons: Option<usize>) -> HttpResponse {
    let mut body = json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "Message": message,
    });
    if let Some(items) = reasons {
        // The first item conflicted; the others were not looked at.
        body["CancellationReasons"] = (0..items)
            .map(|i| json!({"Code": if i == 0 { "TransactionConflict" } else { "None" }}))
            .collect::<Vec<_>>()
            .into();
    }
    let mut response = HttpResponse::new(
        status
            .try_into()
            .unwrap_or_else(|_| 500.try_into().expect("a status")),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

#[derive(Debug, Clone)]
struct FaultClient {
    inner: SharedHttpClient,
    model: FaultModel,
}

#[derive(Debug)]
struct FaultConnector {
    inner: SharedHttpConnector,
    model: FaultModel,
}

impl HttpClient for FaultClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultConnector {
            inner: self.inner.http_connector(settings, components),
            model: self.model.clone(),
        })
    }
}

impl HttpConnector for FaultConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let counts = &self.model.counts;
        counts.calls.fetch_add(1, Ordering::Relaxed);
        let operation = crate::in_process::operation_of(&request);
        let plain_write = matches!(operation.as_str(), "PutItem" | "UpdateItem" | "DeleteItem");
        if plain_write && self.model.take_forced_conflict() {
            counts.conflicts.fetch_add(1, Ordering::Relaxed);
            return HttpConnectorFuture::ready(Ok(error_answer(
                400,
                "TransactionConflictException",
                "Transaction is ongoing for the item",
                None,
            )));
        }
        let fault = {
            let mut rng = rand::thread_rng();
            if rng.gen::<f64>() >= self.model.rate() {
                return self.inner.call(request);
            }
            match rng.gen_range(0..4) {
                0 => Fault::Throttling,
                1 => Fault::InternalError,
                2 => Fault::Conflict,
                _ => Fault::TimeoutAfterCommit,
            }
        };
        let is_write = matches!(
            operation.as_str(),
            "TransactWriteItems" | "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem"
        );
        let fault = match fault {
            Fault::Conflict if !is_write || operation == "BatchWriteItem" => Fault::Throttling,
            other => other,
        };
        match fault {
            Fault::Throttling => {
                counts.throttled.fetch_add(1, Ordering::Relaxed);
                HttpConnectorFuture::ready(Ok(error_answer(
                    400,
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                    None,
                )))
            }
            Fault::InternalError => {
                counts.internal_errors.fetch_add(1, Ordering::Relaxed);
                HttpConnectorFuture::ready(Ok(error_answer(
                    500,
                    "InternalServerError",
                    "Internal server error",
                    None,
                )))
            }
            Fault::Conflict => {
                counts.conflicts.fetch_add(1, Ordering::Relaxed);
                let answer = if operation == "TransactWriteItems" {
                    let items = crate::in_process::transact_items_of(&request).unwrap_or(1);
                    error_answer(
                        400,
                        "TransactionCanceledException",
                        "Transaction cancelled, please refer cancellation reasons for specific reasons",
                        Some(items),
                    )
                } else {
                    error_answer(
                        400,
                        "TransactionConflictException",
                        "Transaction is ongoing for the item",
                        None,
                    )
                };
                HttpConnectorFuture::ready(Ok(answer))
            }
            Fault::TimeoutAfterCommit => {
                counts.timeouts_after_commit.fetch_add(1, Ordering::Relaxed);
                let forwarded = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    // Applied; the answer is lost on the way back.
                    let _ = forwarded.await;
                    Err(ConnectorError::timeout(
                        "the connection timed out after the request was sent".into(),
                    ))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_parsed_and_bounded() {
        assert!(FaultModel::parse("rate=0.05").is_ok());
        assert!(FaultModel::parse(" rate=0 ").is_ok());
        for bad in ["0.05", "rate=", "rate=0.6", "rate=-1", "rate=x"] {
            assert!(FaultModel::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The two functions of webhooks, each a thin adapter of a Lambda event to one service call:
//!
//! - the dispatcher reads the table's DynamoDB stream (order changes) and stores and queues a
//!   delivery per subscribed endpoint; it reports a partial batch failure from the first record
//!   that failed, so Lambda hands that record and the ones after it over again;
//! - the sender makes one attempt per SQS message, and reports the messages it could not record
//!   as failures, so SQS delivers them again (and, after the queue's `maxReceiveCount`, moves them
//!   to the dead-letter queue, which has an alarm).

use serde_json::{json, Value};
use shared::webhook_queue::DeliveryJob;
use shared::AppContext;

/// A DynamoDB Streams event (`{"Records": [...]}`) → `{"batchItemFailures": [...]}`.
pub async fn dispatch(ctx: &AppContext, event: &Value) -> Value {
    let records = event["Records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let report = ctx.webhooks().dispatch(records).await;
    if report.events > 0 {
        tracing::info!(
            events = report.events,
            deliveries = report.deliveries,
            "order events dispatched"
        );
    }
    let failures: Vec<Value> = report
        .failed_at
        .into_iter()
        .map(|sequence| json!({ "itemIdentifier": sequence }))
        .collect();
    json!({ "batchItemFailures": failures })
}

/// An SQS event (`{"Records": [...]}`) → `{"batchItemFailures": [...]}`: a message whose body is
/// not a delivery job is logged and dropped (sending it again cannot help).
pub async fn send(ctx: &AppContext, event: &Value) -> Value {
    let mut failures = Vec::new();
    for record in event["Records"].as_array().into_iter().flatten() {
        let message_id = record["messageId"].as_str().unwrap_or_default();
        let job = match serde_json::from_str::<DeliveryJob>(
            record["body"].as_str().unwrap_or_default(),
        ) {
            Ok(job) => job,
            Err(err) => {
                tracing::error!(error = %err, message_id, "not a delivery job: dropped");
                continue;
            }
        };
        if let Err(err) = ctx.webhooks().deliver(&job).await {
            tracing::error!(error = %err, message_id, "a delivery attempt failed: SQS hands it over again");
            failures.push(json!({ "itemIdentifier": message_id }));
        }
    }
    json!({ "batchItemFailures": failures })
}

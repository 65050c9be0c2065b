//! Where a delivery waits for its attempt: on AWS an SQS queue (a message per attempt, delayed up
//! to SQS's 15 minutes, read by `fn-webhook-sender`); locally the host's sender task. Longer waits
//! are not queued: the delivery carries a due time the scheduled job hands over when it nears.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{DeliveryId, WebhookId};

/// The longest SQS holds a message back: "the maximum is 15 minutes" (SQS Developer Guide, "Amazon
/// SQS delay queues"; `DelaySeconds`, 0 to 900).
pub const QUEUE_DELAY_MAX: Duration = Duration::from_secs(900);

/// What a queued message names: one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub endpoint_id: WebhookId,
    pub delivery_id: DeliveryId,
}

pub type QueueFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait DeliveryQueue: Send + Sync {
    /// Hands `job` over for an attempt after `delay` (at most [`QUEUE_DELAY_MAX`]).
    fn enqueue<'a>(&'a self, job: &'a DeliveryJob, delay: Duration) -> QueueFuture<'a>;
}

/// SQS, through the AWS SDK's client (built from the function's SDK configuration).
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(sdk_config: &aws_config::SdkConfig, url: String) -> Self {
        SqsQueue {
            client: aws_sdk_sqs::Client::new(sdk_config),
            url,
        }
    }
}

impl DeliveryQueue for SqsQueue {
    fn enqueue<'a>(&'a self, job: &'a DeliveryJob, delay: Duration) -> QueueFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_string(job).map_err(|e| e.to_string())?;
            let seconds = delay.min(QUEUE_DELAY_MAX).as_secs();
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(body)
                .delay_seconds(i32::try_from(seconds).unwrap_or(900))
                .send()
                .await
                .map(|_| ())
                .map_err(|err| format!("SQS SendMessage: {}", err.into_service_error()))
        })
    }
}

/// A function with no queue configured (`WEBHOOK_QUEUE_URL` unset): it says so, and what asked
/// fails (the stream's records are retried; a test or replay request answers 503).
pub struct NoQueue;

impl DeliveryQueue for NoQueue {
    fn enqueue<'a>(&'a self, _job: &'a DeliveryJob, _delay: Duration) -> QueueFuture<'a> {
        Box::pin(async {
            Err("WEBHOOK_QUEUE_URL is not set: no queue for webhook deliveries".into())
        })
    }
}

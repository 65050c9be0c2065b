//! Sending webhooks: the dispatcher turns the table's stream of order changes into deliveries (one
//! per subscribed endpoint) and queues them; the sender makes one attempt per queued job and judges
//! it; the scheduled job hands over deliveries whose next attempt is further away than a queue can
//! wait. A failed delivery never touches an order: the order's change is committed before its
//! stream record exists.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::orders::OrderView;
use super::webhooks::WebhookService;
use crate::domain::webhook::{
    delay_before_attempt, failed_too_long, judge, order_event, order_event_id, signature_header,
    AttemptResult, Delivery, DeliveryState, EventType, Verdict, WebhookEndpoint, BODY_MAX_BYTES,
};
use crate::domain::{DeliveryId, Timestamp, UserId};
use crate::error::AppError;
use crate::store::{order_change, DueQueue};
use crate::webhook_queue::{DeliveryJob, QUEUE_DELAY_MAX};

/// The body of a message: `{"type", "timestamp", "data"}` (the specification's recommended
/// payload structure), at most [`BODY_MAX_BYTES`].
pub fn message_body(
    event: EventType,
    at: Timestamp,
    data: serde_json::Value,
) -> Result<String, AppError> {
    let body = serde_json::json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string();
    if body.len() > BODY_MAX_BYTES {
        return Err(AppError::internal(format!(
            "a {} message of {} bytes is over {BODY_MAX_BYTES}",
            event.as_str(),
            body.len()
        )));
    }
    Ok(body)
}

/// What one batch of stream records did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchReport {
    /// Order changes that were events.
    pub events: usize,
    /// Deliveries stored and queued (a record handed over again stores nothing new).
    pub deliveries: usize,
    /// The sequence number of the first record that failed: it and every later record of the
    /// batch are handed over again (Lambda's partial batch response for streams).
    pub failed_at: Option<String>,
}

/// What one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AttemptReport {
    /// Nothing to do: the delivery is gone, already ended, not yet due, or another sender
    /// recorded this attempt first.
    Skipped,
    Delivered,
    WillRetry,
    GaveUp,
    /// Its endpoint was deleted or disabled: the delivery is abandoned.
    Abandoned,
}

/// What one run over the due queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DueReport {
    pub queued: usize,
}

/// How far ahead the scheduled job (every 5 minutes) hands over due deliveries: a queue can hold
/// them back for the rest of the wait.
const DUE_LOOKAHEAD: Duration = Duration::from_secs(10 * 60);
/// Deliveries handed over per scheduled run.
const DUE_BATCH: usize = 200;

impl WebhookService<'_> {
    /// Handles a batch of stream records (the Lambda event's `Records`, or the local stream's), in
    /// order, stopping at the first that fails.
    pub async fn dispatch(&self, records: &[serde_json::Value]) -> DispatchReport {
        let mut report = DispatchReport::default();
        // A merchant's endpoints, read once per batch: a sale's hundreds of orders on one merchant's
        // product cost one read, not one each.
        let mut endpoints = HashMap::new();
        for record in records {
            match self.dispatch_one(record, &mut endpoints).await {
                Ok((events, deliveries)) => {
                    report.events += events;
                    report.deliveries += deliveries;
                }
                Err(err) => {
                    let sequence = record["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    tracing::error!(error = %err, sequence = %sequence, "a stream record failed: handed over again");
                    report.failed_at = Some(sequence);
                    break;
                }
            }
        }
        report
    }

    async fn dispatch_one(
        &self,
        record: &serde_json::Value,
        known: &mut HashMap<UserId, Vec<WebhookEndpoint>>,
    ) -> Result<(usize, usize), AppError> {
        let Some(change) = order_change(record)? else {
            return Ok((0, 0));
        };
        let Some(event) = order_event(change.before.map(|o| o.status), change.after.status) else {
            return Ok((0, 0));
        };
        let order = change.after;
        if !known.contains_key(&order.merchant_id) {
            let read = self.store.webhooks_of(&order.merchant_id).await?;
            known.insert(order.merchant_id.clone(), read);
        }
        let endpoints: Vec<WebhookEndpoint> = known
            .get(&order.merchant_id)
            .into_iter()
            .flatten()
            .filter(|endpoint| endpoint.wants(event))
            .cloned()
            .collect();
        if endpoints.is_empty() {
            return Ok((1, 0));
        }
        let event_id = order_event_id(&order.id, event);
        // The change's time is the event's: the same whenever the record is handed over.
        let at = order.updated_at;
        // What the merchant's API shows, without the delivery address and phone (the message may
        // sit in a receiver's logs).
        let mut data = OrderView::from(order.clone());
        data.shipping = None;
        let body = match message_body(
            event,
            at,
            serde_json::to_value(&data).map_err(AppError::internal)?,
        ) {
            Ok(body) => body,
            // Cannot happen with today's bounded fields; were it to, failing the record would
            // hold every later order change behind it until the stream drops it, so it is told
            // and skipped.
            Err(too_big) => {
                tracing::error!(error = %too_big, order = %order.id, "an order event was not sent");
                return Ok((1, 0));
            }
        };
        let mut queued = 0;
        for endpoint in endpoints {
            let delivery = Delivery {
                id: DeliveryId::of_event(at, &event_id, &endpoint.id),
                endpoint_id: endpoint.id.clone(),
                merchant_id: order.merchant_id.clone(),
                event_id: event_id.clone(),
                event_type: event,
                body: body.clone(),
                attempts: 0,
                state: DeliveryState::Pending,
                last_attempt: None,
                next_attempt_at: Some(self.clock.now()),
                created_at: self.clock.now(),
            };
            let stored = self.store.put_delivery(&delivery).await?;
            // Stored before but never tried (the last dispatch stopped before queuing it): queue it.
            let untried = !stored
                && self
                    .store
                    .delivery(&delivery.endpoint_id, &delivery.id)
                    .await?
                    .is_some_and(|d| d.attempts == 0 && d.state == DeliveryState::Pending);
            if stored || untried {
                self.enqueue(&delivery, Duration::ZERO).await?;
                queued += 1;
            }
        }
        Ok((1, queued))
    }

    async fn enqueue(&self, delivery: &Delivery, delay: Duration) -> Result<(), AppError> {
        let job = DeliveryJob {
            endpoint_id: delivery.endpoint_id.clone(),
            delivery_id: delivery.id.clone(),
        };
        self.queue
            .enqueue(&job, delay)
            .await
            .map_err(|problem| AppError::internal(format!("queue a delivery: {problem}")))
    }

    /// One attempt of the delivery `job` names, if it is due.
    pub async fn deliver(&self, job: &DeliveryJob) -> Result<AttemptReport, AppError> {
        let Some(delivery) = self
            .store
            .delivery(&job.endpoint_id, &job.delivery_id)
            .await?
        else {
            return Ok(AttemptReport::Skipped);
        };
        let now = self.clock.now();
        if delivery.state != DeliveryState::Pending {
            return Ok(AttemptReport::Skipped);
        }
        // A queue delivers a message at least once: a copy arriving before the attempt it was for
        // is due (the attempt was made and the next one scheduled) is dropped.
        if delivery
            .next_attempt_at
            .is_some_and(|due| due > now + chrono::Duration::seconds(1))
        {
            return Ok(AttemptReport::Skipped);
        }
        let endpoint = self
            .store
            .webhook(&delivery.merchant_id, &delivery.endpoint_id)
            .await?
            .filter(|endpoint| endpoint.disabled.is_none());
        let Some(endpoint) = endpoint else {
            let abandoned = Delivery {
                state: DeliveryState::Abandoned,
                next_attempt_at: None,
                ..delivery.clone()
            };
            self.store
                .record_delivery_attempt(&abandoned, delivery.attempts, DueQueue::No)
                .await?;
            return Ok(AttemptReport::Abandoned);
        };
        let timestamp = now.timestamp();
        let signature = signature_header(
            &endpoint.signing_secrets(now),
            &delivery.event_id,
            timestamp,
            delivery.body.as_bytes(),
        );
        let headers = [
            ("content-type", "application/json".to_string()),
            ("user-agent", "points-webhooks/1.0".to_string()),
            ("webhook-id", delivery.event_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        let sent = self
            .http
            .post(&endpoint.url, &headers, delivery.body.clone())
            .await;
        let attempt = delivery.attempts + 1;
        let answered_at = self.clock.now();
        let verdict = judge(attempt, sent.status, answered_at);
        let last_attempt = Some(AttemptResult {
            at: now,
            status_code: sent.status,
            latency_ms: u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
            error: sent.error.clone(),
        });
        // The wait before the next attempt, at the configured pace (the local host's scale).
        let wait = delay_before_attempt(attempt + 1)
            .map(|wait| wait.mul_f64(self.config.retry_scale))
            .unwrap_or_default();
        let (state, next_attempt_at, due) = match verdict {
            Verdict::Delivered => (DeliveryState::Succeeded, None, DueQueue::No),
            Verdict::EndpointGone | Verdict::GaveUp => (DeliveryState::Failed, None, DueQueue::No),
            Verdict::RetryAt(_) => {
                let at = answered_at + chrono::Duration::from_std(wait).unwrap_or_default();
                let due = if wait > QUEUE_DELAY_MAX {
                    DueQueue::Until(at)
                } else {
                    DueQueue::No
                };
                (DeliveryState::Pending, Some(at), due)
            }
        };
        let after = Delivery {
            attempts: attempt,
            state,
            last_attempt,
            next_attempt_at,
            ..delivery.clone()
        };
        if !self
            .store
            .record_delivery_attempt(&after, delivery.attempts, due)
            .await?
        {
            return Ok(AttemptReport::Skipped);
        }
        tracing::info!(
            webhook = %endpoint.id,
            delivery = %delivery.id,
            event = delivery.event_type.as_str(),
            attempt,
            status = sent.status,
            latency_ms = sent.latency.as_millis() as u64,
            error = sent.error.as_deref().unwrap_or(""),
            "webhook attempt"
        );
        match verdict {
            Verdict::Delivered => {
                if endpoint.failing_since.is_some() {
                    self.store
                        .record_webhook_health(&endpoint, true, None, answered_at)
                        .await?;
                }
                Ok(AttemptReport::Delivered)
            }
            Verdict::EndpointGone => {
                self.store
                    .record_webhook_health(
                        &endpoint,
                        false,
                        Some("the endpoint answered 410 Gone"),
                        answered_at,
                    )
                    .await?;
                Ok(AttemptReport::GaveUp)
            }
            Verdict::RetryAt(_) | Verdict::GaveUp => {
                if failed_too_long(endpoint.failing_since, answered_at) {
                    self.store
                        .record_webhook_health(
                            &endpoint,
                            false,
                            Some("every delivery failed for 5 days"),
                            answered_at,
                        )
                        .await?;
                } else if endpoint.failing_since.is_none() {
                    self.store
                        .record_webhook_health(&endpoint, false, None, answered_at)
                        .await?;
                }
                if matches!(verdict, Verdict::GaveUp) {
                    return Ok(AttemptReport::GaveUp);
                }
                if matches!(due, DueQueue::No) {
                    self.enqueue(&after, wait).await?;
                }
                Ok(AttemptReport::WillRetry)
            }
        }
    }

    /// The scheduled job's part: deliveries whose next attempt is within [`DUE_LOOKAHEAD`] are
    /// taken off the due queue and queued for the rest of their wait.
    pub async fn run_due(&self) -> Result<DueReport, AppError> {
        let now = self.clock.now();
        let horizon = now + chrono::Duration::from_std(DUE_LOOKAHEAD).unwrap_or_default();
        let mut report = DueReport::default();
        for due in self.store.due_deliveries(horizon, DUE_BATCH).await? {
            let Some(delivery) = self
                .store
                .delivery(&due.endpoint_id, &due.delivery_id)
                .await?
            else {
                continue;
            };
            let wait = delivery
                .next_attempt_at
                .map(|at| (at - now).to_std().unwrap_or_default())
                .unwrap_or_default();
            // Queued first, then taken off the due queue: a failure between the two queues it
            // twice (a duplicate the receiver recognises by its id), never not at all.
            self.enqueue(&delivery, wait.min(QUEUE_DELAY_MAX)).await?;
            if self.store.take_due_delivery(&due).await? {
                report.queued += 1;
            }
        }
        Ok(report)
    }
}

//! Merchants' webhook endpoints (at most `max` per merchant, counted like saved addresses: a set of
//! ids in a slots item changed in the same transactions), and their deliveries: one item per message
//! and endpoint, in the endpoint's partition, with the attempts made so far. A delivery waiting
//! longer than the queue can hold it carries gsi2 keys (the `WEBHOOK` due queue) that the scheduled
//! job reads.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::lists::{page_of, ListQuery};
use super::slots::Slots;
use super::table::{GSI2_PK, GSI2_SK, PK, SK};
use super::{dynamo_failure, from_item, n, s, to_item, Store};
use crate::domain::webhook::{
    AttemptResult, Delivery, DeliveryState, EventType, SigningSecret, WebhookEndpoint,
};
use crate::domain::{DeliveryId, Timestamp, UserId, WebhookId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

const SAVED: &str = "webhook_ids";

#[derive(Serialize, Deserialize)]
struct EndpointRecord {
    pk: String,
    sk: String,
    entity: String,
    id: WebhookId,
    merchant_id: UserId,
    url: String,
    events: Vec<EventType>,
    secret: SigningSecret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret: Option<SigningSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing_since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_at: Option<Timestamp>,
    created_at: Timestamp,
}

impl From<EndpointRecord> for WebhookEndpoint {
    fn from(r: EndpointRecord) -> Self {
        WebhookEndpoint {
            id: r.id,
            merchant_id: r.merchant_id,
            url: r.url,
            events: r.events,
            secret: r.secret,
            previous_secret: r.previous_secret.zip(r.previous_secret_until),
            failing_since: r.failing_since,
            disabled: r.disabled_reason.zip(r.disabled_at),
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DeliveryRecord {
    pk: String,
    sk: String,
    entity: String,
    id: DeliveryId,
    endpoint_id: WebhookId,
    merchant_id: UserId,
    event_id: String,
    event_type: EventType,
    body: String,
    attempts: u32,
    state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_attempt: Option<AttemptResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
    created_at: Timestamp,
    /// Set only while the delivery waits in the due queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(r: DeliveryRecord) -> Self {
        Delivery {
            id: r.id,
            endpoint_id: r.endpoint_id,
            merchant_id: r.merchant_id,
            event_id: r.event_id,
            event_type: r.event_type,
            body: r.body,
            attempts: r.attempts,
            state: r.state,
            last_attempt: r.last_attempt,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
        }
    }
}

/// The due queue's sort key of a delivery waiting until `at`.
fn due_sort_key(at: Timestamp, id: &DeliveryId) -> String {
    format!(
        "{}#{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// One attempt at adding an endpoint.
pub type EndpointSave = super::slots::SlotSave;

fn webhook_slots(merchant: &UserId) -> Slots {
    Slots {
        pk: user_pk(merchant),
        sk: WEBHOOK_SLOTS_SK,
        attribute: SAVED,
        entity: "WebhookSlots",
    }
}

/// Whether a conditional write applied: `false` when its condition refused it.
fn applied<T, E>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
    during: &'static str,
    refused: impl Fn(&E) -> bool,
) -> Result<bool, AppError>
where
    E: std::error::Error
        + aws_smithy_runtime_api::client::result::CreateUnhandledError
        + aws_sdk_dynamodb::error::ProvideErrorMetadata
        + Send
        + Sync
        + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) => {
            let service = err.into_service_error();
            if refused(&service) {
                Ok(false)
            } else {
                Err(dynamo_failure(during, service))
            }
        }
    }
}

fn update_refused(err: &UpdateItemError) -> bool {
    matches!(err, UpdateItemError::ConditionalCheckFailedException(_))
}

/// A delivery waiting in the due queue, by its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub endpoint_id: WebhookId,
    pub delivery_id: DeliveryId,
    /// The queue's sort key as read: taking it off the queue is conditioned on it.
    queued_as: String,
}

/// What recording an attempt should also do to the delivery's place in the due queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueQueue {
    /// The next attempt goes through the message queue (or there is none).
    No,
    /// The next attempt is further away than the message queue can wait: the scheduled job
    /// picks it up by then.
    Until(Timestamp),
}

impl Store {
    /// Adds `endpoint`, unless its merchant already keeps `max`.
    pub async fn save_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        max: u32,
    ) -> Result<EndpointSave, AppError> {
        let merchant = &endpoint.merchant_id;
        let record = EndpointRecord {
            pk: user_pk(merchant),
            sk: webhook_sk(&endpoint.id),
            entity: "WebhookEndpoint".into(),
            id: endpoint.id.clone(),
            merchant_id: merchant.clone(),
            url: endpoint.url.clone(),
            events: endpoint.events.clone(),
            secret: endpoint.secret.clone(),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            disabled_reason: None,
            disabled_at: None,
            created_at: endpoint.created_at,
        };
        self.put_in_slot(
            &webhook_slots(merchant),
            &endpoint.id,
            max,
            to_item(&record)?,
        )
        .await
    }

    /// Deletes one of `merchant`'s endpoints: `Some(false)` when there is no such endpoint, `None`
    /// when contended (try again). Its deliveries stay, to be read; pending ones are abandoned
    /// when their turn comes.
    pub async fn delete_webhook(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<Option<bool>, AppError> {
        self.delete_from_slot(&webhook_slots(merchant), id, webhook_sk(id))
            .await
    }

    /// Every endpoint `merchant` keeps (at most the cap), oldest first. Strongly consistent: an
    /// endpoint added a moment ago receives the next order's event.
    pub async fn webhooks_of(&self, merchant: &UserId) -> Result<Vec<WebhookEndpoint>, AppError> {
        self.items_in_slots(user_pk(merchant), WEBHOOK_SK_PREFIX, "webhooks")
            .await?
            .into_iter()
            .map(|item| from_item::<EndpointRecord>(item).map(WebhookEndpoint::from))
            .collect()
    }

    pub async fn webhook(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<Option<WebhookEndpoint>, AppError> {
        Ok(self
            .get_item::<EndpointRecord>(user_pk(merchant), &webhook_sk(id))
            .await?
            .map(WebhookEndpoint::from))
    }

    /// Makes `secret` the endpoint's, the one it replaces signing too until `previous_until`.
    /// `false` when there is no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        merchant: &UserId,
        id: &WebhookId,
        secret: &SigningSecret,
        previous_until: Timestamp,
    ) -> Result<bool, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(merchant)))
            .key(SK, s(webhook_sk(id)))
            // Every SET reads the item as it was: the previous secret is the one being replaced.
            .update_expression(
                "SET previous_secret = secret, secret = :secret, previous_secret_until = :until",
            )
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":secret", s(secret.reveal()))
            .expression_attribute_values(":until", super::timestamp(previous_until))
            .send()
            .await;
        applied(result, "rotate webhook secret", update_refused)
    }

    /// Records how an endpoint fares: a success clears its failing mark; a failure sets it (if it
    /// was not set); `disable` takes it out of service with a reason. Nothing if it was deleted.
    pub async fn record_webhook_health(
        &self,
        endpoint: &WebhookEndpoint,
        succeeded: bool,
        disable: Option<&str>,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(&endpoint.merchant_id)))
            .key(SK, s(webhook_sk(&endpoint.id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        request = match (succeeded, disable) {
            (_, Some(reason)) => request
                .update_expression(
                    "SET disabled_reason = :reason, disabled_at = :now, \
                     failing_since = if_not_exists(failing_since, :now)",
                )
                .expression_attribute_values(":reason", s(reason))
                .expression_attribute_values(":now", super::timestamp(now)),
            (true, None) => request.update_expression("REMOVE failing_since"),
            (false, None) => request
                .update_expression("SET failing_since = if_not_exists(failing_since, :now)")
                .expression_attribute_values(":now", super::timestamp(now)),
        };
        // Refused: the endpoint was deleted meanwhile, and there is nothing to record.
        applied(request.send().await, "webhook health", update_refused).map(|_| ())
    }

    /// Stores a new delivery; `false` if it was stored before (the same event handed over again:
    /// its id is derived from the event and the endpoint).
    pub async fn put_delivery(&self, delivery: &Delivery) -> Result<bool, AppError> {
        let record = DeliveryRecord {
            pk: webhook_pk(&delivery.endpoint_id),
            sk: delivery_sk(&delivery.id),
            entity: "WebhookDelivery".into(),
            id: delivery.id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
            merchant_id: delivery.merchant_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type,
            body: delivery.body.clone(),
            attempts: delivery.attempts,
            state: delivery.state,
            last_attempt: delivery.last_attempt.clone(),
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
            gsi2pk: None,
            gsi2sk: None,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        applied(result, "put delivery", |err| {
            matches!(err, PutItemError::ConditionalCheckFailedException(_))
        })
    }

    pub async fn delivery(
        &self,
        endpoint: &WebhookId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, AppError> {
        Ok(self
            .get_item::<DeliveryRecord>(webhook_pk(endpoint), &delivery_sk(id))
            .await?
            .map(Delivery::from))
    }

    /// Records attempt `after.attempts` of a delivery last seen with `seen_attempts` attempts:
    /// `false` if another sender recorded one meanwhile (the queue delivers at least once), and
    /// then this record is dropped.
    pub async fn record_delivery_attempt(
        &self,
        after: &Delivery,
        seen_attempts: u32,
        due: DueQueue,
    ) -> Result<bool, AppError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(webhook_pk(&after.endpoint_id)))
            .key(SK, s(delivery_sk(&after.id)))
            .condition_expression("attempts = :seen")
            .expression_attribute_values(":seen", n(i64::from(seen_attempts)))
            .expression_attribute_values(":attempts", n(i64::from(after.attempts)))
            .expression_attribute_values(
                ":state",
                s(serde_json::to_value(after.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()),
            )
            .expression_attribute_names("#state", "state");
        let mut set = vec!["attempts = :attempts", "#state = :state"];
        let mut remove = vec![];
        match &after.last_attempt {
            Some(last) => {
                set.push("last_attempt = :last");
                request = request.expression_attribute_values(
                    ":last",
                    serde_dynamo::to_attribute_value(last).map_err(AppError::internal)?,
                );
            }
            None => remove.push("last_attempt"),
        }
        match after.next_attempt_at {
            Some(at) => {
                set.push("next_attempt_at = :next");
                request = request.expression_attribute_values(":next", super::timestamp(at));
            }
            None => remove.push("next_attempt_at"),
        }
        match due {
            DueQueue::Until(at) => {
                set.push("#gpk = :gpk, #gsk = :gsk");
                request = request
                    .expression_attribute_names("#gpk", GSI2_PK)
                    .expression_attribute_names("#gsk", GSI2_SK)
                    .expression_attribute_values(":gpk", s(due_gsi(WEBHOOK_DUE_WORK, &after.id)))
                    .expression_attribute_values(":gsk", s(due_sort_key(at, &after.id)));
            }
            DueQueue::No => {
                remove.push("#gpk, #gsk");
                request = request
                    .expression_attribute_names("#gpk", GSI2_PK)
                    .expression_attribute_names("#gsk", GSI2_SK);
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        applied(
            request.update_expression(expression).send().await,
            "record delivery attempt",
            update_refused,
        )
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries_page(
        &self,
        endpoint: &WebhookId,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, AppError> {
        let query = ListQuery {
            index: None,
            partition_attribute: PK,
            partition_value: webhook_pk(endpoint),
            ascending: false,
            sort_prefix: Some((SK, DELIVERY_SK_PREFIX.to_string())),
            filter: None,
            scope: format!("deliveries-{endpoint}"),
        };
        page_of::<DeliveryRecord, Delivery>(self.query_page(query, page).await?)
    }

    /// Up to `limit` deliveries of the due queue whose next attempt is before `before`, soonest
    /// first.
    pub async fn due_deliveries(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, AppError> {
        let items = self
            .due_items(due_partitions(WEBHOOK_DUE_WORK), before, limit)
            .await?;
        let mut due = Vec::with_capacity(items.len());
        for item in items {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => Some(value.clone()),
                _ => None,
            };
            let endpoint =
                text(PK).and_then(|pk| pk.strip_prefix("WEBHOOK#").and_then(WebhookId::parse));
            let delivery = text(SK).and_then(|sk| {
                sk.strip_prefix(DELIVERY_SK_PREFIX)
                    .and_then(DeliveryId::parse)
            });
            if let (Some(endpoint_id), Some(delivery_id), Some(queued_as)) =
                (endpoint, delivery, text(GSI2_SK))
            {
                due.push(DueDelivery {
                    endpoint_id,
                    delivery_id,
                    queued_as,
                });
            }
        }
        Ok(due)
    }

    /// Takes a delivery off the due queue before handing it to the message queue: `false` if
    /// another run took it (or an attempt moved it) first, and then it is not handed over twice.
    pub async fn take_due_delivery(&self, due: &DueDelivery) -> Result<bool, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(webhook_pk(&due.endpoint_id)))
            .key(SK, s(delivery_sk(&due.delivery_id)))
            .update_expression("REMOVE #gpk, #gsk")
            .condition_expression("#gsk = :seen")
            .expression_attribute_names("#gpk", GSI2_PK)
            .expression_attribute_names("#gsk", GSI2_SK)
            .expression_attribute_values(":seen", s(due.queued_as.clone()))
            .send()
            .await;
        applied(result, "take due delivery", update_refused)
    }
}

/// An order as a DynamoDB Streams record shows it before and after a change, read from the
/// record's JSON (the Lambda event's `Records[]` entry, or the local emulator's `GetRecords`).
#[derive(Debug, Clone)]
pub struct OrderChange {
    pub before: Option<crate::domain::Order>,
    pub after: crate::domain::Order,
}

/// The order change a stream record carries; `None` for a record of anything else (or a removal).
pub fn order_change(record: &serde_json::Value) -> Result<Option<OrderChange>, AppError> {
    // Most records are of other items (ledger rows, stock shards): told apart before any parsing,
    // as the template's event filter tells them apart on AWS.
    if record["dynamodb"]["NewImage"]["entity"]["S"] != "Order" {
        return Ok(None);
    }
    let image = |name: &str| -> Result<Option<crate::domain::Order>, AppError> {
        let Some(json) = record.get("dynamodb").and_then(|d| d.get(name)) else {
            return Ok(None);
        };
        let item: serde_dynamo::Item =
            serde_json::from_value(json.clone()).map_err(AppError::internal)?;
        if !matches!(item.get("entity"), Some(serde_dynamo::AttributeValue::S(e)) if e == "Order") {
            return Ok(None);
        }
        serde_dynamo::from_item::<_, super::orders::OrderRecord>(item)
            .map(|record| Some(record.into()))
            .map_err(AppError::internal)
    };
    let Some(after) = image("NewImage")? else {
        return Ok(None);
    };
    Ok(Some(OrderChange {
        before: image("OldImage")?,
        after,
    }))
}

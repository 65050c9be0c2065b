//! A merchant's webhooks: adding (with the secret shown once), listing (secret masked), deleting,
//! rotating the secret, a test message, and the deliveries with their replay. Sending lives in
//! [`super::webhook_delivery`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::retry::RetryBudget;
use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::domain::webhook::{
    url_problem, Delivery, DeliveryState, EventType, SigningSecret, WebhookEndpoint, ENDPOINTS_MAX,
    SECRET_OVERLAP,
};
use crate::domain::{DeliveryId, UserId, WebhookId};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
use crate::store::{EndpointSave, Store};
use crate::webhook_http::WebhookHttp;
use crate::webhook_queue::{DeliveryJob, DeliveryQueue};

/// How long adding an endpoint waits for its host's addresses.
const REGISTRATION_DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub struct WebhookService<'a> {
    pub store: &'a Store,
    pub clock: &'a Clock,
    pub config: &'a WebhookConfig,
    pub queue: &'a dyn DeliveryQueue,
    pub http: &'a WebhookHttp,
}

/// `POST /api/merchants/webhooks/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookInput {
    /// `https://…` (plain `http://` and private addresses only where `WEBHOOK_ALLOW_PRIVATE=1`).
    pub url: Option<String>,
    /// Some of `order.placed`, `order.shipped`, `order.completed`, `order.cancelled`.
    pub events: Option<Vec<String>>,
}

/// An endpoint as its merchant sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// The whole signing secret (`whsec_…`) only in the answer that made it (adding, rotating);
    /// masked (`whsec_…` and its last four characters) everywhere else.
    pub secret: String,
    /// `enabled`, or `disabled` (see `disabled_reason`): a disabled endpoint receives nothing.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Since when every delivery has failed; disabled after 5 days of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// After a rotation: until when the previous secret signs too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl WebhookView {
    fn of(endpoint: &WebhookEndpoint, reveal: bool) -> Self {
        WebhookView {
            id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            events: endpoint
                .events
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            secret: if reveal {
                endpoint.secret.reveal().to_string()
            } else {
                endpoint.secret.masked()
            },
            status: if endpoint.disabled.is_some() {
                "disabled"
            } else {
                "enabled"
            }
            .into(),
            disabled_reason: endpoint.disabled.as_ref().map(|(why, _)| why.clone()),
            disabled_at: endpoint.disabled.as_ref().map(|(_, at)| *at),
            failing_since: endpoint.failing_since,
            previous_secret_expires_at: endpoint.previous_secret.as_ref().map(|(_, until)| *until),
            created_at: endpoint.created_at,
        }
    }
}

/// One message's delivery to one endpoint, with its last attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The message's `webhook-id` (the same on every attempt and replay).
    pub event_id: String,
    /// `order.placed`, …, or `webhook.test`.
    pub event: String,
    /// Attempts made so far (the last one's result below).
    pub attempt: u32,
    pub state: DeliveryState,
    /// The endpoint's HTTP status on the last attempt; absent when none came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// What went wrong when no status says it (DNS, connection, timeout, refused address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the next attempt is due (pending deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let last = d.last_attempt;
        DeliveryView {
            id: d.id.to_string(),
            event_id: d.event_id,
            event: d.event_type.as_str().to_string(),
            attempt: d.attempts,
            state: d.state,
            status_code: last.as_ref().and_then(|l| l.status_code),
            latency_ms: last.as_ref().map(|l| l.latency_ms),
            error: last.as_ref().and_then(|l| l.error.clone()),
            attempted_at: last.as_ref().map(|l| l.at),
            next_retry_at: match d.state {
                DeliveryState::Pending => d.next_attempt_at,
                _ => None,
            },
            created_at: d.created_at,
        }
    }
}

impl WebhookService<'_> {
    /// Adds an endpoint (at most [`ENDPOINTS_MAX`]: 409 `too_many_webhooks`). The URL is checked
    /// as written and, for a name, after resolving it: 400 if it is not `https` or reaches a
    /// loopback, private, link-local or metadata address.
    pub async fn create(
        &self,
        merchant: &UserId,
        input: WebhookInput,
    ) -> Result<WebhookView, AppError> {
        let mut check = FieldCheck::new();
        let url = match input.url.as_deref().map(str::trim) {
            None | Some("") => {
                check.fail("url", "is required");
                None
            }
            Some(raw) => match url_problem(raw, self.config.allow_private) {
                Ok(url) => Some(url),
                Err(problem) => {
                    check.fail("url", problem);
                    None
                }
            },
        };
        let mut events: Vec<EventType> = Vec::new();
        match input.events {
            None => check.fail("events", "is required"),
            Some(raw) if raw.is_empty() => check.fail("events", "must name at least one event"),
            Some(raw) => {
                for name in raw {
                    match EventType::subscribable(&name) {
                        Some(event) if !events.contains(&event) => events.push(event),
                        Some(_) => {}
                        None => check.fail(
                            "events",
                            format!(
                                "{name:?} is not one of order.placed, order.shipped, \
                                 order.completed, order.cancelled"
                            ),
                        ),
                    }
                }
            }
        }
        check.finish()?;
        let url = url.ok_or_else(|| AppError::internal("a checked URL"))?;
        if let Some(url::Host::Domain(host)) = url.host() {
            // A name whose DNS does not answer in time is the caller's to fix (a 400), never a
            // function timing out.
            let resolved = tokio::time::timeout(
                REGISTRATION_DNS_TIMEOUT,
                crate::webhook_http::resolve_checked(host, self.config.allow_private),
            )
            .await;
            let problem = match resolved {
                Ok(Ok(_)) => None,
                Ok(Err(problem)) => Some(problem.to_string()),
                Err(_) => Some(format!(
                    "{host} did not resolve within {} s",
                    REGISTRATION_DNS_TIMEOUT.as_secs()
                )),
            };
            if let Some(problem) = problem {
                let mut check = FieldCheck::new();
                check.fail("url", problem);
                check.finish()?;
            }
        }
        events.sort();
        let endpoint = WebhookEndpoint {
            id: WebhookId::generate(),
            merchant_id: merchant.clone(),
            url: url.to_string(),
            events,
            secret: SigningSecret::generate(),
            previous_secret: None,
            failing_since: None,
            disabled: None,
            created_at: self.clock.now(),
        };
        let mut budget = RetryBudget::new();
        loop {
            match self.store.save_webhook(&endpoint, ENDPOINTS_MAX).await? {
                EndpointSave::Saved => return Ok(WebhookView::of(&endpoint, true)),
                EndpointSave::Full => {
                    return Err(AppError::conflict(
                        "too_many_webhooks",
                        format!(
                            "a merchant keeps at most {ENDPOINTS_MAX} webhooks: delete one first"
                        ),
                    ))
                }
                EndpointSave::Contended => budget.lost().await?,
            }
        }
    }

    pub async fn list(&self, merchant: &UserId) -> Result<Page<WebhookView>, AppError> {
        let items = self
            .store
            .webhooks_of(merchant)
            .await?
            .iter()
            .map(|endpoint| WebhookView::of(endpoint, false))
            .collect();
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    pub async fn delete(&self, merchant: &UserId, id: &WebhookId) -> Result<(), AppError> {
        let mut budget = RetryBudget::new();
        loop {
            match self.store.delete_webhook(merchant, id).await? {
                Some(true) => return Ok(()),
                Some(false) => return Err(not_found::webhook()),
                None => budget.lost().await?,
            }
        }
    }

    /// A new secret, shown this once; the replaced one signs too for [`SECRET_OVERLAP`].
    pub async fn rotate_secret(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<WebhookView, AppError> {
        let secret = SigningSecret::generate();
        let until =
            self.clock.now() + chrono::Duration::from_std(SECRET_OVERLAP).unwrap_or_default();
        if !self
            .store
            .rotate_webhook_secret(merchant, id, &secret, until)
            .await?
        {
            return Err(not_found::webhook());
        }
        let endpoint = self.endpoint(merchant, id).await?;
        // Shown whole: the secret just made (a rotation racing this one may have replaced it, and
        // then that one is what the merchant is shown).
        Ok(WebhookView::of(&endpoint, true))
    }

    /// Sends a `webhook.test` message to the endpoint now (202 with its delivery).
    pub async fn send_test(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<DeliveryView, AppError> {
        let endpoint = self.enabled_endpoint(merchant, id).await?;
        let now = self.clock.now();
        let event_id = format!("msg_{}", DeliveryId::generate().as_str().replace('-', ""));
        let body = super::webhook_delivery::message_body(
            EventType::WebhookTest,
            now,
            serde_json::json!({
                "webhook_id": endpoint.id.to_string(),
                "message": "a test message: your endpoint receives and verifies webhooks",
            }),
        )?;
        let delivery = Delivery {
            id: DeliveryId::generate(),
            endpoint_id: endpoint.id.clone(),
            merchant_id: merchant.clone(),
            event_id,
            event_type: EventType::WebhookTest,
            body,
            attempts: 0,
            state: DeliveryState::Pending,
            last_attempt: None,
            next_attempt_at: Some(now),
            created_at: now,
        };
        self.store.put_delivery(&delivery).await?;
        self.hand_over(&delivery).await?;
        Ok(delivery.into())
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries(
        &self,
        merchant: &UserId,
        id: &WebhookId,
        page: &PageRequest,
    ) -> Result<Page<DeliveryView>, AppError> {
        self.endpoint(merchant, id).await?;
        Ok(self
            .store
            .deliveries_page(id, page)
            .await?
            .map(DeliveryView::from))
    }

    /// Sends a delivery's message again, as a new delivery with the same `webhook-id` and body
    /// (202 with it): the receiver recognises it as the message it may already have.
    pub async fn replay(
        &self,
        merchant: &UserId,
        id: &WebhookId,
        delivery_id: &DeliveryId,
    ) -> Result<DeliveryView, AppError> {
        self.enabled_endpoint(merchant, id).await?;
        let original = self
            .store
            .delivery(id, delivery_id)
            .await?
            .filter(|d| d.merchant_id == *merchant)
            .ok_or_else(not_found::delivery)?;
        let now = self.clock.now();
        let delivery = Delivery {
            id: DeliveryId::generate(),
            attempts: 0,
            state: DeliveryState::Pending,
            last_attempt: None,
            next_attempt_at: Some(now),
            created_at: now,
            ..original
        };
        self.store.put_delivery(&delivery).await?;
        self.hand_over(&delivery).await?;
        Ok(delivery.into())
    }

    async fn endpoint(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<WebhookEndpoint, AppError> {
        self.store
            .webhook(merchant, id)
            .await?
            .ok_or_else(not_found::webhook)
    }

    async fn enabled_endpoint(
        &self,
        merchant: &UserId,
        id: &WebhookId,
    ) -> Result<WebhookEndpoint, AppError> {
        let endpoint = self.endpoint(merchant, id).await?;
        if let Some((why, _)) = &endpoint.disabled {
            return Err(AppError::conflict(
                "webhook_disabled",
                format!("the webhook is disabled ({why}): delete it and add it again"),
            ));
        }
        Ok(endpoint)
    }

    /// Queues a new delivery's first attempt; a queue that cannot take it is a 503 (the delivery
    /// stays stored, to be replayed).
    async fn hand_over(&self, delivery: &Delivery) -> Result<(), AppError> {
        let job = DeliveryJob {
            endpoint_id: delivery.endpoint_id.clone(),
            delivery_id: delivery.id.clone(),
        };
        self.queue
            .enqueue(&job, std::time::Duration::ZERO)
            .await
            .map_err(|problem| {
                tracing::error!(error = %problem, "a webhook delivery could not be queued");
                AppError::Unavailable {
                    retry_after_secs: 5,
                }
            })
    }
}

//! A merchant's webhooks: endpoints that receive signed order events, and their deliveries.

use lambda_http::{http::StatusCode, Request};
use shared::domain::{DeliveryId, WebhookId};
use shared::error::not_found;
use shared::http::openapi::{Contended, JsonBody, MerchantAccess};
use shared::http::{json, no_content, page_request, parse_json, Answer, Call, ErrorResponse};
use shared::pagination::{Page, PageParams};
use shared::services::webhooks::{DeliveryView, WebhookInput, WebhookView};
use shared::AppContext;

/// Add a webhook: signed events about orders on my products are POSTed to `url` (Standard
/// Webhooks 1.0: `webhook-id`, `webhook-timestamp`, `webhook-signature`). The answer carries the
/// signing `secret`, shown this once. At most 5 per merchant.
#[utoipa::path(
    post, path = "/api/merchants/webhooks/", tag = "merchants",
    request_body = WebhookInput,
    responses(
        (status = 201, description = "Added; `secret` is shown only here", body = WebhookView),
        (status = 400, description = "`validation_failed`: no URL, not https, or it reaches a loopback, private, link-local or metadata address (checked after DNS); unknown events", body = ErrorResponse),
        MerchantAccess,
        (status = 409, description = "`too_many_webhooks`: 5 already", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
pub(crate) async fn create_webhook(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    json(
        StatusCode::CREATED,
        &ctx.webhooks().create(&merchant, parse_json(req)?).await?,
    )
}

/// My webhooks, oldest first, secrets masked.
#[utoipa::path(
    get, path = "/api/merchants/webhooks/", tag = "merchants",
    responses(
        (status = 200, description = "Every webhook (at most 5)", body = Page<WebhookView>),
        MerchantAccess,
    )
)]
pub(crate) async fn list_webhooks(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    json(StatusCode::OK, &ctx.webhooks().list(&merchant).await?)
}

/// Delete a webhook: nothing more is sent to it (its pending deliveries are abandoned).
#[utoipa::path(
    delete, path = "/api/merchants/webhooks/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        MerchantAccess,
        (status = 404, description = "`webhook_not_found`", body = ErrorResponse),
        Contended,
    )
)]
pub(crate) async fn delete_webhook(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", WebhookId::parse, not_found::webhook)?;
    ctx.webhooks().delete(&merchant, &id).await?;
    no_content()
}

/// A new signing secret, shown this once; the previous one keeps signing (a second signature in
/// `webhook-signature`) for 24 hours, so receivers switch without losing a message.
#[utoipa::path(
    post, path = "/api/merchants/webhooks/{id}/rotate-secret/", tag = "merchants",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "Rotated; `secret` is the new one, shown only here", body = WebhookView),
        MerchantAccess,
        (status = 404, description = "`webhook_not_found`", body = ErrorResponse),
    )
)]
pub(crate) async fn rotate_webhook_secret(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", WebhookId::parse, not_found::webhook)?;
    json(
        StatusCode::OK,
        &ctx.webhooks().rotate_secret(&merchant, &id).await?,
    )
}

/// Send a `webhook.test` message to the webhook now.
#[utoipa::path(
    post, path = "/api/merchants/webhooks/{id}/test/", tag = "merchants",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Queued; its delivery", body = DeliveryView),
        MerchantAccess,
        (status = 404, description = "`webhook_not_found`", body = ErrorResponse),
        (status = 409, description = "`webhook_disabled`", body = ErrorResponse),
        Contended,
    )
)]
pub(crate) async fn test_webhook(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", WebhookId::parse, not_found::webhook)?;
    json(
        StatusCode::ACCEPTED,
        &ctx.webhooks().send_test(&merchant, &id).await?,
    )
}

/// A webhook's deliveries, newest first: event, attempts, the last status code and latency, and
/// when the next retry is due.
#[utoipa::path(
    get, path = "/api/merchants/webhooks/{id}/deliveries/", tag = "merchants",
    params(("id" = String, Path, description = "Webhook id"), PageParams),
    responses(
        (status = 200, description = "One page", body = Page<DeliveryView>),
        (status = 400, description = "`invalid_cursor` or a bad `limit`", body = ErrorResponse),
        MerchantAccess,
        (status = 404, description = "`webhook_not_found`", body = ErrorResponse),
    )
)]
pub(crate) async fn list_deliveries(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", WebhookId::parse, not_found::webhook)?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.webhooks().deliveries(&merchant, &id, &page).await?,
    )
}

/// Send a delivery's message again (same `webhook-id` and body, a fresh signature), as a new
/// delivery.
#[utoipa::path(
    post, path = "/api/merchants/webhooks/{id}/deliveries/{delivery_id}/replay/", tag = "merchants",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("delivery_id" = String, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "Queued; the new delivery", body = DeliveryView),
        MerchantAccess,
        (status = 404, description = "`webhook_not_found` or `delivery_not_found`", body = ErrorResponse),
        (status = 409, description = "`webhook_disabled`", body = ErrorResponse),
        Contended,
    )
)]
pub(crate) async fn replay_delivery(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", WebhookId::parse, not_found::webhook)?;
    let delivery = call.parse("delivery_id", DeliveryId::parse, not_found::delivery)?;
    json(
        StatusCode::ACCEPTED,
        &ctx.webhooks().replay(&merchant, &id, &delivery).await?,
    )
}

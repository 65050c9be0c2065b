//! The merchants function: a merchant's own products and the orders placed on them.
//! Every route requires an access token with role MERCHANT.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::{Fulfilment, OrderId, OrderParty, OrderStatus, ProductId};
use shared::error::not_found;
use shared::http::openapi::{Contended, ContendedWrite, JsonBody, MerchantAccess};
use shared::http::{
    csv_download, fulfilment_param, if_match_version, json, no_content, order_status_param,
    page_request, parse_json, Answer, Call, ErrorResponse,
};
use shared::pagination::{Page, PageParams};
use shared::services::catalogue::{CreateProductRequest, MerchantProduct, UpdateProductRequest};
use shared::services::deliveries::ShipRequest;
use shared::services::orders::OrderView;
use shared::services::pickups::RedeemCodeRequest;
use shared::services::settlements::{
    parse_statement_id, LineView, PayoutAccountRequest, PayoutAccountView, StatementView,
};
use shared::AppContext;

mod webhooks;
use shared::services::webhooks::{DeliveryView, WebhookInput, WebhookView};
use webhooks::*;

shared::api! {
    pub struct MerchantsApi {
        // Each route once: its method and path are in its `#[utoipa::path]`, nowhere else.
        handlers: [
            create_product: MERCHANT,
            list_products: MERCHANT,
            get_product: MERCHANT,
            update_product: MERCHANT,
            delete_product: MERCHANT,
            list_orders: MERCHANT,
            get_order: MERCHANT,
            export_orders: MERCHANT,
            redeem_pickup_code: MERCHANT,
            ship_order: MERCHANT,
            complete_order: MERCHANT,
            cancel_order: MERCHANT,
            list_settlements: MERCHANT,
            get_settlement: MERCHANT,
            export_settlement: MERCHANT,
            get_payout_account: MERCHANT,
            set_payout_account: MERCHANT,
            create_webhook: MERCHANT,
            list_webhooks: MERCHANT,
            delete_webhook: MERCHANT,
            rotate_webhook_secret: MERCHANT,
            test_webhook: MERCHANT,
            list_deliveries: MERCHANT,
            replay_delivery: MERCHANT,
        ],
        components(schemas(
            CreateProductRequest, UpdateProductRequest, MerchantProduct, Page<MerchantProduct>, OrderView,
            Page<OrderView>, RedeemCodeRequest, ShipRequest, StatementView, Page<StatementView>,
            LineView, PayoutAccountRequest, PayoutAccountView, WebhookInput, WebhookView,
            Page<WebhookView>, DeliveryView, Page<DeliveryView>, ErrorResponse
        )),
        tags((name = "merchants", description = "A merchant's products and the orders on them (role MERCHANT)"))
    }
}

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    MerchantsApi::router().serve(ctx, &req).await
}

/// The product with its version as an `ETag`, for a later `If-Match`.
fn product_answer(status: StatusCode, product: &MerchantProduct) -> Answer {
    let mut response = json(status, product)?;
    if let Ok(etag) = format!("\"{}\"", product.version).parse() {
        response
            .headers_mut()
            .insert(lambda_http::http::header::ETAG, etag);
    }
    Ok(response)
}

/// List a new product; it is active at once.
#[utoipa::path(
    post, path = "/api/merchants/products/", tag = "merchants",
    request_body = CreateProductRequest,
    responses(
        (status = 201, description = "Listed", body = MerchantProduct, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "Malformed body or invalid fields", body = ErrorResponse),
        MerchantAccess,
        JsonBody,
        ContendedWrite,
    )
)]
async fn create_product(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let product = ctx
        .catalogue()
        .create_product(&merchant, parse_json(req)?)
        .await?;
    product_answer(StatusCode::CREATED, &product)
}

/// My products, active and inactive, newest first.
#[utoipa::path(
    get, path = "/api/merchants/products/", tag = "merchants",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<MerchantProduct>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MerchantAccess,
    )
)]
async fn list_products(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.catalogue().list_my_products(&merchant, &page).await?,
    )
}

/// One of my products.
#[utoipa::path(
    get, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = MerchantProduct, headers(("ETag" = String, description = "The version, quoted"))),
        MerchantAccess,
        (status = 404, description = "No such product of mine", body = ErrorResponse),
    )
)]
async fn get_product(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    product_answer(
        StatusCode::OK,
        &ctx.catalogue().my_product(&merchant, &id).await?,
    )
}

/// Change a product. Carries the `version` last read (body or `If-Match`); a stale one is refused
/// with 409 and nothing changes.
#[utoipa::path(
    put, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(
        ("id" = String, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The version last read, e.g. \"3\" (instead of `version` in the body)"),
    ),
    request_body = UpdateProductRequest,
    responses(
        (status = 200, description = "Updated; `version` went up by one", body = MerchantProduct, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "Malformed body, invalid fields, no version, or nothing to change", body = ErrorResponse),
        MerchantAccess,
        (status = 404, description = "No such product of mine", body = ErrorResponse),
        (status = 409, description = "`version_conflict`: the product changed since it was read; `product_blocked`: `is_active: true` on a product an operator took down (only an operator can put it back)", body = ErrorResponse),
        JsonBody,
        ContendedWrite,
    )
)]
async fn update_product(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    let if_match = if_match_version(req)?;
    let product = ctx
        .catalogue()
        .update_my_product(&merchant, &id, parse_json(req)?, if_match)
        .await?;
    product_answer(StatusCode::OK, &product)
}

/// Take a product off the catalogue (soft delete; orders keep pointing at it). Repeating is fine.
#[utoipa::path(
    delete, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 204, description = "Inactive now"),
        MerchantAccess,
        (status = 404, description = "No such product of mine", body = ErrorResponse),
        ContendedWrite,
    )
)]
async fn delete_product(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    ctx.catalogue().delete_my_product(&merchant, &id).await?;
    no_content()
}

/// Orders on my products, newest first, optionally of one status and one fulfilment (what is left
/// to ship: `?status=pending&fulfilment=delivery`).
#[utoipa::path(
    get, path = "/api/merchants/orders/", tag = "merchants",
    params(
        PageParams,
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status"),
        ("fulfilment" = Option<Fulfilment>, Query, description = "Only pickups or only deliveries"),
    ),
    responses(
        (status = 200, description = "One page", body = Page<OrderView>),
        (status = 400, description = "Invalid limit, cursor, status or fulfilment", body = ErrorResponse),
        MerchantAccess,
    )
)]
async fn list_orders(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let page = page_request(req)?;
    let status = order_status_param(req)?;
    let fulfilment = fulfilment_param(req)?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .merchant_orders(&merchant, status, fulfilment, &page)
            .await?,
    )
}

/// The packing list: orders on my products (optionally of one status) as CSV for Excel, newest
/// first. UTF-8 with a byte order mark; times in Taipei time; at most 5,000 rows, the rest by the
/// `Link` header's next URL (or `?cursor=` with the `X-Next-Cursor` header's value).
#[utoipa::path(
    get, path = "/api/merchants/orders/export.csv", tag = "merchants",
    params(
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status"),
        ("cursor" = Option<String>, Query, description = "The previous export's `X-Next-Cursor`"),
    ),
    responses(
        (status = 200, description = "Columns order_number, created_at, product, quantity, recipient_name, phone, postal_code, address, status", content_type = "text/csv",
            headers(
                ("Link" = String, description = "`<…?cursor=…>; rel=\"next\"` when rows remain"),
                ("X-Next-Cursor" = String, description = "The cursor of the rows that remain, if any"),
            )),
        (status = 400, description = "Invalid status or cursor", body = ErrorResponse),
        MerchantAccess,
    )
)]
async fn export_orders(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let cursor = page_request(req)?.cursor;
    let status = order_status_param(req)?;
    let list = ctx.orders().packing_list(&merchant, status, cursor).await?;
    let next = list.next_cursor.map(|cursor| {
        let mut query: Vec<(&str, String)> = status
            .map(|status| ("status", status.as_str().to_string()))
            .into_iter()
            .collect();
        query.push(("cursor", cursor.clone()));
        (query, cursor)
    });
    csv_download("packing-list.csv", list.csv, "export.csv", next)
}

/// My statements, newest period first, each with its totals (`gross_twd`, `commission_twd`,
/// `net_twd`, the sums of its lines).
#[utoipa::path(
    get, path = "/api/merchants/settlements/", tag = "merchants",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<StatementView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MerchantAccess,
    )
)]
async fn list_settlements(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements()
            .merchant_statements(&merchant, &page)
            .await?,
    )
}

/// One of my statements with its lines (another merchant's is 404).
#[utoipa::path(
    get, path = "/api/merchants/settlements/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, description = "The statement", body = StatementView),
        MerchantAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
    )
)]
async fn get_settlement(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    json(
        StatusCode::OK,
        &ctx.settlements()
            .statement_view(&id, Some(&merchant))
            .await?,
    )
}

/// One of my statements as CSV for my accountant (UTF-8 with BOM): `statement_id,period,
/// order_number,completed_at,points,gross_twd,commission_twd,net_twd,line_type`, times in Taipei.
#[utoipa::path(
    get, path = "/api/merchants/settlements/{id}/export.csv", tag = "merchants",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, description = "One row per line", content_type = "text/csv"),
        MerchantAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
    )
)]
async fn export_settlement(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    let csv = ctx.settlements().export_csv(&id, Some(&merchant)).await?;
    csv_download(&format!("statement-{id}.csv"), csv, "export.csv", None)
}

/// Where I am paid, the account number masked but its last 4 digits.
#[utoipa::path(
    get, path = "/api/merchants/payout-account/", tag = "merchants",
    responses(
        (status = 200, description = "My payout account", body = PayoutAccountView),
        MerchantAccess,
        (status = 404, description = "`payout_account_not_found`: none kept yet", body = ErrorResponse),
    )
)]
async fn get_payout_account(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    json(
        StatusCode::OK,
        &ctx.settlements().payout_account(&merchant).await?,
    )
}

/// Keep my payout account: bank code (3 digits), account number (10–16 digits), holder name. Each
/// change is audited; the answer is masked.
#[utoipa::path(
    put, path = "/api/merchants/payout-account/", tag = "merchants",
    request_body = PayoutAccountRequest,
    responses(
        (status = 200, description = "Kept", body = PayoutAccountView),
        (status = 400, description = "Malformed body or invalid fields (each named)", body = ErrorResponse),
        MerchantAccess,
        JsonBody,
        Contended,
    )
)]
async fn set_payout_account(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let request: PayoutAccountRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements()
            .set_payout_account(&merchant, request)
            .await?,
    )
}

/// Ship a delivery: pending → shipped, with the carrier and tracking number its member sees. It
/// completes when the member confirms receipt, or by itself `DELIVERY_AUTO_COMPLETE_DAYS` later.
#[utoipa::path(
    post, path = "/api/merchants/orders/{id}/ship/", tag = "merchants",
    params(("id" = String, Path, description = "Order id")),
    request_body = ShipRequest,
    responses(
        (status = 200, description = "Shipped", body = OrderView),
        (status = 400, description = "Malformed body or invalid fields", body = ErrorResponse),
        MerchantAccess,
        (status = 404, description = "No such order on my products", body = ErrorResponse),
        (status = 409, description = "`not_a_delivery` (a pickup order), or `order_not_pending`", body = ErrorResponse),
        JsonBody,
        ContendedWrite,
    )
)]
async fn ship_order(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders().ship(&merchant, &id, parse_json(req)?).await?,
    )
}

/// One order on my products.
#[utoipa::path(
    get, path = "/api/merchants/orders/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        MerchantAccess,
        (status = 404, description = "No such order on my products", body = ErrorResponse),
    )
)]
async fn get_order(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .order(OrderParty::Merchant(&merchant), &id)
            .await?,
    )
}

/// Hand over a pickup: the code the member shows completes its order. Case, spaces and dashes do
/// not matter. Wrong codes are limited per merchant (20 per 15 minutes, then 429).
#[utoipa::path(
    post, path = "/api/merchants/orders/redeem-code/", tag = "merchants",
    request_body = RedeemCodeRequest,
    responses(
        (status = 200, description = "The code's order, now completed", body = OrderView),
        (status = 400, description = "No code, or not a 10-character pickup code", body = ErrorResponse),
        MerchantAccess,
        (status = 404, description = "`order_not_found`: no such code on my products (another merchant's code reads the same)", body = ErrorResponse),
        (status = 409, description = "`already_completed` (the code was used) or `order_cancelled`", body = ErrorResponse),
        (status = 429, description = "`too_many_attempts`: too many wrong codes; retry after `Retry-After` seconds", body = ErrorResponse),
        JsonBody,
        ContendedWrite,
    )
)]
async fn redeem_pickup_code(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .redeem_pickup_code(&merchant, parse_json(req)?)
            .await?,
    )
}

/// Mark a pending order fulfilled. A pickup order is completed only by its code (`redeem-code`);
/// a cancelled (or already completed) order cannot be.
#[utoipa::path(
    post, path = "/api/merchants/orders/{id}/complete/", tag = "merchants",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Completed", body = OrderView),
        MerchantAccess,
        (status = 404, description = "No such order on my products", body = ErrorResponse),
        (status = 409, description = "`order_not_pending`, `pickup_code_required` (a pickup order: use `redeem-code`), or `not_shipped` (a delivery completes on receipt)", body = ErrorResponse),
        ContendedWrite,
    )
)]
async fn complete_order(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders().complete(&merchant, &id).await?,
    )
}

/// Cancel a pending order on my products: the member's points come back and the stock is restored, once.
#[utoipa::path(
    post, path = "/api/merchants/orders/{id}/cancel/", tag = "merchants",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled and refunded", body = OrderView),
        MerchantAccess,
        (status = 404, description = "No such order on my products", body = ErrorResponse),
        (status = 409, description = "`order_not_pending`", body = ErrorResponse),
        Contended,
    )
)]
async fn cancel_order(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let merchant = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .cancel(OrderParty::Merchant(&merchant), &id)
            .await?,
    )
}

//! The members function: the catalogue, points, recharge, payments and orders.
//! Every route requires an access token with role MEMBER.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::shipping::ShippingInput;
use shared::domain::{AddressId, MerchantTradeNo, OrderId, OrderParty, OrderStatus, ProductId};
use shared::error::not_found;
use shared::http::openapi::{Contended, JsonBody, MemberAccess};
use shared::http::{
    id_query_param, idempotency_key, json, no_content, order_status_param, page_request,
    parse_json, qr_svg, replayed_created, request_origin, Answer, Call, ErrorResponse,
};
use shared::pagination::{Page, PageParams};
use shared::services::catalogue::CatalogueProduct;
use shared::services::deliveries::AddressView;
use shared::services::invoices::{AllowanceView, InvoicePreferenceBody, InvoiceView};
use shared::services::orders::{OrderView, RedeemRequest, Redemption};
use shared::services::points::{LedgerEntry, PointsBalance};
use shared::services::recharge::{PaymentView, RechargeCheckout, RechargeRequest};
use shared::services::refunds::{RefundDrawView, RefundRequest, RefundRequested, RefundView};
use shared::AppContext;

shared::api! {
    pub struct MembersApi {
        // Each route once: its method and path are in its `#[utoipa::path]`, nowhere else.
        handlers: [
            browse_products: MEMBER,
            view_product: MEMBER,
            points_balance: MEMBER,
            ledger: MEMBER,
            request_refund: MEMBER,
            invoice_preference: MEMBER,
            set_invoice_preference: MEMBER,
            list_invoices: MEMBER,
            list_refunds: MEMBER,
            recharge: MEMBER,
            list_payments: MEMBER,
            get_payment: MEMBER,
            redeem: MEMBER_SESSION_IN_READ,
            list_orders: MEMBER,
            get_order: MEMBER,
            pickup_qr: MEMBER,
            confirm_receipt: MEMBER,
            cancel_order: MEMBER,
            list_addresses: MEMBER,
            save_address: MEMBER,
            delete_address: MEMBER,
        ],
        components(schemas(
            CatalogueProduct, Page<CatalogueProduct>, PointsBalance, LedgerEntry, Page<LedgerEntry>,
            RechargeRequest, RechargeCheckout, PaymentView, Page<PaymentView>, RedeemRequest, OrderView,
            Page<OrderView>, ShippingInput, AddressView, Page<AddressView>, RefundRequest, RefundView,
            RefundDrawView, Page<RefundView>, InvoicePreferenceBody, InvoiceView, AllowanceView,
            Page<InvoiceView>, ErrorResponse
        )),
        tags((name = "members", description = "What members do (role MEMBER)"))
    }
}

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    MembersApi::router().serve(ctx, &req).await
}

/// The catalogue: active products of every merchant, newest first. Sold-out products are listed
/// with `in_stock: false`.
#[utoipa::path(
    get, path = "/api/members/products/", tag = "members",
    params(
        PageParams,
        ("merchant_id" = Option<String>, Query, description = "Only this merchant's products (an id)",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    ),
    responses(
        (status = 200, description = "One page", body = Page<CatalogueProduct>),
        (status = 400, description = "Invalid limit, cursor or merchant_id", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn browse_products(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    let merchant = id_query_param(req, "merchant_id")?;
    json(
        StatusCode::OK,
        &ctx.catalogue().browse(merchant.as_ref(), &page).await?,
    )
}

/// One active product.
#[utoipa::path(
    get, path = "/api/members/products/{id}/", tag = "members",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = CatalogueProduct),
        MemberAccess,
        (status = 404, description = "No such active product", body = ErrorResponse),
    )
)]
async fn view_product(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    json(StatusCode::OK, &ctx.catalogue().view_product(&id).await?)
}

/// My points: balance, total earned, total spent.
#[utoipa::path(
    get, path = "/api/members/points/", tag = "members",
    responses(
        (status = 200, description = "My balance", body = PointsBalance),
        MemberAccess,
    )
)]
async fn points_balance(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    json(StatusCode::OK, &ctx.points().balance(&member).await?)
}

/// My points ledger, newest first. Append-only; the balance is the sum of its `amount`s.
#[utoipa::path(
    get, path = "/api/members/transactions/", tag = "members",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<LedgerEntry>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn ledger(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let page = page_request(req)?;
    json(StatusCode::OK, &ctx.points().ledger(&member, &page).await?)
}

/// Refund unused purchased points to the card they were paid with. The points leave the balance at
/// once (a REFUND ledger row); the NT$ owed (their value less `REFUND_FEE_PERCENT`, whole NT$ rounded
/// down) goes back through ECPay by the scheduled job. Send an `Idempotency-Key` to make retries
/// safe, as with orders.
#[utoipa::path(
    post, path = "/api/members/points/refunds/", tag = "members",
    request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–64 visible ASCII characters", min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$")),
    responses(
        (status = 201, description = "Requested (or the replay of the first answer to this Idempotency-Key)", body = RefundView),
        (status = 400, description = "Malformed body, `points` invalid or worth less than NT$1 after the fee, or invalid Idempotency-Key", body = ErrorResponse),
        MemberAccess,
        (status = 409, description = "`insufficient_refundable_points`: more than the purchased points (in `fields.purchased`); nothing changed", body = ErrorResponse),
        JsonBody,
        (status = 422, description = "`idempotency_key_reused` with a different body", body = ErrorResponse),
        Contended,
    )
)]
async fn request_refund(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let key = idempotency_key(req)?;
    match ctx
        .refunds()
        .request(&member, parse_json(req)?, key.as_deref())
        .await?
    {
        RefundRequested::Made(refund) => json(StatusCode::CREATED, &refund),
        RefundRequested::Replayed(body) => replayed_created(body),
    }
}

/// My refunds, newest first, each with its state: `requested` → `processing` → `refunded` | `failed`.
#[utoipa::path(
    get, path = "/api/members/points/refunds/", tag = "members",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<RefundView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn list_refunds(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.refunds().refunds(&member, &page).await?,
    )
}

/// Where my e-invoices go: `member` (ECPay's member carrier by my email, the default),
/// `mobile_barcode` or `citizen_certificate` (`carrier_num`), `donation` (`love_code`), or `company`
/// (`tax_id`, `company_name`; the invoice is then printed).
#[utoipa::path(
    get, path = "/api/members/invoice-preference/", tag = "members",
    responses(
        (status = 200, description = "My preference", body = InvoicePreferenceBody),
        MemberAccess,
    )
)]
async fn invoice_preference(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    json(StatusCode::OK, &ctx.invoices().preference(&member).await?)
}

/// Choose where my e-invoices go. Each bad format is a 400 naming its field.
#[utoipa::path(
    put, path = "/api/members/invoice-preference/", tag = "members",
    request_body = InvoicePreferenceBody,
    responses(
        (status = 200, description = "Kept", body = InvoicePreferenceBody),
        (status = 400, description = "Malformed body; `kind` unknown, or a field of it missing or malformed (named)", body = ErrorResponse),
        MemberAccess,
        JsonBody,
    )
)]
async fn set_invoice_preference(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    json(
        StatusCode::OK,
        &ctx.invoices()
            .set_preference(&member, parse_json(req)?)
            .await?,
    )
}

/// My e-invoices, newest first: each with its `invoice_number` and `date` once ECPay issued it, its
/// `amount` (NT$), `carrier` and `state` (`pending`, `issued`, `void`, `failed`). When invoices are
/// issued is the operator's choice (`INVOICE_MODE`): for each paid recharge, or for each completed
/// order (the NT$ value of the purchased points it spent).
#[utoipa::path(
    get, path = "/api/members/invoices/", tag = "members",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<InvoiceView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn list_invoices(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.invoices().member_invoices(&member, &page).await?,
    )
}

/// Start buying points: a pending payment and the signed ECPay AioCheckOut form for it. Points are
/// credited when ECPay notifies the payment (see the callback).
#[utoipa::path(
    post, path = "/api/members/points/recharge/", tag = "members",
    request_body = RechargeRequest,
    responses(
        (status = 201, description = "Pending payment with its checkout form", body = RechargeCheckout),
        (status = 400, description = "Malformed body or amount out of bounds", body = ErrorResponse),
        MemberAccess,
        (status = 409, description = "`too_many_open_recharges`: the member already holds `RECHARGE_MAX_OPEN_PER_MEMBER` unpaid recharges, named in `fields.open_recharges`; pay one or wait until it expires", body = ErrorResponse),
        JsonBody,
        (status = 503, description = "Could not allocate a trade number; retry", body = ErrorResponse),
    )
)]
async fn recharge(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let origin = request_origin(req);
    let checkout = ctx
        .recharge()
        .recharge(&member, parse_json(req)?, origin.as_deref())
        .await?;
    json(StatusCode::CREATED, &checkout)
}

/// My payments, newest first.
#[utoipa::path(
    get, path = "/api/members/payments/", tag = "members",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<PaymentView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn list_payments(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.recharge().payments(&member, &page).await?,
    )
}

/// One of my payments, to poll after ECPay sends the browser back.
#[utoipa::path(
    get, path = "/api/members/payments/{merchant_trade_no}/", tag = "members",
    params(("merchant_trade_no" = String, Path, description = "The payment's MerchantTradeNo")),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        MemberAccess,
        (status = 404, description = "No such payment of mine", body = ErrorResponse),
    )
)]
async fn get_payment(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let trade_no = call.parse(
        "merchant_trade_no",
        MerchantTradeNo::parse,
        not_found::payment,
    )?;
    json(
        StatusCode::OK,
        &ctx.recharge().payment(&member, &trade_no).await?,
    )
}

/// Redeem points for a product. One DynamoDB transaction takes the stock, debits the points and
/// records the order with its SPEND ledger row. Send an `Idempotency-Key` to make retries safe: the
/// same key with the same body returns the first response (for 24 hours) and changes nothing.
#[utoipa::path(
    post, path = "/api/members/orders/", tag = "members",
    request_body = RedeemRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–64 visible ASCII characters", min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$")),
    responses(
        (status = 201, description = "Placed (or the replay of the first response to this Idempotency-Key)", body = OrderView),
        (status = 400, description = "Malformed body, invalid fields or Idempotency-Key; `shipping` missing for a delivery product (or sent for a pickup one), each problem of it named (`shipping.phone`…)", body = ErrorResponse),
        MemberAccess,
        (status = 404, description = "`product_not_found`: unknown or inactive product; `address_not_found`: no such saved address of mine", body = ErrorResponse),
        (status = 409, description = "`insufficient_stock`, `insufficient_points`, or `price_changed` (the price the member saw, `points_required`, is no longer the price; the current one is in `fields.points_required`)", body = ErrorResponse),
        JsonBody,
        (status = 422, description = "`idempotency_key_reused` with a different body", body = ErrorResponse),
        (status = 503, description = "Contended; retry after `Retry-After` seconds", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds"))),
    )
)]
async fn redeem(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    // Declared MEMBER_SESSION_IN_READ: the router checked the token and the role; the redemption
    // checks the session in the same read as the product and the account (two DynamoDB round trips
    // per redemption, not three).
    let caller = call.caller()?;
    let key = idempotency_key(req)?;
    match ctx
        .orders()
        .redeem(
            &caller.id,
            caller.session_epoch,
            parse_json(req)?,
            key.as_deref(),
        )
        .await?
    {
        Redemption::Placed(order) => json(StatusCode::CREATED, &order),
        Redemption::Replayed(body) => replayed_created(body),
    }
}

/// My orders, newest first, optionally of one status.
#[utoipa::path(
    get, path = "/api/members/orders/", tag = "members",
    params(PageParams, ("status" = Option<OrderStatus>, Query, description = "Only orders in this status")),
    responses(
        (status = 200, description = "One page", body = Page<OrderView>),
        (status = 400, description = "Invalid limit, cursor or status", body = ErrorResponse),
        MemberAccess,
    )
)]
async fn list_orders(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let page = page_request(req)?;
    let status = order_status_param(req)?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .orders(OrderParty::Member(&member), status, &page)
            .await?,
    )
}

/// One of my orders. A pickup order carries its `pickup_code`: show it (or `pickup.svg`) at the
/// merchant's counter before `pickup_expires_at`.
#[utoipa::path(
    get, path = "/api/members/orders/{id}/", tag = "members",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        MemberAccess,
        (status = 404, description = "No such order of mine", body = ErrorResponse),
    )
)]
async fn get_order(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders().order(OrderParty::Member(&member), &id).await?,
    )
}

/// My pending pickup order's code as a QR code, for the merchant's scanner.
#[utoipa::path(
    get, path = "/api/members/orders/{id}/pickup.svg", tag = "members",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The pickup code as a QR code", content_type = "image/svg+xml"),
        MemberAccess,
        (status = 404, description = "`order_not_found`, or `pickup_code_not_found` (a delivery, or an order no longer pending)", body = ErrorResponse),
    )
)]
async fn pickup_qr(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    qr_svg(&ctx.orders().pickup_code(&member, &id).await?)
}

/// I received my delivery: shipped → completed. (Unconfirmed, it completes by itself
/// `DELIVERY_AUTO_COMPLETE_DAYS` after shipping.)
#[utoipa::path(
    post, path = "/api/members/orders/{id}/confirm-receipt/", tag = "members",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Completed", body = OrderView),
        MemberAccess,
        (status = 404, description = "No such order of mine", body = ErrorResponse),
        (status = 409, description = "`not_shipped` (still pending), or `order_not_pending` (already completed or cancelled)", body = ErrorResponse),
        Contended,
    )
)]
async fn confirm_receipt(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders().confirm_receipt(&member, &id).await?,
    )
}

/// My saved delivery addresses (at most 10), oldest first.
#[utoipa::path(
    get, path = "/api/members/addresses/", tag = "members",
    responses(
        (status = 200, description = "Every address I keep", body = Page<AddressView>),
        MemberAccess,
    )
)]
async fn list_addresses(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    json(StatusCode::OK, &ctx.orders().addresses(&member).await?)
}

/// Save a delivery address, to redeem with `shipping_address_id`. At most 10.
#[utoipa::path(
    post, path = "/api/members/addresses/", tag = "members",
    request_body = ShippingInput,
    responses(
        (status = 201, description = "Saved", body = AddressView),
        (status = 400, description = "Malformed body or invalid fields (each named)", body = ErrorResponse),
        MemberAccess,
        (status = 409, description = "`too_many_addresses`: 10 kept already", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn save_address(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    json(
        StatusCode::CREATED,
        &ctx.orders().save_address(&member, parse_json(req)?).await?,
    )
}

/// Delete one of my saved addresses (orders keep their own copy).
#[utoipa::path(
    delete, path = "/api/members/addresses/{id}/", tag = "members",
    params(("id" = String, Path, description = "Address id")),
    responses(
        (status = 204, description = "Deleted"),
        MemberAccess,
        (status = 404, description = "`address_not_found`", body = ErrorResponse),
        Contended,
    )
)]
async fn delete_address(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let id = call.parse("id", AddressId::parse, not_found::address)?;
    ctx.orders().delete_address(&member, &id).await?;
    no_content()
}

/// Cancel a pending order of mine: the points come back (a REFUND row) and the stock is restored,
/// once. A completed or already cancelled order cannot be cancelled.
#[utoipa::path(
    post, path = "/api/members/orders/{id}/cancel/", tag = "members",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled and refunded", body = OrderView),
        MemberAccess,
        (status = 404, description = "No such order of mine", body = ErrorResponse),
        (status = 409, description = "`order_not_pending`", body = ErrorResponse),
        Contended,
    )
)]
async fn cancel_order(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let member = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    json(
        StatusCode::OK,
        &ctx.orders()
            .cancel(OrderParty::Member(&member), &id)
            .await?,
    )
}

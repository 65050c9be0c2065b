//! The admin function: what operators (role ADMIN) do, and the console page they do it from.
//! Every route but the console page requires an access token with role ADMIN (others get 403);
//! the page itself is static HTML and script with no data in it.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::{
    MerchantTradeNo, OrderId, OrderStatus, PaymentStatus, ProductId, RefundId, Role, UserId,
};
use shared::error::not_found;
use shared::http::openapi::{Contended, JsonBody, OperatorAccess};
use shared::http::{
    id_query_param, idempotency_key, inline_source_hash, invalid_query, json, order_status_param,
    page_request, parse_json, query_param, replayed_created, Answer, Call, ErrorResponse,
};
use shared::pagination::{Page, PageParams};
use shared::services::admin::Usernames;
use shared::services::admin::{
    ActivationRequest, Adjustment, AdjustmentRequest, AdminPaymentView, AdminUserView, AuditView,
    ReconcileAnswer, ReconcileResult,
};
use shared::services::catalogue::MerchantProduct;
use shared::services::invoices::{AdminInvoiceView, InvoiceAttemptView};
use shared::services::orders::OrderView;
use shared::services::points::LedgerEntry;
use shared::services::refunds::{ManualRefundRequest, RefundDrawView, RefundView};
use shared::services::settlements::{
    parse_statement_id, AdminStatementView, CancelCompletedRequest, CloseReport, CloseRequest,
    CommissionRequest, CommissionView, LineView, PaidRequest, PayoutAccountView, StatementView,
};
use shared::store::StatementState;
use shared::store::UserSearch;
use shared::{AppContext, AppError};

shared::api! {
    pub struct AdminApi {
        // Each route once: its method and path are in its `#[utoipa::path]`, nowhere else.
        handlers: [
            search_users: OPERATOR,
            usernames: OPERATOR,
            disable_user: OPERATOR,
            enable_user: OPERATOR,
            adjust_points: OPERATOR,
            list_payments: OPERATOR,
            reconcile_payment: OPERATOR,
            list_orders: OPERATOR,
            deactivate_product: OPERATOR,
            reinstate_product: OPERATOR,
            audit_log: OPERATOR,
            list_refunds: OPERATOR,
            retry_refund: OPERATOR,
            close_refund: OPERATOR,
            failed_invoices: OPERATOR,
            retry_invoice: OPERATOR,
            set_commission: OPERATOR,
            cancel_completed_order: OPERATOR,
            close_settlements: OPERATOR,
            list_settlements: OPERATOR,
            get_settlement: OPERATOR,
            export_settlement: OPERATOR,
            settlement_paid: OPERATOR,
            settlement_failed: OPERATOR,
            console: PUBLIC,
        ],
        components(schemas(
            AdminUserView, Page<AdminUserView>, ActivationRequest, AdjustmentRequest, LedgerEntry,
            AdminPaymentView, Page<AdminPaymentView>, ReconcileAnswer, ReconcileResult, OrderView,
            Page<OrderView>, MerchantProduct, AuditView, Page<AuditView>, RefundView, RefundDrawView,
            Page<RefundView>, ManualRefundRequest, CommissionRequest, CommissionView,
            CancelCompletedRequest, CloseRequest, CloseReport, StatementView, Page<StatementView>,
            AdminStatementView, LineView, PaidRequest, PayoutAccountView, AdminInvoiceView,
            InvoiceAttemptView, Page<AdminInvoiceView>, Usernames, ErrorResponse
        )),
        tags((name = "admin", description = "What operators do (role ADMIN)"))
    }
}

/// The console: one self-contained page (no CDN, works offline), calling the routes above.
/// Written in parts, one job each, joined at compile time into the one page (its script stays
/// inline, allowed by its hash): the markup and style, the language and display helpers, the panels.
pub const CONSOLE_HTML: &str = concat!(
    include_str!("console/page.html"),
    include_str!("console/i18n.js"),
    include_str!("console/panels.js"),
    include_str!("console/end.html"),
);

/// The console's Content-Security-Policy: its one inline script and one inline style sheet are
/// allowed by their SHA-256 (CSP Level 2 hash sources), never by `'unsafe-inline'`.
pub fn console_csp() -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_source_hash(CONSOLE_HTML, "<script>", "</script>"),
        inline_source_hash(CONSOLE_HTML, "<style>", "</style>"),
    )
}

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    AdminApi::router().serve(ctx, &req).await
}

/// `?role=`: absent, or one of the role names.
fn role_param(req: &Request) -> Result<Option<Role>, AppError> {
    match query_param(req, "role") {
        None => Ok(None),
        Some(raw) => Role::parse(&raw)
            .map(Some)
            .ok_or_else(|| invalid_query("role", "must be MEMBER, MERCHANT or ADMIN")),
    }
}

/// `?is_active=`: absent, `true` or `false`.
fn is_active_param(req: &Request) -> Result<Option<bool>, AppError> {
    match query_param(req, "is_active").as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid_query("is_active", "must be true or false")),
    }
}

/// The admin console: sign in, find users, disable/enable, adjust points, stuck payments, the
/// audit log. Static; every call it makes carries the operator's token.
#[utoipa::path(
    get, path = "/api/admin/console/", tag = "admin",
    responses((status = 200, description = "The console page", content_type = "text/html")),
)]
async fn console(_: &AppContext, _: &Request, _call: &Call) -> Answer {
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/html; charset=utf-8")
        // The page runs only its own inline script (allowed by its hash, so nothing injected
        // into it could run) and talks only to this API.
        .header("content-security-policy", console_csp())
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-cache")
        .body(Body::from(CONSOLE_HTML))
        .map_err(AppError::internal)?;
    Ok(response)
}

/// Users by username prefix (or email prefix when `q` contains `@`), alphabetical, optionally of
/// one role and state.
#[utoipa::path(
    get, path = "/api/admin/users/", tag = "admin",
    params(
        PageParams,
        ("q" = Option<String>, Query, description = "Username prefix, or email prefix if it contains @ (case-insensitive)", max_length = 254),
        ("role" = Option<Role>, Query, description = "Only users of this role"),
        ("is_active" = Option<bool>, Query, description = "Only enabled (true) or disabled (false) users"),
    ),
    responses(
        (status = 200, description = "One page", body = Page<AdminUserView>),
        (status = 400, description = "Invalid limit, cursor, q, role or is_active", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn search_users(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    let search = UserSearch {
        prefix: query_param(req, "q").filter(|q| !q.trim().is_empty()),
        role: role_param(req)?,
        is_active: is_active_param(req)?,
    };
    json(StatusCode::OK, &ctx.admin().users(search, &page).await?)
}

/// The usernames of up to 100 user ids (`?ids=` comma-separated): how the console shows people by
/// name. Ids that name nobody are left out.
#[utoipa::path(
    get, path = "/api/admin/users/names/", tag = "admin",
    params(("ids" = String, Query, description = "User ids, comma-separated, at most 100")),
    responses(
        (status = 200, description = "The usernames", body = Usernames),
        (status = 400, description = "`invalid_query`: no ids, an id that is not one, or more than 100", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn usernames(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let raw = query_param(req, "ids")
        .filter(|ids| !ids.trim().is_empty())
        .ok_or_else(|| {
            shared::http::invalid_query("ids", "is required: user ids, comma-separated")
        })?;
    let ids = raw
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            UserId::parse(id).ok_or_else(|| {
                shared::http::invalid_query("ids", "must be user ids, comma-separated")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    json(StatusCode::OK, &ctx.admin().usernames(&ids).await?)
}

/// Disables a user: their tokens stop working at once (every route answers 401
/// `account_disabled`), their refresh sessions are revoked, and they cannot sign in.
#[utoipa::path(
    post, path = "/api/admin/users/{id}/disable/", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    request_body = ActivationRequest,
    responses(
        (status = 200, description = "Disabled (or already was)", body = AdminUserView),
        (status = 400, description = "Malformed body or missing reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "`cannot_disable_self`", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn disable_user(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", UserId::parse, not_found::user)?;
    let request: ActivationRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.admin().set_active(&admin, &id, false, request).await?,
    )
}

/// Enables a user again. Tokens issued before the disabling stay dead: they sign in again.
#[utoipa::path(
    post, path = "/api/admin/users/{id}/enable/", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    request_body = ActivationRequest,
    responses(
        (status = 200, description = "Enabled (or already was)", body = AdminUserView),
        (status = 400, description = "Malformed body or missing reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "No such user", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn enable_user(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", UserId::parse, not_found::user)?;
    let request: ActivationRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.admin().set_active(&admin, &id, true, request).await?,
    )
}

/// Adds points to or removes them from a member's balance: one transaction writes the balance, an
/// ADJUSTMENT ledger row with the reason and the operator, and the audit entry. Never below zero.
/// Send an `Idempotency-Key` to make retries safe, as with orders.
#[utoipa::path(
    post, path = "/api/admin/members/{id}/points/adjustments/", tag = "admin",
    params(
        ("id" = String, Path, description = "Member id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–64 visible ASCII characters", min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$"),
    ),
    request_body = AdjustmentRequest,
    responses(
        (status = 201, description = "The ADJUSTMENT ledger row (or the replay of the first answer to this Idempotency-Key)", body = LedgerEntry),
        (status = 400, description = "Malformed body, invalid amount or reason, or invalid Idempotency-Key", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "No such member", body = ErrorResponse),
        (status = 409, description = "`insufficient_points`: the balance would go below zero", body = ErrorResponse),
        JsonBody,
        (status = 422, description = "`idempotency_key_reused` with a different body", body = ErrorResponse),
        Contended,
    )
)]
async fn adjust_points(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let member_id = call.parse("id", UserId::parse, not_found::member)?;
    let key = idempotency_key(req)?;
    let request: AdjustmentRequest = parse_json(req)?;
    match ctx
        .admin()
        .adjust_points(&admin, &member_id, request, key.as_deref())
        .await?
    {
        Adjustment::Made(entry) => json(StatusCode::CREATED, &entry),
        Adjustment::Replayed(body) => replayed_created(body),
    }
}

/// Every member's refund of purchased points, newest first.
#[utoipa::path(
    get, path = "/api/admin/refunds/", tag = "admin",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<RefundView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn list_refunds(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    json(StatusCode::OK, &ctx.refunds().all_refunds(&page).await?)
}

/// Asks the scheduled job to work on an open refund at its next run (audited).
#[utoipa::path(
    post, path = "/api/admin/refunds/{id}/retry/", tag = "admin",
    params(("id" = String, Path, description = "Refund id")),
    responses(
        (status = 200, description = "Due now", body = RefundView),
        OperatorAccess,
        (status = 404, description = "`refund_not_found`", body = ErrorResponse),
        (status = 409, description = "`refund_not_open`: already refunded or failed", body = ErrorResponse),
        Contended,
    )
)]
async fn retry_refund(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", RefundId::parse, refund_not_found)?;
    json(StatusCode::OK, &ctx.refunds().retry(&admin, &id).await?)
}

/// Closes an open refund as paid by a bank transfer made by hand, with its reference (audited).
#[utoipa::path(
    post, path = "/api/admin/refunds/{id}/close/", tag = "admin",
    params(("id" = String, Path, description = "Refund id")),
    request_body = ManualRefundRequest,
    responses(
        (status = 200, description = "Refunded by hand", body = RefundView),
        (status = 400, description = "Malformed body or reference", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "`refund_not_found`", body = ErrorResponse),
        (status = 409, description = "`refund_not_open` (already refunded or failed), or `refund_in_flight` (a call to ECPay is not yet settled: retry first)", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn close_refund(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", RefundId::parse, refund_not_found)?;
    let request: ManualRefundRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.refunds().close_manually(&admin, &id, request).await?,
    )
}

/// E-invoices that failed, the latest first: ECPay refused one (its message in `failure`), or never
/// answered after the job's last attempt. Each carries its audit trail of calls.
#[utoipa::path(
    get, path = "/api/admin/invoices/failed/", tag = "admin",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<AdminInvoiceView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn failed_invoices(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.invoices().failed_invoices(&page).await?,
    )
}

/// Asks the invoice job to try a failed e-invoice again at its next run (audited); one never issued
/// goes to the member's carrier as it is now.
#[utoipa::path(
    post, path = "/api/admin/invoices/{relate_number}/retry/", tag = "admin",
    params(("relate_number" = String, Path, description = "The invoice's RelateNumber")),
    responses(
        (status = 200, description = "Due now", body = AdminInvoiceView),
        OperatorAccess,
        (status = 404, description = "`invoice_not_found`", body = ErrorResponse),
        (status = 409, description = "`invoice_not_failed`", body = ErrorResponse),
        Contended,
    )
)]
async fn retry_invoice(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let relate_number = call.parse(
        "relate_number",
        |raw| {
            (!raw.is_empty() && raw.len() <= 30 && raw.bytes().all(|b| b.is_ascii_alphanumeric()))
                .then(|| raw.to_string())
        },
        || AppError::not_found("invoice_not_found", "no such invoice"),
    )?;
    json(
        StatusCode::OK,
        &ctx.invoices().retry(&admin, &relate_number).await?,
    )
}

/// Sets a merchant's commission (0–50 percent of each sale), audited. Lines already written keep
/// the rate they were written with.
#[utoipa::path(
    put, path = "/api/admin/merchants/{id}/commission/", tag = "admin",
    params(("id" = String, Path, description = "Merchant id")),
    request_body = CommissionRequest,
    responses(
        (status = 200, description = "The merchant's commission", body = CommissionView),
        (status = 400, description = "Malformed body, percent or reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "`merchant_not_found`", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn set_commission(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", UserId::parse, not_found::merchant)?;
    let request: CommissionRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements()
            .set_commission(&admin, &id, request)
            .await?,
    )
}

/// Cancels a completed order: the member gets its points back, nothing returns to stock, and a
/// reversal line (the sale's amounts negated) is owed back by the merchant. Audited.
#[utoipa::path(
    post, path = "/api/admin/orders/{id}/cancel/", tag = "admin",
    params(("id" = String, Path, description = "Order id")),
    request_body = CancelCompletedRequest,
    responses(
        (status = 200, description = "Cancelled", body = OrderView),
        (status = 400, description = "Malformed body or reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "`order_not_found`", body = ErrorResponse),
        (status = 409, description = "`order_not_completed`", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn cancel_completed_order(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", OrderId::parse, not_found::order)?;
    let request: CancelCompletedRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements()
            .cancel_completed(&admin, &id, request)
            .await?,
    )
}

/// Closes a period now: for every merchant, the lines available by the end of `period_end`
/// (Taipei) and in no statement go into the period's statement. Closing it again, even at the same
/// time, adds to the same statement, never a second one.
#[utoipa::path(
    post, path = "/api/admin/settlements/close/", tag = "admin",
    request_body = CloseRequest,
    responses(
        (status = 200, description = "The statements that got lines", body = CloseReport),
        (status = 400, description = "Malformed body or date", body = ErrorResponse),
        OperatorAccess,
        JsonBody,
        Contended,
    )
)]
async fn close_settlements(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let request: CloseRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements().close_period(request).await?,
    )
}

/// Statements in one state (`issued` unless asked), newest period first.
#[utoipa::path(
    get, path = "/api/admin/settlements/", tag = "admin",
    params(PageParams, ("state" = Option<StatementState>, Query, description = "issued (default), paid or failed")),
    responses(
        (status = 200, description = "One page", body = Page<StatementView>),
        (status = 400, description = "Invalid limit, cursor or state", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn list_settlements(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    let state = match query_param(req, "state").as_deref() {
        None | Some("issued") => StatementState::Issued,
        Some("paid") => StatementState::Paid,
        Some("failed") => StatementState::Failed,
        Some(_) => return Err(invalid_query("state", "must be issued, paid or failed")),
    };
    json(
        StatusCode::OK,
        &ctx.settlements().statements_in(state, &page).await?,
    )
}

/// One statement with its lines and the merchant's payout account in full.
#[utoipa::path(
    get, path = "/api/admin/settlements/{id}/", tag = "admin",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, description = "The statement", body = AdminStatementView),
        OperatorAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
    )
)]
async fn get_settlement(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    json(
        StatusCode::OK,
        &ctx.settlements().admin_statement(&id).await?,
    )
}

/// A statement as CSV (UTF-8 with BOM): `statement_id,period,order_number,completed_at,points,
/// gross_twd,commission_twd,net_twd,line_type`, times in Taipei.
#[utoipa::path(
    get, path = "/api/admin/settlements/{id}/export.csv", tag = "admin",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, description = "One row per line", content_type = "text/csv"),
        OperatorAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
    )
)]
async fn export_settlement(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    let csv = ctx.settlements().export_csv(&id, None).await?;
    shared::http::csv_download(&format!("statement-{id}.csv"), csv, "export.csv", None)
}

/// Records an issued statement's bank transfer: `paid`, with the reference shown on it. Audited.
#[utoipa::path(
    post, path = "/api/admin/settlements/{id}/paid/", tag = "admin",
    params(("id" = String, Path, description = "Statement id")),
    request_body = PaidRequest,
    responses(
        (status = 200, description = "Paid", body = StatementView),
        (status = 400, description = "Malformed body or reference", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
        (status = 409, description = "`statement_not_issued`", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn settlement_paid(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    let request: PaidRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.settlements().mark_paid(&admin, &id, request).await?,
    )
}

/// Records an issued statement's transfer as failed: its lines go back to the merchant's open
/// lines and into the next period's statement. Audited.
#[utoipa::path(
    post, path = "/api/admin/settlements/{id}/failed/", tag = "admin",
    params(("id" = String, Path, description = "Statement id")),
    responses(
        (status = 200, description = "Failed; its lines are open again", body = StatementView),
        OperatorAccess,
        (status = 404, description = "`statement_not_found`", body = ErrorResponse),
        (status = 409, description = "`statement_not_issued` (paid)", body = ErrorResponse),
        Contended,
    )
)]
async fn settlement_failed(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", parse_statement_id, not_found::statement)?;
    json(
        StatusCode::OK,
        &ctx.settlements().mark_failed(&admin, &id).await?,
    )
}

fn refund_not_found() -> AppError {
    AppError::not_found("refund_not_found", "no such refund")
}

/// Payments still waiting for ECPay, longest waiting for a check first (never checked, or checked
/// longest ago): the stuck ones first.
#[utoipa::path(
    get, path = "/api/admin/payments/", tag = "admin",
    params(PageParams, ("status" = Option<PaymentStatus>, Query, description = "Only `pending` (the default) is listed across members")),
    responses(
        (status = 200, description = "One page", body = Page<AdminPaymentView>),
        (status = 400, description = "Invalid limit, cursor or status", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn list_payments(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    let status = match query_param(req, "status").as_deref() {
        None => None,
        Some("pending") => Some(PaymentStatus::Pending),
        Some("paid") => Some(PaymentStatus::Paid),
        Some("failed") => Some(PaymentStatus::Failed),
        Some("expired") => Some(PaymentStatus::Expired),
        Some(_) => {
            return Err(invalid_query(
                "status",
                "must be pending, paid, failed or expired",
            ))
        }
    };
    json(StatusCode::OK, &ctx.admin().payments(status, &page).await?)
}

/// Asks ECPay (QueryTradeInfo) about one payment now and settles it exactly as the scheduled
/// reconciliation would: credited once if paid, expired if unpaid past the checkout window.
#[utoipa::path(
    post, path = "/api/admin/payments/{merchant_trade_no}/reconcile/", tag = "admin",
    params(("merchant_trade_no" = String, Path, description = "The payment's MerchantTradeNo")),
    responses(
        (status = 200, description = "What ECPay said and what was done", body = ReconcileAnswer),
        OperatorAccess,
        (status = 404, description = "No such payment", body = ErrorResponse),
        (status = 409, description = "`payment_settled`: already paid", body = ErrorResponse),
        (status = 503, description = "ECPay asked us to slow down, or contended; retry after `Retry-After` seconds", body = ErrorResponse),
    )
)]
async fn reconcile_payment(ctx: &AppContext, _req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let trade_no = call.parse(
        "merchant_trade_no",
        MerchantTradeNo::parse,
        not_found::payment,
    )?;
    json(
        StatusCode::OK,
        &ctx.admin().reconcile(&admin, &trade_no).await?,
    )
}

/// Every order, newest first for one member or merchant; with neither, the whole table's orders
/// in table order (a bounded scan: a page may be short, follow `next_cursor`).
#[utoipa::path(
    get, path = "/api/admin/orders/", tag = "admin",
    params(
        PageParams,
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status"),
        ("merchant_id" = Option<String>, Query, description = "Only orders on this merchant's products",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
        ("member_id" = Option<String>, Query, description = "Only this member's orders",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    ),
    responses(
        (status = 200, description = "One page", body = Page<OrderView>),
        (status = 400, description = "Invalid limit, cursor, status or id", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn list_orders(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    let status = order_status_param(req)?;
    let merchant = id_query_param(req, "merchant_id")?;
    let member = id_query_param(req, "member_id")?;
    json(
        StatusCode::OK,
        &ctx.admin().orders(status, merchant, member, &page).await?,
    )
}

/// Takes any merchant's product off the catalogue (its orders keep pointing at it) until an operator
/// reinstates it: its merchant cannot put it back on sale (409 `product_blocked`).
#[utoipa::path(
    post, path = "/api/admin/products/{id}/deactivate/", tag = "admin",
    params(("id" = String, Path, description = "Product id")),
    request_body = ActivationRequest,
    responses(
        (status = 200, description = "Off the catalogue (or already was)", body = MerchantProduct),
        (status = 400, description = "Malformed body or missing reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "No such product", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn deactivate_product(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    let request: ActivationRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.admin().deactivate_product(&admin, &id, request).await?,
    )
}

/// Lifts an operator's takedown: the product returns to sale if its merchant still lists it and
/// their account is enabled. Not taken down changes nothing and logs nothing.
#[utoipa::path(
    post, path = "/api/admin/products/{id}/reinstate/", tag = "admin",
    params(("id" = String, Path, description = "Product id")),
    request_body = ActivationRequest,
    responses(
        (status = 200, description = "The takedown lifted (or there was none)", body = MerchantProduct),
        (status = 400, description = "Malformed body or missing reason", body = ErrorResponse),
        OperatorAccess,
        (status = 404, description = "No such product", body = ErrorResponse),
        JsonBody,
        Contended,
    )
)]
async fn reinstate_product(ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    let admin = call.user_id()?;
    let id = call.parse("id", ProductId::parse, not_found::product)?;
    let request: ActivationRequest = parse_json(req)?;
    json(
        StatusCode::OK,
        &ctx.admin().reinstate_product(&admin, &id, request).await?,
    )
}

/// Every operator action, newest first: who, what, target, before → after, reason, when.
/// Append-only: there is no route that changes or removes an entry.
#[utoipa::path(
    get, path = "/api/admin/audit/", tag = "admin",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = Page<AuditView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        OperatorAccess,
    )
)]
async fn audit_log(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let page = page_request(req)?;
    json(StatusCode::OK, &ctx.admin().audit(&page).await?)
}

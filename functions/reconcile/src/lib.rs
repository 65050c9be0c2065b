//! The scheduled reconciliation job: EventBridge Scheduler invokes it every few minutes (and the
//! local host runs the same job on a timer). It finds payments ECPay never told us about — a lost
//! notification, an abandoned checkout — and settles them by asking ECPay (see
//! `RechargeService::reconcile`). The same schedule does the fulfilment work that is due
//! (`run_fulfilment`): pickups nobody collected in time are cancelled with a full refund, shipped
//! deliveries nobody confirmed complete, and ended deliveries' addresses are redacted; then refunds,
//! e-invoices, promotional expiry and the month-end close. Its answer is the run's report, also
//! logged.

use shared::services::deliveries::FulfilmentReport;
use shared::services::invoice_job::InvoiceReport;
use shared::services::points::ExpiryReport;
use shared::services::recharge::ReconcileReport;
use shared::services::refund_job::RefundReport;
use shared::services::settlements::CloseReport;
use shared::{AppContext, AppError};

/// One reconciliation run, with its metrics emitted as one EMF line.
pub async fn run(ctx: &AppContext) -> Result<ReconcileReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.recharge().reconcile()).await
}

/// One pass over the fulfilment work that is due, bounded per run (`FULFILMENT_BATCH`).
pub async fn run_fulfilment(ctx: &AppContext) -> Result<FulfilmentReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.orders().fulfilment_due()).await
}

/// One pass over the refunds that are due: their NT$ back to the members' cards through ECPay.
pub async fn run_refunds(ctx: &AppContext) -> Result<RefundReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.refunds().process_due()).await
}

/// One pass over the e-invoices with a call due (`INVOICE_MODE`): issued, voided and allowed through
/// ECPay's B2C invoice API, after the fact and never in a sale's path.
pub async fn run_invoices(ctx: &AppContext) -> Result<InvoiceReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.invoices().process_due()).await
}

/// One pass over the gifts of promotional points whose end has come (`PROMOTIONAL_POINTS_EXPIRE_DAYS`).
pub async fn run_expiry(ctx: &AppContext) -> Result<ExpiryReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.points().expire_gifts()).await
}

/// The month-end close: the first run after a month ends (Taipei) makes every merchant's statement
/// of its available lines.
pub async fn run_settlements(ctx: &AppContext) -> Result<CloseReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.settlements().close_last_month()).await
}

/// Webhook deliveries whose next attempt is further away than SQS can hold a message (over 15
/// minutes: the 30-minute to 10-hour retries), handed to the queue as it nears.
pub async fn run_webhooks(
    ctx: &AppContext,
) -> Result<shared::services::webhook_delivery::DueReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.webhooks().run_due()).await
}

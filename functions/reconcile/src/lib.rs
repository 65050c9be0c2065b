//! The scheduled reconciliation job: EventBridge Scheduler invokes it every few minutes (and the
//! local host runs the same job on a timer). It finds payments ECPay never told us about — a lost
//! notification, an abandoned checkout — and settles them by asking ECPay (see
//! `RechargeService::reconcile`). Its answer is the run's report, also logged.

use shared::services::recharge::ReconcileReport;
use shared::{AppContext, AppError};

/// One run, with its metrics emitted as one EMF line.
pub async fn run(ctx: &AppContext) -> Result<ReconcileReport, AppError> {
    shared::observe::in_job(&ctx.metrics, ctx.recharge().reconcile()).await
}

//! What the host runs on timers, standing in for AWS: DynamoDB's TTL sweep, and the scheduled
//! reconciliation, refund, e-invoice and fulfilment work (`fn-reconcile`, run by EventBridge Scheduler on AWS).

use std::sync::Arc;
use std::time::Duration;

use local_api::LocalApi;

/// How often expired items are swept (DynamoDB deletes them within days; the emulator never does).
const TTL_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The emulator never expires TTL items on its own; AWS does, so the host sweeps on a timer.
pub fn spawn_ttl_sweeper(database: dynoxide::Database) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TTL_SWEEP_EVERY);
        loop {
            interval.tick().await;
            let db = database.clone();
            match tokio::task::spawn_blocking(move || db.sweep_ttl()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => tracing::info!(deleted, "swept expired items"),
                Ok(Err(err)) => tracing::warn!(error = %err, "TTL sweep failed"),
                Err(err) => tracing::warn!(error = %err, "TTL sweep task failed"),
            }
        }
    });
}

/// A positive number of seconds from `name`, else `default`.
fn interval_from(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(format!(
                "{name} must be a positive number of seconds, got {raw:?}"
            )),
        },
        _ => Ok(Duration::from_secs(default)),
    }
}

/// `RECONCILE_INTERVAL_SECONDS` (default 300): how often the host runs the reconciliation job that
/// EventBridge Scheduler runs on AWS.
pub fn reconcile_interval() -> Result<Duration, String> {
    interval_from("RECONCILE_INTERVAL_SECONDS", 300)
}

/// `FULFILMENT_INTERVAL_SECONDS` (default 300): how often the host does the fulfilment work that
/// is due (the same scheduled function does it on AWS, every 5 minutes).
pub fn fulfilment_interval() -> Result<Duration, String> {
    interval_from("FULFILMENT_INTERVAL_SECONDS", 300)
}

/// The scheduled reconciliation (`fn-reconcile` on AWS), on a timer, through the same code.
pub fn spawn_reconciler(api: Arc<LocalApi>, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(err) = fn_reconcile::run(&api.ctx).await {
                tracing::warn!(error = %err, "reconciliation run failed");
            }
            match fn_reconcile::run_refunds(&api.ctx).await {
                Ok(report) if report.refunded + report.failed > 0 => tracing::info!(
                    refunded = report.refunded,
                    failed = report.failed,
                    "refunds worked on"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "refund run failed"),
            }
            match fn_reconcile::run_invoices(&api.ctx).await {
                Ok(report) if report != Default::default() => tracing::info!(
                    issued = report.issued,
                    voided = report.voided,
                    allowed = report.allowed,
                    failed = report.failed,
                    waiting = report.waiting,
                    "e-invoices worked on"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "invoice run failed"),
            }
            match fn_reconcile::run_expiry(&api.ctx).await {
                Ok(report) if report.gifts > 0 => tracing::info!(
                    gifts = report.gifts,
                    points = report.points,
                    "promotional points expired"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "expiry run failed"),
            }
            match fn_reconcile::run_webhooks(&api.ctx).await {
                Ok(report) if report.queued > 0 => {
                    tracing::info!(queued = report.queued, "webhook retries queued")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "webhook retries failed"),
            }
            match fn_reconcile::run_settlements(&api.ctx).await {
                Ok(report) if !report.statements.is_empty() => tracing::info!(
                    statements = report.statements.len(),
                    "month-end statements made"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "month-end settlement failed"),
            }
        }
    });
}

/// The scheduled fulfilment work (expired pickups, unconfirmed deliveries, addresses to redact),
/// on its own timer, through the same code as `fn-reconcile`'s.
pub fn spawn_fulfilment(api: Arc<LocalApi>, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            interval.tick().await;
            match fn_reconcile::run_fulfilment(&api.ctx).await {
                Ok(report) if report != Default::default() => tracing::info!(
                    pickups_cancelled = report.pickups.cancelled,
                    deliveries_completed = report.deliveries.completed,
                    addresses_redacted = report.deliveries.redacted,
                    "fulfilment work done"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "fulfilment run failed"),
            }
        }
    });
}

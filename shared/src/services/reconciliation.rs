//! The reconciliation job: open payments, longest waiting first, each asked about with
//! QueryTradeInfo and settled the way ECPay's answer says; one still open goes to the back of the
//! queue.

use serde::Serialize;
use utoipa::ToSchema;

use super::ecpay_query::QueryFailure;
use super::recharge::RechargeService;
use crate::domain::{Payment, Settlement};
use crate::error::AppError;
use crate::store::{GatewayRecord, Lease};

/// The job's name in its lease item.
const RECONCILE_JOB: &str = "reconcile";
/// How long a run holds the lease at most: past the function's 180 s timeout (a run cut off there
/// cannot hand it back), within the 5-minute schedule (the next run is not kept out).
const RECONCILE_LEASE_SECS: i64 = 240;

/// What one reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// Open payments looked at.
    pub checked: u32,
    /// Found paid at ECPay and credited now.
    pub credited: u32,
    /// Found paid, but credited meanwhile by its notification (or another run).
    pub already_paid: u32,
    /// Unpaid past the checkout window: marked expired.
    pub expired: u32,
    /// Unpaid, still within the window: left open.
    pub still_open: u32,
    /// Paid at ECPay for another amount, or an answer that failed verification: left open, warned.
    pub suspicious: u32,
    /// Queries that failed (network, ECPay's errors).
    pub failed: u32,
    /// The run stopped early because ECPay refuses queries for now.
    pub cooling_down: bool,
    /// Another run held the lease (one run at a time across every instance): this one did nothing.
    pub skipped: bool,
}

/// How reconciling one payment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Credited,
    AlreadyPaid,
    Expired,
    StillOpen,
    Suspicious,
    Failed,
    CoolingDown,
}

impl RechargeService<'_> {
    /// One reconciliation run: open payments older than `RECONCILE_AFTER_SECONDS`, oldest first, at
    /// most `RECONCILE_BATCH`, each checked with QueryTradeInfo (spaced out): paid ones are credited
    /// through the same path as a notification, unpaid ones past the checkout window expire.
    /// One run at a time across every instance and function: the run holds the job's lease in the
    /// table (see `store::job_lease`), and a run that finds it held does nothing.
    pub async fn reconcile(&self) -> Result<ReconcileReport, AppError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now().timestamp();
        let until = now + RECONCILE_LEASE_SECS;
        if let Lease::Held { until } = self
            .store
            .take_job_lease(RECONCILE_JOB, &holder, now, until)
            .await?
        {
            tracing::info!(
                until,
                "another reconciliation run holds the lease: nothing to do"
            );
            return Ok(ReconcileReport {
                skipped: true,
                ..ReconcileReport::default()
            });
        }
        let report = self.reconcile_batch().await;
        let returned = self
            .store
            .return_job_lease(RECONCILE_JOB, &holder, self.clock.now().timestamp())
            .await;
        if let Err(err) = returned {
            // It runs out by itself at `until`.
            tracing::warn!(error = %err, until, "could not hand the reconciliation lease back");
        }
        report
    }

    async fn reconcile_batch(&self) -> Result<ReconcileReport, AppError> {
        let now = self.clock.now();
        let cutoff = now
            - chrono::Duration::from_std(self.payments.reconcile_after)
                .map_err(AppError::internal)?;
        let open = self
            .store
            .open_payments(cutoff, self.payments.reconcile_batch)
            .await?;
        let mut report = ReconcileReport::default();
        for payment in &open {
            report.checked += 1;
            match self.reconcile_payment(payment).await? {
                Reconciled::Credited => report.credited += 1,
                Reconciled::AlreadyPaid => report.already_paid += 1,
                Reconciled::Expired => report.expired += 1,
                Reconciled::StillOpen => report.still_open += 1,
                Reconciled::Suspicious => report.suspicious += 1,
                Reconciled::Failed => report.failed += 1,
                Reconciled::CoolingDown => {
                    report.cooling_down = true;
                    break;
                }
            }
        }
        tracing::info!(?report, "reconciliation run");
        Ok(report)
    }

    /// Checks one open payment with ECPay and settles it if ECPay's answer says how.
    ///
    /// A payment that stays open (unpaid within its window, an answer refused, ECPay unreachable)
    /// goes to the back of the queue: the next runs take the payments that waited longest, so a
    /// backlog of open payments cannot keep anyone's lost payment from being checked.
    pub async fn reconcile_payment(&self, payment: &Payment) -> Result<Reconciled, AppError> {
        let result = self.check_payment(payment).await?;
        if matches!(
            result,
            Reconciled::StillOpen | Reconciled::Suspicious | Reconciled::Failed
        ) {
            self.store
                .requeue_payment(&payment.merchant_trade_no, self.clock.now())
                .await?;
        }
        Ok(result)
    }

    async fn check_payment(&self, payment: &Payment) -> Result<Reconciled, AppError> {
        let trade_no = &payment.merchant_trade_no;
        let info = match self.query_trade(trade_no).await {
            Ok(info) => info,
            Err(QueryFailure::CoolingDown { .. } | QueryFailure::Paced { .. }) => {
                return Ok(Reconciled::CoolingDown)
            }
            Err(QueryFailure::Rejected(reason)) => {
                tracing::warn!(merchant_trade_no = %trade_no, %reason, "QueryTradeInfo answer refused");
                crate::observe::count(crate::observe::Metric::GatewayAnswersRefused, 1.0);
                return Ok(Reconciled::Suspicious);
            }
            Err(QueryFailure::Unreachable(problem)) => {
                tracing::warn!(merchant_trade_no = %trade_no, %problem, "QueryTradeInfo failed");
                return Ok(Reconciled::Failed);
            }
        };
        let message = format!("TradeStatus {}", info.trade_status);
        if info.is_paid() {
            if info.trade_amount != payment.amount {
                tracing::warn!(
                    merchant_trade_no = %trade_no,
                    paid = info.trade_amount,
                    expected = payment.amount,
                    "ECPay reports another amount paid: left open for a person to check"
                );
                crate::observe::count(crate::observe::Metric::GatewayAnswersRefused, 1.0);
                self.audit(
                    trade_no,
                    "query",
                    info.fields,
                    "refused: amount mismatch".into(),
                )
                .await;
                return Ok(Reconciled::Suspicious);
            }
            let credited_record = GatewayRecord {
                source: "query".into(),
                fields: info.fields.clone(),
                verdict: "credited".into(),
                at: self.clock.now(),
            };
            let settlement = self
                .credit(
                    payment,
                    None,
                    Some(&credited_record),
                    &info.trade_no,
                    &info.payment_date,
                    &message,
                )
                .await?;
            if matches!(settlement, Settlement::Credited { .. }) {
                return Ok(Reconciled::Credited);
            }
            self.audit(trade_no, "query", info.fields, "repeat".into())
                .await;
            return Ok(Reconciled::AlreadyPaid);
        }
        let window = chrono::Duration::from_std(self.payments.checkout_window)
            .map_err(AppError::internal)?;
        if self.clock.now() - payment.created_at > window {
            self.store
                .expire_payment(payment, &format!("{message}: expired unpaid"))
                .await?;
            self.audit(trade_no, "query", info.fields, "expired".into())
                .await;
            Ok(Reconciled::Expired)
        } else {
            self.store
                .record_gateway_message(trade_no, &message)
                .await?;
            self.audit(trade_no, "query", info.fields, "unpaid".into())
                .await;
            Ok(Reconciled::StillOpen)
        }
    }
}

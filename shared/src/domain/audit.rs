//! The operators' audit trail: every admin action, who did it, to what, the state before and after,
//! and why. Append-only: entries are only ever created, in the same transaction as the change they
//! record (see `store::admin`).

use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    AdminCreated,
    UserDisabled,
    UserEnabled,
    PointsAdjusted,
    PaymentReconciled,
    ProductDeactivated,
    /// An operator lifted their takedown (the product returns to sale if its merchant lists it).
    ProductReinstated,
    /// An operator asked the job to work on a refund again now.
    RefundRetried,
    /// An operator closed a refund by recording a bank transfer made by hand.
    RefundClosedManually,
    /// An operator set a merchant's commission.
    CommissionSet,
    /// An operator cancelled a completed order (the member refunded, a reversal line written).
    CompletedOrderCancelled,
    /// An operator recorded a statement's bank transfer.
    StatementPaid,
    /// An operator recorded a statement's transfer as failed (its lines go to the next period).
    StatementFailed,
    /// A merchant changed their payout account.
    PayoutAccountChanged,
    /// An operator asked the invoice job to try a failed e-invoice again.
    InvoiceRetried,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Time-ordered (UUID v7): the log's order.
    pub id: String,
    /// The operator; for `admin_created` by the command line, the new admin themselves.
    pub admin_id: String,
    pub action: AuditAction,
    /// What was acted on, as `kind:id` (`user:…`, `member:…`, `payment:…`, `product:…`).
    pub target: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub reason: Option<String>,
    pub at: Timestamp,
}

impl AuditEntry {
    pub fn new(
        admin_id: &UserId,
        action: AuditAction,
        target: String,
        before: serde_json::Value,
        after: serde_json::Value,
        reason: Option<String>,
        at: Timestamp,
    ) -> Self {
        AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            admin_id: admin_id.to_string(),
            action,
            target,
            before,
            after,
            reason,
            at,
        }
    }
}

/// Reasons are required for changes to money and access, and bounded.
pub const REASON_MAX: usize = 500;

/// The bound on one adjustment, either way: a correction, not a minting press.
pub const ADJUSTMENT_MAX: i64 = 10_000_000;

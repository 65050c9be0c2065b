use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum TransactionType {
    Recharge,
    Spend,
    Refund,
    /// An operator's correction, positive or negative, always with a reason.
    Adjustment,
    /// Promotional points past `PROMOTIONAL_POINTS_EXPIRE_DAYS` (negative; never purchased ones).
    Expiry,
}

/// One row of a member's append-only points ledger. `amount` is signed: positive for RECHARGE and
/// REFUND, negative for SPEND, either for ADJUSTMENT, so the balance is the plain sum of the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointTransaction {
    pub id: String,
    pub member_id: UserId,
    pub transaction_type: TransactionType,
    pub amount: i64,
    /// Of `amount`, what moved of the member's purchased points, and of their promotional points
    /// (signed; the two sum to `amount`).
    pub purchased: i64,
    pub promotional: i64,
    pub balance_after: i64,
    pub payment_id: Option<String>,
    pub order_id: Option<String>,
    /// ADJUSTMENT only: why, and which operator made it.
    pub reason: Option<String>,
    pub adjusted_by: Option<String>,
    /// REFUND rows of a refund to the card (negative: points handed back for money; positive: a
    /// failed refund's points returned). REFUND rows with `order_id` are cancelled orders'.
    pub refund_id: Option<String>,
    pub created_at: Timestamp,
}

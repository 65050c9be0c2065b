use serde::{Deserialize, Serialize};

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Failed,
}

/// A member's purchase of points through ECPay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    /// Ours, unique, never reused: ECPay refuses a MerchantTradeNo it has seen.
    pub merchant_trade_no: String,
    pub member_id: String,
    /// TWD.
    pub amount: i64,
    pub points: i64,
    pub status: PaymentStatus,
    pub action_url: String,
    /// The signed AioCheckOut form, kept so the checkout link can serve it again.
    pub checkout_fields: std::collections::BTreeMap<String, String>,
    /// ECPay's own trade number, from the notification.
    pub trade_no: Option<String>,
    /// ECPay's PaymentDate (Taipei time, as ECPay writes it).
    pub payment_date: Option<String>,
    pub paid_at: Option<Timestamp>,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
}

/// What the store did with a notification for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Credited now: the new balance.
    Credited {
        balance_after: i64,
    },
    MarkedFailed,
    /// Already paid or failed earlier: nothing changed.
    AlreadySettled(PaymentStatus),
}

use serde::{Deserialize, Serialize};

use super::{MerchantTradeNo, Points, Timestamp, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Waiting for ECPay. A failure notification does not end this: ECPay calls non-1 codes
    /// "abnormal", and a later verified success still credits.
    Pending,
    Paid,
    /// Only on payments settled before failures stopped being final; never set any more.
    Failed,
    /// Unpaid past the checkout window, as reconciliation found. A verified success arriving later
    /// still credits (the member paid).
    Expired,
}

impl PaymentStatus {
    /// The stored and serialised name (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
        }
    }
}

/// A member's purchase of points through ECPay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    /// Ours, unique, never reused: ECPay refuses a MerchantTradeNo it has seen.
    pub merchant_trade_no: MerchantTradeNo,
    pub member_id: UserId,
    /// TWD.
    pub amount: i64,
    pub points: Points,
    pub status: PaymentStatus,
    pub action_url: String,
    /// The signed AioCheckOut form, kept so the checkout link can serve it again.
    pub checkout_fields: std::collections::BTreeMap<String, String>,
    /// ECPay's own trade number, from the notification.
    pub trade_no: Option<String>,
    /// ECPay's PaymentDate (Taipei time, as ECPay writes it).
    pub payment_date: Option<String>,
    pub paid_at: Option<Timestamp>,
    /// The last `RtnCode: RtnMsg` ECPay sent or answered for this trade.
    pub last_gateway_message: Option<String>,
    /// For a re-opened checkout: the MerchantTradeNo of the recharge it belongs to. Every checkout
    /// attempt has its own MerchantTradeNo (ECPay refuses one it has seen), all sharing `id`.
    pub attempt_of: Option<MerchantTradeNo>,
    /// On the recharge's first payment: how many further checkout attempts were opened.
    pub attempts: u32,
    /// On the recharge's first payment: how many of its attempts were paid.
    pub paid_attempts: u32,
    /// On the recharge's first payment: when its checkout link was first opened (that opening
    /// checks out with this payment's own MerchantTradeNo; later ones make attempts).
    pub opened_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Payment {
    /// The MerchantTradeNo of the recharge this attempt belongs to (its own for the first).
    pub fn origin(&self) -> &str {
        self.attempt_of
            .as_deref()
            .unwrap_or(&self.merchant_trade_no)
    }
}

/// What the store did with a notification for a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Credited now: the new balance.
    Credited {
        balance_after: i64,
        /// The payment had been given up on (expired or failed) when the money arrived.
        after_failure: bool,
    },
    /// A failure or an abnormal code was recorded; the payment stays open.
    Recorded,
    /// Already paid or failed earlier: nothing changed.
    AlreadySettled(PaymentStatus),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_is_stored_as_serde_writes_it() {
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Paid,
            PaymentStatus::Failed,
            PaymentStatus::Expired,
        ] {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::String(status.as_str().into()))
            );
        }
    }
}

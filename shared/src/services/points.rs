//! Members' points as they read them: the balance and the ledger. How points move is the domain's
//! ([`crate::domain::AccountSnapshot::apply`]); buying them is [`super::recharge`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{PointTransaction, TransactionType, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointsBalance {
    /// `purchased + promotional`.
    pub balance: i64,
    /// Points bought through ECPay: stored value that never expires and may be refunded.
    pub purchased: i64,
    /// Points given (operators' adjustments, campaigns): spent first, never refunded.
    pub promotional: i64,
    /// What refunding every purchased point would pay back now, in whole NT$ (after the refund fee).
    pub refundable_twd: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub transaction_type: TransactionType,
    /// Signed: positive for RECHARGE, negative for SPEND, either for REFUND and ADJUSTMENT.
    pub amount: i64,
    /// Of `amount`, what moved of the purchased points and of the promotional points (signed).
    pub purchased: i64,
    pub promotional: i64,
    pub balance_after: i64,
    /// The payment's MerchantTradeNo, for RECHARGE rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// For SPEND rows, and REFUND rows of a cancelled order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// For REFUND rows of a refund to the card: negative when the points were handed in, positive
    /// when a failed refund gave them back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// For ADJUSTMENT rows: the operator's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<PointTransaction> for LedgerEntry {
    fn from(t: PointTransaction) -> Self {
        LedgerEntry {
            id: t.id,
            transaction_type: t.transaction_type,
            amount: t.amount,
            purchased: t.purchased,
            promotional: t.promotional,
            balance_after: t.balance_after,
            payment_id: t.payment_id,
            order_id: t.order_id,
            refund_id: t.refund_id,
            reason: t.reason,
            created_at: t.created_at,
        }
    }
}

pub struct PointsService<'a> {
    pub store: &'a Store,
    pub payments: &'a crate::config::PaymentsConfig,
}

impl PointsService<'_> {
    pub async fn balance(&self, member_id: &UserId) -> Result<PointsBalance, AppError> {
        let account = self
            .store
            .get_point_account(member_id)
            .await?
            .ok_or_else(|| AppError::internal("member without a point account"))?;
        Ok(PointsBalance {
            balance: account.balance,
            purchased: account.purchased,
            promotional: account.promotional,
            refundable_twd: crate::domain::account::refundable_twd(
                account.purchased,
                self.payments.points_per_twd,
                self.payments.refund_fee_percent,
            ),
            total_earned: account.total_earned,
            total_spent: account.total_spent,
        })
    }

    pub async fn ledger(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, AppError> {
        Ok(self
            .store
            .list_ledger(member_id, page)
            .await?
            .map(LedgerEntry::from))
    }
}

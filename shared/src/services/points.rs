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
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub transaction_type: TransactionType,
    /// Signed: positive for RECHARGE and REFUND, negative for SPEND, either for ADJUSTMENT.
    pub amount: i64,
    pub balance_after: i64,
    /// The payment's MerchantTradeNo, for RECHARGE rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// For SPEND and REFUND rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
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
            balance_after: t.balance_after,
            payment_id: t.payment_id,
            order_id: t.order_id,
            reason: t.reason,
            created_at: t.created_at,
        }
    }
}

pub struct PointsService<'a> {
    pub store: &'a Store,
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

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
    /// For ADJUSTMENT rows: the operator's reason; for EXPIRY rows, which gift expired.
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
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

/// What one pass over expiring gifts did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryReport {
    /// Gifts that reached their end (some may have been spent already).
    pub gifts: u32,
    /// Promotional points taken off balances.
    pub points: i64,
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

impl PointsService<'_> {
    /// Expires the gifts of promotional points whose end has come, soonest first, at most a batch
    /// per run: of each, what is still held (promotional points are spent oldest first, so only
    /// what the account holds beyond later gifts), as an EXPIRY ledger row in the transaction
    /// that takes the gift off its queue. Purchased points are never touched.
    pub async fn expire_gifts(&self) -> Result<ExpiryReport, AppError> {
        let mut report = ExpiryReport::default();
        let due_by = self.clock.now() + chrono::Duration::milliseconds(1);
        let batch = self.payments.reconcile_batch.max(1);
        for gift in self.store.gifts_expiring(due_by, batch).await? {
            let mut budget = super::retry::RetryBudget::new();
            loop {
                let account = self
                    .store
                    .account_snapshot(&gift.member_id)
                    .await?
                    .ok_or_else(|| AppError::internal("member without a point account"))?;
                let expiring = crate::domain::account::expiring_points(
                    gift.granted,
                    account.promotional,
                    account.promotional_granted - gift.granted_total,
                );
                let reason = format!(
                    "promotional points given by ledger row {} expired",
                    gift.gift_id
                );
                let change = match crate::domain::Points::new(expiring) {
                    Some(points) => Some(
                        account
                            .apply(
                                &gift.member_id,
                                crate::domain::Movement::Expiry {
                                    points,
                                    gift: &reason,
                                },
                                uuid::Uuid::now_v7().to_string(),
                                self.clock.now(),
                            )
                            .map_err(|e| AppError::internal(e.to_string()))?,
                    ),
                    None => None,
                };
                match self.store.expire_gift(&gift, change.as_ref()).await? {
                    crate::store::GiftExpiry::Done => {
                        report.gifts += 1;
                        report.points += change.map(|c| -c.entry.amount).unwrap_or(0);
                        break;
                    }
                    crate::store::GiftExpiry::AccountChanged
                    | crate::store::GiftExpiry::Contended => budget.lost().await?,
                }
            }
        }
        Ok(report)
    }
}

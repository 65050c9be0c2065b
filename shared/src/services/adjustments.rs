//! An operator corrects a member's balance: an ADJUSTMENT ledger row with the reason and the
//! operator, and the audit entry, in one transaction; never below zero; with an Idempotency-Key
//! scoped to the member adjusted, a repeat (by any operator) returns the first answer.

use serde::Deserialize;
use utoipa::ToSchema;

use super::admin::{required_reason, AdminService};
use super::idempotency::{check_idempotency_key, claim, request_hash, same_request};
use super::points::LedgerEntry;
use super::retry::RetryBudget;
use crate::domain::audit::ADJUSTMENT_MAX;
use crate::domain::{AuditAction, AuditEntry, Movement, Refusal, Role, UserId};
use crate::error::{not_found, AppError, FieldCheck, FieldErrors};
use crate::store::{AdjustOutcome, ExpiringGift};

/// A correction of a member's balance.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct AdjustmentRequest {
    /// Points to add (positive) or remove (negative); never zero, at most 10,000,000 either way.
    #[schema(value_type = i64, required = true, minimum = -10000000, maximum = 10000000, example = 500)]
    pub amount: Option<i64>,
    /// 1–500 characters, shown to the member on the ledger row.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, example = "goodwill: parcel lost")]
    pub reason: Option<String>,
}

/// An adjustment made, or the replay of the first answer to the same Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adjustment {
    Made(LedgerEntry),
    /// The first answer's JSON body, verbatim.
    Replayed(String),
}

impl AdminService<'_> {
    /// Adds `amount` points to (or removes them from) a member's balance, with an ADJUSTMENT ledger
    /// row carrying the reason and the operator, and the audit entry: one transaction, retried on
    /// a concurrent balance change; never below zero (409 `insufficient_points`). With an
    /// Idempotency-Key, a repeat of the same request returns the first answer and changes nothing.
    pub async fn adjust_points(
        &self,
        admin_id: &UserId,
        member_id: &UserId,
        request: AdjustmentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Adjustment, AppError> {
        let mut check = FieldCheck::new();
        let amount = check
            .required("amount", request.amount)
            .parse(&mut check, |amount| {
                // `unsigned_abs`: `abs` of i64::MIN overflows.
                std::num::NonZeroI64::new(amount)
                    .filter(|a| a.get().unsigned_abs() <= ADJUSTMENT_MAX.unsigned_abs())
                    .ok_or_else(|| {
                        format!("must be a non-zero whole number within ±{ADJUSTMENT_MAX}")
                    })
            });
        let reason = required_reason(&mut check, request.reason);
        let (amount, reason) = check.finish_with((amount, reason))?;
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }
        let body_hash = request_hash(&format!("{member_id}\n{amount}\n{reason}"));
        let mut budget = RetryBudget::new();
        loop {
            let now = self.clock.now();
            let reads = self
                .store
                .adjustment_reads(member_id, idempotency_key, now.timestamp())
                .await?;
            if let Some((stored_hash, response)) = reads.replay {
                same_request(&stored_hash, &body_hash)?;
                return Ok(Adjustment::Replayed(response));
            }
            let (Some(member), Some(account)) = (reads.member, reads.account) else {
                return Err(not_found::member());
            };
            if member.role != Role::Member {
                return Err(not_found::member());
            }
            // Never below zero: the domain's rule, applied to the account as read.
            let change = account
                .apply(
                    member_id,
                    Movement::Adjustment {
                        delta: amount,
                        reason: &reason,
                        operator: admin_id,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| {
                    let mut fields = FieldErrors::new();
                    fields.insert("balance".into(), account.balance.to_string());
                    AppError::Conflict {
                        code: "insufficient_points",
                        message: match refusal {
                            Refusal::Overdraft { balance, .. } => format!(
                                "the member holds {balance} points; removing {} would go below zero",
                                -amount
                            ),
                            Refusal::OutOfRange | Refusal::NotRefundable { .. } => {
                                "the adjusted balance would be out of range".to_string()
                            }
                        },
                        fields,
                    }
                })?;
            let (entry, balance_after) = (&change.entry, change.next.balance);
            let audit = AuditEntry::new(
                admin_id,
                AuditAction::PointsAdjusted,
                format!("member:{member_id}"),
                serde_json::json!({"balance": account.balance}),
                serde_json::json!({"balance": balance_after, "amount": amount}),
                Some(reason.clone()),
                now,
            );
            let view = LedgerEntry::from(entry.clone());
            let claim = idempotency_key
                .map(|key| claim(key, &body_hash, &view, now))
                .transpose()?;
            // A gift with an end: queued to expire in the same transaction.
            let expiry = match self.recharge.payments.promotional_expire_days {
                Some(days) if amount.get() > 0 => Some(ExpiringGift {
                    member_id: member_id.clone(),
                    gift_id: change.entry.id.clone(),
                    granted: amount.get(),
                    granted_total: change.next.promotional_granted,
                    expires_at: now + chrono::Duration::days(i64::from(days)),
                }),
                _ => None,
            };
            match self
                .store
                .adjust_points(&change, &audit, claim.as_ref(), expiry.as_ref())
                .await?
            {
                AdjustOutcome::Applied => return Ok(Adjustment::Made(view)),
                // The next read finds the winner's stored answer; a key that keeps refusing
                // spends the budget like any other lost attempt (never a loop without end).
                AdjustOutcome::IdempotencyKeyUsed => budget.lost().await?,
                AdjustOutcome::AccountChanged | AdjustOutcome::Contended => budget.lost().await?,
            }
        }
    }
}

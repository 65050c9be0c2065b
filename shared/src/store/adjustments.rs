//! An operator's adjustment of a member's balance: its one read (the member, the account, the
//! Idempotency-Key scoped to the member) and its one transaction (the account, the ledger row, the
//! audit entry, the key).

use super::idempotency::{claim_put, IdempotencyClaim};
use super::keys::*;
use super::points::AccountSnapshot;
use super::users::UserRecord;
use super::{from_item, Store, TransactionAttempt};
use crate::domain::{AuditEntry, BalanceChange, User, UserId};
use crate::error::AppError;

/// One attempt at a points adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    Applied,
    /// The account changed since it was read: read again.
    AccountChanged,
    /// Another request with the same Idempotency-Key committed first.
    IdempotencyKeyUsed,
    Contended,
}

/// What an adjustment reads first, in one strongly consistent `BatchGetItem`.
#[derive(Debug, Clone)]
pub struct AdjustmentReads {
    pub member: Option<User>,
    pub account: Option<AccountSnapshot>,
    /// (body hash, first response) stored for the operator's Idempotency-Key, unless expired.
    pub replay: Option<(String, String)>,
}

/// Transaction item positions of an adjustment (cancellation reasons are read by position).
mod adjustment_item {
    pub const ACCOUNT: usize = 0;
    pub const IDEMPOTENCY_KEY: usize = 3;
}

impl Store {
    /// The member, their account and the stored outcome of the adjustment's Idempotency-Key (scoped
    /// to the member), in one read.
    pub async fn adjustment_reads(
        &self,
        member_id: &UserId,
        idempotency_key: Option<&str>,
        now: i64,
    ) -> Result<AdjustmentReads, AppError> {
        let member_key = (user_pk(member_id), USER_PROFILE_SK.to_string());
        let account_key = (user_pk(member_id), ACCOUNT_SK.to_string());
        let replay_key = idempotency_key.map(|key| {
            (
                adjustment_idempotency_pk(member_id, key),
                ADJUSTMENT_IDEMPOTENCY_SK.to_string(),
            )
        });
        let mut keys = vec![member_key.clone(), account_key.clone()];
        keys.extend(replay_key.clone());
        let mut found = self.batch_get(&keys).await?;
        let member = found
            .remove(&member_key)
            .map(from_item::<UserRecord>)
            .transpose()?
            .map(User::from);
        let account = super::users::take_account(&mut found, &account_key)?;
        let replay = super::idempotency::take_outcome(&mut found, replay_key, now)?
            .map(|r| (r.body_hash, r.response));
        Ok(AdjustmentReads {
            member,
            account,
            replay,
        })
    }

    /// One attempt at an adjustment, as one transaction:
    /// 0. the account takes `change` (the ADJUSTMENT the domain worked out on the account as read,
    ///    which never goes below zero) — only if unchanged since that read;
    /// 1. the ADJUSTMENT ledger row; 2. the audit entry; 3. (optional) the Idempotency-Key.
    /// 4. (optional, last) the gift's expiry, queued.
    pub async fn adjust_points(
        &self,
        change: &BalanceChange,
        audit: &AuditEntry,
        claim: Option<&IdempotencyClaim>,
        expiry: Option<&super::ExpiringGift>,
    ) -> Result<AdjustOutcome, AppError> {
        let mut items = vec![
            self.account_change(&change.entry.member_id, change)?,
            self.ledger_put(change)?,
            self.audit_put(audit)?,
        ];
        if let Some(claim) = claim {
            items.push(claim_put(
                &self.table,
                adjustment_idempotency_pk(&change.entry.member_id, &claim.key),
                ADJUSTMENT_IDEMPOTENCY_SK,
                claim,
                None,
            )?);
        }
        if let Some(gift) = expiry {
            // Unconditional: its position never carries a cancellation reason to misread.
            items.push(self.gift_expiry_put(gift)?);
        }
        use adjustment_item::*;
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(AdjustOutcome::Applied),
            TransactionAttempt::Contended(_) => Ok(AdjustOutcome::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(IDEMPOTENCY_KEY) => {
                Ok(AdjustOutcome::IdempotencyKeyUsed)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(ACCOUNT) => {
                Ok(AdjustOutcome::AccountChanged)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "adjustment cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }
}

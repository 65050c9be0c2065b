//! Point accounts and the append-only ledger (payments are in `payments.rs`). Every balance change is one
//! transaction that (1) changes the account only if its `version` is the one just read, and (2) puts a
//! ledger row whose `balance_after` is therefore exact.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{PK, SK};
use super::users::AccountRecord;
use super::{n, page_of, put_new, s, to_item, ListQuery, Store};
use crate::domain::{PointTransaction, Timestamp, TransactionType};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

/// How often a balance change is re-read and retried when another change to the same account won.
pub(super) const MAX_BALANCE_ATTEMPTS: u32 = 12;

#[derive(Serialize, Deserialize)]
struct LedgerRecord {
    pk: String,
    sk: String,
    entity: String,
    id: String,
    member_id: String,
    transaction_type: TransactionType,
    amount: i64,
    balance_after: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adjusted_by: Option<String>,
    created_at: Timestamp,
}

impl From<LedgerRecord> for PointTransaction {
    fn from(r: LedgerRecord) -> Self {
        PointTransaction {
            id: r.id,
            member_id: r.member_id,
            transaction_type: r.transaction_type,
            amount: r.amount,
            balance_after: r.balance_after,
            payment_id: r.payment_id,
            order_id: r.order_id,
            reason: r.reason,
            adjusted_by: r.adjusted_by,
            created_at: r.created_at,
        }
    }
}

/// The account as read for a balance change: the change is conditioned on `version`.
#[derive(Debug, Clone, Copy)]
pub struct AccountSnapshot {
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
    pub version: i64,
}

impl Store {
    pub async fn account_snapshot(
        &self,
        member_id: &str,
    ) -> Result<Option<AccountSnapshot>, AppError> {
        Ok(self
            .get_item::<AccountRecord>(user_pk(member_id), ACCOUNT_SK)
            .await?
            .map(|a| a.snapshot()))
    }

    /// The account update of a balance change: `delta` is added to the balance and to
    /// `total_earned` (credit) or `total_spent` (debit), only if nobody changed the account since
    /// `read` was taken; the caller checks the new balance is acceptable before sending it.
    pub(crate) fn account_change(
        &self,
        member_id: &str,
        read: AccountSnapshot,
        delta: i64,
        earned_delta: i64,
        spent_delta: i64,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member_id)))
            .key(SK, s(ACCOUNT_SK))
            .update_expression(
                "SET balance = :balance, total_earned = :earned, total_spent = :spent, version = :next",
            )
            .condition_expression("version = :read AND balance = :read_balance")
            .expression_attribute_values(":balance", n(read.balance + delta))
            .expression_attribute_values(":earned", n(read.total_earned + earned_delta))
            .expression_attribute_values(":spent", n(read.total_spent + spent_delta))
            .expression_attribute_values(":next", n(read.version + 1))
            .expression_attribute_values(":read", n(read.version))
            .expression_attribute_values(":read_balance", n(read.balance))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The ledger row of the balance change that moves the account from `read` to its next version.
    pub(crate) fn ledger_put(
        &self,
        entry: &PointTransaction,
        read: AccountSnapshot,
    ) -> Result<TransactWriteItem, AppError> {
        let record = LedgerRecord {
            pk: user_pk(&entry.member_id),
            sk: ledger_sk(read.version + 1),
            entity: "PointTransaction".into(),
            id: entry.id.clone(),
            member_id: entry.member_id.clone(),
            transaction_type: entry.transaction_type,
            amount: entry.amount,
            balance_after: entry.balance_after,
            payment_id: entry.payment_id.clone(),
            order_id: entry.order_id.clone(),
            reason: entry.reason.clone(),
            adjusted_by: entry.adjusted_by.clone(),
            created_at: entry.created_at,
        };
        put_new(&self.table, to_item(&record)?)
    }

    /// A member's ledger, newest first.
    pub async fn list_ledger(
        &self,
        member_id: &str,
        page: &PageRequest,
    ) -> Result<Page<PointTransaction>, AppError> {
        let query = ListQuery {
            index: None,
            partition_attribute: PK,
            partition_value: user_pk(member_id),
            ascending: false,
            sort_prefix: Some((SK, LEDGER_SK_PREFIX.to_string())),
            filter: None,
            scope: format!("ledger:{member_id}"),
        };
        page_of::<LedgerRecord, PointTransaction>(self.query_page(query, page).await?)
    }

    /// Every ledger row of a member (tests and invariant checks).
    pub async fn all_ledger_rows(
        &self,
        member_id: &str,
    ) -> Result<Vec<PointTransaction>, AppError> {
        let mut rows = Vec::new();
        let mut page = PageRequest {
            limit: crate::pagination::MAX_LIMIT,
            cursor: None,
        };
        loop {
            let batch = self.list_ledger(member_id, &page).await?;
            rows.extend(batch.items);
            match batch.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(rows),
            }
        }
    }
}

//! Point accounts and the append-only ledger (payments are in `payments.rs`). Every balance change is one
//! transaction that (1) changes the account only if its `version` is the one just read, and (2) puts a
//! ledger row whose `balance_after` is therefore exact.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{PK, SK};
use super::users::AccountRecord;
use super::{n, page_of, put_new, s, to_item, ListQuery, Store};
use crate::domain::{BalanceChange, PointTransaction, Timestamp, TransactionType, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
struct LedgerRecord {
    pk: String,
    sk: String,
    entity: String,
    id: String,
    member_id: UserId,
    transaction_type: TransactionType,
    amount: i64,
    /// Absent on rows from before the two kinds of points: all of `amount` was purchased points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purchased: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promotional: Option<i64>,
    balance_after: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adjusted_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refund_id: Option<String>,
    created_at: Timestamp,
}

impl From<LedgerRecord> for PointTransaction {
    fn from(r: LedgerRecord) -> Self {
        PointTransaction {
            id: r.id,
            member_id: r.member_id,
            transaction_type: r.transaction_type,
            amount: r.amount,
            purchased: r.purchased.unwrap_or(r.amount - r.promotional.unwrap_or(0)),
            promotional: r.promotional.unwrap_or(0),
            balance_after: r.balance_after,
            payment_id: r.payment_id,
            order_id: r.order_id,
            reason: r.reason,
            adjusted_by: r.adjusted_by,
            refund_id: r.refund_id,
            created_at: r.created_at,
        }
    }
}

pub use crate::domain::AccountSnapshot;

impl Store {
    pub async fn account_snapshot(
        &self,
        member_id: &UserId,
    ) -> Result<Option<AccountSnapshot>, AppError> {
        Ok(self
            .get_item::<AccountRecord>(user_pk(member_id), ACCOUNT_SK)
            .await?
            .map(|a| a.snapshot()))
    }

    /// The account's side of a balance change the domain worked out
    /// ([`AccountSnapshot::apply`]): it becomes `change.next`, only if it is still `change.read`.
    pub(crate) fn account_change(
        &self,
        member_id: &UserId,
        change: &BalanceChange,
    ) -> Result<TransactWriteItem, AppError> {
        let (read, next) = (change.read, change.next);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member_id)))
            .key(SK, s(ACCOUNT_SK))
            .update_expression(
                "SET balance = :balance, purchased = :purchased, promotional = :promotional, \
                 promotional_granted = :granted, total_earned = :earned, total_spent = :spent, \
                 version = :next",
            )
            .condition_expression("version = :read AND balance = :read_balance")
            .expression_attribute_values(":balance", n(next.balance))
            .expression_attribute_values(":purchased", n(next.purchased))
            .expression_attribute_values(":promotional", n(next.promotional))
            .expression_attribute_values(":granted", n(next.promotional_granted))
            .expression_attribute_values(":earned", n(next.total_earned))
            .expression_attribute_values(":spent", n(next.total_spent))
            .expression_attribute_values(":next", n(next.version))
            .expression_attribute_values(":read", n(read.version))
            .expression_attribute_values(":read_balance", n(read.balance))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The ledger row of a balance change, keyed by the account version it creates (so two
    /// changes worked out on one read cannot both land).
    pub(crate) fn ledger_put(&self, change: &BalanceChange) -> Result<TransactWriteItem, AppError> {
        let entry = &change.entry;
        let record = LedgerRecord {
            pk: user_pk(&entry.member_id),
            sk: ledger_sk(change.next.version),
            entity: "PointTransaction".into(),
            id: entry.id.clone(),
            member_id: entry.member_id.clone(),
            transaction_type: entry.transaction_type,
            amount: entry.amount,
            purchased: Some(entry.purchased),
            promotional: Some(entry.promotional),
            balance_after: entry.balance_after,
            payment_id: entry.payment_id.clone(),
            order_id: entry.order_id.clone(),
            reason: entry.reason.clone(),
            adjusted_by: entry.adjusted_by.clone(),
            refund_id: entry.refund_id.clone(),
            created_at: entry.created_at,
        };
        put_new(&self.table, to_item(&record)?)
    }

    pub async fn list_ledger(
        &self,
        member_id: &UserId,
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

    /// Every ledger row of a member (tests and invariant checks; unbounded, so never in a request).
    #[cfg(any(test, feature = "test-support"))]
    pub async fn all_ledger_rows(
        &self,
        member_id: &UserId,
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

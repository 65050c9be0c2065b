//! Point accounts, the append-only ledger, and ECPay payments. Every balance change is one
//! transaction that (1) changes the account only if its `version` is the one just read, and (2) puts a
//! ledger row whose `balance_after` is therefore exact.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI1, GSI1_PK, PK, SK};
use super::users::AccountRecord;
use super::{from_item, n, page_of, put_new, s, timestamp, to_item, ListQuery, Store};
use crate::domain::{
    Payment, PaymentStatus, PointTransaction, Settlement, Timestamp, TransactionType,
};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

/// How often a balance change is re-read and retried when another change to the same account won.
const MAX_BALANCE_ATTEMPTS: u32 = 12;

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
            created_at: r.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PaymentRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    id: String,
    merchant_trade_no: String,
    member_id: String,
    amount: i64,
    points: i64,
    status: PaymentStatus,
    action_url: String,
    checkout_fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paid_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    created_at: Timestamp,
}

impl From<PaymentRecord> for Payment {
    fn from(r: PaymentRecord) -> Self {
        Payment {
            id: r.id,
            merchant_trade_no: r.merchant_trade_no,
            member_id: r.member_id,
            amount: r.amount,
            points: r.points,
            status: r.status,
            action_url: r.action_url,
            checkout_fields: r.checkout_fields,
            trade_no: r.trade_no,
            payment_date: r.payment_date,
            paid_at: r.paid_at,
            failure_reason: r.failure_reason,
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
            .map(|a| AccountSnapshot {
                balance: a.balance,
                total_earned: a.total_earned,
                total_spent: a.total_spent,
                version: a.version,
            }))
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
            sort_prefix: Some((SK, LEDGER_SK_PREFIX.to_string())),
            filter: None,
            scope: format!("ledger:{member_id}"),
        };
        page_of::<LedgerRecord, PointTransaction>(self.query_page(query, page).await?)
    }

    /// Stores a new pending payment. `false` when the MerchantTradeNo is already taken.
    pub async fn create_payment(&self, payment: &Payment) -> Result<bool, AppError> {
        let record = PaymentRecord {
            pk: payment_pk(&payment.merchant_trade_no),
            sk: PAYMENT_SK.into(),
            entity: "Payment".into(),
            gsi1pk: member_payments_gsi(&payment.member_id),
            gsi1sk: payment.id.clone(),
            id: payment.id.clone(),
            merchant_trade_no: payment.merchant_trade_no.clone(),
            member_id: payment.member_id.clone(),
            amount: payment.amount,
            points: payment.points,
            status: payment.status,
            action_url: payment.action_url.clone(),
            checkout_fields: payment.checkout_fields.clone(),
            trade_no: None,
            payment_date: None,
            paid_at: None,
            failure_reason: None,
            created_at: payment.created_at,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(other) => Err(AppError::internal(format!("put payment: {other:?}"))),
        }
    }

    pub async fn get_payment(&self, merchant_trade_no: &str) -> Result<Option<Payment>, AppError> {
        Ok(self
            .get_item::<PaymentRecord>(payment_pk(merchant_trade_no), PAYMENT_SK)
            .await?
            .map(Payment::from))
    }

    pub async fn list_member_payments(
        &self,
        member_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Payment>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: member_payments_gsi(member_id),
            sort_prefix: None,
            filter: None,
            scope: format!("payments:{member_id}"),
        };
        page_of::<PaymentRecord, Payment>(self.query_page(query, page).await?)
    }

    /// Credits a paid payment exactly once: in one transaction the payment goes pending → paid
    /// (conditioned on pending), the account gains the points (conditioned on the version read), and
    /// a RECHARGE ledger row records the exact balance after. A repeated or concurrent notification
    /// finds the payment no longer pending and changes nothing.
    pub async fn credit_recharge(
        &self,
        payment: &Payment,
        trade_no: &str,
        payment_date: &str,
        now: Timestamp,
    ) -> Result<Settlement, AppError> {
        for _ in 0..MAX_BALANCE_ATTEMPTS {
            let account = self
                .account_snapshot(&payment.member_id)
                .await?
                .ok_or_else(|| AppError::internal("paying member has no point account"))?;
            let entry = PointTransaction {
                id: uuid::Uuid::now_v7().to_string(),
                member_id: payment.member_id.clone(),
                transaction_type: TransactionType::Recharge,
                amount: payment.points,
                balance_after: account.balance + payment.points,
                payment_id: Some(payment.merchant_trade_no.clone()),
                order_id: None,
                created_at: now,
            };
            let mark_paid = Update::builder()
                .table_name(&self.table)
                .key(PK, s(payment_pk(&payment.merchant_trade_no)))
                .key(SK, s(PAYMENT_SK))
                .update_expression(
                    "SET #status = :paid, trade_no = :trade_no, payment_date = :payment_date, paid_at = :now",
                )
                .condition_expression("#status = :pending")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":paid", s("paid"))
                .expression_attribute_values(":pending", s("pending"))
                .expression_attribute_values(":trade_no", s(trade_no))
                .expression_attribute_values(":payment_date", s(payment_date))
                .expression_attribute_values(":now", timestamp(now))
                .build()
                .map_err(AppError::internal)?;
            // Index order matters: reasons are read by position below.
            let items = vec![
                TransactWriteItem::builder().update(mark_paid).build(),
                self.account_change(
                    &payment.member_id,
                    account,
                    payment.points,
                    payment.points,
                    0,
                )?,
                self.ledger_put(&entry, account)?,
            ];
            match self.transact(items).await? {
                Ok(()) => {
                    return Ok(Settlement::Credited {
                        balance_after: entry.balance_after,
                    })
                }
                Err(cancelled) if cancelled.condition_failed(0) => {
                    let status = self
                        .get_payment(&payment.merchant_trade_no)
                        .await?
                        .map(|p| p.status)
                        .unwrap_or(PaymentStatus::Paid);
                    return Ok(Settlement::AlreadySettled(status));
                }
                Err(cancelled) if cancelled.condition_failed(1) => continue,
                Err(cancelled) => {
                    return Err(AppError::internal(format!(
                        "credit cancelled unexpectedly: {:?}",
                        cancelled.reasons
                    )))
                }
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: 1,
        })
    }

    /// pending → failed, nothing credited. Anything but pending is left alone.
    pub async fn fail_payment(
        &self,
        merchant_trade_no: &str,
        reason: &str,
    ) -> Result<Settlement, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(payment_pk(merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET #status = :failed, failure_reason = :reason")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":reason", s(reason))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(Settlement::MarkedFailed),
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let old: Option<PaymentRecord> =
                    failed.item.map(from_item::<PaymentRecord>).transpose()?;
                Ok(Settlement::AlreadySettled(
                    old.map(|p| p.status).unwrap_or(PaymentStatus::Failed),
                ))
            }
            Err(other) => Err(AppError::internal(format!("fail payment: {other:?}"))),
        }
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

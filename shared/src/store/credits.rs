//! The credit of a paid recharge: one transaction that marks the payment paid, credits the account
//! as the domain worked it out, writes the ledger row, frees the member's open-recharge slot and
//! keeps ECPay's answer. Shared by the notification and reconciliation.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::gateway_records::{audit_record, GatewayRecord};
use super::keys::*;
use super::table::{PK, SK};
use super::{n, s, timestamp, to_item, Store, TransactionAttempt};
use crate::domain::{BalanceChange, Payment, PaymentStatus, Timestamp};
use crate::error::AppError;

/// Positions in the credit transaction (see [`Store::credit_recharge`]).
mod credit_item {
    pub const PAYMENT: usize = 0;
    pub const ACCOUNT: usize = 1;
}

/// What one attempt at a credit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditAttempt {
    Credited,
    /// The payment was already paid: this notification changes nothing.
    AlreadyPaid,
    /// The account moved since it was read: read again and work the credit out anew.
    AccountChanged,
    /// DynamoDB cancelled it for a conflicting transaction: retry after a pause.
    Contended,
}

impl Store {
    /// One attempt at crediting a paid payment, as one transaction (positions in [`credit_item`]):
    /// 0. the payment becomes paid (from any state but paid: ECPay's word that money moved wins over
    ///    our giving up); 1. the account takes `credit` (the RECHARGE the domain worked out on the
    ///    account as read) — only if unchanged since that read; 2. the RECHARGE ledger row; then the
    ///    recharge's first payment counts the paid attempt, and `record` (the gateway's answer, when
    ///    given) joins the audit trail in the same transaction, so a credit is never without it.
    ///
    /// A repeated or concurrent credit finds the payment paid and changes nothing. The caller
    /// retries [`CreditAttempt::AccountChanged`] and [`CreditAttempt::Contended`] on a fresh read.
    #[allow(clippy::too_many_arguments)]
    pub async fn credit_recharge(
        &self,
        payment: &Payment,
        credit: &BalanceChange,
        record: Option<&GatewayRecord>,
        trade_no: &str,
        payment_date: &str,
        gateway_message: &str,
        invoice: Option<&crate::domain::e_invoice::Invoice>,
        now: Timestamp,
    ) -> Result<CreditAttempt, AppError> {
        let is_origin = payment.attempt_of.is_none();
        let mut mark_paid = Update::builder()
            .table_name(&self.table)
            .key(PK, s(payment_pk(&payment.merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression(if is_origin {
                "SET #status = :paid, trade_no = :trade_no, payment_date = :payment_date, \
                 paid_at = :now, last_gateway_message = :message \
                 ADD paid_attempts :one REMOVE gsi2pk, gsi2sk"
            } else {
                "SET #status = :paid, trade_no = :trade_no, payment_date = :payment_date, \
                 paid_at = :now, last_gateway_message = :message REMOVE gsi2pk, gsi2sk"
            })
            .condition_expression("attribute_exists(#pk) AND #status <> :paid")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(PaymentStatus::Paid.as_str()))
            .expression_attribute_values(":trade_no", s(trade_no))
            .expression_attribute_values(":payment_date", s(payment_date))
            .expression_attribute_values(":message", s(gateway_message))
            .expression_attribute_values(":now", timestamp(now));
        if is_origin {
            mark_paid = mark_paid.expression_attribute_values(":one", n(1));
        }
        let mark_paid = mark_paid.build().map_err(AppError::internal)?;
        // Positions are named in `credit_item`: the refusal is read by them below.
        let mut items = vec![
            TransactWriteItem::builder().update(mark_paid).build(),
            self.account_change(&payment.member_id, credit)?,
            self.ledger_put(credit)?,
        ];
        if let Some(origin) = &payment.attempt_of {
            let count = Update::builder()
                .table_name(&self.table)
                .key(PK, s(payment_pk(origin)))
                .key(SK, s(PAYMENT_SK))
                .update_expression("ADD paid_attempts :one")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(AppError::internal)?;
            items.push(TransactWriteItem::builder().update(count).build());
        }
        // The recharge is paid: its member's slot is free again.
        items.push(
            self.release_recharge_slot(
                &payment.member_id,
                payment
                    .attempt_of
                    .as_ref()
                    .unwrap_or(&payment.merchant_trade_no),
            )?,
        );
        // `at_recharge`: the recharge's e-invoice, issued later by the job (an outbox).
        if let Some(invoice) = invoice {
            items.push(self.invoice_put(invoice)?);
        }
        if let Some(record) = record {
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&audit_record(
                    &payment.merchant_trade_no,
                    record,
                    self.evidence_retention_days,
                ))?))
                .build()
                .map_err(AppError::internal)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(CreditAttempt::Credited),
            TransactionAttempt::Contended(_) => Ok(CreditAttempt::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(credit_item::PAYMENT) => {
                Ok(CreditAttempt::AlreadyPaid)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(credit_item::ACCOUNT) => {
                Ok(CreditAttempt::AccountChanged)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "credit cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }
}

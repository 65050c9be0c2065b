//! ECPay payments: one item per MerchantTradeNo (a checkout attempt), the sparse index of the ones
//! still open (what reconciliation walks), and each payment's own state changes: created with its
//! member's open-recharge slot, further checkout attempts, expiry. The credit is in `credits.rs`,
//! what ECPay said in `gateway_records.rs`. One job (a payment's item), kept in one file.
//!
//! The signed checkout form (its fields and where it posts) is a second item of the payment,
//! `CHECKOUT`, written with it and read only where the form is shown: the form is most of a
//! payment's bytes (three URLs and a MAC), and in the payment item it took the item over 1 KB, so
//! every write of the payment cost double (four units in the crediting transaction, not two) and
//! every index copy carried it too (measured by the capacity bench, docs/cost.md).

use std::collections::BTreeMap;

use crate::domain::{
    MerchantTradeNo, Payment, PaymentStatus, Points, Settlement, Timestamp, UserId,
};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::open_recharges::open_payments_sk;
use super::points::AccountSnapshot;
use super::table::{GSI2, GSI2_PK, GSI2_SK, PK, SK};
use super::{from_item, n, page_of, put_new, s, to_item, ListQuery, Store, TransactionAttempt};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};
#[derive(Serialize, Deserialize)]
pub(super) struct PaymentRecord {
    pk: String,
    sk: String,
    entity: String,
    // An index copy lacks the other index's keys (indexes project only `table::INDEX_PROJECTED_ATTRIBUTES`
    // besides their own keys); a record read from one is only turned into a value, never written back.
    #[serde(default)]
    gsi1pk: String,
    #[serde(default)]
    gsi1sk: String,
    /// Present while the payment is open: the reconciliation index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    id: String,
    merchant_trade_no: MerchantTradeNo,
    member_id: UserId,
    amount: i64,
    points: Points,
    status: PaymentStatus,
    /// Only on payments written before the form became its own item (see the module's note).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    action_url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    checkout_fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payment_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paid_at: Option<Timestamp>,
    /// Named `failure_reason` by payments written before failures stopped being final.
    #[serde(
        default,
        alias = "failure_reason",
        skip_serializing_if = "Option::is_none"
    )]
    last_gateway_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt_of: Option<MerchantTradeNo>,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    paid_attempts: u32,
    /// On the recharge's first payment: when its checkout link was first opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    opened_at: Option<Timestamp>,
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
            last_gateway_message: r.last_gateway_message,
            attempt_of: r.attempt_of,
            attempts: r.attempts,
            paid_attempts: r.paid_attempts,
            opened_at: r.opened_at,
            created_at: r.created_at,
        }
    }
}

fn record_of(payment: &Payment) -> PaymentRecord {
    let open = matches!(payment.status, PaymentStatus::Pending);
    PaymentRecord {
        pk: payment_pk(&payment.merchant_trade_no),
        sk: PAYMENT_SK.into(),
        entity: "Payment".into(),
        gsi1pk: member_payments_gsi(&payment.member_id),
        gsi1sk: format!("{}#{}", payment.id, payment.merchant_trade_no),
        gsi2pk: open.then(|| OPEN_PAYMENTS_GSI.to_string()),
        gsi2sk: open.then(|| open_payments_sk(payment.created_at, &payment.merchant_trade_no)),
        id: payment.id.clone(),
        merchant_trade_no: payment.merchant_trade_no.clone(),
        member_id: payment.member_id.clone(),
        amount: payment.amount,
        points: payment.points,
        status: payment.status,
        // In the payment's `CHECKOUT` item instead (see `checkout_record_of`).
        action_url: String::new(),
        checkout_fields: BTreeMap::new(),
        trade_no: payment.trade_no.clone(),
        payment_date: payment.payment_date.clone(),
        paid_at: payment.paid_at,
        last_gateway_message: payment.last_gateway_message.clone(),
        attempt_of: payment.attempt_of.clone(),
        attempts: payment.attempts,
        paid_attempts: payment.paid_attempts,
        opened_at: payment.opened_at,
        created_at: payment.created_at,
    }
}
/// A payment's signed checkout form: the item beside the payment that only the checkout page reads.
#[derive(Serialize, Deserialize)]
struct CheckoutRecord {
    pk: String,
    sk: String,
    entity: String,
    action_url: String,
    checkout_fields: BTreeMap<String, String>,
}

fn checkout_record_of(payment: &Payment) -> CheckoutRecord {
    CheckoutRecord {
        pk: payment_pk(&payment.merchant_trade_no),
        sk: CHECKOUT_SK.into(),
        entity: "Checkout".into(),
        action_url: payment.action_url.clone(),
        checkout_fields: payment.checkout_fields.clone(),
    }
}

/// The payment's checkout form, put with it (its position is last in either transaction).
fn checkout_put(table: &str, payment: &Payment) -> Result<TransactWriteItem, AppError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(to_item(&checkout_record_of(payment))?))
        .build()
        .map_err(AppError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What opening a checkout attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Created,
    /// The recharge was paid meanwhile: no attempt, nothing to pay.
    AlreadyPaid,
    /// The recharge has had its maximum number of attempts.
    TooManyAttempts,
    /// The new MerchantTradeNo was taken (a random collision): draw another.
    TradeNoTaken,
    /// Cancelled by a conflicting transaction: try again after a pause.
    Contended,
}

/// What storing a new recharge came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentCreated {
    Created,
    /// The MerchantTradeNo was taken (a random collision): draw another.
    TradeNoTaken,
    /// The member already holds the most open recharges allowed.
    TooManyOpen,
    /// Cancelled by a conflicting transaction: try again after a pause.
    Contended,
}

/// What expiring a payment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Expired,
    /// It was no longer pending (paid meanwhile, or expired already): nothing changed.
    NotPending,
}

/// Positions in a new recharge's transaction (see [`Store::create_payment`]).
mod create_item {
    pub const PAYMENT: usize = 0;
    pub const SLOT: usize = 1;
}

/// Positions in a further checkout attempt's transaction (see [`Store::create_attempt`]).
mod attempt_item {
    pub const ORIGIN: usize = 0;
    pub const ATTEMPT: usize = 1;
}

impl Store {
    /// Stores a new recharge's pending payment and takes one of its member's open-recharge slots,
    /// in one transaction (positions in [`create_item`]).
    pub async fn create_payment(
        &self,
        payment: &Payment,
        max_open: u32,
    ) -> Result<PaymentCreated, AppError> {
        let items = vec![
            put_new(&self.table, to_item(&record_of(payment))?)?,
            self.claim_recharge_slot(&payment.member_id, &payment.merchant_trade_no, max_open)?,
            checkout_put(&self.table, payment)?,
        ];
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(PaymentCreated::Created),
            TransactionAttempt::Contended(_) => Ok(PaymentCreated::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(create_item::PAYMENT) => {
                Ok(PaymentCreated::TradeNoTaken)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(create_item::SLOT) => {
                Ok(PaymentCreated::TooManyOpen)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "new payment cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// A further checkout attempt of the recharge `origin`, in one transaction: the origin counts the
    /// attempt (only while none of its attempts is paid and fewer than `max_attempts` were opened), and
    /// the attempt's own payment item is created.
    pub async fn create_attempt(
        &self,
        origin: &MerchantTradeNo,
        attempt: &Payment,
        max_attempts: u32,
    ) -> Result<AttemptOutcome, AppError> {
        let count = Update::builder()
            .table_name(&self.table)
            .key(PK, s(payment_pk(origin)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET attempts = if_not_exists(attempts, :zero) + :one")
            .condition_expression(
                "attribute_exists(#pk) AND #status <> :paid \
                 AND (attribute_not_exists(paid_attempts) OR paid_attempts = :zero) \
                 AND (attribute_not_exists(attempts) OR attempts < :max)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(PaymentStatus::Paid.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(i64::from(max_attempts)))
            .build()
            .map_err(AppError::internal)?;
        // Positions are named in `attempt_item`: reasons are read by them below.
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            put_new(&self.table, to_item(&record_of(attempt))?)?,
            checkout_put(&self.table, attempt)?,
        ];
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(AttemptOutcome::Created),
            TransactionAttempt::Contended(_) => Ok(AttemptOutcome::Contended),
            TransactionAttempt::Refused(cancelled)
                if cancelled.condition_failed(attempt_item::ATTEMPT) =>
            {
                Ok(AttemptOutcome::TradeNoTaken)
            }
            TransactionAttempt::Refused(cancelled)
                if cancelled.condition_failed(attempt_item::ORIGIN) =>
            {
                let origin = self.get_payment(origin).await?;
                Ok(match origin {
                    Some(p) if p.status == PaymentStatus::Paid || p.paid_attempts > 0 => {
                        AttemptOutcome::AlreadyPaid
                    }
                    _ => AttemptOutcome::TooManyAttempts,
                })
            }
            TransactionAttempt::Refused(cancelled) => Err(AppError::internal(format!(
                "attempt cancelled unexpectedly: {:?}",
                cancelled.reasons
            ))),
        }
    }

    /// A payment and, when `member_hint` names its member, that member's account: one round trip.
    /// A hint naming anyone else is ignored (the account is then `None`, read later by the credit).
    pub async fn payment_with_account(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        member_hint: Option<&UserId>,
    ) -> Result<(Option<Payment>, Option<AccountSnapshot>), AppError> {
        let payment_key = (payment_pk(merchant_trade_no), PAYMENT_SK.to_string());
        let account_key = member_hint.map(|member| (user_pk(member), ACCOUNT_SK.to_string()));
        let mut keys = vec![payment_key.clone()];
        keys.extend(account_key.clone());
        let mut found = self.batch_get(&keys).await?;
        let payment = found
            .remove(&payment_key)
            .map(from_item::<PaymentRecord>)
            .transpose()?
            .map(Payment::from);
        let account = match (&payment, member_hint, account_key) {
            (Some(payment), Some(member), Some(key)) if payment.member_id == member => found
                .remove(&key)
                .map(from_item::<super::users::AccountRecord>)
                .transpose()?
                .map(|a| a.snapshot()),
            _ => None,
        };
        Ok((payment, account))
    }

    pub async fn get_payment(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<Option<Payment>, AppError> {
        Ok(self
            .get_item::<PaymentRecord>(payment_pk(merchant_trade_no), PAYMENT_SK)
            .await?
            .map(Payment::from))
    }

    /// A payment with its signed checkout form (one round trip): what the checkout page shows.
    /// Every other reader takes [`Store::get_payment`], whose form is empty.
    pub async fn get_payment_with_checkout(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<Option<Payment>, AppError> {
        let payment_key = (payment_pk(merchant_trade_no), PAYMENT_SK.to_string());
        let checkout_key = (payment_pk(merchant_trade_no), CHECKOUT_SK.to_string());
        let mut found = self
            .batch_get(&[payment_key.clone(), checkout_key.clone()])
            .await?;
        let Some(mut payment) = found
            .remove(&payment_key)
            .map(from_item::<PaymentRecord>)
            .transpose()?
            .map(Payment::from)
        else {
            return Ok(None);
        };
        // A payment written before the split keeps its form in its own item.
        if let Some(checkout) = found
            .remove(&checkout_key)
            .map(from_item::<CheckoutRecord>)
            .transpose()?
        {
            payment.action_url = checkout.action_url;
            payment.checkout_fields = checkout.checkout_fields;
        }
        Ok(Some(payment))
    }

    /// Every open (pending) payment, oldest first, paginated: what operators look at as "stuck".
    pub async fn list_open_payments(&self, page: &PageRequest) -> Result<Page<Payment>, AppError> {
        let query = ListQuery {
            index: Some(GSI2),
            partition_attribute: GSI2_PK,
            partition_value: OPEN_PAYMENTS_GSI.into(),
            ascending: true,
            sort_prefix: None,
            filter: None,
            scope: "open-payments".into(),
        };
        page_of::<PaymentRecord, Payment>(self.query_page(query, page).await?)
    }

    /// Open (pending) payments created before `created_before`, oldest first, at most `limit`.
    pub async fn open_payments(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Payment>, AppError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI2)
            .key_condition_expression("#pk = :pk AND #sk < :before")
            .expression_attribute_names("#pk", GSI2_PK)
            .expression_attribute_names("#sk", GSI2_SK)
            .expression_attribute_values(":pk", s(OPEN_PAYMENTS_GSI))
            .expression_attribute_values(":before", s(open_payments_sk(created_before, "")))
            .scan_index_forward(true)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| super::dynamo_failure("open payments", e.into_service_error()))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<PaymentRecord>(item).map(Payment::from))
            .collect()
    }
    /// Records ECPay's last word on a payment that is not paid; its status does not change.
    pub async fn record_gateway_message(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        message: &str,
    ) -> Result<Settlement, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(payment_pk(merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET last_gateway_message = :message")
            .condition_expression("attribute_exists(#pk) AND #status <> :paid")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s(PaymentStatus::Paid.as_str()))
            .expression_attribute_values(":message", s(message))
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(Settlement::Recorded),
            Err(UpdateItemError::ConditionalCheckFailedException(_)) => {
                Ok(Settlement::AlreadySettled(PaymentStatus::Paid))
            }
            Err(other) => Err(super::dynamo_failure("record message", other)),
        }
    }

    /// pending → expired (out of the open index); a recharge's own payment frees its member's slot
    /// in the same transaction.
    pub async fn expire_payment(
        &self,
        payment: &Payment,
        message: &str,
    ) -> Result<Expiry, AppError> {
        let expire = Update::builder()
            .table_name(&self.table)
            .key(PK, s(payment_pk(&payment.merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression(
                "SET #status = :expired, last_gateway_message = :message REMOVE gsi2pk, gsi2sk",
            )
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expired", s(PaymentStatus::Expired.as_str()))
            .expression_attribute_values(":pending", s(PaymentStatus::Pending.as_str()))
            .expression_attribute_values(":message", s(message))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![TransactWriteItem::builder().update(expire).build()];
        if payment.attempt_of.is_none() {
            items.push(self.release_recharge_slot(&payment.member_id, &payment.merchant_trade_no)?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(Expiry::Expired),
            TransactionAttempt::Refused(c) if c.condition_failed(0) => Ok(Expiry::NotPending),
            // The next run looks at it again.
            TransactionAttempt::Contended(_) => Ok(Expiry::NotPending),
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "expiry cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }
}

//! Refunds of purchased points: the refund item (in its member's partition, on the operators' list
//! and, while work is due, on a due queue), the request's one transaction, and the job's steps, each
//! one transaction conditioned on the refund's `version` and, where money moves, on the payment's
//! `refunded_twd`.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::idempotency::{claim_put, IdempotencyClaim};
use super::keys::*;
use super::points::AccountSnapshot;
use super::table::{GSI1, GSI1_PK, GSI1_SK, PK, SK};
use super::{
    from_item, n, page_of, put_new, s, to_item, Filter, Item, ListQuery, Store, TransactionAttempt,
};
use crate::domain::refund::{PendingDraw, Refund, RefundDraw, RefundQuote, RefundState};
use crate::domain::{BalanceChange, MerchantTradeNo, RefundId, Timestamp, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
struct RefundRecord {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default)]
    gsi1pk: String,
    #[serde(default)]
    gsi1sk: String,
    /// Present while work is due: the job's queue, sorted by when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    id: RefundId,
    member_id: UserId,
    points: i64,
    gross_twd: i64,
    fee_twd: i64,
    twd: i64,
    state: RefundState,
    refunded_twd: i64,
    #[serde(default)]
    draws: Vec<RefundDraw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingDraw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manual_reference: Option<String>,
    #[serde(default)]
    returned_points: i64,
    #[serde(default)]
    attempts: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: i64,
}

fn due_sort_key(at: Timestamp, id: &RefundId) -> String {
    format!(
        "{}#{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

impl RefundRecord {
    fn of(refund: &Refund, due_at: Option<Timestamp>) -> Self {
        RefundRecord {
            pk: user_pk(&refund.member_id),
            sk: refund_sk(&refund.id),
            entity: "Refund".into(),
            gsi1pk: REFUNDS_GSI.into(),
            gsi1sk: refund.id.to_string(),
            gsi2pk: due_at.map(|_| refunds_due_gsi(&refund.id)),
            gsi2sk: due_at.map(|at| due_sort_key(at, &refund.id)),
            id: refund.id.clone(),
            member_id: refund.member_id.clone(),
            points: refund.points,
            gross_twd: refund.quote.gross_twd,
            fee_twd: refund.quote.fee_twd,
            twd: refund.quote.twd,
            state: refund.state,
            refunded_twd: refund.refunded_twd,
            draws: refund.draws.clone(),
            pending: refund.pending.clone(),
            message: refund.message.clone(),
            manual_reference: refund.manual_reference.clone(),
            returned_points: refund.returned_points,
            attempts: refund.attempts,
            created_at: refund.created_at,
            updated_at: refund.updated_at,
            version: refund.version,
        }
    }
}

impl From<RefundRecord> for Refund {
    fn from(r: RefundRecord) -> Self {
        Refund {
            id: r.id,
            member_id: r.member_id,
            points: r.points,
            quote: RefundQuote {
                gross_twd: r.gross_twd,
                fee_twd: r.fee_twd,
                twd: r.twd,
            },
            state: r.state,
            refunded_twd: r.refunded_twd,
            draws: r.draws,
            pending: r.pending,
            message: r.message,
            manual_reference: r.manual_reference,
            returned_points: r.returned_points,
            attempts: r.attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

/// What a refund request reads first, in one strongly consistent `BatchGetItem`.
#[derive(Debug, Clone)]
pub struct RefundRequestReads {
    pub account: Option<AccountSnapshot>,
    /// (body hash, first response) stored for the member's Idempotency-Key, unless expired.
    pub replay: Option<(String, String)>,
}

/// One attempt at a refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequestOutcome {
    Requested,
    AccountChanged,
    IdempotencyKeyUsed,
    Contended,
}

/// One attempt at a step of the job on a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStep {
    Done,
    /// The refund (or the payment) changed since it was read: read again.
    Changed,
    Contended,
}

/// What changes with a refund in one of its steps.
#[derive(Debug, Clone, Copy)]
pub enum RefundAlso<'a> {
    /// A draw begins: the payment is locked to the refund, only if free and still at
    /// `refunded_before`; ECPay's `gwsr` and installment flag are kept on it.
    LockPayment {
        payment: &'a MerchantTradeNo,
        refunded_before: i64,
        credit_refund_id: &'a str,
        installments: bool,
    },
    /// A draw ends: the payment's refunded amount becomes `refunded_after` (unchanged when nothing
    /// went back) and its lock is released, only if the lock is the refund's and the amount still
    /// `refunded_before`.
    UnlockPayment {
        payment: &'a MerchantTradeNo,
        refunded_before: i64,
        refunded_after: i64,
    },
    /// A failed refund's points back on the balance.
    ReturnPoints(&'a BalanceChange),
    /// The money back on a card comes off the recharge's e-invoice (折讓), asked of the invoice
    /// job in the same transaction.
    InvoiceAllowance {
        relate_number: &'a str,
        allowance: &'a crate::domain::e_invoice::Allowance,
        at: Timestamp,
    },
    Audit(&'a crate::domain::AuditEntry),
}

/// Transaction item positions of a refund request.
mod request_item {
    pub const ACCOUNT: usize = 0;
    pub const IDEMPOTENCY_KEY: usize = 3;
}

impl Store {
    /// The member's account and the stored outcome of the request's Idempotency-Key, in one read.
    pub async fn refund_request_reads(
        &self,
        member_id: &UserId,
        idempotency_key: Option<&str>,
        now: i64,
    ) -> Result<RefundRequestReads, AppError> {
        let account_key = (user_pk(member_id), ACCOUNT_SK.to_string());
        let replay_key = idempotency_key.map(|key| {
            (
                idempotency_pk(member_id, key),
                REFUND_IDEMPOTENCY_SK.to_string(),
            )
        });
        let mut keys = vec![account_key.clone()];
        keys.extend(replay_key.clone());
        let mut found = self.batch_get(&keys).await?;
        let account = super::users::take_account(&mut found, &account_key)?;
        let replay = super::idempotency::take_outcome(&mut found, replay_key, now)?
            .map(|r| (r.body_hash, r.response));
        Ok(RefundRequestReads { account, replay })
    }

    /// One attempt at a refund request, as one transaction: 0. the account gives up the points
    /// (only if unchanged since read); 1. the REFUND ledger row; 2. the refund, due at once;
    /// 3. (optional) the Idempotency-Key.
    pub async fn request_refund(
        &self,
        change: &BalanceChange,
        refund: &Refund,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<RefundRequestOutcome, AppError> {
        let mut items = vec![
            self.account_change(&change.entry.member_id, change)?,
            self.ledger_put(change)?,
            put_new(
                &self.table,
                to_item(&RefundRecord::of(refund, Some(refund.created_at)))?,
            )?,
        ];
        if let Some(claim) = claim {
            items.push(claim_put(
                &self.table,
                idempotency_pk(&refund.member_id, &claim.key),
                REFUND_IDEMPOTENCY_SK,
                claim,
                None,
            )?);
        }
        use request_item::*;
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(RefundRequestOutcome::Requested),
            TransactionAttempt::Contended(_) => Ok(RefundRequestOutcome::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(IDEMPOTENCY_KEY) => {
                Ok(RefundRequestOutcome::IdempotencyKeyUsed)
            }
            TransactionAttempt::Refused(c) if c.condition_failed(ACCOUNT) => {
                Ok(RefundRequestOutcome::AccountChanged)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "refund request cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    pub async fn get_refund(
        &self,
        member_id: &UserId,
        refund_id: &RefundId,
    ) -> Result<Option<Refund>, AppError> {
        Ok(self
            .get_item::<RefundRecord>(user_pk(member_id), &refund_sk(refund_id))
            .await?
            .map(Refund::from))
    }

    /// One member's refunds, newest first.
    pub async fn member_refunds(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<Refund>, AppError> {
        let query = ListQuery {
            index: None,
            partition_attribute: PK,
            partition_value: user_pk(member_id),
            ascending: false,
            sort_prefix: Some((SK, REFUND_SK_PREFIX.to_string())),
            filter: None,
            scope: format!("refunds:{member_id}"),
        };
        page_of::<RefundRecord, Refund>(self.query_page(query, page).await?)
    }

    /// Every refund, newest first (operators): the index gives the keys, the table the items.
    pub async fn all_refunds(&self, page: &PageRequest) -> Result<Page<Refund>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: REFUNDS_GSI.into(),
            ascending: false,
            sort_prefix: None,
            filter: None,
            scope: "refunds".into(),
        };
        let keys_page = self.query_page(query, page).await?;
        let items = self
            .items_behind(&keys_page.items)
            .await?
            .into_iter()
            .map(|item| from_item::<RefundRecord>(item).map(Refund::from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: keys_page.next_cursor,
        })
    }

    /// A refund by its id alone (operators): its key from the operators' index, then the item.
    pub async fn refund_by_id(&self, refund_id: &RefundId) -> Result<Option<Refund>, AppError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk AND #sk = :id")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#sk", GSI1_SK)
            .expression_attribute_values(":pk", s(REFUNDS_GSI))
            .expression_attribute_values(":id", s(refund_id.as_str()))
            .send()
            .await
            .map_err(|err| super::dynamo_failure("refund by id", err.into_service_error()))?;
        let Some(item) = output.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let (pk, sk) = item_key(&item)?;
        Ok(self
            .get_item::<RefundRecord>(pk, &sk)
            .await?
            .map(Refund::from))
    }

    /// Up to `limit` refunds with work due before `now`, soonest first.
    pub async fn refunds_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Refund>, AppError> {
        let due = self.due_items(refunds_due_partitions(), now, limit).await?;
        self.items_behind(&due)
            .await?
            .into_iter()
            .map(|item| from_item::<RefundRecord>(item).map(Refund::from))
            .collect()
    }

    /// Writes `next` over `read` (only if the refund is still at `read.version`), due again at
    /// `due_at` (or off the queue). Further `items` ride in the same transaction, after it.
    fn refund_replace(
        &self,
        read_version: i64,
        next: &Refund,
        due_at: Option<Timestamp>,
    ) -> Result<TransactWriteItem, AppError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&RefundRecord::of(next, due_at))?))
            .condition_expression("#version = :read")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":read", n(read_version))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The refund becomes `next` (one version on from `read_version`), due at `due_at` (or off the
    /// queue), with what else must change with it in the same transaction.
    pub async fn refund_step(
        &self,
        read_version: i64,
        next: &Refund,
        due_at: Option<Timestamp>,
        also: &[RefundAlso<'_>],
    ) -> Result<RefundStep, AppError> {
        let mut items = vec![self.refund_replace(read_version, next, due_at)?];
        for item in also {
            match item {
                RefundAlso::LockPayment {
                    payment,
                    refunded_before,
                    credit_refund_id,
                    installments,
                } => items.push(self.payment_lock(
                    payment,
                    &next.id,
                    *refunded_before,
                    credit_refund_id,
                    *installments,
                )?),
                RefundAlso::UnlockPayment {
                    payment,
                    refunded_before,
                    refunded_after,
                } => items.push(self.payment_unlock(
                    payment,
                    &next.id,
                    *refunded_before,
                    *refunded_after,
                )?),
                RefundAlso::ReturnPoints(change) => {
                    items.push(self.account_change(&change.entry.member_id, change)?);
                    items.push(self.ledger_put(change)?);
                }
                RefundAlso::Audit(entry) => items.push(self.audit_put(entry)?),
                RefundAlso::InvoiceAllowance {
                    relate_number,
                    allowance,
                    at,
                } => items.push(self.invoice_allowance_request(relate_number, allowance, *at)?),
            }
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(RefundStep::Done),
            TransactionAttempt::Contended(_) => Ok(RefundStep::Contended),
            TransactionAttempt::Refused(_) => Ok(RefundStep::Changed),
        }
    }

    /// Locks a paid payment to `refund_id` while a draw on it is under way, only if nobody holds it
    /// and its refunded amount is still `refunded_before`; keeps the card trade's `gwsr` and whether
    /// it was paid in installments, read from ECPay.
    fn payment_lock(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        refund_id: &RefundId,
        refunded_before: i64,
        credit_refund_id: &str,
        installments: bool,
    ) -> Result<TransactWriteItem, AppError> {
        let (condition, before) = refunded_condition(refunded_before);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(payment_pk(merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression(
                "SET refund_lock = :lock, credit_refund_id = :gwsr, installments = :inst",
            )
            .condition_expression(format!(
                "#status = :paid AND attribute_not_exists(refund_lock) AND {condition}"
            ))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", s("paid"))
            .expression_attribute_values(":lock", s(refund_id.as_str()))
            .expression_attribute_values(":gwsr", s(credit_refund_id))
            .expression_attribute_values(
                ":inst",
                aws_sdk_dynamodb::types::AttributeValue::Bool(installments),
            )
            .expression_attribute_values(":before", n(before))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Releases `refund_id`'s lock on a payment, recording `refunded_after` as its refunded amount:
    /// only if the lock is this refund's and nothing else moved the amount meanwhile.
    fn payment_unlock(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        refund_id: &RefundId,
        refunded_before: i64,
        refunded_after: i64,
    ) -> Result<TransactWriteItem, AppError> {
        let (condition, before) = refunded_condition(refunded_before);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(payment_pk(merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET refunded_twd = :after REMOVE refund_lock")
            .condition_expression(format!("refund_lock = :lock AND {condition}"))
            .expression_attribute_values(":lock", s(refund_id.as_str()))
            .expression_attribute_values(":before", n(before))
            .expression_attribute_values(":after", n(refunded_after))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A member's paid payments (every attempt that was paid), newest first: what refunds draw on.
    pub async fn member_paid_payments(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<MerchantTradeNo>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: member_payments_gsi(member_id),
            ascending: false,
            sort_prefix: None,
            filter: Some(Filter {
                expression: "#status = :paid",
                names: vec![("#status", "status")],
                values: vec![(":paid", s("paid"))],
            }),
            scope: format!("paid:{member_id}"),
        };
        Ok(
            page_of::<PaidPayment, PaidPayment>(self.query_page(query, page).await?)?
                .map(|p| p.merchant_trade_no),
        )
    }

    /// A payment as a refund draws on it.
    pub async fn refund_source(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<Option<RefundSource>, AppError> {
        self.get_item::<RefundSource>(payment_pk(merchant_trade_no), PAYMENT_SK)
            .await
    }
}

/// A payment as a refund sees it (the payment item's own fields; refunds add the last four).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundSource {
    pub merchant_trade_no: MerchantTradeNo,
    pub member_id: UserId,
    /// NT$ paid.
    pub amount: i64,
    pub status: crate::domain::PaymentStatus,
    #[serde(default)]
    pub trade_no: Option<String>,
    /// NT$ returned to the card so far.
    #[serde(default)]
    pub refunded_twd: i64,
    /// The refund with a draw on it under way.
    #[serde(default)]
    pub refund_lock: Option<RefundId>,
    /// ECPay's `gwsr` of the card trade (QueryTradeInfo), once read.
    #[serde(default)]
    pub credit_refund_id: Option<String>,
    #[serde(default)]
    pub installments: Option<bool>,
    pub created_at: Timestamp,
}

#[derive(Deserialize)]
struct PaidPayment {
    merchant_trade_no: MerchantTradeNo,
}

/// `refunded_twd` is `before` (absent counts as 0): the condition and its value.
fn refunded_condition(before: i64) -> (&'static str, i64) {
    if before == 0 {
        (
            "(attribute_not_exists(refunded_twd) OR refunded_twd = :before)",
            0,
        )
    } else {
        ("refunded_twd = :before", before)
    }
}

/// The table key of an item (every index copy carries it).
pub(super) fn item_key(item: &Item) -> Result<(String, String), AppError> {
    match (item.get(PK), item.get(SK)) {
        (
            Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(sk)),
        ) => Ok((pk.clone(), sk.clone())),
        _ => Err(AppError::internal("an index item without its table key")),
    }
}

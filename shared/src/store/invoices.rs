//! E-invoices: one item per invoice, keyed by its RelateNumber (`INVOICE#<relate>`), written by the
//! sale's own transaction (a paid recharge's credit, an order's completion) as an outbox; on its
//! member's list (gsi1), on the job's due queue while a call is due and on the operators' failed
//! list while failed (both gsi2). A cancellation or a refund asks for a void or an allowance with
//! an update in its own transaction; the job records each call by replacing the item, conditioned
//! on the version it read.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, PK, SK};
use super::{from_item, n, s, timestamp, to_item, ListQuery, Store, TransactionAttempt};
use crate::domain::e_invoice::{
    Allowance, Invoice, InvoiceAttempt, InvoiceCall, InvoiceSource, InvoiceState,
};
use crate::domain::invoice::InvoicePreference;
use crate::domain::{Timestamp, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
struct InvoiceRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    /// The due queue or the failed list, or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    relate_number: String,
    member_id: UserId,
    /// `recharge` (the paid payment's trade number) or `order` (the order's id).
    source: String,
    source_id: String,
    amount: i64,
    item_name: String,
    state: InvoiceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invoice_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invoice_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    carrier: Option<InvoicePreference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    void_reason: Option<String>,
    #[serde(default)]
    allowances: Vec<Allowance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_flight: Option<InvoiceCall>,
    calling_since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    #[serde(default)]
    unreachable: u32,
    #[serde(default)]
    attempts: Vec<InvoiceAttempt>,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: i64,
}

fn when_key(at: Timestamp, relate_number: &str) -> String {
    format!(
        "{}#{relate_number}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

impl InvoiceRecord {
    /// `due_at`: on the due queue then; otherwise on the failed list when failed.
    fn of(invoice: &Invoice, due_at: Option<Timestamp>) -> Self {
        let relate = &invoice.relate_number;
        let (gsi2pk, gsi2sk) = match due_at {
            Some(at) => (Some(invoices_due_gsi(relate)), Some(when_key(at, relate))),
            None if invoice.failure.is_some() => (
                Some(FAILED_INVOICES_GSI.to_string()),
                Some(when_key(invoice.updated_at, relate)),
            ),
            None => (None, None),
        };
        InvoiceRecord {
            pk: invoice_pk(relate),
            sk: INVOICE_SK.into(),
            entity: "Invoice".into(),
            gsi1pk: member_invoices_gsi(&invoice.member_id),
            gsi1sk: when_key(invoice.created_at, relate),
            gsi2pk,
            gsi2sk,
            relate_number: relate.clone(),
            member_id: invoice.member_id.clone(),
            source: match &invoice.source {
                InvoiceSource::Recharge(_) => "recharge".into(),
                InvoiceSource::Order(_) => "order".into(),
            },
            source_id: match &invoice.source {
                InvoiceSource::Recharge(trade_no) => trade_no.to_string(),
                InvoiceSource::Order(order_id) => order_id.to_string(),
            },
            amount: invoice.amount,
            item_name: invoice.item_name.clone(),
            state: invoice.state,
            invoice_number: invoice.invoice_number.clone(),
            invoice_date: invoice.invoice_date.clone(),
            carrier: invoice.carrier.clone(),
            void_reason: invoice.void_reason.clone(),
            allowances: invoice.allowances.clone(),
            in_flight: invoice.in_flight.clone(),
            calling_since: invoice.calling_since,
            failure: invoice.failure.clone(),
            unreachable: invoice.unreachable,
            attempts: invoice.attempts.clone(),
            created_at: invoice.created_at,
            updated_at: invoice.updated_at,
            version: invoice.version,
        }
    }
}

impl TryFrom<InvoiceRecord> for Invoice {
    type Error = AppError;

    fn try_from(r: InvoiceRecord) -> Result<Self, AppError> {
        let source = match r.source.as_str() {
            "recharge" => {
                InvoiceSource::Recharge(r.source_id.try_into().map_err(AppError::internal)?)
            }
            "order" => InvoiceSource::Order(r.source_id.try_into().map_err(AppError::internal)?),
            other => return Err(AppError::internal(format!("an invoice of {other:?}"))),
        };
        Ok(Invoice {
            relate_number: r.relate_number,
            member_id: r.member_id,
            source,
            amount: r.amount,
            item_name: r.item_name,
            state: r.state,
            invoice_number: r.invoice_number,
            invoice_date: r.invoice_date,
            carrier: r.carrier,
            void_reason: r.void_reason,
            allowances: r.allowances,
            in_flight: r.in_flight,
            calling_since: r.calling_since,
            failure: r.failure,
            unreachable: r.unreachable,
            attempts: r.attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

/// One attempt at recording a step of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStep {
    Done,
    /// It changed since it was read (a void or an allowance asked for, another run): read again.
    Changed,
}

impl Store {
    /// A new invoice, due at once: rides in the sale's transaction.
    pub(super) fn invoice_put(&self, invoice: &Invoice) -> Result<TransactWriteItem, AppError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&InvoiceRecord::of(
                invoice,
                Some(invoice.created_at),
            ))?))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Asks for `relate_number`'s invoice to be voided (`reason`), due at `now`: rides in the
    /// cancellation's transaction. A failure is cleared: the job looks at it again.
    pub(super) fn invoice_void_request(
        &self,
        relate_number: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        self.invoice_request(
            relate_number,
            "void_reason = :reason",
            "REMOVE failure",
            vec![(":reason", s(reason))],
            now,
        )
    }

    /// Adds `allowance` to `relate_number`'s invoice, due at `now`: rides in the refund step that
    /// records the money back.
    pub(super) fn invoice_allowance_request(
        &self,
        relate_number: &str,
        allowance: &Allowance,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        let added = serde_dynamo::to_attribute_value(vec![allowance.clone()])
            .map_err(AppError::internal)?;
        self.invoice_request(
            relate_number,
            "allowances = list_append(if_not_exists(allowances, :none), :added)",
            "",
            vec![
                (":added", added),
                (
                    ":none",
                    aws_sdk_dynamodb::types::AttributeValue::L(Vec::new()),
                ),
            ],
            now,
        )
    }

    /// Work asked of an existing invoice by another transaction: `set` (with `values`) and
    /// `then` (a further clause), a new version, and due at `now` (so the job's write of what it
    /// read is refused and it reads again).
    fn invoice_request(
        &self,
        relate_number: &str,
        set: &str,
        then: &str,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
        now: Timestamp,
    ) -> Result<TransactWriteItem, AppError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(invoice_pk(relate_number)))
            .key(SK, s(INVOICE_SK))
            .update_expression(format!(
                "SET {set}, version = version + :one, updated_at = :now, gsi2pk = :due, \
                 gsi2sk = :when {then}"
            ))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":due", s(invoices_due_gsi(relate_number)))
            .expression_attribute_values(":when", s(when_key(now, relate_number)));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        let update = update.build().map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub async fn invoice(&self, relate_number: &str) -> Result<Option<Invoice>, AppError> {
        self.get_item::<InvoiceRecord>(invoice_pk(relate_number), INVOICE_SK)
            .await?
            .map(Invoice::try_from)
            .transpose()
    }

    /// Up to `limit` invoices with a call due before `now`, soonest first.
    pub async fn invoices_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Invoice>, AppError> {
        let due = self
            .due_items(invoices_due_partitions(), now, limit)
            .await?;
        self.items_behind(&due)
            .await?
            .into_iter()
            .map(|item| from_item::<InvoiceRecord>(item).and_then(Invoice::try_from))
            .collect()
    }

    /// The invoice becomes `next` (one version on from `read_version`), due at `due_at`, or off
    /// the queue (onto the failed list when failed); an operator's change carries its `audit`
    /// entry in the same transaction.
    pub async fn invoice_step(
        &self,
        read_version: i64,
        next: &Invoice,
        due_at: Option<Timestamp>,
        audit: Option<&crate::domain::AuditEntry>,
    ) -> Result<InvoiceStep, AppError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&InvoiceRecord::of(next, due_at))?))
            .condition_expression("#version = :read")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":read", n(read_version))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if let Some(entry) = audit {
            items.push(self.audit_put(entry)?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(InvoiceStep::Done),
            TransactionAttempt::Contended(_) | TransactionAttempt::Refused(_) => {
                Ok(InvoiceStep::Changed)
            }
        }
    }

    /// A member's invoices, newest first.
    pub async fn member_invoices(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<Invoice>, AppError> {
        self.invoices_on(
            ListQuery {
                index: Some(GSI1),
                partition_attribute: GSI1_PK,
                partition_value: member_invoices_gsi(member_id),
                ascending: false,
                sort_prefix: None,
                filter: None,
                scope: format!("invoices:{member_id}"),
            },
            page,
        )
        .await
    }

    /// Failed invoices, the latest first (operators).
    pub async fn failed_invoices(&self, page: &PageRequest) -> Result<Page<Invoice>, AppError> {
        self.invoices_on(
            ListQuery {
                index: Some(GSI2),
                partition_attribute: GSI2_PK,
                partition_value: FAILED_INVOICES_GSI.into(),
                ascending: false,
                sort_prefix: None,
                filter: None,
                scope: "failed-invoices".into(),
            },
            page,
        )
        .await
    }

    /// A page of an index's invoices: the index gives the keys, the table the items.
    async fn invoices_on(
        &self,
        query: ListQuery,
        page: &PageRequest,
    ) -> Result<Page<Invoice>, AppError> {
        let keys_page = self.query_page(query, page).await?;
        let items = self
            .items_behind(&keys_page.items)
            .await?
            .into_iter()
            .map(|item| from_item::<InvoiceRecord>(item).and_then(Invoice::try_from))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: keys_page.next_cursor,
        })
    }
}

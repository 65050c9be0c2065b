//! Settlement lines and statements. A line is one item per order and type (`SETTLEMENT#<order>` /
//! `SALE` or `REVERSAL`), created only once (a conditional put, in the transaction that completes
//! or reverses the order) and never edited but for the one moment it lands in a statement. While
//! in no statement it sits on its merchant's queue of open lines (gsi2, by when it becomes
//! available); in a statement it is listed under the statement (gsi1). A statement's id is its
//! merchant and period end, so closing a period twice, even at once, finds the same statement; its
//! totals move only in the transactions that add lines to it, conditioned on each line being in no
//! statement yet, so they are always the sum of its lines.

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI1, GSI1_PK, GSI2_PK, PK, SK};
use super::{from_item, n, put_new, s, to_item, Item, ListQuery, Store, TransactionAttempt};
use crate::domain::settlement::{LineAmounts, LineType, SettlementLine, Totals};
use crate::domain::{AuditEntry, Timestamp, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

/// Lines added to a statement per transaction (DynamoDB takes 100 items; one is the statement).
const LINES_PER_TRANSACTION: usize = 90;

#[derive(Serialize, Deserialize)]
struct LineRecord {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    order_id: crate::domain::OrderId,
    order_number: String,
    merchant_id: UserId,
    line_type: LineType,
    #[serde(flatten)]
    amounts: LineAmounts,
    at: Timestamp,
    available_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    statement_id: Option<String>,
}

fn line_sort_key(line: &SettlementLine) -> String {
    format!(
        "{}#{}#{}",
        line.available_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        line.order_id,
        line.line_type.as_str()
    )
}

impl From<LineRecord> for SettlementLine {
    fn from(r: LineRecord) -> Self {
        SettlementLine {
            order_id: r.order_id,
            order_number: r.order_number,
            merchant_id: r.merchant_id,
            line_type: r.line_type,
            amounts: r.amounts,
            at: r.at,
            available_at: r.available_at,
            statement_id: r.statement_id,
        }
    }
}

/// Where a statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatementState {
    Issued,
    Paid,
    /// The transfer failed: its lines went back to the merchant's open lines, for the next period.
    Failed,
}

impl StatementState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatementState::Issued => "issued",
            StatementState::Paid => "paid",
            StatementState::Failed => "failed",
        }
    }
}

/// A merchant's statement for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub id: String,
    pub merchant_id: UserId,
    /// `YYYY-MM` of `period_end`.
    pub period: String,
    pub period_end: chrono::NaiveDate,
    pub state: StatementState,
    #[serde(flatten)]
    pub totals: Totals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct StatementRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    #[serde(flatten)]
    statement: Statement,
}

fn statement_record(statement: &Statement) -> StatementRecord {
    let order = format!("{}#{}", statement.period_end, statement.id);
    StatementRecord {
        pk: statement_pk(&statement.id),
        sk: STATEMENT_SK.into(),
        entity: "Statement".into(),
        gsi1pk: merchant_statements_gsi(&statement.merchant_id),
        gsi1sk: order.clone(),
        gsi2pk: statements_by_state_gsi(statement.state.as_str()),
        gsi2sk: order,
        statement: statement.clone(),
    }
}

/// Where a merchant is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutAccount {
    pub bank_code: String,
    pub account_number: String,
    pub holder_name: String,
    pub updated_at: Timestamp,
}

/// The id of `merchant`'s statement for the period ending `period_end`.
pub fn statement_id(merchant: &UserId, period_end: chrono::NaiveDate) -> String {
    format!("{}_{}", period_end.format("%Y%m%d"), merchant)
}

/// One attempt at an operator's cancellation of a completed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletedCancel {
    Cancelled,
    NotCompleted,
    AccountChanged,
    Contended,
}

/// What adding lines to a statement came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddLines {
    Added,
    /// A line was taken by another close meanwhile, or the statement moved on: read again.
    Raced,
    Contended,
}

impl Store {
    /// The put of a new line (in the transaction that completes or reverses its order): only if the
    /// order has no line of this type yet.
    pub(super) fn line_put(&self, line: &SettlementLine) -> Result<TransactWriteItem, AppError> {
        let record = LineRecord {
            pk: settlement_line_pk(&line.order_id),
            sk: line.line_type.as_str().to_ascii_uppercase(),
            entity: "SettlementLine".into(),
            gsi1pk: None,
            gsi1sk: None,
            gsi2pk: Some(open_lines_gsi(&line.merchant_id)),
            gsi2sk: Some(line_sort_key(line)),
            order_id: line.order_id.clone(),
            order_number: line.order_number.clone(),
            merchant_id: line.merchant_id.clone(),
            line_type: line.line_type,
            amounts: line.amounts,
            at: line.at,
            available_at: line.available_at,
            statement_id: None,
        };
        put_new(&self.table, to_item(&record)?)
    }

    /// An order's line of `line_type`, if it has one.
    pub async fn settlement_line(
        &self,
        order_id: &crate::domain::OrderId,
        line_type: LineType,
    ) -> Result<Option<SettlementLine>, AppError> {
        Ok(self
            .get_item::<LineRecord>(
                settlement_line_pk(order_id),
                &line_type.as_str().to_ascii_uppercase(),
            )
            .await?
            .map(SettlementLine::from))
    }

    /// `merchant`'s lines in no statement that are available by `by`, soonest first (at most
    /// `limit`).
    pub async fn open_lines(
        &self,
        merchant: &UserId,
        by: Timestamp,
        limit: usize,
    ) -> Result<Vec<SettlementLine>, AppError> {
        let items = self
            .due_items(vec![open_lines_gsi(merchant)], by, limit)
            .await?;
        self.lines_of(&items).await
    }

    /// Every line of `merchant` in no statement yet, pending or available (for the invariants).
    pub async fn all_open_lines(&self, merchant: &UserId) -> Result<Vec<SettlementLine>, AppError> {
        // Sort keys are RFC 3339 text: the far end must be a four-digit year.
        let far = chrono::DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .map_err(AppError::internal)?
            .with_timezone(&chrono::Utc);
        let mut lines = Vec::new();
        loop {
            let batch = self.open_lines(merchant, far, 1_000).await?;
            let done = batch.len() < 1_000;
            lines.extend(batch);
            if done {
                return Ok(lines);
            }
        }
    }

    async fn lines_of(&self, items: &[Item]) -> Result<Vec<SettlementLine>, AppError> {
        self.items_behind(items)
            .await?
            .into_iter()
            .map(|item| from_item::<LineRecord>(item).map(SettlementLine::from))
            .collect()
    }

    /// Every line of a statement, in the order they became available.
    pub async fn statement_lines(
        &self,
        statement_id: &str,
    ) -> Result<Vec<SettlementLine>, AppError> {
        let mut lines = Vec::new();
        let mut page = PageRequest {
            limit: 100,
            cursor: None,
        };
        loop {
            let query = ListQuery {
                index: Some(GSI1),
                partition_attribute: GSI1_PK,
                partition_value: statement_lines_gsi(statement_id),
                ascending: true,
                sort_prefix: None,
                filter: None,
                scope: format!("statement-lines:{statement_id}"),
            };
            let keys = self.query_page(query, &page).await?;
            lines.extend(self.lines_of(&keys.items).await?);
            match keys.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(lines),
            }
        }
    }

    pub async fn statement(&self, id: &str) -> Result<Option<Statement>, AppError> {
        Ok(self
            .get_item::<StatementRecord>(statement_pk(id), STATEMENT_SK)
            .await?
            .map(|r| r.statement))
    }

    /// Creates `statement` (empty) unless it exists; the statement as stored either way.
    pub async fn open_statement(&self, statement: &Statement) -> Result<Statement, AppError> {
        let item = to_item(&statement_record(statement))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(statement.clone()),
            Err(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) => self
                .statement(&statement.id)
                .await?
                .ok_or_else(|| AppError::internal("a statement vanished")),
            Err(other) => Err(super::dynamo_failure("open statement", other)),
        }
    }

    /// Adds `lines` (each in no statement yet) to the issued statement `statement_id`, its totals
    /// moving by their sum: one transaction.
    pub async fn add_lines(
        &self,
        statement_id: &str,
        lines: &[SettlementLine],
    ) -> Result<AddLines, AppError> {
        let totals = Totals::of(lines.iter().map(|l| &l.amounts));
        let statement = Update::builder()
            .table_name(&self.table)
            .key(PK, s(statement_pk(statement_id)))
            .key(SK, s(STATEMENT_SK))
            .update_expression(
                "ADD gross_twd :gross, commission_twd :commission, net_twd :net, #lines :count",
            )
            .condition_expression("#state = :issued")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#lines", "lines")
            .expression_attribute_values(":issued", s(StatementState::Issued.as_str()))
            .expression_attribute_values(":gross", n(totals.gross_twd))
            .expression_attribute_values(":commission", n(totals.commission_twd))
            .expression_attribute_values(":net", n(totals.net_twd))
            .expression_attribute_values(":count", n(totals.lines))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![TransactWriteItem::builder().update(statement).build()];
        for line in lines.iter().take(LINES_PER_TRANSACTION) {
            let update = Update::builder()
                .table_name(&self.table)
                .key(PK, s(settlement_line_pk(&line.order_id)))
                .key(SK, s(line.line_type.as_str().to_ascii_uppercase()))
                .update_expression(
                    "SET statement_id = :statement, gsi1pk = :list, gsi1sk = :order REMOVE gsi2pk, gsi2sk",
                )
                .condition_expression("attribute_not_exists(statement_id)")
                .expression_attribute_values(":statement", s(statement_id))
                .expression_attribute_values(":list", s(statement_lines_gsi(statement_id)))
                .expression_attribute_values(":order", s(line_sort_key(line)))
                .build()
                .map_err(AppError::internal)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(AddLines::Added),
            TransactionAttempt::Contended(_) => Ok(AddLines::Contended),
            TransactionAttempt::Refused(_) => Ok(AddLines::Raced),
        }
    }

    /// An issued statement becomes `next` (paid or failed), audited: one transaction, only if
    /// still issued (a statement no longer issued never takes lines again).
    pub async fn settle_statement(
        &self,
        next: &Statement,
        audit: &AuditEntry,
    ) -> Result<AddLines, AppError> {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&statement_record(next))?))
            .condition_expression("#state = :issued")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":issued", s(StatementState::Issued.as_str()))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.audit_put(audit)?,
        ];
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(AddLines::Added),
            TransactionAttempt::Contended(_) => Ok(AddLines::Contended),
            TransactionAttempt::Refused(_) => Ok(AddLines::Raced),
        }
    }

    /// A failed statement's `lines` back on their merchant's open lines, for the next period: in
    /// transactions of up to 90, each line only if still in `statement_id` (a rerun after a stop
    /// half-way releases the rest).
    pub async fn release_lines(
        &self,
        statement_id: &str,
        lines: &[SettlementLine],
    ) -> Result<AddLines, AppError> {
        for chunk in lines.chunks(LINES_PER_TRANSACTION) {
            let mut items = Vec::with_capacity(chunk.len());
            for line in chunk {
                let update = Update::builder()
                    .table_name(&self.table)
                    .key(PK, s(settlement_line_pk(&line.order_id)))
                    .key(SK, s(line.line_type.as_str().to_ascii_uppercase()))
                    .update_expression(
                        "SET gsi2pk = :open, gsi2sk = :when REMOVE statement_id, gsi1pk, gsi1sk",
                    )
                    .condition_expression("statement_id = :statement")
                    .expression_attribute_values(":statement", s(statement_id))
                    .expression_attribute_values(":open", s(open_lines_gsi(&line.merchant_id)))
                    .expression_attribute_values(":when", s(line_sort_key(line)))
                    .build()
                    .map_err(AppError::internal)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
            match self.transact_once(items).await? {
                TransactionAttempt::Committed => {}
                TransactionAttempt::Contended(_) => return Ok(AddLines::Contended),
                TransactionAttempt::Refused(_) => return Ok(AddLines::Raced),
            }
        }
        Ok(AddLines::Added)
    }

    /// An operator's commission for `merchant`, if one was set.
    pub async fn merchant_commission(&self, merchant: &UserId) -> Result<Option<u32>, AppError> {
        #[derive(Deserialize)]
        struct Commission {
            percent: u32,
        }
        Ok(self
            .get_item::<Commission>(user_pk(merchant), COMMISSION_SK)
            .await?
            .map(|c| c.percent))
    }

    /// Sets `merchant`'s commission, audited, in one transaction.
    pub async fn set_merchant_commission(
        &self,
        merchant: &UserId,
        percent: u32,
        audit: &AuditEntry,
    ) -> Result<(), AppError> {
        let item = std::collections::HashMap::from([
            (PK.to_string(), s(user_pk(merchant))),
            (SK.to_string(), s(COMMISSION_SK)),
            ("entity".to_string(), s("Commission")),
            ("percent".to_string(), n(i64::from(percent))),
        ]);
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.audit_put(audit)?,
        ];
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(()),
            _ => Err(AppError::Unavailable {
                retry_after_secs: 1,
            }),
        }
    }

    /// An operator cancels a completed order, as one transaction: 0. the order completed →
    /// cancelled (only if still completed); 1. the member's account takes `refund`, only if
    /// unchanged since read; 2. its REFUND row; 3. the audit entry; 4. (when the order has a sale
    /// line) the reversal line, only if none exists yet; 5. (when it was invoiced, `void_invoice`:
    /// its RelateNumber and the reason) the invoice's void, asked of the invoice job. Nothing goes
    /// back to stock.
    pub async fn cancel_completed_order(
        &self,
        order: &crate::domain::Order,
        refund: &crate::domain::BalanceChange,
        reversal: Option<&SettlementLine>,
        void_invoice: Option<(&str, &str)>,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<CompletedCancel, AppError> {
        let cancel = Update::builder()
            .table_name(&self.table)
            .key(PK, s(order_pk(&order.id)))
            .key(SK, s(ORDER_SK))
            .update_expression("SET #status = :cancelled, updated_at = :now")
            .condition_expression("#status = :completed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":cancelled",
                s(crate::domain::OrderStatus::Cancelled.as_str()),
            )
            .expression_attribute_values(
                ":completed",
                s(crate::domain::OrderStatus::Completed.as_str()),
            )
            .expression_attribute_values(":now", super::timestamp(now))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![
            TransactWriteItem::builder().update(cancel).build(),
            self.account_change(&order.member_id, refund)?,
            self.ledger_put(refund)?,
            self.audit_put(audit)?,
        ];
        if let Some(line) = reversal {
            items.push(self.line_put(line)?);
        }
        if let Some((relate_number, reason)) = void_invoice {
            items.push(self.invoice_void_request(relate_number, reason, now)?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(CompletedCancel::Cancelled),
            TransactionAttempt::Contended(_) => Ok(CompletedCancel::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(0) => {
                Ok(CompletedCancel::NotCompleted)
            }
            TransactionAttempt::Refused(_) => Ok(CompletedCancel::AccountChanged),
        }
    }

    /// Whether the month-end run closed the period ending `period_end` for every merchant.
    pub async fn period_closed(&self, period_end: chrono::NaiveDate) -> Result<bool, AppError> {
        #[derive(Deserialize)]
        struct Marker {}
        Ok(self
            .get_item::<Marker>(CLOSED_PERIODS_PK.to_string(), &period_end.to_string())
            .await?
            .is_some())
    }

    /// Notes that the month-end run closed the period ending `period_end`.
    pub async fn mark_period_closed(
        &self,
        period_end: chrono::NaiveDate,
        at: Timestamp,
    ) -> Result<(), AppError> {
        let item = std::collections::HashMap::from([
            (PK.to_string(), s(CLOSED_PERIODS_PK)),
            (SK.to_string(), s(period_end.to_string())),
            ("entity".to_string(), s("ClosedPeriod")),
            ("at".to_string(), super::timestamp(at)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| super::dynamo_failure("closed period", e.into_service_error()))?;
        Ok(())
    }

    /// A merchant's payout account, if kept.
    pub async fn payout_account(
        &self,
        merchant: &UserId,
    ) -> Result<Option<PayoutAccount>, AppError> {
        self.get_item::<PayoutAccount>(user_pk(merchant), PAYOUT_ACCOUNT_SK)
            .await
    }

    /// Keeps `account` as `merchant`'s payout account, audited, in one transaction.
    pub async fn set_payout_account(
        &self,
        merchant: &UserId,
        account: &PayoutAccount,
        audit: &AuditEntry,
    ) -> Result<(), AppError> {
        #[derive(Serialize)]
        struct Record<'a> {
            pk: String,
            sk: &'static str,
            entity: &'static str,
            #[serde(flatten)]
            account: &'a PayoutAccount,
        }
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&Record {
                pk: user_pk(merchant),
                sk: PAYOUT_ACCOUNT_SK,
                entity: "PayoutAccount",
                account,
            })?))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.audit_put(audit)?,
        ];
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(()),
            _ => Err(AppError::Unavailable {
                retry_after_secs: 1,
            }),
        }
    }

    /// One merchant's statements, newest period first.
    pub async fn merchant_statements(
        &self,
        merchant: &UserId,
        page: &PageRequest,
    ) -> Result<Page<Statement>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: merchant_statements_gsi(merchant),
            ascending: false,
            sort_prefix: None,
            filter: None,
            scope: format!("statements:{merchant}"),
        };
        self.statements_page(query, page).await
    }

    /// Every statement in `state`, newest period first (operators).
    pub async fn statements_in(
        &self,
        state: StatementState,
        page: &PageRequest,
    ) -> Result<Page<Statement>, AppError> {
        let query = ListQuery {
            index: Some(super::table::GSI2),
            partition_attribute: GSI2_PK,
            partition_value: statements_by_state_gsi(state.as_str()),
            ascending: false,
            sort_prefix: None,
            filter: None,
            scope: format!("statements-{}", state.as_str()),
        };
        self.statements_page(query, page).await
    }

    async fn statements_page(
        &self,
        query: ListQuery,
        page: &PageRequest,
    ) -> Result<Page<Statement>, AppError> {
        let keys_page = self.query_page(query, page).await?;
        let items = self
            .items_behind(&keys_page.items)
            .await?
            .into_iter()
            .map(|item| from_item::<StatementRecord>(item).map(|r| r.statement))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: keys_page.next_cursor,
        })
    }
}

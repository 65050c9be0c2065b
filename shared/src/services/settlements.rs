//! What merchants are owed: the commission, the line each completed order writes (in the
//! transaction that completes it, see `orders`/`deliveries`), statements closing a period's lines,
//! and operators marking them paid or failed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::required_reason;
use super::retry::RetryBudget;
use crate::config::SettlementConfig;
use crate::domain::settlement::{self, LineType, SettlementLine, Totals, COMMISSION_PERCENT_MAX};
use crate::domain::{AuditAction, AuditEntry, Order, Role, Timestamp, UserId};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
use crate::store::{AddLines, PayoutAccount, Statement, StatementState, Store, UserSearch};

/// Lines added to a statement per transaction.
const LINES_PER_STEP: usize = 90;

/// A merchant's commission set by an operator.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CommissionRequest {
    /// Percent of each sale the platform keeps, 0–50.
    #[schema(value_type = u32, required = true, minimum = 0, maximum = 50, example = 8)]
    pub percent: Option<i64>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// A merchant's commission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommissionView {
    pub merchant_id: String,
    pub percent: u32,
}

/// One line of a statement (or of the open lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    pub order_id: String,
    pub order_number: String,
    pub line_type: LineType,
    pub points: i64,
    pub gross_twd: i64,
    pub commission_percent: u32,
    pub commission_twd: i64,
    pub net_twd: i64,
    /// When the order completed (a sale) or was cancelled after completion (a reversal).
    pub completed_at: chrono::DateTime<chrono::Utc>,
    pub available_at: chrono::DateTime<chrono::Utc>,
}

impl From<SettlementLine> for LineView {
    fn from(l: SettlementLine) -> Self {
        LineView {
            order_id: l.order_id.to_string(),
            order_number: l.order_number,
            line_type: l.line_type,
            points: l.amounts.points,
            gross_twd: l.amounts.gross_twd,
            commission_percent: l.amounts.commission_percent,
            commission_twd: l.amounts.commission_twd,
            net_twd: l.amounts.net_twd,
            completed_at: l.at,
            available_at: l.available_at,
        }
    }
}

/// A statement with its totals (and its lines when asked for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementView {
    pub id: String,
    pub merchant_id: String,
    /// `YYYY-MM`.
    pub period: String,
    pub period_end: chrono::NaiveDate,
    pub state: StatementState,
    #[serde(flatten)]
    pub totals: Totals,
    /// The bank transfer's reference, once paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<LineView>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl StatementView {
    fn of(s: Statement, lines: Option<Vec<SettlementLine>>) -> Self {
        StatementView {
            id: s.id,
            merchant_id: s.merchant_id.to_string(),
            period: s.period,
            period_end: s.period_end,
            state: s.state,
            totals: s.totals,
            reference: s.reference,
            lines: lines.map(|lines| lines.into_iter().map(LineView::from).collect()),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A period to close.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CloseRequest {
    /// The period's last day (Taipei), `YYYY-MM-DD`: every available line up to its end.
    #[schema(value_type = String, required = true, example = "2026-11-30")]
    pub period_end: Option<String>,
}

/// What closing a period did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CloseReport {
    pub period_end: Option<chrono::NaiveDate>,
    /// Statements that got lines (new, or the same period's, closed again).
    pub statements: Vec<StatementView>,
}

/// A statement paid by bank transfer.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PaidRequest {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, example = "TRF-20261201-0007")]
    pub reference: Option<String>,
}

pub struct SettlementService<'a> {
    pub store: &'a Store,
    pub config: &'a SettlementConfig,
    pub points_per_twd: i64,
    pub clock: &'a crate::clock::Clock,
    /// `at_redemption`: a completed order queues its e-invoice.
    pub invoice_mode: crate::domain::e_invoice::InvoiceMode,
}

impl SettlementService<'_> {
    /// `merchant`'s commission: an operator's override, else `COMMISSION_PERCENT`.
    pub async fn commission_of(&self, merchant: &UserId) -> Result<u32, AppError> {
        Ok(self
            .store
            .merchant_commission(merchant)
            .await?
            .unwrap_or(self.config.commission_percent))
    }

    /// What `order`'s completion at `at` writes: its sale line at `commission_percent`, and in
    /// `at_redemption` its e-invoice (none when it spent no purchased points).
    pub fn sale_writes(
        &self,
        order: &Order,
        at: Timestamp,
        commission_percent: u32,
    ) -> crate::store::SaleWrites {
        crate::store::SaleWrites {
            line: self.sale_line(order, at, commission_percent),
            invoice: match self.invoice_mode {
                crate::domain::e_invoice::InvoiceMode::AtRedemption => {
                    crate::domain::e_invoice::Invoice::for_order(order, self.points_per_twd, at)
                }
                _ => None,
            },
        }
    }

    /// The sale line `order` writes when it completes at `at`, at `commission_percent`.
    pub fn sale_line(
        &self,
        order: &Order,
        at: Timestamp,
        commission_percent: u32,
    ) -> SettlementLine {
        SettlementLine {
            order_id: order.id.clone(),
            order_number: order.order_number.clone(),
            merchant_id: order.merchant_id.clone(),
            line_type: LineType::Sale,
            amounts: settlement::sale(
                order.points_cost.get(),
                self.points_per_twd,
                commission_percent,
            ),
            at,
            available_at: at + chrono::Duration::days(i64::from(self.config.hold_days)),
            statement_id: None,
        }
    }

    /// Sets a merchant's commission (audited).
    pub async fn set_commission(
        &self,
        admin: &UserId,
        merchant: &UserId,
        request: CommissionRequest,
    ) -> Result<CommissionView, AppError> {
        let mut check = FieldCheck::new();
        let percent = check
            .required("percent", request.percent)
            .parse(&mut check, |p| {
                u32::try_from(p)
                    .ok()
                    .filter(|p| *p <= COMMISSION_PERCENT_MAX)
                    .ok_or_else(|| {
                        format!("must be a whole number from 0 to {COMMISSION_PERCENT_MAX}")
                    })
            });
        let reason = required_reason(&mut check, request.reason);
        let (percent, reason) = check.finish_with((percent, reason))?;
        let user = self.store.get_user(merchant).await?;
        if !user.is_some_and(|u| u.role == Role::Merchant) {
            return Err(not_found::merchant());
        }
        let now = self.clock.now();
        let before = self.commission_of(merchant).await?;
        let audit = AuditEntry::new(
            admin,
            AuditAction::CommissionSet,
            format!("merchant:{merchant}"),
            serde_json::json!({"percent": before}),
            serde_json::json!({"percent": percent}),
            Some(reason),
            now,
        );
        self.store
            .set_merchant_commission(merchant, percent, &audit)
            .await?;
        Ok(CommissionView {
            merchant_id: merchant.to_string(),
            percent,
        })
    }

    /// Closes the period ending `period_end` for every merchant with lines available by then.
    pub async fn close_period(&self, request: CloseRequest) -> Result<CloseReport, AppError> {
        let mut check = FieldCheck::new();
        let period_end =
            check
                .required("period_end", request.period_end)
                .parse(&mut check, |raw| {
                    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                        .map_err(|_| "must be a date, YYYY-MM-DD".to_string())
                });
        let period_end = check.finish_with(period_end)?;
        self.close(period_end).await
    }

    /// The month-end run (each scheduled run asks; only the first after a month ends works):
    /// closes last month (Taipei) for every merchant, then notes it done.
    pub async fn close_last_month(&self) -> Result<CloseReport, AppError> {
        let period_end = settlement::last_closed_month_end(self.clock.now());
        if self.store.period_closed(period_end).await? {
            return Ok(CloseReport::default());
        }
        let report = Box::pin(self.close(period_end)).await?;
        self.store
            .mark_period_closed(period_end, self.clock.now())
            .await?;
        Ok(report)
    }

    async fn close(&self, period_end: chrono::NaiveDate) -> Result<CloseReport, AppError> {
        let mut report = CloseReport {
            period_end: Some(period_end),
            statements: Vec::new(),
        };
        let search = UserSearch {
            prefix: None,
            role: Some(Role::Merchant),
            is_active: None,
        };
        let mut page = PageRequest {
            limit: 100,
            cursor: None,
        };
        loop {
            let merchants = self.store.search_users(&search, &page).await?;
            for merchant in merchants.items {
                // Boxed: the step's future is large, and a scheduled run's stack is not.
                if let Some(statement) =
                    Box::pin(self.close_merchant(&merchant.id, period_end)).await?
                {
                    report.statements.push(StatementView::of(statement, None));
                }
            }
            match merchants.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(report),
            }
        }
    }

    /// Puts `merchant`'s open lines available by the end of `period_end` (and by now) into the
    /// period's statement. `None` when there were none.
    async fn close_merchant(
        &self,
        merchant: &UserId,
        period_end: chrono::NaiveDate,
    ) -> Result<Option<Statement>, AppError> {
        let now = self.clock.now();
        let by = settlement::end_of_taipei_day(period_end).min(now);
        let id = crate::store::statement_id(merchant, period_end);
        let mut statement: Option<Statement> = None;
        let mut budget = RetryBudget::new();
        loop {
            let lines = self.store.open_lines(merchant, by, LINES_PER_STEP).await?;
            if lines.is_empty() {
                return match statement {
                    Some(s) => Ok(self.store.statement(&s.id).await?),
                    None => Ok(None),
                };
            }
            let current = match &statement {
                Some(s) => s.clone(),
                None => {
                    let opened = self
                        .store
                        .open_statement(&Statement {
                            id: id.clone(),
                            merchant_id: merchant.clone(),
                            period: settlement::period_of(period_end),
                            period_end,
                            state: StatementState::Issued,
                            totals: Totals::default(),
                            reference: None,
                            created_at: now,
                            updated_at: now,
                        })
                        .await?;
                    statement = Some(opened.clone());
                    opened
                }
            };
            if current.state != StatementState::Issued {
                // Paid or failed already: a closed statement never grows; its lines wait for the
                // next period.
                return Ok(Some(current));
            }
            match self.store.add_lines(&current.id, &lines).await? {
                AddLines::Added => {}
                // Another close took a line, or an operator settled the statement: read both again.
                AddLines::Raced => {
                    statement = None;
                    budget.lost().await?
                }
                AddLines::Contended => budget.lost().await?,
            }
        }
    }

    /// A statement, with its lines; a merchant sees only their own (another's is 404).
    pub async fn statement(
        &self,
        id: &str,
        merchant: Option<&UserId>,
    ) -> Result<(Statement, Vec<SettlementLine>), AppError> {
        let statement = self
            .store
            .statement(id)
            .await?
            .filter(|s| merchant.is_none_or(|m| s.merchant_id == *m))
            .ok_or_else(statement_not_found)?;
        let lines = self.store.statement_lines(id).await?;
        Ok((statement, lines))
    }

    pub async fn statement_view(
        &self,
        id: &str,
        merchant: Option<&UserId>,
    ) -> Result<StatementView, AppError> {
        let (statement, lines) = self.statement(id, merchant).await?;
        Ok(StatementView::of(statement, Some(lines)))
    }

    pub async fn merchant_statements(
        &self,
        merchant: &UserId,
        page: &PageRequest,
    ) -> Result<Page<StatementView>, AppError> {
        Ok(self
            .store
            .merchant_statements(merchant, page)
            .await?
            .map(|s| StatementView::of(s, None)))
    }

    pub async fn statements_in(
        &self,
        state: StatementState,
        page: &PageRequest,
    ) -> Result<Page<StatementView>, AppError> {
        Ok(self
            .store
            .statements_in(state, page)
            .await?
            .map(|s| StatementView::of(s, None)))
    }

    /// The statement as CSV: UTF-8 with a BOM, one row per line.
    pub async fn export_csv(
        &self,
        id: &str,
        merchant: Option<&UserId>,
    ) -> Result<String, AppError> {
        let (statement, lines) = self.statement(id, merchant).await?;
        let mut csv = String::from(
            "\u{feff}statement_id,period,order_number,completed_at,points,gross_twd,commission_twd,net_twd,line_type\r\n",
        );
        for line in lines {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\r\n",
                statement.id,
                statement.period,
                line.order_number,
                crate::domain::codes::in_taipei(line.at).format("%Y-%m-%d %H:%M:%S"),
                line.amounts.points,
                line.amounts.gross_twd,
                line.amounts.commission_twd,
                line.amounts.net_twd,
                line.line_type.as_str()
            ));
        }
        Ok(csv)
    }

    /// Marks an issued statement paid with the transfer's reference (audited).
    pub async fn mark_paid(
        &self,
        admin: &UserId,
        id: &str,
        request: PaidRequest,
    ) -> Result<StatementView, AppError> {
        let mut check = FieldCheck::new();
        let reference = check
            .required("reference", request.reference)
            .parse(&mut check, |raw| {
                let reference = raw.trim().to_string();
                if reference.is_empty() || reference.chars().count() > 100 {
                    Err("must be 1 to 100 characters".to_string())
                } else if let Some(c) = crate::domain::text::forbidden_char(&reference, false) {
                    Err(crate::domain::text::forbidden_problem(c))
                } else {
                    Ok(reference)
                }
            });
        let reference = check.finish_with(reference)?;
        self.settle(admin, id, StatementState::Paid, Some(reference))
            .await
    }

    /// Marks an issued statement failed (audited): its lines go back to the open lines, for the
    /// next period.
    pub async fn mark_failed(&self, admin: &UserId, id: &str) -> Result<StatementView, AppError> {
        self.settle(admin, id, StatementState::Failed, None).await
    }

    async fn settle(
        &self,
        admin: &UserId,
        id: &str,
        state: StatementState,
        reference: Option<String>,
    ) -> Result<StatementView, AppError> {
        let mut budget = RetryBudget::new();
        loop {
            let (statement, lines) = self.statement(id, None).await?;
            if statement.state == StatementState::Failed
                && state == StatementState::Failed
                && !lines.is_empty()
            {
                // Failed before, stopped half-way through giving its lines back: finish.
                self.release(id).await?;
                return Ok(StatementView::of(statement, Some(Vec::new())));
            }
            if statement.state != StatementState::Issued {
                return Err(AppError::conflict(
                    "statement_not_issued",
                    format!("the statement is {} already", statement.state.as_str()),
                ));
            }
            let now = self.clock.now();
            let mut next = statement.clone();
            next.state = state;
            next.reference = reference.clone();
            next.updated_at = now;
            let audit = AuditEntry::new(
                admin,
                match state {
                    StatementState::Paid => AuditAction::StatementPaid,
                    _ => AuditAction::StatementFailed,
                },
                format!("statement:{id}"),
                serde_json::json!({"state": statement.state, "net_twd": statement.totals.net_twd}),
                serde_json::json!({"state": state, "reference": reference}),
                reference.clone(),
                now,
            );
            match self.store.settle_statement(&next, &audit).await? {
                AddLines::Added => {
                    if state == StatementState::Failed {
                        self.release(id).await?;
                    }
                    return Ok(StatementView::of(next, Some(lines)));
                }
                AddLines::Raced | AddLines::Contended => budget.lost().await?,
            }
        }
    }
}

impl SettlementService<'_> {
    /// A failed statement's lines back on the open lines (retried while contended).
    async fn release(&self, id: &str) -> Result<(), AppError> {
        let mut budget = RetryBudget::new();
        loop {
            let still: Vec<SettlementLine> = self.store.statement_lines(id).await?;
            if still.is_empty() {
                return Ok(());
            }
            match self.store.release_lines(id, &still).await? {
                AddLines::Added => return Ok(()),
                AddLines::Raced | AddLines::Contended => budget.lost().await?,
            }
        }
    }
}

/// A statement id from a path: its period end and merchant (`YYYYMMDD_<uuid>`), else `None`.
pub fn parse_statement_id(raw: &str) -> Option<String> {
    let (day, merchant) = raw.split_once('_')?;
    (day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()) && UserId::parse(merchant).is_some())
        .then(|| raw.to_string())
}

fn statement_not_found() -> AppError {
    not_found::statement()
}

/// A merchant's payout account, as they send it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PayoutAccountRequest {
    /// The bank's 3-digit code (e.g. `700` for Chunghwa Post).
    #[schema(value_type = String, required = true, pattern = "^[0-9]{3}$", example = "812")]
    pub bank_code: Option<String>,
    /// 10–16 digits.
    #[schema(value_type = String, required = true, pattern = "^[0-9]{10,16}$", example = "00012345678901")]
    pub account_number: Option<String>,
    /// The account holder's name, 1–50 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, example = "茶舖有限公司")]
    pub holder_name: Option<String>,
}

/// A payout account: the number masked but its last 4 digits, except to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PayoutAccountView {
    pub bank_code: String,
    pub account_number: String,
    pub holder_name: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl PayoutAccountView {
    fn masked(a: PayoutAccount) -> Self {
        let digits = a.account_number.chars().count();
        let shown: String = a
            .account_number
            .chars()
            .skip(digits.saturating_sub(4))
            .collect();
        PayoutAccountView {
            bank_code: a.bank_code,
            account_number: format!("{}{shown}", "*".repeat(digits.saturating_sub(4))),
            holder_name: a.holder_name,
            updated_at: a.updated_at,
        }
    }

    fn unmasked(a: PayoutAccount) -> Self {
        PayoutAccountView {
            bank_code: a.bank_code,
            account_number: a.account_number,
            holder_name: a.holder_name,
            updated_at: a.updated_at,
        }
    }
}

/// A statement as operators see it: with its lines and the merchant's payout account in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminStatementView {
    #[serde(flatten)]
    pub statement: StatementView,
    pub payout_account: Option<PayoutAccountView>,
}

impl SettlementService<'_> {
    /// The merchant's payout account, masked.
    pub async fn payout_account(&self, merchant: &UserId) -> Result<PayoutAccountView, AppError> {
        self.store
            .payout_account(merchant)
            .await?
            .map(PayoutAccountView::masked)
            .ok_or_else(|| {
                AppError::not_found("payout_account_not_found", "no payout account kept yet")
            })
    }

    /// Keeps the merchant's payout account (each change audited); answered masked.
    pub async fn set_payout_account(
        &self,
        merchant: &UserId,
        request: PayoutAccountRequest,
    ) -> Result<PayoutAccountView, AppError> {
        let digits = |raw: &str, min: usize, max: usize| {
            let value = raw.trim();
            (value.len() >= min && value.len() <= max && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.to_string())
        };
        let mut check = FieldCheck::new();
        let bank_code = check
            .required("bank_code", request.bank_code)
            .parse(&mut check, |raw| {
                digits(&raw, 3, 3).ok_or_else(|| "must be the bank's 3 digits".to_string())
            });
        let account_number = check
            .required("account_number", request.account_number)
            .parse(&mut check, |raw| {
                digits(&raw, 10, 16).ok_or_else(|| "must be 10 to 16 digits".to_string())
            });
        let holder_name =
            check
                .required("holder_name", request.holder_name)
                .parse(&mut check, |raw| {
                    let name = raw.trim().to_string();
                    if name.is_empty() || name.chars().count() > 50 {
                        Err("must be 1 to 50 characters".to_string())
                    } else if let Some(c) = crate::domain::text::forbidden_char(&name, false) {
                        Err(crate::domain::text::forbidden_problem(c))
                    } else {
                        Ok(name)
                    }
                });
        let (bank_code, account_number, holder_name) =
            check.finish_with((bank_code, account_number, holder_name))?;
        let now = self.clock.now();
        let before = self.store.payout_account(merchant).await?;
        let account = PayoutAccount {
            bank_code,
            account_number,
            holder_name,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            merchant,
            AuditAction::PayoutAccountChanged,
            format!("merchant:{merchant}"),
            serde_json::to_value(before.map(PayoutAccountView::masked))
                .map_err(AppError::internal)?,
            serde_json::to_value(PayoutAccountView::masked(account.clone()))
                .map_err(AppError::internal)?,
            None,
            now,
        );
        self.store
            .set_payout_account(merchant, &account, &audit)
            .await?;
        Ok(PayoutAccountView::masked(account))
    }

    /// A statement as operators see it.
    pub async fn admin_statement(&self, id: &str) -> Result<AdminStatementView, AppError> {
        let (statement, lines) = self.statement(id, None).await?;
        let payout_account = self
            .store
            .payout_account(&statement.merchant_id)
            .await?
            .map(PayoutAccountView::unmasked);
        Ok(AdminStatementView {
            statement: StatementView::of(statement, Some(lines)),
            payout_account,
        })
    }
}

/// Why an operator cancels a completed order.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CancelCompletedRequest {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, example = "gift never handed over")]
    pub reason: Option<String>,
}

impl SettlementService<'_> {
    /// An operator cancels a completed order: the member gets its points back (each kind as the
    /// order took it), nothing returns to stock, and a reversal line (the sale's amounts negated,
    /// at its rate) is written, all in one transaction, audited. 409 `order_not_completed`
    /// otherwise.
    pub async fn cancel_completed(
        &self,
        admin: &UserId,
        order_id: &crate::domain::OrderId,
        request: CancelCompletedRequest,
    ) -> Result<crate::services::orders::OrderView, AppError> {
        let mut check = FieldCheck::new();
        let reason = required_reason(&mut check, request.reason);
        let reason = check.finish_with(reason)?;
        let mut budget = RetryBudget::new();
        loop {
            let order = self
                .store
                .get_order(order_id)
                .await?
                .ok_or_else(not_found::order)?;
            if order.status != crate::domain::OrderStatus::Completed {
                return Err(AppError::conflict(
                    "order_not_completed",
                    format!(
                        "the order is {}: only a completed order is cancelled here",
                        order.status.as_str()
                    ),
                ));
            }
            let now = self.clock.now();
            let account = self
                .store
                .account_snapshot(&order.member_id)
                .await?
                .ok_or_else(|| AppError::internal("member without a point account"))?;
            let refund = account
                .apply(
                    &order.member_id,
                    crate::domain::Movement::Refund {
                        points: order.points_cost,
                        order: &order.id,
                        promotional: order.promotional_points,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|e| AppError::internal(e.to_string()))?;
            let reversal = self
                .store
                .settlement_line(&order.id, LineType::Sale)
                .await?
                .map(|sale| SettlementLine {
                    line_type: LineType::Reversal,
                    amounts: sale.amounts.reversed(),
                    at: now,
                    // Never owed before the sale it reverses.
                    available_at: sale.available_at.max(now),
                    statement_id: None,
                    ..sale
                });
            let audit = AuditEntry::new(
                admin,
                AuditAction::CompletedOrderCancelled,
                format!("order:{order_id}"),
                serde_json::json!({"status": order.status}),
                serde_json::json!({"status": "cancelled", "points_refunded": order.points_cost.get()}),
                Some(reason.clone()),
                now,
            );
            // The order's e-invoice (`at_redemption`), unless already void, is voided by the job.
            let invoice =
                crate::domain::e_invoice::InvoiceSource::Order(order.id.clone()).relate_number();
            let void = self
                .store
                .invoice(&invoice)
                .await?
                .filter(|i| i.state != crate::domain::e_invoice::InvoiceState::Void)
                .map(|_| (invoice.as_str(), reason.as_str()));
            match self
                .store
                .cancel_completed_order(&order, &refund, reversal.as_ref(), void, &audit, now)
                .await?
            {
                crate::store::CompletedCancel::Cancelled => {
                    let mut cancelled = order;
                    cancelled.status = crate::domain::OrderStatus::Cancelled;
                    cancelled.updated_at = now;
                    return Ok(cancelled.into());
                }
                crate::store::CompletedCancel::NotCompleted
                | crate::store::CompletedCancel::AccountChanged
                | crate::store::CompletedCancel::Contended => budget.lost().await?,
            }
        }
    }
}

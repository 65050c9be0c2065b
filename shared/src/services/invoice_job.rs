//! The scheduled job's part in e-invoices: for each invoice with a call due, make the calls its
//! life calls for (`domain::e_invoice`), one at a time, each recorded before it is made and after
//! it is answered. Never in the money path: a sale only wrote the invoice item; ECPay slow or down
//! delays nothing but the invoice, which waits with a doubling backoff and, after
//! `UNREACHABLE_ATTEMPTS_MAX` calls without an answer, is shown to operators as failed.

use serde::Serialize;

use super::invoices::InvoiceService;
use crate::domain::e_invoice::{self, settle_in_flight, Invoice, InvoiceCall, IssueRecord};
use crate::ecpay_invoice::{self as api, InvoiceDraft};
use crate::error::AppError;
use crate::store::InvoiceStep;

/// While a run works on an invoice, no other run takes it: it is due again only this much later
/// (and, should a cancellation make it due sooner, `Invoice::called_elsewhere` still holds).
const LEASE: chrono::Duration = e_invoice::CALL_LEASE;
/// Calls per invoice per run at most (an Issue, a lookup, a void or an allowance each).
const CALLS_PER_RUN: usize = 6;
/// A run starts no new invoice after this long (wall time): the scheduled function's timeout is
/// shared with the other jobs, and what is left is due at the next run.
const RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvoiceReport {
    pub issued: u32,
    pub voided: u32,
    pub allowed: u32,
    pub failed: u32,
    /// Left for a later run (ECPay unreachable).
    pub waiting: u32,
}

/// What came of one call.
enum Answer {
    /// `RtnCode` 1, with the opened `Data`.
    Success(serde_json::Value),
    /// `RtnCode` other than 1: ECPay's code and message.
    Refused(i64, String),
    /// No believable answer (unreachable, an HTTP error, the envelope refused, undecryptable).
    Unanswered(String),
}

impl InvoiceService<'_> {
    /// One pass over the invoices with a call due.
    pub async fn process_due(&self) -> Result<InvoiceReport, AppError> {
        let mut report = InvoiceReport::default();
        // Due at or before now (the queue's bound is exclusive).
        let due_by = self.clock.now() + chrono::Duration::milliseconds(1);
        let started = std::time::Instant::now();
        for invoice in self.store.invoices_due(due_by, self.batch.max(1)).await? {
            if started.elapsed() > RUN_BUDGET {
                break;
            }
            // Boxed: the calls' futures are large, and a scheduled run's stack is not.
            Box::pin(self.work_on(invoice, &mut report)).await?;
        }
        Ok(report)
    }

    async fn work_on(
        &self,
        mut invoice: Invoice,
        report: &mut InvoiceReport,
    ) -> Result<(), AppError> {
        if invoice.called_elsewhere(self.clock.now()) {
            // Another run is making its call: that run records the answer (found by a job run
            // racing a cancellation, which voids it as never issued while ECPay issues it).
            return Ok(());
        }
        for _ in 0..CALLS_PER_RUN {
            let now = self.clock.now();
            // A call whose answer was never recorded: ask ECPay what became of it.
            if invoice.in_flight.is_some() {
                match self.look_up(&invoice).await {
                    Ok(found) => {
                        // ECPay answered: the backoff starts over.
                        invoice.unreachable = 0;
                        let call = invoice.in_flight.clone();
                        let note = settle_in_flight(&mut invoice, found.as_ref());
                        invoice.log(now, "GetIssue", note);
                        if !self.save(&mut invoice, Some(now)).await? {
                            return Ok(());
                        }
                        // Counted once recorded: a record that lost its race is settled again.
                        count(report, call.as_ref(), &invoice);
                        continue;
                    }
                    Err(message) => return self.wait(invoice, "GetIssue", &message, report).await,
                }
            }
            if invoice.settle_unissued_void() {
                invoice.log(now, "Invalid", "never issued: void without a call");
                if self.save(&mut invoice, None).await? {
                    report.voided += 1;
                }
                return Ok(());
            }
            let Some(call) = invoice.next_call() else {
                // Nothing left: off the queue (onto the failed list if failed).
                self.save(&mut invoice, None).await?;
                return Ok(());
            };
            // Recorded before it is made: a run that stops after the call leaves it in flight.
            if call == InvoiceCall::Issue && invoice.carrier.is_none() {
                invoice.carrier = Some(
                    self.store
                        .invoice_preference(&invoice.member_id)
                        .await?
                        .unwrap_or_default(),
                );
            }
            invoice.start_call(call.clone(), now);
            if !self.save(&mut invoice, Some(now + LEASE)).await? {
                return Ok(());
            }
            match self.call(&invoice, &call).await? {
                Answer::Success(data) => {
                    let issued = match &call {
                        InvoiceCall::Allowance(_) => data
                            .get("IA_Allow_No")
                            .and_then(|v| v.as_str())
                            .map(|n| (n.to_string(), String::new())),
                        _ => api::issued_invoice(&data).map(|i| (i.invoice_no, i.invoice_date)),
                    };
                    invoice.succeeded(&call, issued);
                    invoice.log(
                        self.clock.now(),
                        call.name(),
                        format!(
                            "done {}",
                            invoice.invoice_number.clone().unwrap_or_default()
                        ),
                    );
                }
                // Issued before (an answer lost on the way back): GetIssue finds it, next turn.
                Answer::Refused(code, message)
                    if code == api::RELATE_NUMBER_USED && call == InvoiceCall::Issue =>
                {
                    invoice.call_answered();
                    invoice.log(
                        self.clock.now(),
                        call.name(),
                        format!("{code} {message}: looked up by GetIssue"),
                    );
                }
                Answer::Refused(code, message) => {
                    invoice.refused(&call, &format!("{code} {message}"));
                    invoice.log(
                        self.clock.now(),
                        call.name(),
                        format!("refused: {code} {message}"),
                    );
                }
                Answer::Unanswered(message) => {
                    return self.wait(invoice, call.name(), &message, report).await
                }
            }
            if !self.save(&mut invoice, Some(self.clock.now())).await? {
                return Ok(());
            }
            // Counted once recorded: a record that lost its race is settled (and counted) again.
            if invoice.failure.is_some() {
                report.failed += 1;
            } else {
                count(report, Some(&call), &invoice);
            }
        }
        Ok(())
    }

    /// No answer: due again after the backoff, or failed after the last attempt.
    async fn wait(
        &self,
        mut invoice: Invoice,
        call: &str,
        message: &str,
        report: &mut InvoiceReport,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let failed = invoice.unanswered(message);
        invoice.log(now, call, format!("no answer: {message}"));
        let due = (!failed).then(|| now + invoice.backoff());
        if !self.save(&mut invoice, due).await? {
            return Ok(());
        }
        if failed {
            report.failed += 1;
            tracing::warn!(relate_number = %invoice.relate_number, "e-invoice failed: ECPay never answered");
        } else {
            report.waiting += 1;
        }
        Ok(())
    }

    /// Writes `invoice` one version on, due at `due` (or off the queue). False when it changed
    /// since it was read (the next run reads it again).
    async fn save(
        &self,
        invoice: &mut Invoice,
        due: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<bool, AppError> {
        let read = invoice.version;
        invoice.version += 1;
        invoice.updated_at = self.clock.now();
        Ok(self.store.invoice_step(read, invoice, due, None).await? == InvoiceStep::Done)
    }

    /// What ECPay holds under the invoice's RelateNumber (`None`: nothing), or why it said nothing.
    async fn look_up(&self, invoice: &Invoice) -> Result<Option<IssueRecord>, String> {
        let data =
            api::get_issue_data(&invoice.relate_number, &self.config.credentials.merchant_id);
        match self.send(api::GET_ISSUE_PATH, &data).await {
            Answer::Success(data) => Ok(api::issue_record(&data)),
            Answer::Refused(_, _) => Ok(None),
            Answer::Unanswered(message) => Err(message),
        }
    }

    /// The member's email: ECPay's member carrier, and where its notices go.
    async fn email_of(&self, invoice: &Invoice) -> Result<String, AppError> {
        Ok(self
            .store
            .get_user(&invoice.member_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default())
    }

    /// Makes `call` for `invoice`.
    async fn call(&self, invoice: &Invoice, call: &InvoiceCall) -> Result<Answer, AppError> {
        let merchant = &self.config.credentials.merchant_id;
        let number = invoice.invoice_number.clone().unwrap_or_default();
        let date = invoice.invoice_date.clone().unwrap_or_default();
        let (path, data) = match call {
            InvoiceCall::Issue => {
                let email = self.email_of(invoice).await?;
                let draft = InvoiceDraft {
                    relate_number: invoice.relate_number.clone(),
                    amount: invoice.amount,
                    item_name: invoice.item_name.clone(),
                    preference: invoice.carrier.clone().unwrap_or_default(),
                    email,
                };
                (api::ISSUE_PATH, api::issue_data(&draft, merchant))
            }
            InvoiceCall::Invalid => (
                api::INVALID_PATH,
                api::invalid_data(
                    &number,
                    &date,
                    invoice.void_reason.as_deref().unwrap_or("訂單取消"),
                    merchant,
                ),
            ),
            InvoiceCall::Allowance(id) => {
                let amount = invoice
                    .allowances
                    .iter()
                    .find(|a| &a.id == id)
                    .map_or(0, |a| a.amount);
                let email = self.email_of(invoice).await?;
                (
                    api::ALLOWANCE_PATH,
                    api::allowance_data(&number, &date, amount, &email, merchant),
                )
            }
        };
        Ok(self.send(path, &data).await)
    }

    /// POSTs `data` in ECPay's envelope to `path` and opens the answer.
    async fn send(&self, path: &str, data: &serde_json::Value) -> Answer {
        let credentials = &self.config.credentials;
        let Some(url) = self.config.url(path) else {
            return Answer::Unanswered("no invoice API URL configured".into());
        };
        let Some(envelope) = api::envelope(data, self.clock.now().timestamp(), credentials) else {
            return Answer::Unanswered("the invoice HashKey/HashIV are not 16 bytes".into());
        };
        let reply = match tokio::time::timeout(
            crate::gateway::QUERY_TIMEOUT,
            self.gateway.post_json(&url, &envelope.to_string()),
        )
        .await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(message)) => return Answer::Unanswered(message),
            Err(_) => return Answer::Unanswered("timed out".into()),
        };
        if reply.status != 200 {
            return Answer::Unanswered(format!("HTTP {}", reply.status));
        }
        match api::open_answer(&reply.body, credentials) {
            Ok(data) => match api::rtn_code(&data) {
                Some(1) => Answer::Success(data),
                code => Answer::Refused(
                    code.unwrap_or(0),
                    data.get("RtnMsg")
                        .and_then(|m| m.as_str())
                        .unwrap_or("")
                        .to_string(),
                ),
            },
            Err(rejected) => Answer::Unanswered(rejected.to_string()),
        }
    }
}

/// Counts a call that settled (`invoice` as it is after it).
fn count(report: &mut InvoiceReport, call: Option<&InvoiceCall>, invoice: &Invoice) {
    use crate::domain::e_invoice::InvoiceState;
    match (call, invoice.state) {
        (Some(InvoiceCall::Issue), InvoiceState::Issued) => report.issued += 1,
        (Some(InvoiceCall::Invalid), InvoiceState::Void) => report.voided += 1,
        (Some(InvoiceCall::Allowance(id)), _)
            if invoice.allowances.iter().any(|a| &a.id == id && a.done) =>
        {
            report.allowed += 1
        }
        _ => {}
    }
}

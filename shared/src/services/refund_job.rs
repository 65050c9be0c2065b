//! The scheduled job's part in refunds: for each refund due, return its NT$ to the member's card
//! payments, newest first, each at most what it paid, through ECPay's QueryTrade/V2 (the trade's
//! state) and DoAction (the actions that state calls for, `domain::refund::plan_actions`).
//!
//! Never twice: before any call the payment is locked to the refund with its refunded amount as
//! read (`PendingDraw`), and the call is recorded by the transaction that moves that amount on,
//! conditioned on it. A run that stopped between a call and its record leaves the lock; the next
//! run reads the trade back from ECPay and records what it finds returned instead of calling again.
//! A refusal gives the points not paid for back to the balance, with ECPay's message. Nothing is
//! called between 20:15 and 20:30 Taipei time (ECPay's daily close).

use serde::Serialize;

use super::ecpay_query::QueryFailure;
use super::refunds::RefundService;
use crate::domain::e_invoice::{Allowance, InvoiceSource, InvoiceState};
use crate::domain::refund::{
    self, CardTrade, PendingDraw, PlanRefusal, Refund, RefundDraw, RefundState,
};
use crate::domain::{Movement, Points};
use crate::ecpay_credit;
use crate::error::AppError;
use crate::pagination::PageRequest;
use crate::store::{GatewayRecord, RefundAlso, RefundSource, RefundStep};

/// While a run works on a refund, no other run takes it: it is due again only this much later.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// A refund that could not go on (ECPay unreachable, cooling down) is due again after this,
/// doubled per attempt up to six hours.
const WAIT_BASE: chrono::Duration = chrono::Duration::minutes(5);
/// Draws per refund per run at most (each a payment of the member's).
const DRAWS_PER_RUN: usize = 20;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefundReport {
    pub refunded: u32,
    pub failed: u32,
    /// Left for a later run (ECPay unreachable, cooling down, or a state to look at).
    pub waiting: u32,
    /// Nothing was called: ECPay's daily close (20:15–20:30 Taipei).
    pub daily_close: bool,
    /// Nothing was called: no `ECPAY_CREDIT_CHECK_CODE` is configured.
    pub no_check_code: bool,
}

/// How working on one refund ended in this run.
enum Outcome {
    Refunded,
    Failed,
    Waiting,
    /// Someone else changed it (an operator, another run): left as it is.
    Moved,
}

/// Why a draw could not go on now.
enum Halt {
    /// ECPay said no: the refund fails with this message.
    Refused(String),
    /// Try again later, with this message.
    Wait(String),
    /// The refund moved under us.
    Moved,
}

impl From<AppError> for Halt {
    fn from(err: AppError) -> Self {
        Halt::Wait(format!("store: {err}"))
    }
}

impl RefundService<'_> {
    /// One pass over the refunds that are due.
    pub async fn process_due(&self) -> Result<RefundReport, AppError> {
        let mut report = RefundReport::default();
        let now = self.clock.now();
        if self.recharge.payments.credit_check_code.is_none() {
            report.no_check_code = true;
            return Ok(report);
        }
        if refund::in_daily_close(now) {
            report.daily_close = true;
            return Ok(report);
        }
        let batch = self.recharge.payments.reconcile_batch.max(1);
        // Due at or before now (the queue's bound is exclusive).
        let due_by = now + chrono::Duration::milliseconds(1);
        for refund in self.store.refunds_due(due_by, batch).await? {
            // Boxed: the steps' futures are large, and a scheduled run's stack is not.
            match Box::pin(self.work_on(refund)).await? {
                Outcome::Refunded => report.refunded += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::Waiting => report.waiting += 1,
                Outcome::Moved => {}
            }
        }
        Ok(report)
    }

    async fn work_on(&self, read: Refund) -> Result<Outcome, AppError> {
        let now = self.clock.now();
        // Claim it: due again only after the lease, so no other run works on it meanwhile.
        let mut refund = read.clone();
        refund.state = RefundState::Processing;
        refund.attempts += 1;
        refund.version += 1;
        refund.updated_at = now;
        let lease = now + LEASE;
        if self
            .store
            .refund_step(read.version, &refund, Some(lease), &[])
            .await?
            != RefundStep::Done
        {
            return Ok(Outcome::Moved);
        }
        for _ in 0..DRAWS_PER_RUN {
            if refund.outstanding_twd() == 0 {
                break;
            }
            let step = match refund.pending.clone() {
                Some(pending) => Box::pin(self.settle_pending(&refund, pending)).await,
                None => Box::pin(self.begin_draw(&refund)).await,
            };
            match step {
                Ok(next) => refund = next,
                Err(Halt::Moved) => return Ok(Outcome::Moved),
                // A step may have moved the refund on (a draw begun) before it stopped: go on from
                // the refund as stored.
                Err(Halt::Wait(message)) => {
                    let Some(current) =
                        self.store.get_refund(&refund.member_id, &refund.id).await?
                    else {
                        return Ok(Outcome::Moved);
                    };
                    return self.wait(current, message).await;
                }
                Err(Halt::Refused(message)) => {
                    let Some(current) =
                        self.store.get_refund(&refund.member_id, &refund.id).await?
                    else {
                        return Ok(Outcome::Moved);
                    };
                    return self.fail(current, message).await;
                }
            }
        }
        if refund.outstanding_twd() == 0 {
            let mut done = refund.clone();
            done.state = RefundState::Refunded;
            done.message = None;
            return self.finish(refund, done, Outcome::Refunded).await;
        }
        self.wait(refund, "more payments to draw on".into()).await
    }

    /// Picks the member's newest paid payment with money left to return, locks it to the refund
    /// for the draw, then makes the draw.
    async fn begin_draw(&self, refund: &Refund) -> Result<Refund, Halt> {
        let outstanding = refund.outstanding_twd();
        let mut page = PageRequest {
            limit: 20,
            cursor: None,
        };
        loop {
            let payments = self
                .store
                .member_paid_payments(&refund.member_id, &page)
                .await?;
            for merchant_trade_no in payments.items {
                let Some(source) = self.store.refund_source(&merchant_trade_no).await? else {
                    continue;
                };
                let left = source.amount - source.refunded_twd;
                if left <= 0 || source.refund_lock.is_some() || source.trade_no.is_none() {
                    continue;
                }
                let (credit_refund_id, installments) =
                    match (source.credit_refund_id.clone(), source.installments) {
                        (Some(id), Some(installments)) => (id, installments),
                        _ => match self.card_of(&source).await? {
                            Some(card) => card,
                            None => continue,
                        },
                    };
                let twd = outstanding.min(left);
                // Installment trades go back only whole.
                if installments && (twd < left || source.refunded_twd > 0) {
                    continue;
                }
                let mut next = refund.clone();
                next.pending = Some(PendingDraw {
                    merchant_trade_no: source.merchant_trade_no.clone(),
                    twd,
                    refunded_before: source.refunded_twd,
                });
                next.version += 1;
                next.updated_at = self.clock.now();
                let locked = self
                    .store
                    .refund_step(
                        refund.version,
                        &next,
                        Some(self.clock.now() + LEASE),
                        &[RefundAlso::LockPayment {
                            payment: &source.merchant_trade_no,
                            refunded_before: source.refunded_twd,
                            credit_refund_id: &credit_refund_id,
                            installments,
                        }],
                    )
                    .await?;
                match locked {
                    RefundStep::Done => {
                        let pending = next.pending.clone().ok_or(Halt::Moved)?;
                        return Box::pin(self.settle_pending(&next, pending)).await;
                    }
                    // The payment was taken by another refund, or the refund moved: read again.
                    RefundStep::Changed | RefundStep::Contended => {
                        let current = self.store.get_refund(&refund.member_id, &refund.id).await?;
                        if current.as_ref().map(|r| r.version) != Some(refund.version) {
                            return Err(Halt::Moved);
                        }
                    }
                }
            }
            match payments.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        Err(Halt::Refused(format!(
            "no card payment of the member can return the NT${outstanding} still owed"
        )))
    }

    /// The card trade behind a payment (its `gwsr`, whether in installments), from QueryTradeInfo.
    /// `None` when it is not a card trade.
    async fn card_of(&self, source: &RefundSource) -> Result<Option<(String, bool)>, Halt> {
        let info = self
            .recharge
            .query_trade(&source.merchant_trade_no)
            .await
            .map_err(query_halt)?;
        self.record(
            source,
            "query",
            info.fields.clone(),
            "read for a refund".into(),
        )
        .await;
        let gwsr = info.fields.get("gwsr").filter(|g| !g.trim().is_empty());
        let installments = info
            .fields
            .get("stage")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0)
            > 0;
        Ok(gwsr.map(|g| (g.trim().to_string(), installments)))
    }

    /// Reads the locked payment's trade from ECPay: if the draw's money is already back (a call
    /// whose record was lost), records it; if nothing moved, makes the calls and records them.
    async fn settle_pending(&self, refund: &Refund, pending: PendingDraw) -> Result<Refund, Halt> {
        let source = self
            .store
            .refund_source(&pending.merchant_trade_no)
            .await?
            .ok_or_else(|| Halt::Wait("the payment of a draw is gone".into()))?;
        if source.refund_lock.as_ref() != Some(&refund.id)
            || source.refunded_twd != pending.refunded_before
        {
            return Err(Halt::Wait(format!(
                "payment {} is not as the draw left it: an operator must look",
                pending.merchant_trade_no
            )));
        }
        let trade = self.card_trade(&source).await?;
        let returned = trade.returned();
        if returned >= pending.refunded_before + pending.twd {
            return self
                .record_draw(refund, &pending, vec!["found".into()])
                .await;
        }
        if returned != pending.refunded_before {
            return Err(Halt::Wait(format!(
                "ECPay shows NT${returned} returned on {}, which matches neither before ({}) nor after ({}) this draw: an operator must look",
                pending.merchant_trade_no,
                pending.refunded_before,
                pending.refunded_before + pending.twd
            )));
        }
        let plan =
            match refund::plan_actions(&trade, pending.twd, source.installments.unwrap_or(false)) {
                Ok(plan) => plan,
                Err(
                    refusal @ (PlanRefusal::MoreThanReturnable { .. }
                    | PlanRefusal::InstallmentsOnlyWhole
                    | PlanRefusal::NotRefundable(_)),
                ) => {
                    return Err(Halt::Refused(format!(
                        "{}: {refusal}",
                        pending.merchant_trade_no
                    )))
                }
            };
        let url = self
            .recharge
            .payments
            .do_action_url()
            .ok_or_else(|| Halt::Wait("no DoAction URL".into()))?;
        let trade_no = source.trade_no.clone().unwrap_or_default();
        let mut done = Vec::new();
        for action in plan {
            let form = ecpay_credit::do_action_form(
                source.merchant_trade_no.as_str(),
                &trade_no,
                action,
                &self.recharge.payments.credentials,
            );
            let reply = self
                .recharge
                .gateway
                .post_form(&url, &form)
                .await
                .map_err(|e| Halt::Wait(format!("DoAction {}: {e}", action.action)))?;
            let answer = ecpay_credit::parse_do_action(
                &reply.body,
                source.merchant_trade_no.as_str(),
                &self.recharge.payments.credentials,
            );
            let verdict = match &answer {
                Ok(a) if a.succeeded() => format!("refund {}: {} ok", refund.id, action.action),
                Ok(_) => format!("refund {}: {} refused", refund.id, action.action),
                Err(e) => format!("refund {}: refused: {e}", refund.id),
            };
            let fields = match &answer {
                Ok(a) => a.fields.clone(),
                Err(_) => [("body".to_string(), reply.body.chars().take(500).collect())].into(),
            };
            self.record(
                &source,
                &format!("do_action:{}", action.action),
                fields,
                verdict,
            )
            .await;
            match answer {
                Ok(a) if a.succeeded() => done.push(action.action.to_string()),
                Ok(a) => {
                    return Err(Halt::Refused(format!(
                        "ECPay refused {} on {}: {} {}",
                        action.action, source.merchant_trade_no, a.rtn_code, a.rtn_msg
                    )))
                }
                // Unbelievable answers say nothing of what happened: the next run reads the
                // trade back.
                Err(e) => return Err(Halt::Wait(format!("DoAction answer refused: {e}"))),
            }
        }
        self.record_draw(refund, &pending, done).await
    }

    /// The draw's money is back: the payment's refunded amount moves on and its lock goes, in the
    /// transaction that adds the draw to the refund.
    async fn record_draw(
        &self,
        refund: &Refund,
        pending: &PendingDraw,
        actions: Vec<String>,
    ) -> Result<Refund, Halt> {
        let now = self.clock.now();
        let mut next = refund.clone();
        next.pending = None;
        next.refunded_twd += pending.twd;
        next.draws.push(RefundDraw {
            merchant_trade_no: pending.merchant_trade_no.clone(),
            twd: pending.twd,
            actions,
            at: now,
        });
        next.version += 1;
        next.updated_at = now;
        let done = next.outstanding_twd() == 0;
        if done {
            next.state = RefundState::Refunded;
            next.message = None;
        }
        // A recharge invoiced when it was paid gives the money back off its invoice too.
        let invoice = InvoiceSource::Recharge(pending.merchant_trade_no.clone()).relate_number();
        let allowance = Allowance::for_refund(
            &refund.id,
            &pending.merchant_trade_no,
            pending.refunded_before,
            pending.twd,
        );
        let mut also = vec![RefundAlso::UnlockPayment {
            payment: &pending.merchant_trade_no,
            refunded_before: pending.refunded_before,
            refunded_after: pending.refunded_before + pending.twd,
        }];
        let invoiced = self
            .store
            .invoice(&invoice)
            .await?
            .is_some_and(|i| i.state != InvoiceState::Void);
        if invoiced && pending.twd > 0 {
            also.push(RefundAlso::InvoiceAllowance {
                relate_number: &invoice,
                allowance: &allowance,
                at: now,
            });
        }
        match self
            .store
            .refund_step(refund.version, &next, (!done).then_some(now + LEASE), &also)
            .await?
        {
            RefundStep::Done => Ok(next),
            // Left locked with its pending draw: the next run finds the money back and records it.
            RefundStep::Changed | RefundStep::Contended => Err(Halt::Moved),
        }
    }

    /// The card trade of a locked payment, from QueryTrade/V2, recorded on the payment.
    async fn card_trade(&self, source: &RefundSource) -> Result<CardTrade, Halt> {
        let payments = self.recharge.payments;
        let (Some(url), Some(check_code), Some(gwsr)) = (
            payments.credit_query_url(),
            payments.credit_check_code.as_deref(),
            source.credit_refund_id.as_deref(),
        ) else {
            return Err(Halt::Wait(
                "no QueryTrade/V2 URL, check code or gwsr".into(),
            ));
        };
        let reply = self
            .recharge
            .paced_query(&url, || {
                ecpay_credit::credit_query_form(
                    gwsr,
                    source.amount,
                    check_code,
                    &payments.credentials,
                )
            })
            .await
            .map_err(query_halt)?;
        let trade =
            ecpay_credit::parse_card_trade(&reply.body, source.amount, &payments.credentials);
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("body".to_string(), reply.body.chars().take(1_000).collect());
        let verdict = match &trade {
            Ok(t) => format!("{} closed {}", t.state.as_ecpay(), t.closed_amount),
            Err(e) => format!("refused: {e}"),
        };
        self.record(source, "credit_query", fields, verdict).await;
        trade.map_err(|e| match e {
            ecpay_credit::CreditAnswerRejected::Refused(message) => {
                Halt::Wait(format!("QueryTrade/V2: {message}"))
            }
            other => Halt::Wait(format!("QueryTrade/V2 answer refused: {other}")),
        })
    }

    /// Keeps what ECPay said on the payment (best effort: the money's record is the transaction).
    async fn record(
        &self,
        source: &RefundSource,
        what: &str,
        fields: std::collections::BTreeMap<String, String>,
        verdict: String,
    ) {
        let record = GatewayRecord {
            source: what.to_string(),
            fields,
            verdict,
            at: self.clock.now(),
        };
        if let Err(err) = self
            .store
            .append_gateway_record(&source.merchant_trade_no, &record)
            .await
        {
            tracing::warn!(error = %err, "could not record an ECPay answer");
        }
    }

    /// Leaves the refund for a later run, with why.
    async fn wait(&self, refund: Refund, message: String) -> Result<Outcome, AppError> {
        let now = self.clock.now();
        let backoff = WAIT_BASE * 2_i32.pow(refund.attempts.saturating_sub(1).min(6));
        let mut next = refund.clone();
        next.message = Some(message);
        next.version += 1;
        next.updated_at = now;
        let due = now + backoff.min(chrono::Duration::hours(6));
        match self
            .store
            .refund_step(refund.version, &next, Some(due), &[])
            .await?
        {
            RefundStep::Done => Ok(Outcome::Waiting),
            _ => Ok(Outcome::Moved),
        }
    }

    /// ECPay refused: the points of what was not returned go back to the balance (one REFUND row),
    /// a locked payment is released unchanged, and the refund ends `failed` with the message.
    async fn fail(&self, refund: Refund, message: String) -> Result<Outcome, AppError> {
        let mut next = refund.clone();
        next.state = RefundState::Failed;
        next.pending = None;
        next.message = Some(message);
        next.returned_points =
            refund::points_to_return(refund.points, refund.quote.twd, refund.refunded_twd);
        self.finish(refund, next, Outcome::Failed).await
    }

    /// Ends a refund as `last` (refunded or failed): off the queue, with the points of a failure
    /// returned, retried while the member's balance moves under it.
    async fn finish(
        &self,
        refund: Refund,
        mut last: Refund,
        outcome: Outcome,
    ) -> Result<Outcome, AppError> {
        let mut budget = super::retry::RetryBudget::new();
        loop {
            let now = self.clock.now();
            last.version = refund.version + 1;
            last.updated_at = now;
            let account = self
                .store
                .account_snapshot(&refund.member_id)
                .await?
                .ok_or_else(|| AppError::internal("member without a point account"))?;
            let change = match Points::new(last.returned_points) {
                Some(points) if last.state == RefundState::Failed => Some(
                    account
                        .apply(
                            &refund.member_id,
                            Movement::CashRefundReturned {
                                points,
                                refund: &refund.id,
                            },
                            uuid::Uuid::now_v7().to_string(),
                            now,
                        )
                        .map_err(|e| AppError::internal(e.to_string()))?,
                ),
                _ => None,
            };
            let mut also = Vec::new();
            if let Some(change) = &change {
                also.push(RefundAlso::ReturnPoints(change));
            }
            if let Some(pending) = &refund.pending {
                also.push(RefundAlso::UnlockPayment {
                    payment: &pending.merchant_trade_no,
                    refunded_before: pending.refunded_before,
                    refunded_after: pending.refunded_before,
                });
            }
            match self
                .store
                .refund_step(refund.version, &last, None, &also)
                .await?
            {
                RefundStep::Done => return Ok(outcome),
                RefundStep::Contended => budget.lost().await?,
                RefundStep::Changed => {
                    // The account moved (a redemption) or the refund did (an operator): only the
                    // first is ours to retry.
                    let current = self.store.get_refund(&refund.member_id, &refund.id).await?;
                    if current.map(|r| r.version) != Some(refund.version) {
                        return Ok(Outcome::Moved);
                    }
                    budget.lost().await?;
                }
            }
        }
    }
}

fn query_halt(failure: QueryFailure) -> Halt {
    Halt::Wait(format!("ECPay query: {failure}"))
}

//! An e-invoice's life (pure): what is invoiced, for how much, and which call to ECPay's B2C invoice
//! API comes next. The store keeps an invoice item written by the sale's own transaction (an
//! outbox); the scheduled job makes the calls this module decides on, one at a time, and records
//! each answer here.
//!
//! Exactly once: before a call the invoice records it as `in_flight` (in a write conditioned on its
//! version). A run that stopped after calling and before recording leaves it there, and the next run
//! asks ECPay (`GetIssue`, keyed by our RelateNumber) what became of it instead of calling again:
//! an Issue is found by its RelateNumber, an Invalid by the invoice's void flag, an Allowance by
//! what remains to allow.

use serde::{Deserialize, Serialize};

use super::invoice::InvoicePreference;
use super::{MerchantTradeNo, Order, OrderId, RefundId, Timestamp, UserId};

/// When invoices are issued (`INVOICE_MODE`): a choice for the operator's accountant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvoiceMode {
    /// No invoices (the local default).
    #[default]
    Off,
    /// One per paid recharge, for the amount paid (the points themselves are what is sold).
    AtRecharge,
    /// One per completed order, for the NT$ value of the purchased points it spent (points are a
    /// voucher; the sale happens when goods are handed over).
    AtRedemption,
}

impl InvoiceMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "off" => Some(InvoiceMode::Off),
            "at_recharge" => Some(InvoiceMode::AtRecharge),
            "at_redemption" => Some(InvoiceMode::AtRedemption),
            _ => None,
        }
    }
}

/// What an invoice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceSource {
    Recharge(MerchantTradeNo),
    Order(OrderId),
}

impl InvoiceSource {
    /// Ours, derived from the source alone (letters and digits, at most 30), so every retry and
    /// every run uses the same one: `R` + the trade number (21), or `O` + the order's UUID in base
    /// 36 (26; it keeps all 128 bits, so two orders never share one).
    pub fn relate_number(&self) -> String {
        match self {
            InvoiceSource::Recharge(trade_no) => format!("R{trade_no}"),
            InvoiceSource::Order(order_id) => {
                let bits = uuid::Uuid::parse_str(order_id.as_str())
                    .map(|u| u.as_u128())
                    .unwrap_or_default();
                format!("O{}", base36(bits))
            }
        }
    }
}

fn base36(mut value: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    // 36^25 > 2^128: 25 digits hold every UUID, zero-padded so the text sorts as the number does.
    let mut out = [b'0'; 25];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where an invoice is in its life (what members see; `failed` is said apart: see [`Invoice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceState {
    /// Not issued yet.
    Pending,
    Issued,
    Void,
}

/// A part of an issued invoice given back (折讓): a refund of purchased points in `at_recharge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// The refund and the payment it drew on: unique per invoice.
    pub id: String,
    pub amount: i64,
    /// ECPay's allowance number once made (`IA_Allow_No`).
    pub allowance_number: Option<String>,
    pub done: bool,
}

impl Allowance {
    /// The allowance for a refund's draw on a payment (`refunded_before` tells draws apart).
    pub fn for_refund(
        refund: &RefundId,
        payment: &MerchantTradeNo,
        refunded_before: i64,
        amount: i64,
    ) -> Self {
        Allowance {
            id: format!("{refund}:{payment}:{refunded_before}"),
            amount,
            allowance_number: None,
            done: false,
        }
    }
}

/// A call to ECPay's invoice API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", content = "allowance_id", rename_all = "snake_case")]
pub enum InvoiceCall {
    Issue,
    Invalid,
    Allowance(String),
}

impl InvoiceCall {
    pub fn name(&self) -> &'static str {
        match self {
            InvoiceCall::Issue => "Issue",
            InvoiceCall::Invalid => "Invalid",
            InvoiceCall::Allowance(_) => "Allowance",
        }
    }
}

/// One line of an invoice's audit trail: a call and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceAttempt {
    pub at: Timestamp,
    pub call: String,
    pub outcome: String,
}

/// The audit trail keeps this many lines (the first ones and the last ones matter; a long outage
/// would otherwise grow the item without bound).
pub const ATTEMPT_LOG_MAX: usize = 40;
/// How long a run making a call holds its invoice: far longer than a call may take (the client's
/// timeout is seconds), so a run that stopped mid-call is the only way to outlast it.
pub const CALL_LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// After this many calls in a row that reached no answer, the invoice is `failed` for an operator.
pub const UNREACHABLE_ATTEMPTS_MAX: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub relate_number: String,
    pub member_id: UserId,
    pub source: InvoiceSource,
    /// NT$, tax included.
    pub amount: i64,
    pub item_name: String,
    pub state: InvoiceState,
    pub invoice_number: Option<String>,
    /// ECPay's `InvoiceDate` (`yyyy-MM-dd HH:mm:ss`, Taipei).
    pub invoice_date: Option<String>,
    /// Where it went, as issued (read from the member's preference when it was issued).
    pub carrier: Option<InvoicePreference>,
    /// A cancelled order's invoice is to be voided, with this reason.
    pub void_reason: Option<String>,
    pub allowances: Vec<Allowance>,
    /// A call made (or about to be) whose answer is not recorded yet.
    pub in_flight: Option<InvoiceCall>,
    /// When the run making `in_flight` recorded it (cleared once it recorded an answer, or none
    /// came): within [`CALL_LEASE`] of it, no other run settles that call (see
    /// [`Invoice::called_elsewhere`]).
    pub calling_since: Option<Timestamp>,
    /// ECPay refused, or stayed unreachable: an operator looks (and may retry).
    pub failure: Option<String>,
    /// Calls in a row that reached no answer (the backoff's exponent).
    pub unreachable: u32,
    pub attempts: Vec<InvoiceAttempt>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

impl Invoice {
    fn new(
        source: InvoiceSource,
        member_id: UserId,
        amount: i64,
        item_name: String,
        at: Timestamp,
    ) -> Self {
        Invoice {
            relate_number: source.relate_number(),
            member_id,
            source,
            amount,
            item_name,
            state: InvoiceState::Pending,
            invoice_number: None,
            invoice_date: None,
            carrier: None,
            void_reason: None,
            allowances: Vec::new(),
            in_flight: None,
            calling_since: None,
            failure: None,
            unreachable: 0,
            attempts: Vec::new(),
            created_at: at,
            updated_at: at,
            version: 0,
        }
    }

    /// A paid recharge's invoice (`at_recharge`): the amount paid. None for nothing paid.
    pub fn for_recharge(
        trade_no: &MerchantTradeNo,
        member_id: &UserId,
        paid_twd: i64,
        points: i64,
        at: Timestamp,
    ) -> Option<Self> {
        (paid_twd > 0).then(|| {
            Invoice::new(
                InvoiceSource::Recharge(trade_no.clone()),
                member_id.clone(),
                paid_twd,
                format!("點數 {points} 點"),
                at,
            )
        })
    }

    /// A completed order's invoice (`at_redemption`): the NT$ value of the purchased points it
    /// spent, rounded down (promotional points were never paid for and carry none). None when
    /// that is zero: no zero-amount invoice is ever issued.
    pub fn for_order(order: &Order, points_per_twd: i64, at: Timestamp) -> Option<Self> {
        let twd = order_twd(
            order.points_cost.get() - order.promotional_points,
            points_per_twd,
        );
        (twd > 0).then(|| {
            let name: String = order.product_name.chars().take(100).collect();
            Invoice::new(
                InvoiceSource::Order(order.id.clone()),
                order.member_id.clone(),
                twd,
                format!("{name} x{}", order.quantity),
                at,
            )
        })
    }

    /// What allowances have given back so far.
    pub fn allowed(&self) -> i64 {
        self.allowances
            .iter()
            .filter(|a| a.done)
            .map(|a| a.amount)
            .sum()
    }

    /// The next call this invoice needs, if any (none while it is failed or a call is in flight):
    /// it is issued first, then voided if asked, then each allowance in turn.
    pub fn next_call(&self) -> Option<InvoiceCall> {
        if self.failure.is_some() || self.in_flight.is_some() {
            return None;
        }
        match self.state {
            InvoiceState::Void => None,
            // Cancelled with no invoice at ECPay (nothing in flight, none issued): none is needed.
            InvoiceState::Pending if self.void_reason.is_some() => None,
            InvoiceState::Pending => Some(InvoiceCall::Issue),
            InvoiceState::Issued if self.void_reason.is_some() => Some(InvoiceCall::Invalid),
            InvoiceState::Issued => self
                .allowances
                .iter()
                .find(|a| !a.done)
                .map(|a| InvoiceCall::Allowance(a.id.clone())),
        }
    }

    /// `call` is about to be made by this run, at `now`: recorded before it is made.
    pub fn start_call(&mut self, call: InvoiceCall, now: Timestamp) {
        self.in_flight = Some(call);
        self.calling_since = Some(now);
    }

    /// The call in flight is being made by another run right now (a cancellation or a refund made
    /// the invoice due again meanwhile): only that run may record its answer. Asking ECPay now
    /// could find nothing yet, call it "never issued", and void without a call an invoice that
    /// ECPay issues a moment later. Once the lease is over, that run stopped: GetIssue settles it.
    pub fn called_elsewhere(&self, now: Timestamp) -> bool {
        self.in_flight.is_some()
            && self
                .calling_since
                .is_some_and(|since| now < since + CALL_LEASE)
    }

    /// The calling run heard back (or gave up waiting): the call is no longer being made.
    pub fn call_answered(&mut self) {
        self.calling_since = None;
    }

    /// A pending invoice whose sale was cancelled while nothing was in flight: ECPay holds none
    /// (every Issue so far was refused, or found never made), so it is void without a call.
    pub fn settle_unissued_void(&mut self) -> bool {
        if self.state == InvoiceState::Pending
            && self.void_reason.is_some()
            && self.in_flight.is_none()
        {
            self.state = InvoiceState::Void;
            self.failure = None;
            return true;
        }
        false
    }

    /// Appends a line to the audit trail (keeping the first and the latest lines).
    pub fn log(&mut self, at: Timestamp, call: &str, outcome: impl Into<String>) {
        if self.attempts.len() >= ATTEMPT_LOG_MAX {
            self.attempts.remove(ATTEMPT_LOG_MAX / 2);
        }
        self.attempts.push(InvoiceAttempt {
            at,
            call: call.to_string(),
            outcome: outcome.into(),
        });
    }

    /// ECPay's answer to `call` was a success: `issued` (number and date) for an Issue, the
    /// allowance number for an Allowance.
    pub fn succeeded(&mut self, call: &InvoiceCall, issued: Option<(String, String)>) {
        self.in_flight = None;
        self.calling_since = None;
        self.unreachable = 0;
        match call {
            InvoiceCall::Issue => {
                if let Some((number, date)) = issued {
                    self.invoice_number = Some(number);
                    self.invoice_date = Some(date);
                }
                self.state = InvoiceState::Issued;
            }
            InvoiceCall::Invalid => self.state = InvoiceState::Void,
            InvoiceCall::Allowance(id) => {
                if let Some(a) = self.allowances.iter_mut().find(|a| &a.id == id) {
                    a.done = true;
                    a.allowance_number = issued.map(|(number, _)| number);
                }
            }
        }
    }

    /// ECPay refused `call` (its message): the invoice waits for an operator.
    pub fn refused(&mut self, call: &InvoiceCall, message: &str) {
        self.in_flight = None;
        self.calling_since = None;
        self.unreachable = 0;
        self.failure = Some(format!("{} refused: {message}", call.name()));
    }

    /// No answer came: the call stays in flight (the next run asks what became of it). True when
    /// this was one too many and the invoice is now failed.
    pub fn unanswered(&mut self, message: &str) -> bool {
        self.calling_since = None;
        self.unreachable += 1;
        if self.unreachable >= UNREACHABLE_ATTEMPTS_MAX {
            self.failure = Some(format!(
                "no answer after {} attempts: {message}",
                self.unreachable
            ));
            return true;
        }
        false
    }

    /// When to try again after `unreachable` calls without an answer: one minute, doubled each
    /// time, at most six hours.
    pub fn backoff(&self) -> chrono::Duration {
        let minutes = 1i64 << self.unreachable.saturating_sub(1).min(9);
        chrono::Duration::minutes(minutes.min(360))
    }

    /// What members and operators see as its state.
    pub fn shown_state(&self) -> &'static str {
        match (self.failure.is_some(), self.state) {
            (true, _) => "failed",
            (false, InvoiceState::Pending) => "pending",
            (false, InvoiceState::Issued) => "issued",
            (false, InvoiceState::Void) => "void",
        }
    }
}

/// The NT$ value of `purchased` points at `points_per_twd`, rounded down.
pub fn order_twd(purchased: i64, points_per_twd: i64) -> i64 {
    if purchased <= 0 || points_per_twd <= 0 {
        return 0;
    }
    purchased / points_per_twd
}

/// What GetIssue said of an invoice: how the next run settles a call left in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    pub invoice_number: String,
    pub invoice_date: String,
    pub void: bool,
    /// What may still be allowed.
    pub remaining: Option<i64>,
}

/// Settles the call left in flight from what GetIssue found (`None`: no invoice by this
/// RelateNumber). Returns what the log says.
pub fn settle_in_flight(invoice: &mut Invoice, found: Option<&IssueRecord>) -> String {
    let Some(call) = invoice.in_flight.clone() else {
        return "nothing in flight".into();
    };
    invoice.call_answered();
    match (&call, found) {
        (InvoiceCall::Issue, Some(record)) => {
            invoice.succeeded(
                &call,
                Some((record.invoice_number.clone(), record.invoice_date.clone())),
            );
            format!("found issued as {}", record.invoice_number)
        }
        // Never issued: nothing happened, the Issue is made again.
        (InvoiceCall::Issue, None) => {
            invoice.in_flight = None;
            "not issued: issue again".into()
        }
        (InvoiceCall::Invalid, Some(record)) if record.void => {
            invoice.succeeded(&call, None);
            "found void".into()
        }
        (InvoiceCall::Invalid, _) => {
            invoice.in_flight = None;
            "not void: void again".into()
        }
        (InvoiceCall::Allowance(id), Some(record)) => {
            let amount = invoice
                .allowances
                .iter()
                .find(|a| &a.id == id)
                .map_or(0, |a| a.amount);
            let before = invoice.amount - invoice.allowed();
            if record.remaining == Some(before - amount) {
                invoice.succeeded(&call, None);
                "found allowed".into()
            } else {
                invoice.in_flight = None;
                "not allowed: allow again".into()
            }
        }
        (InvoiceCall::Allowance(_), None) => {
            invoice.in_flight = None;
            "no invoice found".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        "2026-12-06T10:00:00Z".parse().unwrap()
    }

    fn trade() -> MerchantTradeNo {
        MerchantTradeNo::try_from("PT261206180000ABCDEF".to_string()).unwrap()
    }

    fn recharge() -> Invoice {
        Invoice::for_recharge(&trade(), &UserId::generate(), 500, 500, at()).unwrap()
    }

    #[test]
    fn relate_numbers_are_letters_and_digits_within_thirty_and_keep_the_whole_id() {
        let trade = trade();
        assert_eq!(
            InvoiceSource::Recharge(trade).relate_number(),
            "RPT261206180000ABCDEF"
        );
        let a = OrderId::generate();
        let relate = InvoiceSource::Order(a.clone()).relate_number();
        assert_eq!(relate.len(), 26);
        assert!(relate.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(
            relate,
            InvoiceSource::Order(OrderId::generate()).relate_number()
        );
        assert_eq!(relate, InvoiceSource::Order(a).relate_number(), "stable");
        assert_eq!(base36(u128::MAX), "F5LXX1ZZ5PNORYNQGLHZMSP33");
    }

    #[test]
    fn no_invoice_for_nothing_paid_and_promotional_points_carry_no_value() {
        assert!(Invoice::for_recharge(&trade(), &UserId::generate(), 0, 0, at()).is_none());
        assert_eq!(order_twd(300, 1), 300);
        assert_eq!(order_twd(301, 2), 150, "rounded down");
        assert_eq!(order_twd(0, 1), 0);
        assert_eq!(order_twd(-5, 1), 0);
    }

    #[test]
    fn an_invoice_is_issued_then_voided_or_allowed_one_call_at_a_time() {
        let mut invoice = recharge();
        assert_eq!(invoice.next_call(), Some(InvoiceCall::Issue));
        invoice.in_flight = Some(InvoiceCall::Issue);
        assert_eq!(
            invoice.next_call(),
            None,
            "nothing while a call is in flight"
        );
        invoice.succeeded(
            &InvoiceCall::Issue,
            Some(("AB12345678".into(), "2026-12-06 18:00:00".into())),
        );
        assert_eq!(invoice.shown_state(), "issued");
        assert_eq!(invoice.next_call(), None);
        let refund = RefundId::generate();
        let trade = trade();
        invoice
            .allowances
            .push(Allowance::for_refund(&refund, &trade, 0, 200));
        let call = invoice.next_call().unwrap();
        assert!(matches!(call, InvoiceCall::Allowance(_)));
        invoice.succeeded(&call, Some(("A1".into(), String::new())));
        assert_eq!(invoice.allowed(), 200);
        assert_eq!(invoice.next_call(), None);
        invoice.void_reason = Some("cancelled".into());
        assert_eq!(invoice.next_call(), Some(InvoiceCall::Invalid));
    }

    #[test]
    fn a_call_another_run_is_making_is_left_to_it_until_its_lease_runs_out() {
        let mut invoice = recharge();
        invoice.start_call(InvoiceCall::Issue, at());
        // The sale is cancelled while the Issue is on its way to ECPay.
        invoice.void_reason = Some("cancelled".into());
        assert!(invoice.called_elsewhere(at() + chrono::Duration::seconds(1)));
        assert!(!invoice.settle_unissued_void(), "still in flight");
        // The calling run stopped: after the lease, GetIssue settles it.
        assert!(!invoice.called_elsewhere(at() + CALL_LEASE));
        // An answer (or none) ends the lease at once.
        invoice.unanswered("timed out");
        assert!(!invoice.called_elsewhere(at()));
        invoice.start_call(InvoiceCall::Issue, at());
        invoice.succeeded(&InvoiceCall::Issue, None);
        assert_eq!(invoice.calling_since, None);
        assert_eq!(invoice.next_call(), Some(InvoiceCall::Invalid));
    }

    #[test]
    fn a_sale_cancelled_before_any_call_needs_no_invoice_but_one_already_tried_is_looked_up() {
        let mut invoice = recharge();
        invoice.void_reason = Some("cancelled".into());
        assert_eq!(invoice.next_call(), None);
        assert!(invoice.settle_unissued_void());
        assert_eq!(invoice.shown_state(), "void");
        let mut tried = recharge();
        tried.log(at(), "Issue", "no answer");
        tried.in_flight = Some(InvoiceCall::Issue);
        tried.void_reason = Some("cancelled".into());
        assert!(!tried.settle_unissued_void(), "it may exist at ECPay");
        let found = IssueRecord {
            invoice_number: "AB12345678".into(),
            invoice_date: "2026-12-06 18:00:00".into(),
            void: false,
            remaining: Some(500),
        };
        settle_in_flight(&mut tried, Some(&found));
        assert_eq!(tried.next_call(), Some(InvoiceCall::Invalid));
    }

    #[test]
    fn a_call_left_in_flight_is_settled_by_what_ecpay_holds_never_made_twice() {
        let mut invoice = recharge();
        invoice.succeeded(
            &InvoiceCall::Issue,
            Some(("AB12345678".into(), "2026-12-06 18:00:00".into())),
        );
        let trade = trade();
        invoice
            .allowances
            .push(Allowance::for_refund(&RefundId::generate(), &trade, 0, 200));
        let call = invoice.next_call().unwrap();
        invoice.in_flight = Some(call.clone());
        let record = |remaining| IssueRecord {
            invoice_number: "AB12345678".into(),
            invoice_date: "2026-12-06 18:00:00".into(),
            void: false,
            remaining: Some(remaining),
        };
        // ECPay still has all 500 to allow: the allowance never happened.
        let mut untouched = invoice.clone();
        settle_in_flight(&mut untouched, Some(&record(500)));
        assert_eq!(untouched.next_call(), Some(call.clone()));
        // 300 remain: it did.
        settle_in_flight(&mut invoice, Some(&record(300)));
        assert_eq!(invoice.allowed(), 200);
        assert_eq!(invoice.next_call(), None);
    }

    #[test]
    fn unanswered_calls_back_off_and_fail_after_the_last_attempt() {
        let mut invoice = recharge();
        invoice.in_flight = Some(InvoiceCall::Issue);
        assert!(!invoice.unanswered("down"));
        assert_eq!(invoice.backoff(), chrono::Duration::minutes(1));
        assert!(!invoice.unanswered("down"));
        assert_eq!(invoice.backoff(), chrono::Duration::minutes(2));
        for _ in 2..UNREACHABLE_ATTEMPTS_MAX - 1 {
            assert!(!invoice.unanswered("down"));
        }
        assert!(invoice.backoff() <= chrono::Duration::hours(6));
        assert!(invoice.unanswered("down"));
        assert_eq!(invoice.shown_state(), "failed");
        let mut refused = recharge();
        refused.refused(&InvoiceCall::Issue, "CarrierNum 格式錯誤");
        assert_eq!(refused.shown_state(), "failed");
        assert_eq!(refused.next_call(), None);
    }
}

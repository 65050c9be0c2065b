//! Refunds of purchased points to the card they were paid with: what a refund pays, which ECPay
//! actions return money from a card trade in each of its states, and when ECPay may be asked.
//! Pure rules; the wire formats are `crate::ecpay_credit`, the job `crate::services::refunds`.
//!
//! ECPay's rules, from its credit-card capture/refund page (信用卡請退款功能,
//! <https://developers.ecpay.com.tw/?p=9242>; in English <https://developers.ecpay.com.tw/?p=16567>), read with the trade's
//! state from 查詢信用卡單筆明細記錄 (`CreditDetail/QueryTrade/V2`, <https://developers.ecpay.com.tw/?p=2894>):
//! - 已授權 (authorised, not closed): 放棄 `N` releases the whole authorisation; a part is refunded by
//!   closing (`C`) and then refunding (`R`) the part;
//! - 要關帳 (close requested): the whole back by 取消 `E` (undo the close) then 放棄 `N`; a part by `R`;
//! - 已關帳 (closed): 退刷 `R`, at most the closed amount;
//! - installment (分期) and bonus-point (紅利) trades are refunded only whole;
//! - with daily automatic closing on, nothing may be called between 20:15 and 20:30 Taipei time.

use serde::{Deserialize, Serialize};

use super::{MerchantTradeNo, RefundId, Timestamp, UserId};

/// Where a refund is. `requested` → `processing` → `refunded` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RefundState {
    /// Points taken off the balance; ECPay not asked yet.
    Requested,
    /// The scheduled job has begun returning the money.
    Processing,
    /// Every NT$ owed went back (to cards, or by a bank transfer an operator recorded).
    Refunded,
    /// ECPay refused: what was not returned went back to the balance as points.
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Requested => "requested",
            RefundState::Processing => "processing",
            RefundState::Refunded => "refunded",
            RefundState::Failed => "failed",
        }
    }

    /// Whether the job still has work on it.
    pub fn is_open(self) -> bool {
        matches!(self, RefundState::Requested | RefundState::Processing)
    }
}

/// What refunding some purchased points pays, in whole NT$.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundQuote {
    /// The points' value, rounded down.
    pub gross_twd: i64,
    /// Kept: `gross_twd - twd`.
    pub fee_twd: i64,
    /// Paid back: the value less `fee_percent`, rounded down.
    pub twd: i64,
}

/// The quote for refunding `points` at `points_per_twd`, keeping `fee_percent`.
pub fn quote(points: i64, points_per_twd: i64, fee_percent: u32) -> RefundQuote {
    let twd = super::account::refundable_twd(points, points_per_twd, fee_percent);
    let gross_twd = if points_per_twd > 0 {
        points.max(0) / points_per_twd
    } else {
        0
    };
    RefundQuote {
        gross_twd,
        fee_twd: (gross_twd - twd).max(0),
        twd,
    }
}

/// One part of a refund paid back to one card trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundDraw {
    pub merchant_trade_no: MerchantTradeNo,
    pub twd: i64,
    /// The DoAction actions that returned it, in order (`N`, `C`+`R`, `E`+`N`, `R`), or `found`
    /// when ECPay's state showed it returned by a call whose record was lost.
    pub actions: Vec<String>,
    pub at: Timestamp,
}

/// A draw begun and not yet recorded: the payment is locked to this refund meanwhile, and its
/// `refunded_twd` was `refunded_before` when the lock was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDraw {
    pub merchant_trade_no: MerchantTradeNo,
    pub twd: i64,
    pub refunded_before: i64,
}

/// A member's refund of purchased points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub member_id: UserId,
    pub points: i64,
    pub quote: RefundQuote,
    pub state: RefundState,
    /// NT$ returned so far (the sum of `draws`, or all of it when closed by hand).
    pub refunded_twd: i64,
    pub draws: Vec<RefundDraw>,
    pub pending: Option<PendingDraw>,
    /// ECPay's last refusal, or why the job is waiting.
    pub message: Option<String>,
    /// An operator's bank transfer reference, when closed by hand.
    pub manual_reference: Option<String>,
    /// Points given back to the balance when it failed.
    pub returned_points: i64,
    /// Runs of the job that worked on it.
    pub attempts: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Every change is conditioned on this.
    pub version: i64,
}

impl Refund {
    /// NT$ still to return.
    pub fn outstanding_twd(&self) -> i64 {
        (self.quote.twd - self.refunded_twd).max(0)
    }
}

/// When a refund fails after `refunded_twd` of `owed_twd` went back, the points that go back to the
/// balance: the share of `points` not paid for, rounded down (the member never gets back more than
/// was not refunded).
pub fn points_to_return(points: i64, owed_twd: i64, refunded_twd: i64) -> i64 {
    if owed_twd <= 0 || refunded_twd <= 0 {
        return points.max(0);
    }
    let unpaid = (owed_twd - refunded_twd).max(0);
    let share = i128::from(points) * i128::from(unpaid) / i128::from(owed_twd);
    i64::try_from(share).unwrap_or(0).clamp(0, points.max(0))
}

/// A card trade's state as `CreditDetail/QueryTrade/V2` writes it in `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    /// 已授權
    Authorised,
    /// 要關帳
    CloseRequested,
    /// 已關帳
    Closed,
    /// 已取消 / 已放棄 / 操作取消: nothing will be charged.
    Cancelled,
    /// Anything else ECPay writes (e.g. 失敗): not refundable by API.
    Other(String),
}

impl TradeState {
    pub fn parse(status: &str) -> Self {
        match status.trim() {
            "已授權" => TradeState::Authorised,
            "要關帳" => TradeState::CloseRequested,
            "已關帳" => TradeState::Closed,
            "已取消" | "已放棄" | "操作取消" => TradeState::Cancelled,
            other => TradeState::Other(other.to_string()),
        }
    }

    /// ECPay's own word for it.
    pub fn as_ecpay(&self) -> &str {
        match self {
            TradeState::Authorised => "已授權",
            TradeState::CloseRequested => "要關帳",
            TradeState::Closed => "已關帳",
            TradeState::Cancelled => "已取消",
            TradeState::Other(other) => other,
        }
    }
}

/// What QueryTrade/V2 says about one card trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTrade {
    pub state: TradeState,
    /// `amount`: what was authorised.
    pub amount: i64,
    /// `clsamt`: what is closed (to be charged), after any refunds.
    pub closed_amount: i64,
}

impl CardTrade {
    /// How much of the trade has gone back to the card: nothing while only authorised, the whole of
    /// it once cancelled, else what the closed amount was brought down by.
    pub fn returned(&self) -> i64 {
        match self.state {
            TradeState::Authorised | TradeState::Other(_) => 0,
            TradeState::Cancelled => self.amount,
            TradeState::CloseRequested | TradeState::Closed => {
                (self.amount - self.closed_amount).clamp(0, self.amount)
            }
        }
    }

    /// What may still be returned.
    pub fn returnable(&self) -> i64 {
        (self.amount - self.returned()).max(0)
    }
}

/// One DoAction call: `Action` and `TotalAmount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardAction {
    pub action: char,
    pub amount: i64,
}

/// Why a card trade cannot return `twd` by API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefusal {
    #[error("the trade can return at most NT${returnable}")]
    MoreThanReturnable { returnable: i64 },
    #[error("an installment trade is refunded only whole")]
    InstallmentsOnlyWhole,
    #[error("the trade is {0}: not refundable by API")]
    NotRefundable(String),
}

/// The DoAction calls that return `twd` from `trade`, by ECPay's rules (see the module's note).
pub fn plan_actions(
    trade: &CardTrade,
    twd: i64,
    installments: bool,
) -> Result<Vec<CardAction>, PlanRefusal> {
    let returnable = trade.returnable();
    if twd <= 0 || twd > returnable {
        return Err(PlanRefusal::MoreThanReturnable { returnable });
    }
    let whole = twd == returnable && trade.returned() == 0;
    if installments && !whole {
        return Err(PlanRefusal::InstallmentsOnlyWhole);
    }
    let act = |action, amount| CardAction { action, amount };
    match &trade.state {
        TradeState::Authorised if whole => Ok(vec![act('N', trade.amount)]),
        TradeState::Authorised => Ok(vec![act('C', trade.amount), act('R', twd)]),
        TradeState::CloseRequested if whole => {
            Ok(vec![act('E', trade.closed_amount), act('N', trade.amount)])
        }
        TradeState::CloseRequested | TradeState::Closed => Ok(vec![act('R', twd)]),
        other => Err(PlanRefusal::NotRefundable(other.as_ecpay().to_string())),
    }
}

/// ECPay's daily automatic close runs from 20:15 to 20:30 Taipei time; no DoAction then.
pub fn in_daily_close(at: Timestamp) -> bool {
    use chrono::Timelike;
    let taipei = super::codes::in_taipei(at);
    let minute = taipei.hour() * 60 + taipei.minute();
    (20 * 60 + 15..20 * 60 + 30).contains(&minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(state: TradeState, amount: i64, closed: i64) -> CardTrade {
        CardTrade {
            state,
            amount,
            closed_amount: closed,
        }
    }

    fn actions(plan: Result<Vec<CardAction>, PlanRefusal>) -> Vec<(char, i64)> {
        plan.unwrap()
            .into_iter()
            .map(|a| (a.action, a.amount))
            .collect()
    }

    #[test]
    fn each_state_gets_ecpays_actions() {
        let authorised = trade(TradeState::Authorised, 1_000, 0);
        assert_eq!(
            actions(plan_actions(&authorised, 1_000, false)),
            [('N', 1_000)]
        );
        assert_eq!(
            actions(plan_actions(&authorised, 300, false)),
            [('C', 1_000), ('R', 300)]
        );
        let close_requested = trade(TradeState::CloseRequested, 1_000, 1_000);
        assert_eq!(
            actions(plan_actions(&close_requested, 1_000, false)),
            [('E', 1_000), ('N', 1_000)]
        );
        assert_eq!(
            actions(plan_actions(&close_requested, 300, false)),
            [('R', 300)]
        );
        let closed = trade(TradeState::Closed, 1_000, 1_000);
        assert_eq!(actions(plan_actions(&closed, 1_000, false)), [('R', 1_000)]);
        // A part already returned: the rest is a refund of the closed amount.
        let partly = trade(TradeState::Closed, 1_000, 700);
        assert_eq!(partly.returned(), 300);
        assert_eq!(actions(plan_actions(&partly, 700, false)), [('R', 700)]);
    }

    #[test]
    fn never_more_than_the_trade_and_installments_only_whole() {
        let closed = trade(TradeState::Closed, 1_000, 400);
        assert_eq!(
            plan_actions(&closed, 401, false),
            Err(PlanRefusal::MoreThanReturnable { returnable: 400 })
        );
        let cancelled = trade(TradeState::Cancelled, 1_000, 0);
        assert_eq!(cancelled.returnable(), 0);
        assert!(plan_actions(&cancelled, 1, false).is_err());
        let instalments = trade(TradeState::Closed, 1_200, 1_200);
        assert_eq!(
            plan_actions(&instalments, 600, true),
            Err(PlanRefusal::InstallmentsOnlyWhole)
        );
        assert_eq!(
            actions(plan_actions(&instalments, 1_200, true)),
            [('R', 1_200)]
        );
    }

    #[test]
    fn fees_round_down_and_a_failure_returns_what_was_not_paid() {
        assert_eq!(
            quote(999, 1, 3),
            RefundQuote {
                gross_twd: 999,
                fee_twd: 30,
                twd: 969
            }
        );
        assert_eq!(quote(15, 10, 0).twd, 1);
        assert_eq!(points_to_return(1_000, 970, 0), 1_000);
        assert_eq!(points_to_return(1_000, 970, 970), 0);
        assert_eq!(points_to_return(1_000, 1_000, 400), 600);
        assert_eq!(points_to_return(1_000, 3, 1), 666);
    }

    #[test]
    fn the_daily_close_is_twenty_fifteen_to_twenty_thirty_in_taipei() {
        let at = |h, m| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-12-06T{h:02}:{m:02}:00+08:00"))
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert!(!in_daily_close(at(20, 14)));
        assert!(in_daily_close(at(20, 15)));
        assert!(in_daily_close(at(20, 29)));
        assert!(!in_daily_close(at(20, 30)));
        assert!(!in_daily_close(at(8, 15)));
    }
}

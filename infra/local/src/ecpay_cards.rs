//! The simulator's card trades: what ECPay's credit-card back office holds for each paid trade, and
//! its two APIs over them, as ECPay documents them (local host and tests only):
//!
//! - `CreditDetail/QueryTrade/V2` (<https://developers.ecpay.com.tw/?p=2894>): a signed form of
//!   `MerchantID`, `CreditRefundId` (the trade's `gwsr`), `CreditAmount` and `CreditCheckCode`; JSON
//!   back with `RtnMsg` empty and `RtnValue` {`TradeID`, `amount`, `clsamt`, `authtime`, `status`,
//!   `close_data`}, or `RtnMsg` `error_nopay` for a trade it does not know (also when the amount or
//!   the check code is wrong) and `error` for a bad signature;
//! - `CreditDetail/DoAction` (<https://developers.ecpay.com.tw/?p=9242>): `C` closes an authorised
//!   trade (at most its amount), `E` cancels a requested close, `N` abandons an authorised trade
//!   (whole), `R` refunds from a closed or close-requested trade at most its closed amount; an
//!   installment trade only whole; never anything between 20:15 and 20:30 Taipei time, when the
//!   daily automatic close runs and turns every authorised or close-requested trade into 已關帳.
//!
//! ECPay documents `RtnCode` 1 as DoAction's only success; the refusal codes here are the
//! simulator's own, and nothing reads them except as "not 1".
//!
//! Stricter than kind: every answer carries a CheckMacValue (over `RtnMsg` and `RtnValue`'s scalars
//! for the JSON one), and a switch makes the next DoAction fail as a bank refusal would.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{Duration, Timelike};
use secrecy::ExposeSecret;
use shared::domain::refund::in_daily_close;
use shared::ecpay::{self, Credentials};
use shared::gateway::GatewayReply;

use crate::ecpay_simulator::independent_check_mac;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Authorised,
    CloseRequested,
    Closed,
    Abandoned,
}

impl Status {
    fn ecpay(self) -> &'static str {
        match self {
            Status::Authorised => "已授權",
            Status::CloseRequested => "要關帳",
            Status::Closed => "已關帳",
            Status::Abandoned => "已取消",
        }
    }
}

struct CardTrade {
    merchant_trade_no: String,
    trade_no: String,
    amount: i64,
    closed: i64,
    status: Status,
    installments: u32,
    authorised_at: chrono::DateTime<chrono::Utc>,
    /// When its state last changed: a daily close after this closes it.
    changed_at: chrono::DateTime<chrono::Utc>,
    /// (action, amount) accepted, in order.
    history: Vec<(char, i64)>,
}

#[derive(Default)]
struct Cards {
    by_gwsr: HashMap<u64, CardTrade>,
    next_gwsr: u64,
    fail_next: Option<String>,
}

pub struct CardBackOffice {
    credentials: Credentials,
    check_code: String,
    cards: Mutex<Cards>,
}

/// The latest daily automatic close (20:15 Taipei) at or before `now`.
fn last_daily_close(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let taipei = shared::domain::codes::in_taipei(now);
    let today = taipei
        .with_hour(20)
        .and_then(|t| t.with_minute(15))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or(now);
    if today <= now {
        today
    } else {
        today - Duration::days(1)
    }
}

impl CardBackOffice {
    pub fn new(credentials: Credentials, check_code: String) -> Self {
        CardBackOffice {
            credentials,
            check_code,
            cards: Mutex::new(Cards {
                next_gwsr: 13_475_885,
                ..Default::default()
            }),
        }
    }

    /// A paid card trade, authorised now; its `gwsr`.
    pub fn authorise(
        &self,
        merchant_trade_no: &str,
        trade_no: &str,
        amount: i64,
        installments: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<u64> {
        let mut cards = self.cards.lock().ok()?;
        cards.next_gwsr += 1;
        let gwsr = cards.next_gwsr;
        cards.by_gwsr.insert(
            gwsr,
            CardTrade {
                merchant_trade_no: merchant_trade_no.to_string(),
                trade_no: trade_no.to_string(),
                amount,
                closed: 0,
                status: Status::Authorised,
                installments,
                authorised_at: now,
                changed_at: now,
                history: Vec::new(),
            },
        );
        Some(gwsr)
    }

    /// The next DoAction fails with `message` (as a bank refusal would).
    pub fn fail_next_action(&self, message: &str) {
        if let Ok(mut cards) = self.cards.lock() {
            cards.fail_next = Some(message.to_string());
        }
    }

    /// What went back to the card of `merchant_trade_no` so far, and the actions accepted.
    pub fn refunded(&self, merchant_trade_no: &str) -> Option<(i64, Vec<(char, i64)>)> {
        let cards = self.cards.lock().ok()?;
        cards
            .by_gwsr
            .values()
            .find(|t| t.merchant_trade_no == merchant_trade_no)
            .map(|t| {
                let returned = match t.status {
                    Status::Abandoned => t.amount,
                    Status::Authorised => 0,
                    _ => t.amount - t.closed,
                };
                (returned, t.history.clone())
            })
    }

    /// The daily automatic close: trades authorised or close-requested before the last 20:15 are
    /// closed (an authorised one for its whole amount).
    fn close_daily(trade: &mut CardTrade, now: chrono::DateTime<chrono::Utc>) {
        let close = last_daily_close(now);
        if trade.changed_at < close {
            match trade.status {
                Status::Authorised => {
                    trade.closed = trade.amount;
                    trade.status = Status::Closed;
                    trade.changed_at = close;
                }
                Status::CloseRequested => {
                    trade.status = Status::Closed;
                    trade.changed_at = close;
                }
                _ => {}
            }
        }
    }

    fn mac_ok(&self, form: &[(String, String)]) -> bool {
        let given = form
            .iter()
            .find(|(k, _)| k == ecpay::CHECK_MAC_VALUE)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        given.eq_ignore_ascii_case(&independent_check_mac(
            form,
            self.credentials.hash_key.expose_secret(),
            self.credentials.hash_iv.expose_secret(),
        ))
    }

    /// QueryTrade/V2.
    pub fn query(
        &self,
        form: &[(String, String)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> GatewayReply {
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let refuse = |message: &str| self.json_answer(message, serde_json::Value::Null);
        if !self.mac_ok(form) || get("MerchantID") != self.credentials.merchant_id {
            return refuse("error");
        }
        let Ok(mut cards) = self.cards.lock() else {
            return refuse("error");
        };
        let trade = get("CreditRefundId")
            .parse::<u64>()
            .ok()
            .and_then(|gwsr| cards.by_gwsr.get_mut(&gwsr).map(|t| (gwsr, t)));
        let Some((gwsr, trade)) = trade else {
            return refuse("error_nopay");
        };
        if get("CreditAmount") != trade.amount.to_string()
            || get("CreditCheckCode") != self.check_code
        {
            return refuse("error_nopay");
        }
        Self::close_daily(trade, now);
        let value = serde_json::json!({
            "TradeID": gwsr,
            "amount": trade.amount,
            "clsamt": trade.closed,
            "authtime": ecpay::taipei_time(trade.authorised_at),
            "status": trade.status.ecpay(),
            "close_data": trade.history.iter().map(|(action, amount)| serde_json::json!({
                "status": action.to_string(), "amount": amount,
            })).collect::<Vec<_>>(),
        });
        self.json_answer("", value)
    }

    fn json_answer(&self, message: &str, value: serde_json::Value) -> GatewayReply {
        let mut answer = serde_json::json!({"RtnMsg": message, "RtnValue": value});
        let mut fields = shared::ecpay_credit::card_trade_mac_fields(&answer);
        ecpay::sign(&mut fields, &self.credentials);
        answer[ecpay::CHECK_MAC_VALUE] = fields
            .remove(ecpay::CHECK_MAC_VALUE)
            .unwrap_or_default()
            .into();
        GatewayReply {
            status: 200,
            body: answer.to_string(),
        }
    }

    /// DoAction.
    pub fn do_action(
        &self,
        form: &[(String, String)],
        now: chrono::DateTime<chrono::Utc>,
    ) -> GatewayReply {
        let get = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let (merchant_trade_no, trade_no) = (get("MerchantTradeNo"), get("TradeNo"));
        let answer = |code: &str, message: &str| {
            let mut fields = BTreeMap::from([
                (
                    "MerchantID".to_string(),
                    self.credentials.merchant_id.clone(),
                ),
                ("MerchantTradeNo".to_string(), merchant_trade_no.clone()),
                ("TradeNo".to_string(), trade_no.clone()),
                ("RtnCode".to_string(), code.to_string()),
                ("RtnMsg".to_string(), message.to_string()),
            ]);
            ecpay::sign(&mut fields, &self.credentials);
            GatewayReply {
                status: 200,
                body: form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields.iter())
                    .finish(),
            }
        };
        if !self.mac_ok(form) {
            return answer("10200073", "CheckMacValue Error");
        }
        if get("MerchantID") != self.credentials.merchant_id {
            return answer("10200002", "MerchantID Error");
        }
        if in_daily_close(now) {
            return answer("10200115", "每日 20:15~20:30 系統關帳中, 請稍後再試");
        }
        let Ok(mut cards) = self.cards.lock() else {
            return answer("0", "busy");
        };
        if let Some(message) = cards.fail_next.take() {
            return answer("10200095", &message);
        }
        let Some(trade) = cards
            .by_gwsr
            .values_mut()
            .find(|t| t.merchant_trade_no == merchant_trade_no && t.trade_no == trade_no)
        else {
            return answer("10200047", "查無此交易");
        };
        Self::close_daily(trade, now);
        let Ok(amount) = get("TotalAmount").parse::<i64>() else {
            return answer("10200050", "TotalAmount Error");
        };
        let action = get("Action").chars().next().unwrap_or(' ');
        if amount <= 0 {
            return answer("10200050", "TotalAmount Error");
        }
        let refused = match (action, trade.status) {
            ('C', Status::Authorised) if amount <= trade.amount => {
                trade.closed = amount;
                trade.status = Status::CloseRequested;
                None
            }
            ('E', Status::CloseRequested) => {
                trade.closed = 0;
                trade.status = Status::Authorised;
                None
            }
            ('N', Status::Authorised) if amount == trade.amount => {
                trade.status = Status::Abandoned;
                None
            }
            ('R', Status::CloseRequested | Status::Closed)
                if trade.closed == 0 || amount > trade.closed =>
            {
                Some("退款金額超過可退金額")
            }
            ('R', Status::CloseRequested | Status::Closed)
                if trade.installments > 0 && amount != trade.closed =>
            {
                Some("分期交易須全額退刷")
            }
            ('R', Status::CloseRequested | Status::Closed) => {
                trade.closed -= amount;
                None
            }
            ('C' | 'N', Status::Authorised) => Some("金額錯誤"),
            ('C' | 'E' | 'N' | 'R', _) => Some("交易狀態不符"),
            _ => Some("Action Error"),
        };
        if let Some(message) = refused {
            return answer("10200096", message);
        }
        trade.history.push((action, amount));
        trade.changed_at = now;
        answer("1", "成功")
    }
}

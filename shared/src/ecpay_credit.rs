//! ECPay's credit-card detail APIs, the wire formats only (pure functions, no I/O):
//! - 查詢信用卡單筆明細記錄 `CreditDetail/QueryTrade/V2` (<https://developers.ecpay.com.tw/?p=2894>): a
//!   signed form of `MerchantID`, `CreditRefundId` (the trade's `gwsr`), `CreditAmount` and
//!   `CreditCheckCode` (the merchant's 商家檢查碼); JSON back: `RtnMsg` (empty on success,
//!   `error_nopay`, `error_Stop`, `error`) and `RtnValue` {`TradeID`, `amount`, `clsamt`, `authtime`,
//!   `status`, `close_data`};
//! - 信用卡請退款 `CreditDetail/DoAction` (<https://developers.ecpay.com.tw/?p=9242>): a signed form of
//!   `MerchantID`, `MerchantTradeNo`, `TradeNo`, `Action` (C, R, E, N) and `TotalAmount`; a form back:
//!   `MerchantID`, `MerchantTradeNo`, `TradeNo`, `RtnCode` (1 is success), `RtnMsg`.
//!
//! ECPay's SDK reads DoAction's answer without checking a CheckMacValue (its `PostWithCmvEncodedStr
//! ResponseService`), so an answer may come unsigned; one that carries a CheckMacValue must verify,
//! and so must our MerchantID and the trade asked about. The local simulator signs every answer.

use std::collections::BTreeMap;

use crate::domain::refund::{CardAction, CardTrade, TradeState};
use crate::ecpay::{sign, verify, Credentials, CHECK_MAC_VALUE};

pub const STAGE_CREDIT_QUERY_URL: &str =
    "https://payment-stage.ecpay.com.tw/CreditDetail/QueryTrade/V2";
pub const PRODUCTION_CREDIT_QUERY_URL: &str =
    "https://payment.ecpay.com.tw/CreditDetail/QueryTrade/V2";
pub const STAGE_DO_ACTION_URL: &str = "https://payment-stage.ecpay.com.tw/CreditDetail/DoAction";
pub const PRODUCTION_DO_ACTION_URL: &str = "https://payment.ecpay.com.tw/CreditDetail/DoAction";

/// Why an answer of the credit APIs is not to be believed, or said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditAnswerRejected {
    #[error("the answer is malformed")]
    Malformed,
    #[error("CheckMacValue mismatch")]
    BadMac,
    #[error("the answer is about another merchant or trade")]
    OtherTrade,
    /// QueryTrade/V2's `RtnMsg` (not empty): `error_nopay`, `error_Stop`, `error`.
    #[error("ECPay answered {0}")]
    Refused(String),
}

/// The signed QueryTrade/V2 request for the card trade `credit_refund_id` (its `gwsr`) of `amount`.
pub fn credit_query_form(
    credit_refund_id: &str,
    amount: i64,
    check_code: &str,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::from([
        ("MerchantID".to_string(), credentials.merchant_id.clone()),
        ("CreditRefundId".to_string(), credit_refund_id.to_string()),
        ("CreditAmount".to_string(), amount.to_string()),
        ("CreditCheckCode".to_string(), check_code.to_string()),
    ]);
    sign(&mut fields, credentials);
    fields
}

/// A JSON scalar as text (ECPay writes numbers either as numbers or as strings).
fn scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Null => Some(String::new()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The fields a QueryTrade/V2 answer's CheckMacValue covers: `RtnMsg` and every scalar of
/// `RtnValue`, as text.
pub fn card_trade_mac_fields(answer: &serde_json::Value) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    if let Some(message) = answer.get("RtnMsg").and_then(scalar) {
        fields.insert("RtnMsg".to_string(), message);
    }
    if let Some(value) = answer.get("RtnValue").and_then(|v| v.as_object()) {
        for (name, v) in value {
            if let Some(text) = scalar(v) {
                fields.insert(name.clone(), text);
            }
        }
    }
    fields
}

/// Parses and verifies a QueryTrade/V2 answer about a trade of `amount`.
pub fn parse_card_trade(
    body: &str,
    amount: i64,
    credentials: &Credentials,
) -> Result<CardTrade, CreditAnswerRejected> {
    let answer: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|_| CreditAnswerRejected::Malformed)?;
    if let Some(mac) = answer.get(CHECK_MAC_VALUE) {
        let mac = mac.as_str().ok_or(CreditAnswerRejected::Malformed)?;
        let mut fields = card_trade_mac_fields(&answer);
        fields.insert(CHECK_MAC_VALUE.to_string(), mac.to_string());
        if !verify(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            credentials,
        ) {
            return Err(CreditAnswerRejected::BadMac);
        }
    }
    let message = answer
        .get("RtnMsg")
        .and_then(scalar)
        .ok_or(CreditAnswerRejected::Malformed)?;
    if !message.is_empty() {
        return Err(CreditAnswerRejected::Refused(message));
    }
    let value = answer
        .get("RtnValue")
        .and_then(|v| v.as_object())
        .ok_or(CreditAnswerRejected::Malformed)?;
    let number = |name: &str| {
        value
            .get(name)
            .and_then(scalar)
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or(CreditAnswerRejected::Malformed)
    };
    let trade = CardTrade {
        state: TradeState::parse(
            &value
                .get("status")
                .and_then(scalar)
                .ok_or(CreditAnswerRejected::Malformed)?,
        ),
        amount: number("amount")?,
        closed_amount: number("clsamt")?,
    };
    if trade.amount != amount {
        return Err(CreditAnswerRejected::OtherTrade);
    }
    Ok(trade)
}

/// The signed DoAction request: `action` on the trade `merchant_trade_no` / `trade_no`.
pub fn do_action_form(
    merchant_trade_no: &str,
    trade_no: &str,
    action: CardAction,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::from([
        ("MerchantID".to_string(), credentials.merchant_id.clone()),
        ("MerchantTradeNo".to_string(), merchant_trade_no.to_string()),
        ("TradeNo".to_string(), trade_no.to_string()),
        ("Action".to_string(), action.action.to_string()),
        ("TotalAmount".to_string(), action.amount.to_string()),
    ]);
    sign(&mut fields, credentials);
    fields
}

/// What DoAction answered, once believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionAnswer {
    pub rtn_code: String,
    pub rtn_msg: String,
    /// Every field but the MAC, for the payment's record.
    pub fields: BTreeMap<String, String>,
}

impl ActionAnswer {
    pub fn succeeded(&self) -> bool {
        self.rtn_code == "1"
    }
}

/// Parses and verifies a DoAction answer about `merchant_trade_no`.
pub fn parse_do_action(
    body: &str,
    merchant_trade_no: &str,
    credentials: &Credentials,
) -> Result<ActionAnswer, CreditAnswerRejected> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "RtnCode") {
        return Err(CreditAnswerRejected::Malformed);
    }
    if pairs.iter().any(|(k, _)| k == CHECK_MAC_VALUE)
        && !verify(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            credentials,
        )
    {
        return Err(CreditAnswerRejected::BadMac);
    }
    let fields: BTreeMap<String, String> = pairs
        .into_iter()
        .filter(|(k, _)| k != CHECK_MAC_VALUE)
        .collect();
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    if get("MerchantID") != credentials.merchant_id || get("MerchantTradeNo") != merchant_trade_no {
        return Err(CreditAnswerRejected::OtherTrade);
    }
    Ok(ActionAnswer {
        rtn_code: get("RtnCode"),
        rtn_msg: get("RtnMsg"),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> Credentials {
        Credentials::stage()
    }

    #[test]
    fn a_query_answer_is_believed_only_when_its_mac_and_amount_hold() {
        let mut answer = serde_json::json!({
            "RtnMsg": "",
            "RtnValue": {"TradeID": 13475885, "amount": 100, "clsamt": 100,
                         "authtime": "2026/12/06 10:00:00", "status": "已關帳", "close_data": []}
        });
        let mut fields = card_trade_mac_fields(&answer);
        sign(&mut fields, &stage());
        answer["CheckMacValue"] = fields[CHECK_MAC_VALUE].clone().into();
        let trade = parse_card_trade(&answer.to_string(), 100, &stage()).unwrap();
        assert_eq!(trade.state, TradeState::Closed);
        assert_eq!(trade.closed_amount, 100);
        assert_eq!(
            parse_card_trade(&answer.to_string(), 200, &stage()),
            Err(CreditAnswerRejected::OtherTrade)
        );
        answer["RtnValue"]["clsamt"] = 0.into();
        assert_eq!(
            parse_card_trade(&answer.to_string(), 100, &stage()),
            Err(CreditAnswerRejected::BadMac)
        );
        let refused = serde_json::json!({"RtnMsg": "error_nopay", "RtnValue": null});
        assert_eq!(
            parse_card_trade(&refused.to_string(), 100, &stage()),
            Err(CreditAnswerRejected::Refused("error_nopay".into()))
        );
    }

    #[test]
    fn a_do_action_answer_must_verify_when_signed_and_name_our_trade() {
        let mut answer = BTreeMap::from([
            ("MerchantID".to_string(), stage().merchant_id),
            ("MerchantTradeNo".to_string(), "PT1".to_string()),
            ("TradeNo".to_string(), "2612061000123456".to_string()),
            ("RtnCode".to_string(), "1".to_string()),
            ("RtnMsg".to_string(), "成功".to_string()),
        ]);
        let unsigned = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(answer.iter())
            .finish();
        assert!(parse_do_action(&unsigned, "PT1", &stage())
            .unwrap()
            .succeeded());
        assert_eq!(
            parse_do_action(&unsigned, "PT2", &stage()),
            Err(CreditAnswerRejected::OtherTrade)
        );
        sign(&mut answer, &stage());
        answer.insert("RtnCode".into(), "0".into());
        let tampered = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(answer.iter())
            .finish();
        assert_eq!(
            parse_do_action(&tampered, "PT1", &stage()),
            Err(CreditAnswerRejected::BadMac)
        );
    }
}

//! ECPay (綠界) AioCheckOut V5: the CheckMacValue signature (SHA256, EncryptType=1) and the checkout
//! form. Pure functions; no I/O. One job (ECPay's wire formats: sign, verify, the forms and the
//! QueryTradeInfo answer), kept in one file with the tests that hold it to ECPay's published vectors.

use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

pub const STAGE_ACTION_URL: &str = "https://payment-stage.ecpay.com.tw/Cashier/AioCheckOut/V5";
pub const PRODUCTION_ACTION_URL: &str = "https://payment.ecpay.com.tw/Cashier/AioCheckOut/V5";
/// ECPay's public stage merchant, usable by anyone for testing. Never for real money.
pub const STAGE_MERCHANT_ID: &str = "3002607";
pub const STAGE_HASH_KEY: &str = "pwFHCqoQZGmho4w6";
pub const STAGE_HASH_IV: &str = "EkRm7iFT261dpevs";
pub const CHECK_MAC_VALUE: &str = "CheckMacValue";
pub const STAGE_QUERY_URL: &str = "https://payment-stage.ecpay.com.tw/Cashier/QueryTradeInfo/V5";
pub const PRODUCTION_QUERY_URL: &str = "https://payment.ecpay.com.tw/Cashier/QueryTradeInfo/V5";

/// Merchant credentials. The key and IV are held as secrets: never printed (`Debug` says
/// `<redacted>`), zeroed when dropped, read only where a CheckMacValue is computed.
#[derive(Clone)]
pub struct Credentials {
    pub merchant_id: String,
    pub hash_key: SecretString,
    pub hash_iv: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("merchant_id", &self.merchant_id)
            .field("hash_key", &"<redacted>")
            .field("hash_iv", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn stage() -> Self {
        Credentials {
            merchant_id: STAGE_MERCHANT_ID.into(),
            hash_key: STAGE_HASH_KEY.into(),
            hash_iv: STAGE_HASH_IV.into(),
        }
    }
}

/// PHP's `urlencode`: bytes of `A-Z a-z 0-9 - _ .` stay, space becomes `+`, everything else `%XX`.
fn php_urlencode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &byte in input.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// CheckMacValue over `fields` (a `CheckMacValue` among them is ignored), as ECPay computes it:
/// keys sorted case-insensitively, `HashKey=…&k=v&…&HashIV=…`, PHP-urlencoded, lower-cased, with
/// ECPay's .NET-compatible characters restored, SHA256, upper-case hex.
pub fn check_mac_value<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    hash_key: &str,
    hash_iv: &str,
) -> String {
    let mut pairs: Vec<(&str, &str)> = fields
        .into_iter()
        .filter(|(key, _)| *key != CHECK_MAC_VALUE)
        .collect();
    pairs.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then(a.0.cmp(b.0))
    });
    let mut raw = format!("HashKey={hash_key}");
    for (key, value) in pairs {
        raw.push('&');
        raw.push_str(key);
        raw.push('=');
        raw.push_str(value);
    }
    raw.push_str("&HashIV=");
    raw.push_str(hash_iv);
    let mut encoded = php_urlencode(&raw).to_lowercase();
    for (escaped, plain) in [
        ("%2d", "-"),
        ("%5f", "_"),
        ("%2e", "."),
        ("%21", "!"),
        ("%2a", "*"),
        ("%28", "("),
        ("%29", ")"),
    ] {
        encoded = encoded.replace(escaped, plain);
    }
    let digest = Sha256::digest(encoded.as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// Checks a received `CheckMacValue` over every other received field, in constant time.
pub fn verify<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    credentials: &Credentials,
) -> bool {
    let Some(received) = fields
        .clone()
        .into_iter()
        .find(|(key, _)| *key == CHECK_MAC_VALUE)
        .map(|(_, value)| value.to_ascii_uppercase())
    else {
        return false;
    };
    let expected = check_mac_value(
        fields,
        credentials.hash_key.expose_secret(),
        credentials.hash_iv.expose_secret(),
    );
    constant_time_eq(received.as_bytes(), expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds `CheckMacValue` to a form.
pub fn sign(fields: &mut BTreeMap<String, String>, credentials: &Credentials) {
    fields.remove(CHECK_MAC_VALUE);
    let mac = check_mac_value(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        credentials.hash_key.expose_secret(),
        credentials.hash_iv.expose_secret(),
    );
    fields.insert(CHECK_MAC_VALUE.into(), mac);
}

/// `yyyy/MM/dd HH:mm:ss` in Taiwan time (UTC+8, no daylight saving), as ECPay's dates are written.
pub fn taipei_time(at: chrono::DateTime<chrono::Utc>) -> String {
    crate::domain::codes::in_taipei(at)
        .format("%Y/%m/%d %H:%M:%S")
        .to_string()
}

/// What goes into one AioCheckOut form, besides the credentials.
#[derive(Debug, Clone)]
pub struct CheckoutOrder<'a> {
    pub merchant_trade_no: &'a str,
    pub trade_date: chrono::DateTime<chrono::Utc>,
    pub total_amount: i64,
    pub trade_desc: &'a str,
    pub item_name: &'a str,
    pub return_url: &'a str,
    pub client_back_url: Option<&'a str>,
    pub order_result_url: Option<&'a str>,
    /// Echoed back in the notification; we carry our payment id in it.
    pub custom_field1: &'a str,
    /// Echoed back in the notification and by QueryTradeInfo, as `CustomField2`.
    pub custom_field2: &'a str,
}

/// The complete, signed AioCheckOut V5 form for a credit-card payment.
pub fn checkout_form(
    order: &CheckoutOrder<'_>,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        fields.insert(k.to_string(), v.to_string());
    };
    put("MerchantID", &credentials.merchant_id);
    put("MerchantTradeNo", order.merchant_trade_no);
    put("MerchantTradeDate", &taipei_time(order.trade_date));
    put("PaymentType", "aio");
    put("TotalAmount", &order.total_amount.to_string());
    put("TradeDesc", order.trade_desc);
    put("ItemName", order.item_name);
    put("ReturnURL", order.return_url);
    put("ChoosePayment", "Credit");
    put("EncryptType", "1");
    put("CustomField1", order.custom_field1);
    put("CustomField2", order.custom_field2);
    if let Some(url) = order.client_back_url {
        put("ClientBackURL", url);
    }
    if let Some(url) = order.order_result_url {
        put("OrderResultURL", url);
    }
    sign(&mut fields, credentials);
    fields
}

/// The signed QueryTradeInfo V5 request for one MerchantTradeNo. ECPay refuses a `TimeStamp` more
/// than 3 minutes off its clock (<https://developers.ecpay.com.tw/?p=2890>).
pub fn query_trade_info_form(
    merchant_trade_no: &str,
    now: chrono::DateTime<chrono::Utc>,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    fields.insert("MerchantID".to_string(), credentials.merchant_id.clone());
    fields.insert("MerchantTradeNo".to_string(), merchant_trade_no.to_string());
    fields.insert("TimeStamp".to_string(), now.timestamp().to_string());
    sign(&mut fields, credentials);
    fields
}

/// What a QueryTradeInfo answer says about one trade, after it was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeInfo {
    pub merchant_trade_no: String,
    /// `1` paid; `0` not paid (yet); anything else a failure code. Only `1` moves money.
    pub trade_status: String,
    pub trade_amount: i64,
    pub trade_no: String,
    pub payment_date: String,
    /// Every field of the answer except the MAC, for the audit trail.
    pub fields: BTreeMap<String, String>,
}

impl TradeInfo {
    pub fn is_paid(&self) -> bool {
        self.trade_status == "1"
    }
}

/// Why a QueryTradeInfo answer is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TradeInfoRejected {
    #[error("the answer is not a form")]
    Malformed,
    #[error("CheckMacValue mismatch")]
    BadMac,
    #[error("MerchantID mismatch")]
    OtherMerchant,
    #[error("MerchantTradeNo mismatch")]
    OtherTrade,
    #[error("TradeAmt is not a number")]
    BadAmount,
}

/// Parses and verifies a QueryTradeInfo V5 answer (a urlencoded form): the MAC over every field,
/// our MerchantID, and the trade asked about. The caller compares the amount with its own record.
pub fn verify_trade_info(
    body: &str,
    asked: &str,
    credentials: &Credentials,
) -> Result<TradeInfo, TradeInfoRejected> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() || !pairs.iter().any(|(k, _)| k == CHECK_MAC_VALUE) {
        return Err(TradeInfoRejected::Malformed);
    }
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(TradeInfoRejected::Malformed);
    }
    if !verify(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        credentials,
    ) {
        return Err(TradeInfoRejected::BadMac);
    }
    let fields: BTreeMap<String, String> = pairs
        .into_iter()
        .filter(|(k, _)| k != CHECK_MAC_VALUE)
        .collect();
    let get = |name: &str| fields.get(name).cloned().unwrap_or_default();
    if get("MerchantID") != credentials.merchant_id {
        return Err(TradeInfoRejected::OtherMerchant);
    }
    if get("MerchantTradeNo") != asked {
        return Err(TradeInfoRejected::OtherTrade);
    }
    let trade_amount = get("TradeAmt")
        .trim()
        .parse::<i64>()
        .map_err(|_| TradeInfoRejected::BadAmount)?;
    Ok(TradeInfo {
        merchant_trade_no: get("MerchantTradeNo"),
        trade_status: get("TradeStatus"),
        trade_amount,
        trade_no: get("TradeNo"),
        payment_date: get("PaymentDate"),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(fields: &[(&str, &str)]) -> String {
        check_mac_value(fields.iter().copied(), STAGE_HASH_KEY, STAGE_HASH_IV)
    }

    #[test]
    fn matches_the_aiocheckout_documentation_example() {
        let fields = [
            ("ChoosePayment", "ALL"),
            ("EncryptType", "1"),
            ("ItemName", "Apple iphone 15"),
            ("MerchantID", "3002607"),
            ("MerchantTradeDate", "2023/03/12 15:30:23"),
            ("MerchantTradeNo", "ecpay20230312153023"),
            ("PaymentType", "aio"),
            ("ReturnURL", "https://www.ecpay.com.tw/receive.php"),
            ("TotalAmount", "30000"),
            ("TradeDesc", "促銷方案"),
        ];
        assert_eq!(
            mac(&fields),
            "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840"
        );
    }

    #[test]
    fn matches_the_sdk_callback_example() {
        let fields = [
            ("MerchantID", "3002607"),
            ("MerchantTradeNo", "WPLL4E341E122DB44D62"),
            ("PaymentDate", "2019/05/09 00:01:21"),
            ("PaymentType", "Credit_CreditCard"),
            ("PaymentTypeChargeFee", "1"),
            ("RtnCode", "1"),
            ("RtnMsg", "交易成功"),
            ("SimulatePaid", "0"),
            ("TradeAmt", "500"),
            ("TradeDate", "2019/05/09 00:00:18"),
            ("TradeNo", "1905090000188278"),
        ];
        assert_eq!(
            mac(&fields),
            "6E7F053EF215FC851A050A2FF01D72CBE440EA138DC3E905647985DDF236FD25"
        );
    }

    #[test]
    fn field_order_and_a_received_mac_do_not_change_the_result() {
        let a = [("b", "2"), ("A", "1"), ("c", "3")];
        let b = [
            ("c", "3"),
            ("CheckMacValue", "whatever"),
            ("A", "1"),
            ("b", "2"),
        ];
        assert_eq!(mac(&a), mac(&b));
    }

    #[test]
    fn urlencoding_follows_php() {
        assert_eq!(
            php_urlencode("a b~'#&?é-_.*()!"),
            "a+b%7E%27%23%26%3F%C3%A9-_.%2A%28%29%21"
        );
    }

    #[test]
    fn edge_values_are_signed_exactly() {
        // Computed independently: sha256 of the lower-cased, restored string built by hand.
        fn by_hand(raw: &str) -> String {
            let mut s = php_urlencode(raw).to_lowercase();
            for (e, p) in [
                ("%2d", "-"),
                ("%5f", "_"),
                ("%2e", "."),
                ("%21", "!"),
                ("%2a", "*"),
                ("%28", "("),
                ("%29", ")"),
            ] {
                s = s.replace(e, p);
            }
            Sha256::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        }
        let cases: [&[(&str, &str)]; 4] = [
            &[("Empty", ""), ("Name", "x")],
            &[("Desc", "~ ' # & ?")],
            &[("ItemName", "烏龍茶 禮盒 (2入) *限量*!")],
            &[("Sp", "  two  spaces  ")],
        ];
        for fields in cases {
            let mut sorted = fields.to_vec();
            sorted.sort_by_key(|(k, _)| k.to_lowercase());
            let body: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let raw = format!(
                "HashKey={STAGE_HASH_KEY}&{}&HashIV={STAGE_HASH_IV}",
                body.join("&")
            );
            assert_eq!(mac(fields), by_hand(&raw), "{fields:?}");
        }
        // `~` stays encoded (%7e), unlike Python's quote_plus.
        assert!(php_urlencode("~").eq("%7E"));
        // An empty value still takes part: dropping it changes the MAC.
        assert_ne!(mac(&[("Empty", ""), ("Name", "x")]), mac(&[("Name", "x")]));
    }

    #[test]
    fn verification_is_strict_about_every_field() {
        let credentials = Credentials::stage();
        let mut form: BTreeMap<String, String> = [
            ("MerchantID", "3002607"),
            ("TradeAmt", "500"),
            ("RtnCode", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        sign(&mut form, &credentials);
        let pairs = |f: &BTreeMap<String, String>| {
            f.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        let ok = pairs(&form);
        assert!(verify(
            ok.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
        // Lower-case hex is the same value.
        let mut lower = form.clone();
        lower.insert(CHECK_MAC_VALUE.into(), form[CHECK_MAC_VALUE].to_lowercase());
        assert!(verify(
            pairs(&lower).iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
        // A changed amount, an extra field, or a missing MAC all fail.
        let mut tampered = form.clone();
        tampered.insert("TradeAmt".into(), "5000".into());
        assert!(!verify(
            pairs(&tampered)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
        let mut extra = form.clone();
        extra.insert("Injected".into(), "1".into());
        assert!(!verify(
            pairs(&extra).iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
        let mut unsigned = form.clone();
        unsigned.remove(CHECK_MAC_VALUE);
        assert!(!verify(
            pairs(&unsigned)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
        let other = Credentials {
            hash_key: "x".repeat(16).into(),
            ..Credentials::stage()
        };
        assert!(!verify(
            ok.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &other
        ));
    }

    #[test]
    fn the_checkout_form_is_complete_and_signed() {
        let credentials = Credentials::stage();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T16:30:05Z")
            .unwrap()
            .to_utc();
        let form = checkout_form(
            &CheckoutOrder {
                merchant_trade_no: "PT261127003005ABCDEF",
                trade_date: at,
                total_amount: 500,
                trade_desc: "點數儲值",
                item_name: "500 點",
                return_url: "https://api.example.com/api/payments/ecpay/callback/",
                client_back_url: Some("https://shop.example.com/back"),
                order_result_url: None,
                custom_field1: "payment-id",
                custom_field2: "member-id",
            },
            &credentials,
        );
        assert_eq!(
            form["MerchantTradeDate"], "2026/11/27 00:30:05",
            "Taipei is UTC+8"
        );
        for (k, v) in [
            ("MerchantID", "3002607"),
            ("PaymentType", "aio"),
            ("ChoosePayment", "Credit"),
            ("EncryptType", "1"),
            ("TotalAmount", "500"),
            ("CustomField1", "payment-id"),
        ] {
            assert_eq!(form[k], v);
        }
        assert!(!form.contains_key("OrderResultURL"));
        assert!(verify(
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &credentials
        ));
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    fn answer(fields: &[(&str, &str)], credentials: &Credentials) -> String {
        let mut map: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sign(&mut map, credentials);
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(map.iter())
            .finish()
    }

    #[test]
    fn a_query_answer_is_trusted_only_when_signed_for_us_about_the_trade_asked() {
        let stage = Credentials::stage();
        let paid = [
            ("MerchantID", "3002607"),
            ("MerchantTradeNo", "PT123"),
            ("TradeStatus", "1"),
            ("TradeAmt", "500"),
            ("TradeNo", "2611290000001"),
            ("PaymentDate", "2026/11/29 11:00:00"),
        ];
        let info = verify_trade_info(&answer(&paid, &stage), "PT123", &stage).unwrap();
        assert!(info.is_paid());
        assert_eq!(info.trade_amount, 500);
        assert!(!info.fields.contains_key(CHECK_MAC_VALUE));
        assert_eq!(
            verify_trade_info(&answer(&paid, &stage), "PT999", &stage),
            Err(TradeInfoRejected::OtherTrade)
        );
        let other = Credentials {
            merchant_id: "3002607".into(),
            hash_key: "another-key-1234".into(),
            hash_iv: "another-iv-12345".into(),
        };
        assert_eq!(
            verify_trade_info(&answer(&paid, &other), "PT123", &stage),
            Err(TradeInfoRejected::BadMac)
        );
        let tampered = answer(&paid, &stage).replace("TradeAmt=500", "TradeAmt=50000");
        assert_eq!(
            verify_trade_info(&tampered, "PT123", &stage),
            Err(TradeInfoRejected::BadMac)
        );
        assert_eq!(
            verify_trade_info("<html>403 Forbidden</html>", "PT123", &stage),
            Err(TradeInfoRejected::Malformed)
        );
    }

    #[test]
    fn the_query_request_is_signed_and_stamped() {
        let now = chrono::DateTime::from_timestamp(1_795_921_200, 0).unwrap();
        let form = query_trade_info_form("PT123", now, &Credentials::stage());
        assert_eq!(form["TimeStamp"], "1795921200");
        assert!(verify(
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &Credentials::stage()
        ));
    }
}

//! The simulator's B2C e-invoice office: ECPay's invoice API at `/dev/ecpay/B2CInvoice/…` (the same
//! paths as ECPay's host), with ECPay's envelope and rules (local host and tests only):
//!
//! - the envelope: `MerchantID` the stage invoice merchant (`2000132`), `RqHeader.Revision` 3.0.0, a
//!   `Timestamp` within 10 minutes, `Data` that decrypts with the stage invoice keys; anything else
//!   is refused with `TransCode` other than 1 (<https://developers.ecpay.com.tw/?p=7809>);
//! - Issue (<https://developers.ecpay.com.tw/?p=7896>): `RelateNumber` 1–30 letters and digits and
//!   never used twice (RtnCode 10000009), `SalesAmount` the sum of `ItemAmount`, each `ItemAmount`
//!   `ItemCount` × `ItemPrice`; a donation is not printed and names no company; a company's invoice
//!   without a carrier is printed, with carrier 1 or 2 it is not; carrier 1 needs the buyer's email,
//!   2 a citizen certificate number, 3 a mobile barcode; the number issued is 2 capital letters and
//!   8 digits;
//! - GetIssue by `RelateNumber`; Invalid (once, and never after an allowance); Allowance
//!   (<https://developers.ecpay.com.tw/?p=7917>) never above what remains of the invoice, its
//!   `AllowanceAmount` the sum of its items', `AllowanceNotify` one of `E`, `S`, `A`, `N`.
//!
//! Tests can take it down for a number of calls (HTTP 503, nothing done) or lose the answers of a
//! number of calls it carried out (HTTP 504): what a caller sees of a timeout after ECPay acted.
//!
//! ECPay documents RtnCode 1 as success and 10000009 for a used RelateNumber; the simulator's other
//! refusal codes are its own, and nothing reads them but as "not 1".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use rand::Rng;
use shared::domain::invoice::{is_citizen_certificate, is_love_code, is_mobile_barcode, is_tax_id};
use shared::ecpay_invoice::{self as invoice, InvoiceCredentials, RELATE_NUMBER_USED};
use shared::gateway::GatewayReply;

/// ECPay refuses an envelope stamped further than this from its clock.
const TIMESTAMP_TOLERANCE_SECS: i64 = 600;

struct Issued {
    invoice_no: String,
    invoice_date: String,
    amount: i64,
    remaining: i64,
    void: bool,
    allowances: u32,
}

pub struct InvoiceOffice {
    credentials: InvoiceCredentials,
    by_relate_number: Mutex<HashMap<String, Issued>>,
    /// Calls answered HTTP 503 without being looked at (ECPay down), counted down.
    outage: AtomicU32,
    /// Calls carried out whose answers are lost on the way back (HTTP 504), counted down.
    lost_answers: AtomicU32,
    /// The next Issue is refused with this message (as ECPay refuses data it will not invoice).
    refuse_next_issue: Mutex<Option<String>>,
}

impl Default for InvoiceOffice {
    fn default() -> Self {
        InvoiceOffice {
            credentials: InvoiceCredentials::stage(),
            by_relate_number: Mutex::new(HashMap::new()),
            outage: AtomicU32::new(0),
            lost_answers: AtomicU32::new(0),
            refuse_next_issue: Mutex::new(None),
        }
    }
}

/// What the office holds for one RelateNumber (tests read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInvoice {
    pub invoice_no: String,
    pub amount: i64,
    pub remaining: i64,
    pub void: bool,
    pub allowances: u32,
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn text(data: &serde_json::Value, name: &str) -> String {
    match data.get(name) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn number(data: &serde_json::Value, name: &str) -> Option<i64> {
    match data.get(name) {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

impl InvoiceOffice {
    /// The next `calls` calls find ECPay down (HTTP 503, nothing done).
    pub fn go_down_for(&self, calls: u32) {
        self.outage.store(calls, Ordering::SeqCst);
    }

    /// The next `calls` calls are carried out but their answers never arrive (HTTP 504).
    pub fn lose_answers(&self, calls: u32) {
        self.lost_answers.store(calls, Ordering::SeqCst);
    }

    /// The next Issue is refused with `message`.
    pub fn refuse_next_issue(&self, message: &str) {
        if let Ok(mut next) = self.refuse_next_issue.lock() {
            *next = Some(message.to_string());
        }
    }

    /// What the office holds under `relate_number`.
    pub fn held(&self, relate_number: &str) -> Option<HeldInvoice> {
        let issued = self.by_relate_number.lock().ok()?;
        issued.get(relate_number).map(|i| HeldInvoice {
            invoice_no: i.invoice_no.clone(),
            amount: i.amount,
            remaining: i.remaining,
            void: i.void,
            allowances: i.allowances,
        })
    }

    /// How many invoices the office has issued.
    pub fn issued_count(&self) -> usize {
        self.by_relate_number.lock().map_or(0, |i| i.len())
    }

    /// Answers one call to `path` (ending in the API's path) with `body`, at `now`; down or losing
    /// answers when told to.
    pub fn handle(
        &self,
        path: &str,
        body: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> GatewayReply {
        if take_one(&self.outage) {
            return GatewayReply {
                status: 503,
                body: "Service Unavailable".into(),
            };
        }
        let reply = self.answer_call(path, body, now);
        if take_one(&self.lost_answers) {
            return GatewayReply {
                status: 504,
                body: "Gateway Timeout".into(),
            };
        }
        reply
    }

    fn answer_call(
        &self,
        path: &str,
        body: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> GatewayReply {
        let envelope: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => return self.refuse_envelope("JSON 格式錯誤"),
        };
        if text(&envelope, "MerchantID") != self.credentials.merchant_id {
            return self.refuse_envelope("MerchantID 錯誤");
        }
        let header = envelope.get("RqHeader").cloned().unwrap_or_default();
        if text(&header, "Revision") != invoice::REVISION {
            return self.refuse_envelope("Revision 錯誤");
        }
        let stamp = number(&header, "Timestamp").unwrap_or(0);
        if (now.timestamp() - stamp).abs() > TIMESTAMP_TOLERANCE_SECS {
            return self.refuse_envelope("Timestamp 逾時");
        }
        let Some(data) = invoice::decrypt_data(&text(&envelope, "Data"), &self.credentials)
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        else {
            return self.refuse_envelope("Data 解密失敗");
        };
        let answer = if path.ends_with(invoice::ISSUE_PATH) {
            self.issue(&data, now)
        } else if path.ends_with(invoice::GET_ISSUE_PATH) {
            self.get_issue(&data)
        } else if path.ends_with(invoice::INVALID_PATH) {
            self.invalid(&data)
        } else if path.ends_with(invoice::ALLOWANCE_PATH) {
            self.allowance(&data, now)
        } else {
            return GatewayReply {
                status: 404,
                body: String::new(),
            };
        };
        self.answer(&answer)
    }

    fn refuse_envelope(&self, message: &str) -> GatewayReply {
        GatewayReply {
            status: 200,
            body: serde_json::json!({
                "MerchantID": self.credentials.merchant_id,
                "RpHeader": {"Timestamp": chrono::Utc::now().timestamp()},
                "TransCode": 999,
                "TransMsg": message,
                "Data": "",
            })
            .to_string(),
        }
    }

    fn answer(&self, data: &serde_json::Value) -> GatewayReply {
        GatewayReply {
            status: 200,
            body: serde_json::json!({
                "MerchantID": self.credentials.merchant_id,
                "RpHeader": {"Timestamp": chrono::Utc::now().timestamp()},
                "TransCode": 1,
                "TransMsg": "Success",
                "Data": invoice::encrypt_data(&data.to_string(), &self.credentials).unwrap_or_default(),
            })
            .to_string(),
        }
    }

    fn refusal(code: i64, message: &str) -> serde_json::Value {
        serde_json::json!({"RtnCode": code, "RtnMsg": message})
    }

    /// What is wrong with an Issue's fields, by ECPay's rules, if anything.
    fn issue_problem(data: &serde_json::Value) -> Option<&'static str> {
        let relate = text(data, "RelateNumber");
        if relate.is_empty()
            || relate.len() > 30
            || !relate.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Some("RelateNumber 格式錯誤");
        }
        let items = data
            .get("Items")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            return Some("Items 不可為空");
        }
        let mut sum = 0;
        for item in &items {
            let (count, price, amount) = (
                number(item, "ItemCount").unwrap_or(0),
                number(item, "ItemPrice").unwrap_or(0),
                number(item, "ItemAmount").unwrap_or(-1),
            );
            if text(item, "ItemName").is_empty() || count <= 0 || amount != count * price {
                return Some("ItemAmount 計算錯誤");
            }
            sum += amount;
        }
        let sales = number(data, "SalesAmount").unwrap_or(0);
        if sales <= 0 || sales != sum {
            return Some("SalesAmount 與商品合計不符");
        }
        let (carrier, donation, print, identifier) = (
            text(data, "CarrierType"),
            text(data, "Donation"),
            text(data, "Print"),
            text(data, "CustomerIdentifier"),
        );
        if !identifier.is_empty() && !is_tax_id(&identifier) {
            return Some("CustomerIdentifier 格式錯誤");
        }
        if donation == "1" {
            if print != "0" || !identifier.is_empty() {
                return Some("捐贈發票不可列印或指定統一編號");
            }
            if !is_love_code(&text(data, "LoveCode")) {
                return Some("LoveCode 格式錯誤");
            }
        }
        if !identifier.is_empty() {
            let print_allowed = match carrier.as_str() {
                "" => print == "1",
                "1" | "2" => print == "0",
                "3" => print == "0" || print == "1",
                _ => false,
            };
            if !print_allowed {
                return Some("統一編號發票的列印與載具不符");
            }
        }
        let number = text(data, "CarrierNum");
        match carrier.as_str() {
            "" => {}
            "1" if text(data, "CustomerEmail").contains('@') => {}
            "1" => return Some("會員載具需要 CustomerEmail"),
            "2" if is_citizen_certificate(&number) => {}
            "3" if is_mobile_barcode(&number) => {}
            "2" | "3" => return Some("CarrierNum 格式錯誤"),
            _ => return Some("CarrierType 錯誤"),
        }
        if identifier.is_empty() && donation != "1" && carrier.is_empty() && print != "1" {
            return Some("無載具且不捐贈的發票須列印");
        }
        None
    }

    fn issue(
        &self,
        data: &serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        if let Some(problem) = Self::issue_problem(data) {
            return Self::refusal(1_200_000, problem);
        }
        if let Some(message) = self
            .refuse_next_issue
            .lock()
            .ok()
            .and_then(|mut m| m.take())
        {
            return Self::refusal(1_200_099, &message);
        }
        let Ok(mut issued) = self.by_relate_number.lock() else {
            return Self::refusal(9_999_999, "busy");
        };
        let relate = text(data, "RelateNumber");
        if issued.contains_key(&relate) {
            return Self::refusal(RELATE_NUMBER_USED, "RelateNumber 已存在");
        }
        let mut rng = rand::thread_rng();
        let letters: String = (0..2).map(|_| rng.gen_range(b'A'..=b'Z') as char).collect();
        let invoice_no = format!("{letters}{:08}", rng.gen_range(0..100_000_000));
        let invoice_date = shared::domain::codes::in_taipei(now)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let amount = number(data, "SalesAmount").unwrap_or(0);
        issued.insert(
            relate,
            Issued {
                invoice_no: invoice_no.clone(),
                invoice_date: invoice_date.clone(),
                amount,
                remaining: amount,
                void: false,
                allowances: 0,
            },
        );
        serde_json::json!({
            "RtnCode": 1,
            "RtnMsg": "開立發票成功",
            "InvoiceNo": invoice_no,
            "InvoiceDate": invoice_date,
            "RandomNumber": format!("{:04}", rng.gen_range(0..10_000)),
        })
    }

    fn get_issue(&self, data: &serde_json::Value) -> serde_json::Value {
        let Ok(issued) = self.by_relate_number.lock() else {
            return Self::refusal(9_999_999, "busy");
        };
        match issued.get(&text(data, "RelateNumber")) {
            Some(invoice) => serde_json::json!({
                "RtnCode": 1,
                "RtnMsg": "查詢成功",
                "IIS_Number": invoice.invoice_no,
                "IIS_Create_Date": invoice.invoice_date,
                "IIS_Sales_Amount": invoice.amount,
                "IIS_Invalid_Status": if invoice.void { "1" } else { "0" },
                "IIS_Remain_Allowance_Amt": invoice.remaining,
            }),
            None => Self::refusal(1_200_001, "查無發票資料"),
        }
    }

    fn find<'a>(
        issued: &'a mut HashMap<String, Issued>,
        data: &serde_json::Value,
    ) -> Option<&'a mut Issued> {
        let number = text(data, "InvoiceNo");
        let date = text(data, "InvoiceDate");
        issued.values_mut().find(|i| {
            i.invoice_no == number && i.invoice_date.starts_with(date.get(..10).unwrap_or("-"))
        })
    }

    fn invalid(&self, data: &serde_json::Value) -> serde_json::Value {
        if text(data, "Reason").is_empty() {
            return Self::refusal(1_200_002, "Reason 不可為空");
        }
        let Ok(mut issued) = self.by_relate_number.lock() else {
            return Self::refusal(9_999_999, "busy");
        };
        match Self::find(&mut issued, data) {
            Some(invoice) if invoice.void => Self::refusal(1_200_003, "發票已作廢"),
            Some(invoice) if invoice.allowances > 0 => {
                Self::refusal(1_200_004, "發票已折讓不可作廢")
            }
            Some(invoice) => {
                invoice.void = true;
                serde_json::json!({"RtnCode": 1, "RtnMsg": "作廢發票成功", "InvoiceNo": invoice.invoice_no})
            }
            None => Self::refusal(1_200_001, "查無發票資料"),
        }
    }

    fn allowance(
        &self,
        data: &serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        let amount = number(data, "AllowanceAmount").unwrap_or(0);
        let items = data
            .get("Items")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default();
        let sum: i64 = items
            .iter()
            .map(|i| number(i, "ItemAmount").unwrap_or(0))
            .sum();
        if items.is_empty() || sum != amount {
            return Self::refusal(1_200_006, "AllowanceAmount 與商品合計不符");
        }
        if !["E", "S", "A", "N"].contains(&text(data, "AllowanceNotify").as_str()) {
            return Self::refusal(1_200_007, "AllowanceNotify 錯誤");
        }
        let Ok(mut issued) = self.by_relate_number.lock() else {
            return Self::refusal(9_999_999, "busy");
        };
        match Self::find(&mut issued, data) {
            Some(invoice) if invoice.void => Self::refusal(1_200_003, "發票已作廢"),
            Some(invoice) if amount <= 0 || amount > invoice.remaining => {
                Self::refusal(1_200_005, "折讓金額超過發票剩餘可折讓金額")
            }
            Some(invoice) => {
                invoice.remaining -= amount;
                invoice.allowances += 1;
                serde_json::json!({
                    "RtnCode": 1,
                    "RtnMsg": "開立折讓成功",
                    "IA_Allow_No": format!("{}{:04}", now.format("%Y%m%d%H%M%S"), invoice.allowances),
                    "IA_Invoice_No": invoice.invoice_no,
                    "IA_Date": shared::domain::codes::in_taipei(now).format("%Y-%m-%d %H:%M:%S").to_string(),
                    "IA_Remain_Allowance_Amt": invoice.remaining,
                })
            }
            None => Self::refusal(1_200_001, "查無發票資料"),
        }
    }
}

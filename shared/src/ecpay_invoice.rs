//! ECPay's B2C e-invoice API (電子發票), the wire format only (pure functions, no I/O): every call is
//! a JSON envelope `{MerchantID, RqHeader: {Timestamp, Revision: "3.0.0"}, Data}` whose `Data` is
//! Base64 of AES-128-CBC (PKCS7) of the URL-encoded JSON (PHP `urlencode` rules: letters, digits and
//! `-_.` kept, space as `+`, everything else `%XX` in upper case), keyed by the invoice HashKey and
//! HashIV (ECPay's invoice credentials differ from the payment ones). An answer is checked in that
//! order: `TransCode` 1 (the envelope was taken), then its `Data` decrypted, then `RtnCode`.
//! <https://developers.ecpay.com.tw/?p=7809> (B2C invoice), and ECPay's AES example held by the
//! unit test below.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use secrecy::ExposeSecret;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// ECPay's public stage invoice merchant and keys (its documentation's).
pub const STAGE_INVOICE_MERCHANT_ID: &str = "2000132";
pub const STAGE_INVOICE_HASH_KEY: &str = "ejCk326UnaZWKisg";
pub const STAGE_INVOICE_HASH_IV: &str = "q9jcZX8Ib9LM8wYk";
pub const REVISION: &str = "3.0.0";

/// The invoice API's credentials.
#[derive(Clone)]
pub struct InvoiceCredentials {
    pub merchant_id: String,
    pub hash_key: secrecy::SecretString,
    pub hash_iv: secrecy::SecretString,
}

impl std::fmt::Debug for InvoiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvoiceCredentials")
            .field("merchant_id", &self.merchant_id)
            .finish_non_exhaustive()
    }
}

impl InvoiceCredentials {
    pub fn stage() -> Self {
        InvoiceCredentials {
            merchant_id: STAGE_INVOICE_MERCHANT_ID.into(),
            hash_key: STAGE_INVOICE_HASH_KEY.into(),
            hash_iv: STAGE_INVOICE_HASH_IV.into(),
        }
    }
}

/// PHP's `urlencode`: letters, digits and `-_.` as they are, space as `+`, every other byte `%XX`
/// with upper-case hex.
pub fn php_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// PHP's `urldecode`: `+` as space, `%XX` as its byte; anything malformed is refused.
pub fn php_urldecode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn key_iv(credentials: &InvoiceCredentials) -> Option<([u8; 16], [u8; 16])> {
    let key: [u8; 16] = credentials
        .hash_key
        .expose_secret()
        .as_bytes()
        .try_into()
        .ok()?;
    let iv: [u8; 16] = credentials
        .hash_iv
        .expose_secret()
        .as_bytes()
        .try_into()
        .ok()?;
    Some((key, iv))
}

/// `Data` for `json`: Base64 of AES-128-CBC (PKCS7) of its URL encoding. `None` when the keys are
/// not 16 bytes each.
pub fn encrypt_data(json: &str, credentials: &InvoiceCredentials) -> Option<String> {
    let (key, iv) = key_iv(credentials)?;
    let plain = php_urlencode(json);
    let sealed =
        Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(sealed))
}

/// The JSON inside `Data`, or `None` when it does not decrypt to URL-encoded UTF-8.
pub fn decrypt_data(data: &str, credentials: &InvoiceCredentials) -> Option<String> {
    let (key, iv) = key_iv(credentials)?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let plain = Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&sealed)
        .ok()?;
    php_urldecode(std::str::from_utf8(&plain).ok()?)
}

/// The request envelope for `data` (a JSON object), stamped `timestamp` (Unix seconds).
pub fn envelope(
    data: &serde_json::Value,
    timestamp: i64,
    credentials: &InvoiceCredentials,
) -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "MerchantID": credentials.merchant_id,
        "RqHeader": {"Timestamp": timestamp, "Revision": REVISION},
        "Data": encrypt_data(&data.to_string(), credentials)?,
    }))
}

/// The API's paths, the same on ECPay's hosts and under the local simulator's `/dev/ecpay`.
pub const ISSUE_PATH: &str = "/B2CInvoice/Issue";
pub const GET_ISSUE_PATH: &str = "/B2CInvoice/GetIssue";
pub const INVALID_PATH: &str = "/B2CInvoice/Invalid";
pub const ALLOWANCE_PATH: &str = "/B2CInvoice/Allowance";
pub const STAGE_INVOICE_HOST: &str = "https://einvoice-stage.ecpay.com.tw";
pub const PRODUCTION_INVOICE_HOST: &str = "https://einvoice.ecpay.com.tw";

/// ECPay's RtnCode for a RelateNumber it has already issued an invoice for.
pub const RELATE_NUMBER_USED: i64 = 10_000_009;

/// One invoice to issue: a single line for its whole amount (tax included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDraft {
    /// Ours, derived from what is invoiced (at most 30 letters and digits): a retry reuses it.
    pub relate_number: String,
    pub amount: i64,
    pub item_name: String,
    pub preference: crate::domain::invoice::InvoicePreference,
    /// The member's email: ECPay's member carrier, and where ECPay sends the notice.
    pub email: String,
}

/// A RelateNumber from `prefix` and an id: letters and digits only, at most 30.
pub fn relate_number(prefix: &str, id: &str) -> String {
    prefix
        .chars()
        .chain(id.chars())
        .filter(char::is_ascii_alphanumeric)
        .take(30)
        .collect()
}

/// The Issue `Data` for `draft` (<https://developers.ecpay.com.tw/?p=7896>): the carrier, donation
/// and print flags as the page's rules pair them, and `SalesAmount` the sum of `ItemAmount`.
pub fn issue_data(draft: &InvoiceDraft, merchant_id: &str) -> serde_json::Value {
    use crate::domain::invoice::InvoicePreference::*;
    let (carrier_type, carrier_num, donation, love_code, print, identifier, name) =
        match &draft.preference {
            // ECPay's member carrier: CarrierType 1, kept by the buyer's email.
            Member => (
                "1",
                String::new(),
                "0",
                String::new(),
                "0",
                String::new(),
                String::new(),
            ),
            CitizenCertificate { carrier_num } => (
                "2",
                carrier_num.clone(),
                "0",
                String::new(),
                "0",
                String::new(),
                String::new(),
            ),
            MobileBarcode { carrier_num } => (
                "3",
                carrier_num.clone(),
                "0",
                String::new(),
                "0",
                String::new(),
                String::new(),
            ),
            // A donation is never printed and names no company.
            Donation { love_code } => (
                "",
                String::new(),
                "1",
                love_code.clone(),
                "0",
                String::new(),
                String::new(),
            ),
            // A company's invoice with no carrier is printed.
            Company {
                tax_id,
                company_name,
            } => (
                "",
                String::new(),
                "0",
                String::new(),
                "1",
                tax_id.clone(),
                company_name.clone(),
            ),
        };
    serde_json::json!({
        "MerchantID": merchant_id,
        "RelateNumber": draft.relate_number,
        "CustomerIdentifier": identifier,
        "CustomerName": name,
        "CustomerEmail": draft.email,
        "Print": print,
        "Donation": donation,
        "LoveCode": love_code,
        "CarrierType": carrier_type,
        "CarrierNum": carrier_num,
        "TaxType": "1",
        "SalesAmount": draft.amount,
        "InvType": "07",
        "vat": "1",
        "Items": [{
            "ItemSeq": 1,
            "ItemName": draft.item_name,
            "ItemCount": 1,
            "ItemWord": "式",
            "ItemPrice": draft.amount,
            "ItemTaxType": "1",
            "ItemAmount": draft.amount,
        }],
    })
}

/// GetIssue's `Data`: the invoice issued for `relate_number`, if any
/// (<https://developers.ecpay.com.tw/?p=7950>).
pub fn get_issue_data(relate_number: &str, merchant_id: &str) -> serde_json::Value {
    serde_json::json!({"MerchantID": merchant_id, "RelateNumber": relate_number})
}

/// An issued invoice as Invalid and Allowance name it: our MerchantID, its number, and its date
/// (`yyyy-MM-dd`, the first ten characters of `InvoiceDate`).
fn naming_invoice(merchant_id: &str, invoice_no: &str, invoice_date: &str) -> serde_json::Value {
    serde_json::json!({
        "MerchantID": merchant_id,
        "InvoiceNo": invoice_no,
        "InvoiceDate": invoice_date.get(..10).unwrap_or(invoice_date),
    })
}

/// `base` (an object) with `more`'s fields added.
fn with_fields(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    if let (Some(base), serde_json::Value::Object(more)) = (base.as_object_mut(), more) {
        base.extend(more);
    }
    base
}

/// Invalid's `Data` (<https://developers.ecpay.com.tw/?p=7938>): `InvoiceDate` is the issue's
/// date (`yyyy-MM-dd`), `Reason` at most 20 characters.
pub fn invalid_data(
    invoice_no: &str,
    invoice_date: &str,
    reason: &str,
    merchant_id: &str,
) -> serde_json::Value {
    with_fields(
        naming_invoice(merchant_id, invoice_no, invoice_date),
        serde_json::json!({"Reason": reason.chars().take(20).collect::<String>()}),
    )
}

/// Allowance's `Data` (<https://developers.ecpay.com.tw/?p=7917>): one line for `amount`, the
/// notice by email; `AllowanceAmount` equals the sum of `ItemAmount`.
pub fn allowance_data(
    invoice_no: &str,
    invoice_date: &str,
    amount: i64,
    email: &str,
    merchant_id: &str,
) -> serde_json::Value {
    with_fields(
        naming_invoice(merchant_id, invoice_no, invoice_date),
        serde_json::json!({
            "AllowanceNotify": "E",
            "CustomerName": "",
            "NotifyMail": email,
            "NotifyPhone": "",
            "AllowanceAmount": amount,
            "Items": [{
                "ItemSeq": 1,
                "ItemName": "點數退款",
                "ItemCount": 1,
                "ItemWord": "式",
                "ItemPrice": amount,
                "ItemTaxType": "1",
                "ItemAmount": amount,
            }],
        }),
    )
}

/// What GetIssue said of an invoice, when `RtnCode` is 1.
pub fn issue_record(data: &serde_json::Value) -> Option<crate::domain::e_invoice::IssueRecord> {
    let invoice = issued_invoice(data)?;
    let number = |name: &str| {
        data.get(name).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    Some(crate::domain::e_invoice::IssueRecord {
        invoice_number: invoice.invoice_no,
        invoice_date: invoice.invoice_date,
        void: number("IIS_Invalid_Status") == Some(1),
        remaining: number("IIS_Remain_Allowance_Amt"),
    })
}

/// An invoice ECPay issued: its number and date, from Issue's or GetIssue's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedInvoice {
    pub invoice_no: String,
    pub invoice_date: String,
}

/// `RtnCode` of an opened answer (a number or a string).
pub fn rtn_code(data: &serde_json::Value) -> Option<i64> {
    data.get("RtnCode").and_then(|c| {
        c.as_i64()
            .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

/// The invoice in an Issue answer (`InvoiceNo`, `InvoiceDate`) or a GetIssue answer
/// (`IIS_Number`, `IIS_Create_Date`), when `RtnCode` is 1.
pub fn issued_invoice(data: &serde_json::Value) -> Option<IssuedInvoice> {
    if rtn_code(data) != Some(1) {
        return None;
    }
    let text = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| data.get(*name).and_then(|v| v.as_str()))
            .map(str::to_string)
    };
    Some(IssuedInvoice {
        invoice_no: text(&["InvoiceNo", "IIS_Number"])?,
        invoice_date: text(&["InvoiceDate", "IIS_Create_Date"])?,
    })
}

/// Why an answer of the invoice API is not believed, or said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceAnswerRejected {
    #[error("the answer is malformed")]
    Malformed,
    /// `TransCode` not 1: the envelope itself was refused.
    #[error("ECPay refused the envelope: {0}")]
    Transport(String),
    #[error("the answer's Data does not decrypt")]
    Undecryptable,
}

/// The decrypted `Data` of an answer: checked `TransCode` first, then decrypted (the caller reads
/// `RtnCode`).
pub fn open_answer(
    body: &str,
    credentials: &InvoiceCredentials,
) -> Result<serde_json::Value, InvoiceAnswerRejected> {
    let answer: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|_| InvoiceAnswerRejected::Malformed)?;
    let code = answer.get("TransCode").and_then(|c| {
        c.as_i64()
            .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
    });
    if code != Some(1) {
        return Err(InvoiceAnswerRejected::Transport(
            answer
                .get("TransMsg")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        ));
    }
    let data = answer
        .get("Data")
        .and_then(|d| d.as_str())
        .ok_or(InvoiceAnswerRejected::Malformed)?;
    let json = decrypt_data(data, credentials).ok_or(InvoiceAnswerRejected::Undecryptable)?;
    serde_json::from_str(&json).map_err(|_| InvoiceAnswerRejected::Undecryptable)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ECPay's own example (its AES page): the JSON, its URL encoding in upper case, and the Base64
    /// it encrypts to with the stage invoice keys.
    const EXAMPLE_JSON: &str = r#"{"Name":"Test","ID":"A123456789"}"#;
    const EXAMPLE_ENCODED: &str = "%7B%22Name%22%3A%22Test%22%2C%22ID%22%3A%22A123456789%22%7D";
    const EXAMPLE_DATA: &str =
        "uvI4yrErM37XNQkXGAgRgJAgHn2t72jahaMZzYhWL1HmvH4WV18VJDP2i9pTbC+tby5nxVExLLFyAkbjbS2Dvg==";

    #[test]
    fn ecpays_published_aes_example_byte_for_byte() {
        assert_eq!(php_urlencode(EXAMPLE_JSON), EXAMPLE_ENCODED);
        assert_eq!(
            encrypt_data(EXAMPLE_JSON, &InvoiceCredentials::stage()).as_deref(),
            Some(EXAMPLE_DATA)
        );
        assert_eq!(
            decrypt_data(EXAMPLE_DATA, &InvoiceCredentials::stage()).as_deref(),
            Some(EXAMPLE_JSON)
        );
    }

    #[test]
    fn php_urlencode_keeps_only_what_php_keeps() {
        assert_eq!(php_urlencode("a b-_.~*'()!"), "a+b-_.%7E%2A%27%28%29%21");
        assert_eq!(php_urlencode("茶"), "%E8%8C%B6");
        assert_eq!(php_urldecode("a+b%E8%8C%B6").as_deref(), Some("a b茶"));
        assert_eq!(php_urldecode("%E"), None);
    }

    #[test]
    fn an_issue_pairs_carrier_donation_and_print_as_ecpay_requires_and_sums_its_items() {
        use crate::domain::invoice::InvoicePreference;
        let draft = |preference| InvoiceDraft {
            relate_number: relate_number("R", "PT2612061000ABCD"),
            amount: 500,
            item_name: "點數".into(),
            preference,
            email: "mia@example.com".into(),
        };
        let member = issue_data(&draft(InvoicePreference::Member), "2000132");
        assert_eq!(member["RelateNumber"], "RPT2612061000ABCD");
        assert_eq!(
            (member["CarrierType"].as_str(), member["Print"].as_str()),
            (Some("1"), Some("0"))
        );
        assert_eq!(member["SalesAmount"], member["Items"][0]["ItemAmount"]);
        let donation = issue_data(
            &draft(InvoicePreference::Donation {
                love_code: "168".into(),
            }),
            "2000132",
        );
        assert_eq!(
            (
                donation["Donation"].as_str(),
                donation["Print"].as_str(),
                donation["CustomerIdentifier"].as_str()
            ),
            (Some("1"), Some("0"), Some(""))
        );
        let company = issue_data(
            &draft(InvoicePreference::Company {
                tax_id: "12345678".into(),
                company_name: "茶舖".into(),
            }),
            "2000132",
        );
        assert_eq!(
            (company["CarrierType"].as_str(), company["Print"].as_str()),
            (Some(""), Some("1"))
        );
        assert_eq!(relate_number("ORD", &"x-1".repeat(20)).len(), 30);
    }

    #[test]
    fn an_answer_is_opened_only_after_its_trans_code() {
        let credentials = InvoiceCredentials::stage();
        let data = encrypt_data(r#"{"RtnCode":1,"RtnMsg":"開立發票成功"}"#, &credentials).unwrap();
        let ok = serde_json::json!({"MerchantID": "2000132", "RpHeader": {"Timestamp": 1}, "TransCode": 1, "TransMsg": "Success", "Data": data});
        assert_eq!(
            open_answer(&ok.to_string(), &credentials).unwrap()["RtnCode"],
            1
        );
        let refused = serde_json::json!({"TransCode": 999, "TransMsg": "驗證錯誤", "Data": ""});
        assert_eq!(
            open_answer(&refused.to_string(), &credentials),
            Err(InvoiceAnswerRejected::Transport("驗證錯誤".into()))
        );
        let garbled = serde_json::json!({"TransCode": 1, "Data": "bm90IGFlcw=="});
        assert_eq!(
            open_answer(&garbled.to_string(), &credentials),
            Err(InvoiceAnswerRejected::Undecryptable)
        );
    }
}

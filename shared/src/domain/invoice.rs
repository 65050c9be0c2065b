//! Where a member's e-invoice (電子發票) goes: the buyer's carrier, as ECPay's B2C invoice API takes
//! it (`CarrierType`, `CarrierNum`, `Donation`/`LoveCode`, `CustomerIdentifier`/`Print`). The formats
//! are the Ministry of Finance's, as ECPay's Issue page states them:
//! - 手機條碼 (mobile barcode): `/` and 7 of `0-9`, `A-Z`, `.`, `+`, `-`;
//! - 自然人憑證 (citizen digital certificate): 2 capital letters and 14 digits;
//! - 捐贈碼 (love code, a donation): 3–7 digits;
//! - 統一編號 (a company's tax id): 8 digits, and the invoice is then printed;
//! - ECPay's member carrier (the default): the member's email.

use serde::{Deserialize, Serialize};

/// A member's invoice preference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvoicePreference {
    /// ECPay's member carrier, by the member's email (the default).
    #[default]
    Member,
    MobileBarcode {
        carrier_num: String,
    },
    CitizenCertificate {
        carrier_num: String,
    },
    Donation {
        love_code: String,
    },
    Company {
        tax_id: String,
        company_name: String,
    },
}

/// A mobile barcode: `/` then 7 of `0-9A-Z.+-`.
pub fn is_mobile_barcode(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next() == Some('/')
        && value.len() == 8
        && chars.all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || ".+-".contains(c))
}

/// A citizen digital certificate's number: 2 capital letters then 14 digits.
pub fn is_citizen_certificate(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 16
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..].iter().all(u8::is_ascii_digit)
}

/// A love code: 3 to 7 digits.
pub fn is_love_code(value: &str) -> bool {
    (3..=7).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// A company's tax id (統一編號): 8 digits.
pub fn is_tax_id(value: &str) -> bool {
    value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_carrier_format_is_the_ministrys() {
        assert!(is_mobile_barcode("/ABC+1.-"));
        assert!(!is_mobile_barcode("ABC+1.-Z"));
        assert!(!is_mobile_barcode("/abc1234"));
        assert!(!is_mobile_barcode("/ABC12345"));
        assert!(is_citizen_certificate("AB12345678901234"));
        assert!(!is_citizen_certificate("Ab12345678901234"));
        assert!(!is_citizen_certificate("AB1234567890123"));
        assert!(
            !is_citizen_certificate("é12345678901234"),
            "no panic on a multi-byte start"
        );
        assert!(is_love_code("168") && is_love_code("1234567"));
        assert!(!is_love_code("12") && !is_love_code("12345678") && !is_love_code("12a"));
        assert!(is_tax_id("12345678") && !is_tax_id("1234567") && !is_tax_id("1234567a"));
    }
}

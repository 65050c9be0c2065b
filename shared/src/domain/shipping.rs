//! Where a delivered gift goes: the address a member gives (or saved), checked once, kept on the
//! order as a snapshot, and redacted when it is no longer needed.

use serde::{Deserialize, Serialize};

use crate::error::FieldCheck;

pub const RECIPIENT_NAME_MAX: usize = 50;
pub const ADDRESS_MAX: usize = 200;
pub const CARRIER_MAX: usize = 50;
pub const TRACKING_NUMBER_MAX: usize = 50;
/// What replaces a name, phone, postal code and address once the retention period has passed.
pub const REDACTED: &str = "redacted";

/// A delivery address, valid by construction (see [`check_shipping`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingAddress {
    /// 1–50 characters.
    pub recipient_name: String,
    /// A Taiwan mobile number: `09` and 8 digits, or `+8869` and 8 digits.
    pub phone: String,
    /// 3, 5 or 6 digits (郵遞區號).
    pub postal_code: String,
    /// 1–200 characters.
    pub address: String,
}

impl ShippingAddress {
    /// The address with every personal field replaced by [`REDACTED`].
    pub fn redacted() -> Self {
        ShippingAddress {
            recipient_name: REDACTED.into(),
            phone: REDACTED.into(),
            postal_code: REDACTED.into(),
            address: REDACTED.into(),
        }
    }
}

/// An address as a request carries it: every field optional, so each problem can be named.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ShippingInput {
    #[schema(value_type = String, required = true, min_length = 1, max_length = 50, example = "王小明")]
    pub recipient_name: Option<String>,
    #[schema(value_type = String, required = true, example = "0912345678")]
    pub phone: Option<String>,
    #[schema(value_type = String, required = true, example = "10617")]
    pub postal_code: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, example = "臺北市大安區羅斯福路四段1號")]
    pub address: Option<String>,
}

/// A Taiwan mobile number (`09` + 8 digits, or `+8869` + 8 digits); spaces and dashes are
/// ignored, and the number is kept in the `09…` form.
pub fn parse_mobile(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let local = match digits.strip_prefix("+886") {
        Some(rest) if rest.starts_with('9') => format!("0{rest}"),
        Some(_) => return None,
        None => digits,
    };
    (local.len() == 10 && local.starts_with("09") && local.bytes().all(|b| b.is_ascii_digit()))
        .then_some(local)
}

fn text_field(
    check: &mut FieldCheck,
    field: &str,
    value: Option<String>,
    max: usize,
) -> Option<String> {
    let Some(value) = value else {
        check.fail(field, "is required");
        return None;
    };
    let trimmed = value.trim().to_string();
    let len = trimmed.chars().count();
    if len == 0 || len > max {
        check.fail(field, format!("must be 1 to {max} characters"));
        return None;
    }
    if let Some(c) = super::text::forbidden_char(&trimmed, false) {
        check.fail(field, super::text::forbidden_problem(c));
        return None;
    }
    Some(trimmed)
}

/// Checks an address, naming each problem under `prefix` (`shipping.phone`); `None` if any.
pub fn check_shipping(
    check: &mut FieldCheck,
    prefix: &str,
    input: ShippingInput,
) -> Option<ShippingAddress> {
    let name = text_field(
        check,
        &format!("{prefix}recipient_name"),
        input.recipient_name,
        RECIPIENT_NAME_MAX,
    );
    let phone = match input.phone {
        None => {
            check.fail(&format!("{prefix}phone"), "is required");
            None
        }
        Some(raw) => {
            let phone = parse_mobile(&raw);
            if phone.is_none() {
                check.fail(
                    &format!("{prefix}phone"),
                    "must be a Taiwan mobile number: 09 and 8 digits, or +8869 and 8 digits",
                );
            }
            phone
        }
    };
    let postal_code = match input.postal_code {
        None => {
            check.fail(&format!("{prefix}postal_code"), "is required");
            None
        }
        Some(raw) => {
            let code = raw.trim().to_string();
            let ok = matches!(code.len(), 3 | 5 | 6) && code.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                check.fail(&format!("{prefix}postal_code"), "must be 3, 5 or 6 digits");
            }
            ok.then_some(code)
        }
    };
    let address = text_field(
        check,
        &format!("{prefix}address"),
        input.address,
        ADDRESS_MAX,
    );
    Some(ShippingAddress {
        recipient_name: name?,
        phone: phone?,
        postal_code: postal_code?,
        address: address?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taiwan_mobile_numbers_in_either_form() {
        assert_eq!(parse_mobile("0912345678").as_deref(), Some("0912345678"));
        assert_eq!(parse_mobile("0912-345-678").as_deref(), Some("0912345678"));
        assert_eq!(parse_mobile("+886912345678").as_deref(), Some("0912345678"));
        assert_eq!(
            parse_mobile("+886 912 345 678").as_deref(),
            Some("0912345678")
        );
        for wrong in [
            "",
            "0212345678",
            "091234567",
            "09123456789",
            "+886212345678",
            "+8869123456",
            "09123456a8",
            "886912345678",
        ] {
            assert_eq!(parse_mobile(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn every_problem_of_an_address_is_named() {
        let mut check = FieldCheck::new();
        let address = check_shipping(
            &mut check,
            "shipping.",
            ShippingInput {
                recipient_name: Some(" ".into()),
                phone: Some("12345".into()),
                postal_code: Some("1234".into()),
                address: None,
            },
        );
        assert!(address.is_none());
        let Err(crate::AppError::Validation { fields, .. }) = check.finish() else {
            panic!("a validation error");
        };
        let named: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            named,
            [
                "shipping.address",
                "shipping.phone",
                "shipping.postal_code",
                "shipping.recipient_name"
            ]
        );
    }

    #[test]
    fn a_good_address_is_kept_trimmed() {
        let mut check = FieldCheck::new();
        let address = check_shipping(
            &mut check,
            "",
            ShippingInput {
                recipient_name: Some(" 王小明 ".into()),
                phone: Some("+886912345678".into()),
                postal_code: Some("106".into()),
                address: Some("臺北市大安區羅斯福路四段1號".into()),
            },
        )
        .unwrap();
        assert_eq!(address.recipient_name, "王小明");
        assert_eq!(address.phone, "0912345678");
    }
}

//! Members' e-invoices: where they go (the carrier). Issuing them through ECPay's B2C invoice API
//! (`crate::ecpay_invoice`) is not built yet (issue 30).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::invoice::{
    is_citizen_certificate, is_love_code, is_mobile_barcode, is_tax_id, InvoicePreference,
};
use crate::domain::UserId;
use crate::error::{AppError, FieldCheck};
use crate::store::Store;

/// Where my e-invoices go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct InvoicePreferenceBody {
    /// `member` (ECPay's member carrier by my email; the default), `mobile_barcode`,
    /// `citizen_certificate`, `donation` or `company`.
    #[schema(value_type = String, required = true, example = "mobile_barcode")]
    pub kind: Option<String>,
    /// `mobile_barcode`: `/` and 7 of `0-9A-Z.+-`; `citizen_certificate`: 2 capital letters and
    /// 14 digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "/ABC+123")]
    pub carrier_num: Option<String>,
    /// `donation`: the charity's love code, 3–7 digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "168")]
    pub love_code: Option<String>,
    /// `company`: the company's tax id (統一編號), 8 digits; the invoice is then printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "12345678")]
    pub tax_id: Option<String>,
    /// `company`: its name, 1–60 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "茶舖有限公司")]
    pub company_name: Option<String>,
}

impl From<InvoicePreference> for InvoicePreferenceBody {
    fn from(p: InvoicePreference) -> Self {
        let mut body = InvoicePreferenceBody::default();
        match p {
            InvoicePreference::Member => body.kind = Some("member".into()),
            InvoicePreference::MobileBarcode { carrier_num } => {
                body.kind = Some("mobile_barcode".into());
                body.carrier_num = Some(carrier_num);
            }
            InvoicePreference::CitizenCertificate { carrier_num } => {
                body.kind = Some("citizen_certificate".into());
                body.carrier_num = Some(carrier_num);
            }
            InvoicePreference::Donation { love_code } => {
                body.kind = Some("donation".into());
                body.love_code = Some(love_code);
            }
            InvoicePreference::Company {
                tax_id,
                company_name,
            } => {
                body.kind = Some("company".into());
                body.tax_id = Some(tax_id);
                body.company_name = Some(company_name);
            }
        }
        body
    }
}

pub struct InvoiceService<'a> {
    pub store: &'a Store,
    pub clock: &'a crate::clock::Clock,
}

impl InvoiceService<'_> {
    /// The member's preference (`member` until they choose).
    pub async fn preference(&self, member: &UserId) -> Result<InvoicePreferenceBody, AppError> {
        Ok(self
            .store
            .invoice_preference(member)
            .await?
            .unwrap_or_default()
            .into())
    }

    /// Keeps the member's preference; each bad format is a 400 naming its field.
    pub async fn set_preference(
        &self,
        member: &UserId,
        body: InvoicePreferenceBody,
    ) -> Result<InvoicePreferenceBody, AppError> {
        let preference = parse_preference(body)?;
        self.store
            .set_invoice_preference(member, &preference, self.clock.now())
            .await?;
        Ok(preference.into())
    }
}

/// The preference a body names, or a 400 naming each bad field.
fn parse_preference(body: InvoicePreferenceBody) -> Result<InvoicePreference, AppError> {
    let mut check = FieldCheck::new();
    let text = |value: Option<String>| value.map(|v| v.trim().to_string());
    let kind = text(body.kind);
    let preference = match kind.as_deref() {
        Some("member") => Some(InvoicePreference::Member),
        Some("mobile_barcode") => match text(body.carrier_num) {
            Some(num) if is_mobile_barcode(&num) => {
                Some(InvoicePreference::MobileBarcode { carrier_num: num })
            }
            Some(_) => {
                check.fail("carrier_num", "must be / and 7 of 0-9, A-Z, ., + or -");
                None
            }
            None => {
                check.fail("carrier_num", "is required for a mobile barcode");
                None
            }
        },
        Some("citizen_certificate") => match text(body.carrier_num) {
            Some(num) if is_citizen_certificate(&num) => {
                Some(InvoicePreference::CitizenCertificate { carrier_num: num })
            }
            Some(_) => {
                check.fail("carrier_num", "must be 2 capital letters and 14 digits");
                None
            }
            None => {
                check.fail("carrier_num", "is required for a citizen certificate");
                None
            }
        },
        Some("donation") => match text(body.love_code) {
            Some(code) if is_love_code(&code) => {
                Some(InvoicePreference::Donation { love_code: code })
            }
            Some(_) => {
                check.fail("love_code", "must be 3 to 7 digits");
                None
            }
            None => {
                check.fail("love_code", "is required for a donation");
                None
            }
        },
        Some("company") => {
            let tax_id = text(body.tax_id);
            let name = text(body.company_name);
            match &tax_id {
                Some(id) if is_tax_id(id) => {}
                Some(_) => check.fail("tax_id", "must be 8 digits"),
                None => check.fail("tax_id", "is required for a company"),
            }
            match &name {
                Some(n) if !n.is_empty() && n.chars().count() <= 60 => {
                    if let Some(c) = crate::domain::text::forbidden_char(n, false) {
                        check.fail("company_name", crate::domain::text::forbidden_problem(c));
                    }
                }
                Some(_) => check.fail("company_name", "must be 1 to 60 characters"),
                None => check.fail("company_name", "is required for a company"),
            }
            match (tax_id, name) {
                (Some(tax_id), Some(company_name)) => Some(InvoicePreference::Company {
                    tax_id,
                    company_name,
                }),
                _ => None,
            }
        }
        Some(_) => {
            check.fail(
                "kind",
                "must be member, mobile_barcode, citizen_certificate, donation or company",
            );
            None
        }
        None => {
            check.fail("kind", "is required");
            None
        }
    };
    check.finish()?;
    preference.ok_or_else(|| AppError::internal("a preference passed its checks without a value"))
}

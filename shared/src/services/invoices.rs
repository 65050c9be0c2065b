//! Members' e-invoices: where they go (the carrier), the member's list, and the operators' failed
//! ones. Issuing them through ECPay's B2C invoice API is the scheduled job's (`invoice_job`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::e_invoice::{Invoice, InvoiceSource};
use crate::domain::invoice::{
    is_citizen_certificate, is_love_code, is_mobile_barcode, is_tax_id, InvoicePreference,
};
use crate::domain::UserId;
use crate::error::{AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
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
    pub config: &'a crate::config::InvoiceConfig,
    /// How ECPay's invoice API is reached (HTTPS; the local host and tests use their simulator).
    pub gateway: &'a dyn crate::gateway::GatewayTransport,
    /// Invoices per run of the job at most.
    pub batch: usize,
}

/// A part of an invoice given back (折讓).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AllowanceView {
    pub amount: i64,
    /// ECPay's allowance number, once made.
    pub allowance_number: Option<String>,
    /// `pending` or `issued`.
    pub state: String,
}

/// An e-invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceView {
    /// Ours, derived from what it invoices (ECPay's `RelateNumber`).
    pub relate_number: String,
    /// ECPay's invoice number (2 letters, 8 digits), once issued.
    #[schema(example = "AB12345678")]
    pub invoice_number: Option<String>,
    /// When ECPay issued it (Taipei time, `yyyy-MM-dd HH:mm:ss`), once issued.
    pub date: Option<String>,
    /// NT$, tax included.
    pub amount: i64,
    /// Where it went (the member's preference when it was issued); null until then.
    pub carrier: Option<InvoicePreferenceBody>,
    /// `pending`, `issued`, `void` or `failed`.
    #[schema(example = "issued")]
    pub state: String,
    /// `recharge` (a paid recharge, `INVOICE_MODE=at_recharge`) or `order` (a completed order,
    /// `at_redemption`).
    pub source: String,
    /// The recharge's MerchantTradeNo or the order's id.
    pub source_id: String,
    pub allowances: Vec<AllowanceView>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Invoice> for InvoiceView {
    fn from(i: Invoice) -> Self {
        let (source, source_id) = match &i.source {
            InvoiceSource::Recharge(trade_no) => ("recharge", trade_no.to_string()),
            InvoiceSource::Order(order_id) => ("order", order_id.to_string()),
        };
        InvoiceView {
            state: i.shown_state().into(),
            relate_number: i.relate_number,
            invoice_number: i.invoice_number,
            date: i.invoice_date,
            amount: i.amount,
            carrier: i.carrier.map(InvoicePreferenceBody::from),
            source: source.into(),
            source_id,
            allowances: i
                .allowances
                .into_iter()
                .map(|a| AllowanceView {
                    amount: a.amount,
                    allowance_number: a.allowance_number,
                    state: if a.done { "issued" } else { "pending" }.into(),
                })
                .collect(),
            created_at: i.created_at,
        }
    }
}

/// An invoice as operators see it: with why it failed and every call made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminInvoiceView {
    #[serde(flatten)]
    pub invoice: InvoiceView,
    pub member_id: String,
    /// ECPay's refusal, or the last reason it could not be reached.
    pub failure: Option<String>,
    /// The audit trail: each call and what came of it.
    pub attempts: Vec<InvoiceAttemptView>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceAttemptView {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `Issue`, `GetIssue`, `Invalid`, `Allowance` or `operator`.
    pub call: String,
    pub outcome: String,
}

impl From<Invoice> for AdminInvoiceView {
    fn from(i: Invoice) -> Self {
        AdminInvoiceView {
            member_id: i.member_id.to_string(),
            failure: i.failure.clone(),
            attempts: i
                .attempts
                .iter()
                .map(|a| InvoiceAttemptView {
                    at: a.at,
                    call: a.call.clone(),
                    outcome: a.outcome.clone(),
                })
                .collect(),
            updated_at: i.updated_at,
            invoice: i.into(),
        }
    }
}

impl InvoiceService<'_> {
    /// The member's invoices, newest first.
    pub async fn member_invoices(
        &self,
        member: &UserId,
        page: &PageRequest,
    ) -> Result<Page<InvoiceView>, AppError> {
        Ok(self
            .store
            .member_invoices(member, page)
            .await?
            .map(InvoiceView::from))
    }

    /// Failed invoices, the latest first (operators).
    pub async fn failed_invoices(
        &self,
        page: &PageRequest,
    ) -> Result<Page<AdminInvoiceView>, AppError> {
        Ok(self
            .store
            .failed_invoices(page)
            .await?
            .map(AdminInvoiceView::from))
    }

    /// A failed invoice due again now, its carrier read anew from the member's preference if it
    /// was never issued (audited). 404 unknown; 409 `invoice_not_failed` otherwise.
    pub async fn retry(
        &self,
        admin: &UserId,
        relate_number: &str,
    ) -> Result<AdminInvoiceView, AppError> {
        for _ in 0..3 {
            let Some(read) = self.store.invoice(relate_number).await? else {
                return Err(AppError::not_found("invoice_not_found", "no such invoice"));
            };
            if read.failure.is_none() {
                return Err(AppError::conflict(
                    "invoice_not_failed",
                    format!(
                        "the invoice is {}: only a failed one is retried",
                        read.shown_state()
                    ),
                ));
            }
            let now = self.clock.now();
            let mut next = read.clone();
            next.failure = None;
            next.unreachable = 0;
            if next.state == crate::domain::e_invoice::InvoiceState::Pending {
                next.carrier = None;
            }
            next.log(now, "operator", format!("retried by {admin}"));
            next.version += 1;
            next.updated_at = now;
            let audit = crate::domain::AuditEntry::new(
                admin,
                crate::domain::AuditAction::InvoiceRetried,
                format!("invoice:{relate_number}"),
                serde_json::json!({"state": "failed", "failure": read.failure}),
                serde_json::json!({"state": next.shown_state()}),
                None,
                now,
            );
            if self
                .store
                .invoice_step(read.version, &next, Some(now), Some(&audit))
                .await?
                == crate::store::InvoiceStep::Done
            {
                return Ok(next.into());
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: 1,
        })
    }

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

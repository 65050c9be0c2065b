//! Members' points: balance, ledger, recharge through ECPay, and the ECPay payment notification.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::config::PaymentsConfig;
use crate::domain::{Payment, PaymentStatus, PointTransaction, Settlement, TransactionType};
use crate::ecpay::{self, CheckoutOrder};
use crate::error::{AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
use crate::store::Store;

/// How long a checkout link works.
pub const CHECKOUT_LINK_TTL_SECS: i64 = 15 * 60;
pub const CHECKOUT_PATH: &str = "/api/payments/ecpay/checkout/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointsBalance {
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub transaction_type: TransactionType,
    /// Signed: positive for RECHARGE and REFUND, negative for SPEND.
    pub amount: i64,
    pub balance_after: i64,
    /// The payment's MerchantTradeNo, for RECHARGE rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// For SPEND and REFUND rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<PointTransaction> for LedgerEntry {
    fn from(t: PointTransaction) -> Self {
        LedgerEntry {
            id: t.id,
            transaction_type: t.transaction_type,
            amount: t.amount,
            balance_after: t.balance_after,
            payment_id: t.payment_id,
            order_id: t.order_id,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RechargeRequest {
    /// TWD, a whole number within the configured bounds (default 100–50,000).
    #[schema(value_type = i64, required = true, minimum = 100, maximum = 50000, example = 500)]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RechargeCheckout {
    pub payment_id: String,
    pub merchant_trade_no: String,
    pub amount: i64,
    pub points: i64,
    pub status: PaymentStatus,
    /// Where the form is POSTed (ECPay's AioCheckOut V5, or the local simulator).
    pub action_url: String,
    /// The complete, signed AioCheckOut form.
    pub fields: BTreeMap<String, String>,
    /// A link a browser can open as is (no headers) for 15 minutes: it auto-submits `fields` to `action_url`.
    pub checkout_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub payment_id: String,
    pub merchant_trade_no: String,
    pub amount: i64,
    pub points: i64,
    pub status: PaymentStatus,
    /// ECPay's trade number, once paid.
    pub trade_no: Option<String>,
    pub paid_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            payment_id: p.id,
            merchant_trade_no: p.merchant_trade_no,
            amount: p.amount,
            points: p.points,
            status: p.status,
            trade_no: p.trade_no,
            paid_at: p.paid_at,
            created_at: p.created_at,
        }
    }
}

/// Why a notification was refused (answered `0|<reason>`, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRejected(pub &'static str);

/// What an accepted notification did (always answered `1|OK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    Settled(Settlement),
    /// SimulatePaid=1 from ECPay's back office: no money moved, nothing credited.
    SimulationIgnored,
}

/// A MerchantTradeNo: `PT`, the Taipei date and time to the second, six random characters —
/// 20 letters and digits, ECPay's maximum.
fn new_merchant_trade_no(now: chrono::DateTime<chrono::Utc>) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let taipei = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let stamp = now.with_timezone(&taipei).format("%y%m%d%H%M%S");
    let mut rng = rand::thread_rng();
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("PT{stamp}{suffix}")
}

/// Signs checkout links so a browser can open them without a token.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl LinkSigner {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"points-redemption/checkout-link/v1");
        LinkSigner {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, merchant_trade_no: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("32-byte key");
        mac.update(format!("{merchant_trade_no}\n{expires}").as_bytes());
        mac
    }

    pub fn sign(&self, merchant_trade_no: &str, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(merchant_trade_no, expires).finalize().into_bytes())
    }

    /// Constant-time check of a link's signature and expiry.
    pub fn verify(&self, merchant_trade_no: &str, expires: i64, signature: &str, now: i64) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        expires > now
            && self
                .mac(merchant_trade_no, expires)
                .verify_slice(&tag)
                .is_ok()
    }
}

pub struct PointsService<'a> {
    pub store: &'a Store,
    pub payments: &'a PaymentsConfig,
    pub links: &'a LinkSigner,
}

fn payment_not_found() -> AppError {
    AppError::not_found("payment_not_found", "no such payment")
}

impl PointsService<'_> {
    pub async fn balance(&self, member_id: &str) -> Result<PointsBalance, AppError> {
        let account = self
            .store
            .get_point_account(member_id)
            .await?
            .ok_or_else(|| AppError::internal("member without a point account"))?;
        Ok(PointsBalance {
            balance: account.balance,
            total_earned: account.total_earned,
            total_spent: account.total_spent,
        })
    }

    pub async fn ledger(
        &self,
        member_id: &str,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, AppError> {
        Ok(self
            .store
            .list_ledger(member_id, page)
            .await?
            .map(LedgerEntry::from))
    }

    pub fn checkout_url(&self, base_url: &str, merchant_trade_no: &str, now: i64) -> String {
        let expires = now + CHECKOUT_LINK_TTL_SECS;
        format!(
            "{base_url}{CHECKOUT_PATH}{merchant_trade_no}/?expires={expires}&signature={}",
            self.links.sign(merchant_trade_no, expires)
        )
    }

    /// Starts a recharge: stores a pending payment, then returns the signed ECPay form for it.
    /// `request_origin` (the domain API Gateway received the request on) is the public base URL
    /// when none is configured.
    pub async fn recharge(
        &self,
        member_id: &str,
        request: RechargeRequest,
        request_origin: Option<&str>,
    ) -> Result<RechargeCheckout, AppError> {
        let mut check = FieldCheck::new();
        let amount = check.required("amount", request.amount);
        if let Some(amount) = amount {
            if !(self.payments.min_amount..=self.payments.max_amount).contains(&amount) {
                check.fail(
                    "amount",
                    format!(
                        "must be a whole number of TWD from {} to {}",
                        self.payments.min_amount, self.payments.max_amount
                    ),
                );
            }
        }
        check.finish()?;
        let amount = amount.unwrap_or_default();
        let base_url = self.payments.base_url(request_origin).ok_or_else(|| {
            AppError::internal("PUBLIC_BASE_URL is unset and the request has no domain")
        })?;
        let return_url = self.payments.return_url(&base_url);
        let points = amount * self.payments.points_per_twd;
        let payment_id = uuid::Uuid::now_v7().to_string();
        let item_name = format!("點數儲值 {points} 點");
        // A collision of the random suffix within one second is unlikely but possible: draw again.
        for _ in 0..5 {
            let now = chrono::Utc::now();
            let merchant_trade_no = new_merchant_trade_no(now);
            let fields = ecpay::checkout_form(
                &CheckoutOrder {
                    merchant_trade_no: &merchant_trade_no,
                    trade_date: now,
                    total_amount: amount,
                    trade_desc: "Points recharge",
                    item_name: &item_name,
                    return_url: &return_url,
                    client_back_url: self.payments.client_back_url.as_deref(),
                    order_result_url: self.payments.order_result_url.as_deref(),
                    custom_field1: &payment_id,
                },
                &self.payments.credentials,
            );
            let payment = Payment {
                id: payment_id.clone(),
                merchant_trade_no: merchant_trade_no.clone(),
                member_id: member_id.to_string(),
                amount,
                points,
                status: PaymentStatus::Pending,
                action_url: self.payments.action_url(&base_url),
                checkout_fields: fields,
                trade_no: None,
                payment_date: None,
                paid_at: None,
                failure_reason: None,
                created_at: now,
            };
            if self.store.create_payment(&payment).await? {
                return Ok(RechargeCheckout {
                    checkout_url: self.checkout_url(&base_url, &merchant_trade_no, now.timestamp()),
                    payment_id,
                    merchant_trade_no,
                    amount,
                    points,
                    status: PaymentStatus::Pending,
                    action_url: payment.action_url,
                    fields: payment.checkout_fields,
                });
            }
        }
        Err(AppError::Unavailable {
            retry_after_secs: 1,
        })
    }

    pub async fn payments(
        &self,
        member_id: &str,
        page: &PageRequest,
    ) -> Result<Page<PaymentView>, AppError> {
        Ok(self
            .store
            .list_member_payments(member_id, page)
            .await?
            .map(PaymentView::from))
    }

    pub async fn payment(
        &self,
        member_id: &str,
        merchant_trade_no: &str,
    ) -> Result<PaymentView, AppError> {
        if !is_trade_no(merchant_trade_no) {
            return Err(payment_not_found());
        }
        match self.store.get_payment(merchant_trade_no).await? {
            Some(payment) if payment.member_id == member_id => Ok(payment.into()),
            _ => Err(payment_not_found()),
        }
    }

    /// The payment behind a signed checkout link, if the link is genuine, unexpired and the payment
    /// still pending.
    pub async fn checkout_page(
        &self,
        merchant_trade_no: &str,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Payment, AppError> {
        let now = chrono::Utc::now().timestamp();
        let expires = expires.and_then(|e| e.parse::<i64>().ok());
        let valid = match (expires, signature) {
            (Some(expires), Some(signature)) if is_trade_no(merchant_trade_no) => self
                .links
                .verify(merchant_trade_no, expires, signature, now),
            _ => false,
        };
        if !valid {
            return Err(AppError::Forbidden {
                message: "this checkout link is invalid or has expired; start the recharge again"
                    .into(),
            });
        }
        let payment = self
            .store
            .get_payment(merchant_trade_no)
            .await?
            .ok_or_else(payment_not_found)?;
        if payment.status != PaymentStatus::Pending {
            return Err(AppError::conflict(
                "payment_not_pending",
                "this payment is already settled",
            ));
        }
        Ok(payment)
    }

    /// ECPay's server-to-server payment notification. Every check happens before anything changes:
    /// the MAC over all received fields, our MerchantID, a known MerchantTradeNo, the exact amount.
    pub async fn handle_notification(
        &self,
        fields: &[(String, String)],
    ) -> Result<Result<NotificationOutcome, NotificationRejected>, AppError> {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Ok(Err(NotificationRejected("duplicate field")));
        }
        if get(ecpay::CHECK_MAC_VALUE).is_none() {
            return Ok(Err(NotificationRejected("CheckMacValue missing")));
        }
        if !ecpay::verify(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.payments.credentials,
        ) {
            return Ok(Err(NotificationRejected("CheckMacValue mismatch")));
        }
        if get("MerchantID") != Some(self.payments.credentials.merchant_id.as_str()) {
            return Ok(Err(NotificationRejected("MerchantID mismatch")));
        }
        let Some(trade_no) = get("MerchantTradeNo").filter(|t| is_trade_no(t)) else {
            return Ok(Err(NotificationRejected("unknown MerchantTradeNo")));
        };
        let Some(payment) = self.store.get_payment(trade_no).await? else {
            return Ok(Err(NotificationRejected("unknown MerchantTradeNo")));
        };
        if get("TradeAmt").and_then(|a| a.trim().parse::<i64>().ok()) != Some(payment.amount) {
            return Ok(Err(NotificationRejected("TradeAmt mismatch")));
        }
        if get("SimulatePaid") == Some("1") {
            return Ok(Ok(NotificationOutcome::SimulationIgnored));
        }
        let settlement = if get("RtnCode") == Some("1") {
            self.store
                .credit_recharge(
                    &payment,
                    get("TradeNo").unwrap_or_default(),
                    get("PaymentDate").unwrap_or_default(),
                    chrono::Utc::now(),
                )
                .await?
        } else {
            let reason = format!(
                "RtnCode {}: {}",
                get("RtnCode").unwrap_or("?"),
                get("RtnMsg").unwrap_or_default()
            );
            self.store.fail_payment(trade_no, &reason).await?
        };
        if matches!(settlement, Settlement::Credited { .. }) {
            crate::observe::count(
                crate::observe::Metric::PointsCredited,
                payment.points as f64,
            );
        }
        Ok(Ok(NotificationOutcome::Settled(settlement)))
    }
}

/// MerchantTradeNos are at most 20 letters and digits.
pub fn is_trade_no(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_trade_numbers_fit_ecpay_and_differ() {
        let now = chrono::Utc::now();
        let a = new_merchant_trade_no(now);
        let b = new_merchant_trade_no(now);
        assert_eq!(a.len(), 20);
        assert!(is_trade_no(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn checkout_links_expire_and_cannot_be_forged() {
        let signer = LinkSigner::from_secret(b"secret");
        let signature = signer.sign("PT1", 1_000);
        assert!(signer.verify("PT1", 1_000, &signature, 999));
        assert!(!signer.verify("PT1", 1_000, &signature, 1_000), "expired");
        assert!(
            !signer.verify("PT2", 1_000, &signature, 999),
            "other payment"
        );
        assert!(
            !signer.verify("PT1", 2_000, &signature, 999),
            "extended expiry"
        );
        assert!(!LinkSigner::from_secret(b"other").verify("PT1", 1_000, &signature, 999));
    }
}

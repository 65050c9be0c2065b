//! Members buying points through ECPay: starting a recharge (a pending payment and the signed
//! AioCheckOut form), at most a few open at once, and reading one's payments. The rest of the money's
//! path is beside this file: the signed checkout link ([`super::checkout`]), ECPay's notification
//! and the one credit path ([`super::notification`]), QueryTradeInfo paced across functions
//! ([`super::ecpay_query`]) and the reconciliation job ([`super::reconciliation`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::checkout::{
    invalid_checkout_link, LinkSigner, CHECKOUT_LINK_TTL_SECS, CHECKOUT_PATH,
};
pub use super::ecpay_query::QueryFailure;
pub use super::notification::{NotificationOutcome, NotificationRejected};
pub use super::reconciliation::{ReconcileReport, Reconciled};
use super::retry::{until_uncontended, RetryBudget};
use crate::config::PaymentsConfig;
use crate::domain::{MerchantTradeNo, Payment, PaymentStatus, Points, UserId};
use crate::ecpay::{self, CheckoutOrder};
use crate::error::{not_found, AppError, FieldCheck};
use crate::gateway::GatewayTransport;
use crate::pagination::{Page, PageRequest};
use crate::store::{PaymentCreated, Store};

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
    /// ECPay's last word on this trade (`RtnCode: RtnMsg`, or a query's TradeStatus).
    pub last_gateway_message: Option<String>,
    /// For a re-opened checkout: the MerchantTradeNo of the recharge it belongs to (a member's
    /// views show the recharge itself, so this is `null` there).
    pub attempt_of: Option<String>,
    /// A member's views: the checkout attempts after the first, when the link was opened again
    /// (each has its own MerchantTradeNo, as ECPay refuses one twice). The recharge is `paid` when
    /// any of them was paid.
    #[serde(default)]
    pub attempts: Vec<CheckoutAttemptView>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One checkout attempt of a recharge, after its first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutAttemptView {
    pub merchant_trade_no: String,
    pub status: PaymentStatus,
    pub trade_no: Option<String>,
    pub paid_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_gateway_message: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Payment> for CheckoutAttemptView {
    fn from(p: Payment) -> Self {
        CheckoutAttemptView {
            merchant_trade_no: p.merchant_trade_no.into(),
            status: p.status,
            trade_no: p.trade_no,
            paid_at: p.paid_at,
            last_gateway_message: p.last_gateway_message,
            created_at: p.created_at,
        }
    }
}

impl PaymentView {
    /// A recharge with its attempts, as one entry: paid when any checkout was, with the paid
    /// checkout's trade number and time.
    pub fn recharge(recharge: Payment, attempts: Vec<Payment>) -> Self {
        let paid = attempts
            .iter()
            .find(|a| a.status == PaymentStatus::Paid)
            .filter(|_| recharge.status != PaymentStatus::Paid)
            .cloned();
        let mut view = PaymentView::from(recharge);
        if let Some(paid) = paid {
            view.status = PaymentStatus::Paid;
            view.trade_no = paid.trade_no;
            view.paid_at = paid.paid_at;
            view.last_gateway_message = paid.last_gateway_message;
        }
        view.attempts = attempts
            .into_iter()
            .map(CheckoutAttemptView::from)
            .collect();
        view
    }
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            payment_id: p.id,
            merchant_trade_no: p.merchant_trade_no.into(),
            amount: p.amount,
            points: p.points.get(),
            status: p.status,
            trade_no: p.trade_no,
            paid_at: p.paid_at,
            last_gateway_message: p.last_gateway_message,
            attempt_of: p.attempt_of.map(String::from),
            attempts: Vec::new(),
            created_at: p.created_at,
        }
    }
}

/// Buying points through ECPay: the checkout, the notification, QueryTradeInfo and reconciliation.
pub struct RechargeService<'a> {
    pub store: &'a Store,
    pub payments: &'a PaymentsConfig,
    pub links: &'a LinkSigner,
    pub gateway: &'a dyn GatewayTransport,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
    /// `at_recharge`: a paid recharge's credit queues its e-invoice.
    pub invoice_mode: crate::domain::e_invoice::InvoiceMode,
}

/// A member holding the most unpaid recharges allowed, told which ones they are.
fn too_many_open_recharges(open: &[MerchantTradeNo]) -> AppError {
    let listed = open
        .iter()
        .map(MerchantTradeNo::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut fields = crate::error::FieldErrors::new();
    fields.insert("open_recharges".into(), listed.clone());
    AppError::Conflict {
        code: "too_many_open_recharges",
        message: format!(
            "{} recharges are still waiting for payment ({listed}): pay one, or wait until it expires",
            open.len()
        ),
        fields,
    }
}

impl RechargeService<'_> {
    /// Starts a recharge: stores a pending payment, then returns the signed ECPay form for it.
    /// `request_origin` (the domain API Gateway received the request on) is the public base URL
    /// when none is configured.
    pub async fn recharge(
        &self,
        member_id: &UserId,
        request: RechargeRequest,
        request_origin: Option<&str>,
    ) -> Result<RechargeCheckout, AppError> {
        let mut check = FieldCheck::new();
        let (min, max) = (self.payments.min_amount, self.payments.max_amount);
        let per_twd = self.payments.points_per_twd;
        // The amount in TWD and the points it buys, parsed together: an amount whose points would
        // not fit is as out of range as one past the maximum.
        let purchase = check
            .required("amount", request.amount)
            .parse(&mut check, |amount| {
                Some(amount)
                    .filter(|amount| (min..=max).contains(amount))
                    .and_then(|amount| Some((amount, Points::new(amount.checked_mul(per_twd)?)?)))
                    .ok_or_else(|| format!("must be a whole number of TWD from {min} to {max}"))
            });
        let (amount, points) = check.finish_with(purchase)?;
        let base_url = self.payments.base_url(request_origin).ok_or_else(|| {
            AppError::internal("PUBLIC_BASE_URL is unset and the request has no domain")
        })?;
        let return_url = self.payments.return_url(&base_url);
        let payment_id = uuid::Uuid::now_v7().to_string();
        let item_name = format!("點數儲值 {points} 點");
        // A collision of the random suffix within one second is unlikely but possible: draw again.
        let mut budget = RetryBudget::new();
        let mut healed = false;
        let mut collisions = 0;
        loop {
            let now = self.clock.now();
            let merchant_trade_no = MerchantTradeNo::issue(now);
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
                    // ECPay allows no '-' in CustomField: the id's 32 hex digits.
                    custom_field1: &payment_id.replace('-', ""),
                    // The member's id, so that the notification names the account to credit and
                    // the credit reads payment and account in one round trip.
                    custom_field2: &member_id.replace('-', ""),
                },
                &self.payments.credentials,
            );
            let payment = Payment {
                id: payment_id.clone(),
                merchant_trade_no: merchant_trade_no.clone(),
                member_id: member_id.clone(),
                amount,
                points,
                status: PaymentStatus::Pending,
                action_url: self.payments.action_url(&base_url),
                checkout_fields: fields,
                trade_no: None,
                payment_date: None,
                paid_at: None,
                last_gateway_message: None,
                attempt_of: None,
                attempts: 0,
                paid_attempts: 0,
                opened_at: None,
                created_at: now,
            };
            match self
                .store
                .create_payment(&payment, self.payments.max_open_recharges)
                .await?
            {
                PaymentCreated::Created => {}
                PaymentCreated::TradeNoTaken => {
                    collisions += 1;
                    if collisions >= 5 {
                        return Err(AppError::Unavailable {
                            retry_after_secs: 1,
                        });
                    }
                    continue;
                }
                PaymentCreated::Contended => {
                    budget.lost().await?;
                    continue;
                }
                PaymentCreated::TooManyOpen => {
                    let open = self.store.open_recharges(member_id).await?;
                    // A slot whose recharge is no longer open (settled some way its slot did not
                    // hear of) is freed once, and the recharge tried again.
                    if !healed && self.free_settled_slots(member_id, &open).await? {
                        healed = true;
                        continue;
                    }
                    return Err(too_many_open_recharges(&open));
                }
            }
            return Ok(RechargeCheckout {
                checkout_url: self.checkout_url(&base_url, &merchant_trade_no, now.timestamp()),
                payment_id,
                merchant_trade_no: merchant_trade_no.to_string(),
                amount,
                points: points.get(),
                status: PaymentStatus::Pending,
                action_url: payment.action_url,
                fields: payment.checkout_fields,
            });
        }
    }

    /// Frees the slots of `open` whose recharge is no longer open (paid, expired, or gone): true if
    /// any was.
    async fn free_settled_slots(
        &self,
        member_id: &UserId,
        open: &[MerchantTradeNo],
    ) -> Result<bool, AppError> {
        let mut freed = false;
        for trade_no in open {
            let still_open = self.store.get_payment(trade_no).await?.is_some_and(|p| {
                p.member_id == member_id
                    && p.status == PaymentStatus::Pending
                    && p.paid_attempts == 0
            });
            if !still_open {
                until_uncontended(|| self.store.free_recharge_slot(member_id, trade_no)).await?;
                freed = true;
            }
        }
        Ok(freed)
    }

    /// A member's recharges, newest first: one entry each, its further checkout attempts inside
    /// (read for the page's recharges that have any, side by side).
    pub async fn payments(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<PaymentView>, AppError> {
        let recharges = self.store.list_member_recharges(member_id, page).await?;
        let attempts = futures::future::try_join_all(
            recharges
                .items
                .iter()
                .map(|recharge| self.store.recharge_attempts(recharge)),
        )
        .await?;
        Ok(Page {
            items: recharges
                .items
                .into_iter()
                .zip(attempts)
                .map(|(recharge, attempts)| PaymentView::recharge(recharge, attempts))
                .collect(),
            next_cursor: recharges.next_cursor,
        })
    }

    /// A member's recharge, named by its own MerchantTradeNo or by any of its attempts'.
    pub async fn payment(
        &self,
        member_id: &UserId,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<PaymentView, AppError> {
        let payment = match self.store.get_payment(merchant_trade_no).await? {
            Some(payment) if payment.member_id == member_id => payment,
            _ => return Err(not_found::payment()),
        };
        let recharge = match &payment.attempt_of {
            None => payment,
            Some(origin) => self
                .store
                .get_payment(origin)
                .await?
                .ok_or_else(|| AppError::internal("an attempt without its recharge"))?,
        };
        let attempts = self.store.recharge_attempts(&recharge).await?;
        Ok(PaymentView::recharge(recharge, attempts))
    }
}

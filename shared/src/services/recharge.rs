//! Buying points through ECPay: the checkout (and its signed link), ECPay's payment notification,
//! QueryTradeInfo, and the reconciliation of payments ECPay never told us about.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::retry::RetryBudget;
use crate::config::PaymentsConfig;
use crate::domain::{
    MerchantTradeNo, Movement, Payment, PaymentStatus, Points, Settlement, UserId,
};
use crate::ecpay::{self, CheckoutOrder};
use crate::error::{not_found, AppError, FieldCheck};
use crate::gateway::GatewayTransport;
use crate::pagination::{Page, PageRequest};
use crate::store::{
    AccountSnapshot, AttemptOutcome, CreditAttempt, GatewayRecord, PaymentCreated, QuerySlot, Store,
};

/// How long a checkout link works.
pub const CHECKOUT_LINK_TTL_SECS: i64 = 15 * 60;
pub const CHECKOUT_PATH: &str = "/api/payments/ecpay/checkout/";

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
    /// For a re-opened checkout: the MerchantTradeNo of the recharge it belongs to.
    pub attempt_of: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
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

/// Signs checkout links so a browser can open them without a token.
#[derive(Clone)]
pub struct LinkSigner {
    key: crate::signing::DerivedKey,
}

impl LinkSigner {
    pub fn from_secret(secret: &[u8]) -> Self {
        LinkSigner {
            key: crate::signing::DerivedKey::derive(secret, "points-redemption/checkout-link/v1"),
        }
    }

    fn mac(&self, merchant_trade_no: &MerchantTradeNo, expires: i64) -> crate::signing::HmacSha256 {
        let mut mac = self.key.mac();
        mac.update(format!("{merchant_trade_no}\n{expires}").as_bytes());
        mac
    }

    pub fn sign(&self, merchant_trade_no: &MerchantTradeNo, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(merchant_trade_no, expires).finalize().into_bytes())
    }

    /// Constant-time check of a link's signature and expiry.
    pub fn verify(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> bool {
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

/// Buying points through ECPay: the checkout, the notification, QueryTradeInfo and reconciliation.
pub struct RechargeService<'a> {
    pub store: &'a Store,
    pub payments: &'a PaymentsConfig,
    pub links: &'a LinkSigner,
    pub gateway: &'a dyn GatewayTransport,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

/// Why QueryTradeInfo gave no trustworthy answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryFailure {
    /// ECPay answered 403 (too many queries) now or within the last 30 minutes.
    #[error("ECPay is refusing queries until {until} (it answered 403)")]
    CoolingDown { until: i64 },
    #[error("ECPay could not be queried: {0}")]
    Unreachable(String),
    /// Our own pacing has no moment free soon enough (other functions are querying): nothing was
    /// asked; come back after `free_at` (Unix seconds).
    #[error("every query moment is taken until {free_at}")]
    Paced { free_at: i64 },
    #[error("the query answer was refused: {0}")]
    Rejected(ecpay::TradeInfoRejected),
}

/// What one reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconcileReport {
    /// Open payments looked at.
    pub checked: u32,
    /// Found paid at ECPay and credited now.
    pub credited: u32,
    /// Found paid, but credited meanwhile by its notification (or another run).
    pub already_paid: u32,
    /// Unpaid past the checkout window: marked expired.
    pub expired: u32,
    /// Unpaid, still within the window: left open.
    pub still_open: u32,
    /// Paid at ECPay for another amount, or an answer that failed verification: left open, warned.
    pub suspicious: u32,
    /// Queries that failed (network, ECPay's errors).
    pub failed: u32,
    /// The run stopped early because ECPay refuses queries for now.
    pub cooling_down: bool,
}

/// ECPay answers queries that come too fast with 403 and then refuses every one for 30 minutes.
const QUERY_COOLDOWN_SECS: i64 = 30 * 60;

/// The longest a query waits for its moment in the table-wide pacing (see `store::query_slot`):
/// past that, the caller is told to come back (the run stops, an operator gets 503).
const QUERY_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

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

/// A checkout link that is forged, expired, or names no trade number at all.
pub fn invalid_checkout_link() -> AppError {
    AppError::Forbidden {
        message: "this checkout link is invalid or has expired; start the recharge again".into(),
    }
}

impl RechargeService<'_> {
    pub fn checkout_url(
        &self,
        base_url: &str,
        merchant_trade_no: &MerchantTradeNo,
        now: i64,
    ) -> String {
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
                self.store.free_recharge_slot(member_id, trade_no).await?;
                freed = true;
            }
        }
        Ok(freed)
    }

    pub async fn payments(
        &self,
        member_id: &UserId,
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
        member_id: &UserId,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<PaymentView, AppError> {
        match self.store.get_payment(merchant_trade_no).await? {
            Some(payment) if payment.member_id == member_id => Ok(payment.into()),
            _ => Err(not_found::payment()),
        }
    }

    /// The payment behind a signed checkout link, if the link is genuine, unexpired and the payment
    /// still pending.
    pub async fn checkout_page(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Payment, AppError> {
        let now = self.clock.now().timestamp();
        let expires = expires.and_then(|e| e.parse::<i64>().ok());
        let valid = match (expires, signature) {
            (Some(expires), Some(signature)) => {
                self.links
                    .verify(merchant_trade_no, expires, signature, now)
            }
            _ => false,
        };
        if !valid {
            return Err(invalid_checkout_link());
        }
        let origin = self
            .store
            .get_payment(merchant_trade_no)
            .await?
            .filter(|p| p.attempt_of.is_none())
            .ok_or_else(not_found::payment)?;
        self.open_attempt(&origin).await
    }

    /// A fresh checkout attempt of a recharge: its own MerchantTradeNo (ECPay refuses one it has
    /// seen, so re-posting the first would strand the payment), the same amount, points and URLs,
    /// signed anew. All attempts share the recharge's payment id; each is credited at most once.
    async fn open_attempt(&self, origin: &Payment) -> Result<Payment, AppError> {
        let settled = || {
            AppError::conflict(
                "payment_not_pending",
                "this recharge is already paid or closed",
            )
        };
        if origin.status != PaymentStatus::Pending || origin.paid_attempts > 0 {
            return Err(settled());
        }
        let mut budget = RetryBudget::new();
        let mut collisions = 0;
        loop {
            let now = self.clock.now();
            let merchant_trade_no = MerchantTradeNo::issue(now);
            let mut fields = origin.checkout_fields.clone();
            fields.insert("MerchantTradeNo".into(), merchant_trade_no.to_string());
            fields.insert("MerchantTradeDate".into(), ecpay::taipei_time(now));
            ecpay::sign(&mut fields, &self.payments.credentials);
            let attempt = Payment {
                merchant_trade_no,
                checkout_fields: fields,
                status: PaymentStatus::Pending,
                trade_no: None,
                payment_date: None,
                paid_at: None,
                last_gateway_message: None,
                attempt_of: Some(origin.merchant_trade_no.clone()),
                attempts: 0,
                paid_attempts: 0,
                created_at: now,
                ..origin.clone()
            };
            match self
                .store
                .create_attempt(
                    &origin.merchant_trade_no,
                    &attempt,
                    self.payments.max_checkout_attempts,
                )
                .await?
            {
                AttemptOutcome::Created => return Ok(attempt),
                // A random collision: draw another number (five in a row means something is off).
                AttemptOutcome::TradeNoTaken => {
                    collisions += 1;
                    if collisions >= 5 {
                        return Err(AppError::Unavailable {
                            retry_after_secs: 1,
                        });
                    }
                }
                AttemptOutcome::Contended => budget.lost().await?,
                AttemptOutcome::AlreadyPaid => return Err(settled()),
                AttemptOutcome::TooManyAttempts => {
                    return Err(AppError::conflict(
                        "too_many_checkout_attempts",
                        "this checkout link was opened too often; start a new recharge",
                    ))
                }
            }
        }
    }

    /// Asks ECPay about one trade (QueryTradeInfo V5) and verifies the answer: the MAC, our
    /// MerchantID, the trade asked about. A 403 puts every query on hold for 30 minutes.
    pub async fn query_trade(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<ecpay::TradeInfo, QueryFailure> {
        let now = self.clock.now();
        match self.store.gateway_cooldown().await {
            Ok(Some(until)) if until > now.timestamp() => {
                return Err(QueryFailure::CoolingDown { until })
            }
            Ok(_) => {}
            Err(err) => return Err(QueryFailure::Unreachable(err.to_string())),
        }
        let url = self
            .payments
            .query_url()
            .ok_or_else(|| QueryFailure::Unreachable("no QueryTradeInfo URL".into()))?;
        // `query_spacing` apart across every function and instance, whoever asks (reconciliation,
        // an operator, a notification being confirmed): ECPay locks out a caller that queries
        // too fast, and it sees all of ours as one.
        self.wait_for_query_moment().await?;
        let form = ecpay::query_trade_info_form(
            merchant_trade_no,
            self.clock.now(),
            &self.payments.credentials,
        );
        let reply = self
            .gateway
            .post_form(&url, &form)
            .await
            .map_err(QueryFailure::Unreachable)?;
        if reply.status == 403 {
            let until = now.timestamp() + QUERY_COOLDOWN_SECS;
            tracing::warn!(
                until,
                "ECPay answered QueryTradeInfo with 403: queries paused for 30 minutes"
            );
            if let Err(err) = self.store.set_gateway_cooldown(until).await {
                tracing::warn!(error = %err, "could not record the query cool-down");
            }
            return Err(QueryFailure::CoolingDown { until });
        }
        if reply.status != 200 {
            return Err(QueryFailure::Unreachable(format!("HTTP {}", reply.status)));
        }
        ecpay::verify_trade_info(&reply.body, merchant_trade_no, &self.payments.credentials)
            .map_err(QueryFailure::Rejected)
    }

    /// Takes this query's moment in the table-wide pacing and waits for it.
    async fn wait_for_query_moment(&self) -> Result<(), QueryFailure> {
        let spacing = i64::try_from(self.payments.query_spacing.as_millis()).unwrap_or(i64::MAX);
        let max_wait = QUERY_WAIT_MAX.as_millis() as i64;
        // Each race lost means another caller took a moment: a few in a row is a crowd.
        for _ in 0..16 {
            let now = self.clock.now().timestamp_millis();
            match self.store.reserve_query_slot(now, spacing, max_wait).await {
                Ok(QuerySlot::At(at)) => {
                    let wait = u64::try_from(at - now).unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    return Ok(());
                }
                Ok(QuerySlot::Busy { free_at }) => {
                    return Err(QueryFailure::Paced {
                        free_at: free_at / 1000,
                    })
                }
                Ok(QuerySlot::Raced) => continue,
                Err(err) => return Err(QueryFailure::Unreachable(err.to_string())),
            }
        }
        Err(QueryFailure::Paced {
            free_at: self.clock.now().timestamp() + 1,
        })
    }

    /// Keeps what ECPay said (the audit trail); a failure to write it is logged, never fatal.
    async fn audit(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        source: &str,
        fields: BTreeMap<String, String>,
        verdict: String,
    ) {
        let record = GatewayRecord {
            source: source.to_string(),
            fields,
            verdict,
            at: self.clock.now(),
        };
        if let Err(err) = self
            .store
            .append_gateway_record(merchant_trade_no, &record)
            .await
        {
            tracing::warn!(%merchant_trade_no, error = %err, "could not keep a gateway record");
        }
    }

    /// Everything ECPay said about one payment, oldest first.
    pub async fn gateway_records(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<Vec<GatewayRecord>, AppError> {
        self.store.gateway_records(merchant_trade_no).await
    }

    /// Credits through the one idempotent credit path, and says so in logs and metrics.
    async fn credit(
        &self,
        payment: &Payment,
        account: Option<AccountSnapshot>,
        record: Option<&GatewayRecord>,
        trade_no: &str,
        payment_date: &str,
        message: &str,
    ) -> Result<Settlement, AppError> {
        let after_failure = matches!(
            payment.status,
            PaymentStatus::Expired | PaymentStatus::Failed
        );
        let mut budget = RetryBudget::new();
        let mut already_read = account;
        let settlement = loop {
            let account = match already_read.take() {
                Some(account) => account,
                None => self
                    .store
                    .account_snapshot(&payment.member_id)
                    .await?
                    .ok_or_else(|| AppError::internal("paying member has no point account"))?,
            };
            let now = self.clock.now();
            let credit = account
                .apply(
                    &payment.member_id,
                    Movement::Recharge {
                        points: payment.points,
                        payment: &payment.merchant_trade_no,
                    },
                    uuid::Uuid::now_v7().to_string(),
                    now,
                )
                .map_err(|refusal| AppError::internal_during("credit", refusal))?;
            match self
                .store
                .credit_recharge(
                    payment,
                    &credit,
                    record,
                    trade_no,
                    payment_date,
                    message,
                    now,
                )
                .await?
            {
                CreditAttempt::Credited => {
                    break Settlement::Credited {
                        balance_after: credit.next.balance,
                        after_failure,
                    }
                }
                CreditAttempt::AlreadyPaid => {
                    break Settlement::AlreadySettled(PaymentStatus::Paid)
                }
                CreditAttempt::AccountChanged => budget.lost().await?,
                CreditAttempt::Contended => {
                    crate::observe::count(crate::observe::Metric::TransactionConflictsRetried, 1.0);
                    budget.lost().await?
                }
            }
        };
        if let Settlement::Credited { after_failure, .. } = settlement {
            crate::observe::count(
                crate::observe::Metric::PointsCredited,
                payment.points.get() as f64,
            );
            if after_failure {
                tracing::warn!(
                    merchant_trade_no = %payment.merchant_trade_no,
                    previous = ?payment.status,
                    "paid after it had been given up on: credited now"
                );
                crate::observe::count(crate::observe::Metric::PaidAfterFailure, 1.0);
            }
        }
        Ok(settlement)
    }

    /// One reconciliation run: open payments older than `RECONCILE_AFTER_SECONDS`, oldest first, at
    /// most `RECONCILE_BATCH`, each checked with QueryTradeInfo (spaced out): paid ones are credited
    /// through the same path as a notification, unpaid ones past the checkout window expire.
    pub async fn reconcile(&self) -> Result<ReconcileReport, AppError> {
        let now = self.clock.now();
        let cutoff = now
            - chrono::Duration::from_std(self.payments.reconcile_after)
                .map_err(AppError::internal)?;
        let open = self
            .store
            .open_payments(cutoff, self.payments.reconcile_batch)
            .await?;
        let mut report = ReconcileReport::default();
        for payment in &open {
            report.checked += 1;
            match self.reconcile_payment(payment).await? {
                Reconciled::Credited => report.credited += 1,
                Reconciled::AlreadyPaid => report.already_paid += 1,
                Reconciled::Expired => report.expired += 1,
                Reconciled::StillOpen => report.still_open += 1,
                Reconciled::Suspicious => report.suspicious += 1,
                Reconciled::Failed => report.failed += 1,
                Reconciled::CoolingDown => {
                    report.cooling_down = true;
                    break;
                }
            }
        }
        tracing::info!(?report, "reconciliation run");
        Ok(report)
    }

    /// Checks one open payment with ECPay and settles it if ECPay's answer says how.
    ///
    /// A payment that stays open (unpaid within its window, an answer refused, ECPay unreachable)
    /// goes to the back of the queue: the next runs take the payments that waited longest, so a
    /// backlog of open payments cannot keep anyone's lost payment from being checked.
    pub async fn reconcile_payment(&self, payment: &Payment) -> Result<Reconciled, AppError> {
        let result = self.check_payment(payment).await?;
        if matches!(
            result,
            Reconciled::StillOpen | Reconciled::Suspicious | Reconciled::Failed
        ) {
            self.store
                .requeue_payment(&payment.merchant_trade_no, self.clock.now())
                .await?;
        }
        Ok(result)
    }

    async fn check_payment(&self, payment: &Payment) -> Result<Reconciled, AppError> {
        let trade_no = &payment.merchant_trade_no;
        let info = match self.query_trade(trade_no).await {
            Ok(info) => info,
            Err(QueryFailure::CoolingDown { .. } | QueryFailure::Paced { .. }) => {
                return Ok(Reconciled::CoolingDown)
            }
            Err(QueryFailure::Rejected(reason)) => {
                tracing::warn!(merchant_trade_no = %trade_no, %reason, "QueryTradeInfo answer refused");
                crate::observe::count(crate::observe::Metric::GatewayAnswersRefused, 1.0);
                return Ok(Reconciled::Suspicious);
            }
            Err(QueryFailure::Unreachable(problem)) => {
                tracing::warn!(merchant_trade_no = %trade_no, %problem, "QueryTradeInfo failed");
                return Ok(Reconciled::Failed);
            }
        };
        let message = format!("TradeStatus {}", info.trade_status);
        if info.is_paid() {
            if info.trade_amount != payment.amount {
                tracing::warn!(
                    merchant_trade_no = %trade_no,
                    paid = info.trade_amount,
                    expected = payment.amount,
                    "ECPay reports another amount paid: left open for a person to check"
                );
                crate::observe::count(crate::observe::Metric::GatewayAnswersRefused, 1.0);
                self.audit(
                    trade_no,
                    "query",
                    info.fields,
                    "refused: amount mismatch".into(),
                )
                .await;
                return Ok(Reconciled::Suspicious);
            }
            let credited_record = GatewayRecord {
                source: "query".into(),
                fields: info.fields.clone(),
                verdict: "credited".into(),
                at: self.clock.now(),
            };
            let settlement = self
                .credit(
                    payment,
                    None,
                    Some(&credited_record),
                    &info.trade_no,
                    &info.payment_date,
                    &message,
                )
                .await?;
            if matches!(settlement, Settlement::Credited { .. }) {
                return Ok(Reconciled::Credited);
            }
            self.audit(trade_no, "query", info.fields, "repeat".into())
                .await;
            return Ok(Reconciled::AlreadyPaid);
        }
        let window = chrono::Duration::from_std(self.payments.checkout_window)
            .map_err(AppError::internal)?;
        if self.clock.now() - payment.created_at > window {
            self.store
                .expire_payment(payment, &format!("{message}: expired unpaid"))
                .await?;
            self.audit(trade_no, "query", info.fields, "expired".into())
                .await;
            Ok(Reconciled::Expired)
        } else {
            self.store
                .record_gateway_message(trade_no, &message)
                .await?;
            self.audit(trade_no, "query", info.fields, "unpaid".into())
                .await;
            Ok(Reconciled::StillOpen)
        }
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
        let Some(trade_no) = get("MerchantTradeNo").and_then(MerchantTradeNo::parse) else {
            return Ok(Err(NotificationRejected("unknown MerchantTradeNo")));
        };
        let trade_no = &trade_no;
        // CustomField2 names the member (signed like every field): payment and account in one
        // read. A notification without it (or naming someone else) costs one more read, never a
        // wrong credit: the payment's own member is the one credited.
        let member_hint = get("CustomField2").and_then(hyphenated_id);
        let (payment, account) = self
            .store
            .payment_with_account(trade_no, member_hint.as_ref())
            .await?;
        let Some(payment) = payment else {
            return Ok(Err(NotificationRejected("unknown MerchantTradeNo")));
        };
        let received: BTreeMap<String, String> = fields
            .iter()
            .filter(|(k, _)| k != ecpay::CHECK_MAC_VALUE)
            .cloned()
            .collect();
        if get("TradeAmt").and_then(|a| a.trim().parse::<i64>().ok()) != Some(payment.amount) {
            self.audit(
                trade_no,
                "notification",
                received,
                "refused: TradeAmt mismatch".into(),
            )
            .await;
            return Ok(Err(NotificationRejected("TradeAmt mismatch")));
        }
        if get("SimulatePaid") == Some("1") {
            self.audit(
                trade_no,
                "notification",
                received,
                "simulation ignored".into(),
            )
            .await;
            return Ok(Ok(NotificationOutcome::SimulationIgnored));
        }
        let rtn_code = get("RtnCode").unwrap_or("?");
        let message = format!("RtnCode {rtn_code}: {}", get("RtnMsg").unwrap_or_default());
        if rtn_code != "1" {
            // Not final: ECPay calls these "abnormal"; a later verified success still credits.
            let settlement = self
                .store
                .record_gateway_message(trade_no, &message)
                .await?;
            self.audit(trade_no, "notification", received, "recorded".into())
                .await;
            return Ok(Ok(NotificationOutcome::Settled(settlement)));
        }
        let (ecpay_trade_no, payment_date) = if self.payments.confirm_with_query {
            // A leaked HashKey can sign a notification; only ECPay can answer a query about it.
            match self.query_trade(trade_no).await {
                Ok(info) if info.is_paid() && info.trade_amount == payment.amount => {
                    self.audit(trade_no, "query", info.fields.clone(), "confirms".into())
                        .await;
                    (info.trade_no, info.payment_date)
                }
                Ok(info) => {
                    self.audit(trade_no, "query", info.fields, "contradicts".into())
                        .await;
                    self.audit(
                        trade_no,
                        "notification",
                        received,
                        "refused: not confirmed".into(),
                    )
                    .await;
                    return Ok(Err(NotificationRejected("not confirmed by QueryTradeInfo")));
                }
                Err(failure) => {
                    // Not 1|OK: ECPay sends the notification again later.
                    tracing::warn!(merchant_trade_no = %trade_no, %failure, "cannot confirm a notification yet");
                    return Err(AppError::Unavailable {
                        retry_after_secs: 60,
                    });
                }
            }
        } else {
            (
                get("TradeNo").unwrap_or_default().to_string(),
                get("PaymentDate").unwrap_or_default().to_string(),
            )
        };
        // The audit row of a credit is written in the credit's own transaction.
        let credited_record = GatewayRecord {
            source: "notification".into(),
            fields: received.clone(),
            verdict: "credited".into(),
            at: self.clock.now(),
        };
        let settlement = self
            .credit(
                &payment,
                account,
                Some(&credited_record),
                &ecpay_trade_no,
                &payment_date,
                &message,
            )
            .await?;
        if !matches!(settlement, Settlement::Credited { .. }) {
            self.audit(trade_no, "notification", received, "repeat".into())
                .await;
        }
        Ok(Ok(NotificationOutcome::Settled(settlement)))
    }
}

/// How reconciling one payment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Credited,
    AlreadyPaid,
    Expired,
    StillOpen,
    Suspicious,
    Failed,
    CoolingDown,
}

/// An id sent to ECPay without its hyphens (32 hex digits), hyphenated again; `None` if it is not one.
fn hyphenated_id(hex: &str) -> Option<UserId> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    uuid::Uuid::try_parse(hex)
        .ok()
        .and_then(|id| UserId::parse(&id.hyphenated().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_back_from_ecpay_without_hyphens() {
        let id = "0191b1f0-c2a3-7e4c-9e1d-7b2a3c4d5e6f";
        assert_eq!(hyphenated_id(&id.replace('-', "")).as_deref(), Some(id));
        assert_eq!(hyphenated_id(id), None);
        assert_eq!(hyphenated_id("zz91b1f0c2a37e4c9e1d7b2a3c4d5e6f"), None);
        assert_eq!(hyphenated_id(""), None);
    }

    #[test]
    fn checkout_links_expire_and_cannot_be_forged() {
        let signer = LinkSigner::from_secret(b"secret");
        let pt1 = MerchantTradeNo::parse("PT1").unwrap();
        let pt2 = MerchantTradeNo::parse("PT2").unwrap();
        let signature = signer.sign(&pt1, 1_000);
        assert!(signer.verify(&pt1, 1_000, &signature, 999));
        assert!(!signer.verify(&pt1, 1_000, &signature, 1_000), "expired");
        assert!(
            !signer.verify(&pt2, 1_000, &signature, 999),
            "other payment"
        );
        assert!(
            !signer.verify(&pt1, 2_000, &signature, 999),
            "extended expiry"
        );
        assert!(!LinkSigner::from_secret(b"other").verify(&pt1, 1_000, &signature, 999));
    }
}

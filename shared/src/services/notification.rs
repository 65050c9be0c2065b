//! ECPay's server-to-server payment notification, and the one idempotent credit path it shares with
//! reconciliation: every check before anything changes, the credit as one transaction retried on a
//! fresh read, and everything ECPay said kept for the audit trail.

use std::collections::BTreeMap;

use super::recharge::RechargeService;
use super::retry::RetryBudget;
use crate::domain::e_invoice::{Invoice, InvoiceMode};
use crate::domain::{MerchantTradeNo, Movement, Payment, PaymentStatus, Settlement, UserId};
use crate::ecpay;
use crate::error::AppError;
use crate::store::{AccountSnapshot, CreditAttempt, GatewayRecord};

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

impl RechargeService<'_> {
    /// Keeps what ECPay said (the audit trail); a failure to write it is logged, never fatal.
    pub(super) async fn audit(
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
    pub(super) async fn credit(
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
            let invoice = match self.invoice_mode {
                InvoiceMode::AtRecharge => Invoice::for_recharge(
                    &payment.merchant_trade_no,
                    &payment.member_id,
                    payment.amount,
                    payment.points.get(),
                    now,
                ),
                _ => None,
            };
            match self
                .store
                .credit_recharge(
                    payment,
                    &credit,
                    record,
                    trade_no,
                    payment_date,
                    message,
                    invoice.as_ref(),
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
}

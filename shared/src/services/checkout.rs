//! The signed checkout link: a browser opens it without a token (it is signed and short-lived). Its
//! first opening checks out with the recharge's own MerchantTradeNo; each opening after the first is
//! a fresh checkout attempt with its own, since ECPay refuses a number twice.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

use super::recharge::RechargeService;
use super::retry::RetryBudget;
use crate::domain::{MerchantTradeNo, Payment, PaymentStatus};
use crate::ecpay;
use crate::error::{not_found, AppError};
use crate::store::{AttemptOutcome, FirstOpening};

/// How long a checkout link works.
pub const CHECKOUT_LINK_TTL_SECS: i64 = 15 * 60;
pub const CHECKOUT_PATH: &str = "/api/payments/ecpay/checkout/";

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

fn payment_settled() -> AppError {
    AppError::conflict(
        "payment_not_pending",
        "this recharge is already paid or closed",
    )
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
            .get_payment_with_checkout(merchant_trade_no)
            .await?
            .filter(|p| p.attempt_of.is_none())
            .ok_or_else(not_found::payment)?;
        match self
            .store
            .claim_first_opening(&origin.merchant_trade_no, self.clock.now())
            .await?
        {
            // The recharge's own form, as signed when it was created.
            FirstOpening::Claimed => Ok(origin),
            FirstOpening::AlreadyOpened => self.open_attempt(&origin).await,
            FirstOpening::NotOpen => Err(payment_settled()),
        }
    }

    /// A fresh checkout attempt of a recharge: its own MerchantTradeNo (ECPay refuses one it has
    /// seen, so re-posting the first would strand the payment), the same amount, points and URLs,
    /// signed anew. All attempts share the recharge's payment id; each is credited at most once.
    async fn open_attempt(&self, origin: &Payment) -> Result<Payment, AppError> {
        let settled = payment_settled;
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
                opened_at: None,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! How many recharges a member may leave unpaid, and the order reconciliation checks open payments
//! in: the two things that let one member's abandoned checkouts starve everyone's reconciliation.
//!
//! Each member has one item holding the set of their open recharges (by the recharge's own
//! MerchantTradeNo). A new recharge is added to it in the transaction that creates the payment,
//! only while the set is smaller than the cap; it leaves the set in the transaction that credits
//! any of its attempts or expires it. Set operations are idempotent, so a repeated credit or expiry
//! never frees a slot twice, and a slot can be checked against the payments it names and healed.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::keys::*;
use super::table::{GSI2_PK, GSI2_SK, PK, SK};
use super::{n, s, Store};
use crate::domain::{MerchantTradeNo, Timestamp, UserId};
use crate::error::AppError;

/// The attribute holding the set of a member's open recharges.
const OPEN: &str = "open_recharges";

/// The sort key of the open-payments index: when the payment was last queued (created, or checked
/// and found still open), then its number. Reconciliation takes the ones queued longest ago, so a
/// payment checked and still open goes to the back of the queue and every open payment is reached
/// within `open payments / batch` runs, whatever the backlog.
pub(super) fn open_payments_sk(queued_at: Timestamp, merchant_trade_no: &str) -> String {
    format!(
        "{}#{merchant_trade_no}",
        queued_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

impl Store {
    /// Adds `recharge` to `member`'s open recharges, only while they hold fewer than `max`.
    pub(super) fn claim_recharge_slot(
        &self,
        member: &UserId,
        recharge: &MerchantTradeNo,
        max: u32,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member)))
            .key(SK, s(OPEN_RECHARGES_SK))
            .update_expression("ADD #open :recharge SET entity = :entity")
            .condition_expression("attribute_not_exists(#open) OR size(#open) < :max")
            .expression_attribute_names("#open", OPEN)
            .expression_attribute_values(
                ":recharge",
                AttributeValue::Ss(vec![recharge.to_string()]),
            )
            .expression_attribute_values(":entity", s("OpenRecharges"))
            .expression_attribute_values(":max", n(i64::from(max)))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Takes `recharge` out of `member`'s open recharges (nothing if it is not there). No
    /// condition: it rides in credits and expiries, which must never fail for its sake.
    pub(super) fn release_recharge_slot(
        &self,
        member: &UserId,
        recharge: &MerchantTradeNo,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member)))
            .key(SK, s(OPEN_RECHARGES_SK))
            .update_expression("DELETE #open :recharge")
            .expression_attribute_names("#open", OPEN)
            .expression_attribute_values(
                ":recharge",
                AttributeValue::Ss(vec![recharge.to_string()]),
            )
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The recharges `member` holds open, as their slots say.
    pub async fn open_recharges(&self, member: &UserId) -> Result<Vec<MerchantTradeNo>, AppError> {
        #[derive(serde::Deserialize)]
        struct Slots {
            /// A string set (absent once the last slot is freed).
            #[serde(default)]
            open_recharges: Vec<String>,
        }
        let slots = self
            .get_item::<Slots>(user_pk(member), OPEN_RECHARGES_SK)
            .await?;
        let mut open: Vec<MerchantTradeNo> = slots
            .map(|slots| slots.open_recharges)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| MerchantTradeNo::parse(v))
            .collect();
        open.sort();
        Ok(open)
    }

    /// Frees a slot whose recharge is no longer open (found by checking the payment it names): the
    /// same release the credit and the expiry carry, on its own. A rare repair, so a transaction of
    /// one item is as good as a plain update.
    pub async fn free_recharge_slot(
        &self,
        member: &UserId,
        recharge: &MerchantTradeNo,
    ) -> Result<super::Attempt<()>, AppError> {
        let release = self.release_recharge_slot(member, recharge)?;
        Ok(match self.transact_once(vec![release]).await? {
            super::TransactionAttempt::Committed => super::Attempt::Done(()),
            super::TransactionAttempt::Contended(_) => super::Attempt::Contended,
            super::TransactionAttempt::Refused(c) => {
                return Err(AppError::internal(format!(
                    "an unconditional slot release was refused: {:?}",
                    c.reasons
                )))
            }
        })
    }

    /// Moves an open payment to the back of reconciliation's queue (queued `now`). Nothing when
    /// it left the queue meanwhile (paid or expired).
    pub async fn requeue_payment(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(payment_pk(merchant_trade_no)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET #gsi2sk = :queued")
            .condition_expression("attribute_exists(#gsi2pk)")
            .expression_attribute_names("#gsi2pk", GSI2_PK)
            .expression_attribute_names("#gsi2sk", GSI2_SK)
            .expression_attribute_values(":queued", s(open_payments_sk(now, merchant_trade_no)))
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(()),
            Err(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(other) => Err(super::dynamo_failure("requeue payment", other)),
        }
    }
}

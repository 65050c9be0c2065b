//! A recharge as its member sees it: one entry however often its checkout link was opened. The
//! recharge's own payment is its first checkout; re-openings are attempts beside it (same payment
//! id, so they sort next to it in the member's index).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::keys::*;
use super::payments::PaymentRecord;
use super::table::{GSI1, GSI1_PK, GSI1_SK, PK, SK};
use super::{dynamo_failure, from_item, n, page_of, s, timestamp, Filter, ListQuery, Store};
use crate::domain::{MerchantTradeNo, Payment, PaymentStatus, Timestamp, UserId};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

/// The first opening of a recharge's checkout link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstOpening {
    /// This opening is the first: it checks out with the recharge's own MerchantTradeNo.
    Claimed,
    /// The link was opened before: this opening needs an attempt of its own.
    AlreadyOpened,
    /// Paid, closed or unknown: no checkout at all.
    NotOpen,
}

impl Store {
    /// Claims the first opening of `recharge`'s checkout link (a conditional write, so of two
    /// openings at once exactly one gets the recharge's own MerchantTradeNo).
    pub async fn claim_first_opening(
        &self,
        recharge: &MerchantTradeNo,
        now: Timestamp,
    ) -> Result<FirstOpening, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(payment_pk(recharge)))
            .key(SK, s(PAYMENT_SK))
            .update_expression("SET opened_at = :now")
            .condition_expression(
                "attribute_exists(#pk) AND attribute_not_exists(attempt_of) \
                 AND #status = :pending AND attribute_not_exists(opened_at) \
                 AND (attribute_not_exists(paid_attempts) OR paid_attempts = :zero)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":pending", s(PaymentStatus::Pending.as_str()))
            .expression_attribute_values(":zero", n(0))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result.map_err(|err| err.into_service_error()) {
            Ok(_) => Ok(FirstOpening::Claimed),
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let old = failed.item.map(from_item::<PaymentRecord>).transpose()?;
                Ok(match old.map(Payment::from) {
                    Some(p)
                        if p.status == PaymentStatus::Pending
                            && p.paid_attempts == 0
                            && p.opened_at.is_some() =>
                    {
                        FirstOpening::AlreadyOpened
                    }
                    _ => FirstOpening::NotOpen,
                })
            }
            Err(other) => Err(dynamo_failure("first checkout opening", other)),
        }
    }

    /// A member's recharges (their first payments only), newest first.
    pub async fn list_member_recharges(
        &self,
        member_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<Payment>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: member_payments_gsi(member_id),
            ascending: false,
            sort_prefix: None,
            filter: Some(Filter {
                expression: "attribute_not_exists(attempt_of)",
                names: vec![],
                values: vec![],
            }),
            scope: format!("recharges:{member_id}"),
        };
        page_of::<PaymentRecord, Payment>(self.query_page(query, page).await?)
    }

    /// The further checkout attempts of `recharge`, oldest first (at most the attempts cap).
    pub async fn recharge_attempts(&self, recharge: &Payment) -> Result<Vec<Payment>, AppError> {
        if recharge.attempts == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#sk", GSI1_SK)
            .expression_attribute_values(":pk", s(member_payments_gsi(&recharge.member_id)))
            .expression_attribute_values(":prefix", s(format!("{}#", recharge.id)))
            .send()
            .await
            .map_err(|err| dynamo_failure("recharge attempts", err.into_service_error()))?;
        let mut attempts = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<PaymentRecord>(item).map(Payment::from))
            .collect::<Result<Vec<_>, _>>()?;
        attempts.retain(|p| p.attempt_of.is_some());
        attempts.sort_by_key(|p| p.created_at);
        Ok(attempts)
    }
}

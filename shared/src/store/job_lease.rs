//! One run of a scheduled job at a time, across every instance: a lease item in the table, taken with
//! a conditional put when nobody holds it or the holder's lease has run out, and handed back at the
//! end. Two overlapping reconciliation runs would double the query rate ECPay sees (and ECPay locks a
//! too-fast caller out for 30 minutes); reserved concurrency of 1 would say the same, but fails to
//! deploy on an account whose concurrency quota is small (Lambda keeps 100 unreserved).

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::keys::*;
use super::table::{PK, SK, TTL_ATTRIBUTE};
use super::{n, s, Store};
use crate::error::AppError;

/// What asking for a job's lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// Ours until `until` (Unix seconds), or until handed back.
    Taken,
    /// Another run holds it until `until`.
    Held { until: i64 },
}

impl Store {
    /// Takes `job`'s lease for `holder` until `until`, unless another holder's lease is still running.
    pub async fn take_job_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Lease, AppError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(job_lease_pk(job)))
            .item(SK, s(JOB_LEASE_SK))
            .item("entity", s("JobLease"))
            .item("holder", s(holder))
            .item("until", n(until))
            // Swept a day after it ran out: a lease is never needed for long.
            .item(TTL_ATTRIBUTE, n(until + 86_400))
            .condition_expression("attribute_not_exists(#pk) OR #until <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) => Ok(Lease::Taken),
            Err(PutItemError::ConditionalCheckFailedException(held)) => {
                let until = held
                    .item
                    .as_ref()
                    .and_then(|item| item.get("until"))
                    .and_then(|value| value.as_n().ok())
                    .and_then(|raw| raw.parse::<i64>().ok())
                    .unwrap_or(now);
                Ok(Lease::Held { until })
            }
            Err(other) => Err(super::dynamo_failure("take job lease", other)),
        }
    }

    /// Hands `job`'s lease back, if `holder` still holds it (a lease that ran out and was taken by
    /// another run is left to that run).
    pub async fn return_job_lease(
        &self,
        job: &str,
        holder: &str,
        now: i64,
    ) -> Result<(), AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(job_lease_pk(job)))
            .key(SK, s(JOB_LEASE_SK))
            .update_expression("SET #until = :now")
            .condition_expression("holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) | Err(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(other) => Err(super::dynamo_failure("return job lease", other)),
        }
    }
}

//! Everything ECPay said about each payment (the evidence, kept `PAYMENT_EVIDENCE_RETENTION_DAYS`), and ECPay's
//! 30-minute refusal of queries after a 403, recorded for every function to honour.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{PK, SK};
use super::{from_item, n, s, to_item, Store};
use crate::domain::{MerchantTradeNo, Timestamp};
use crate::error::AppError;

/// How long what ECPay said about a payment is kept by default (`PAYMENT_EVIDENCE_RETENTION_DAYS`):
/// seven years. Taiwan's Business Entity Accounting Act §38 keeps accounting vouchers at least five
/// years after the year's closing, so a payment made on 1 January needs six years and a day; seven
/// leaves the accountant room. DynamoDB's TTL removes a record after it.
pub const DEFAULT_EVIDENCE_RETENTION_DAYS: i64 = 2_557;

/// One thing ECPay said about a payment, kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRecord {
    /// `notification` (ECPay's server-to-server POST) or `query` (a QueryTradeInfo answer).
    pub source: String,
    /// Every field received, except CheckMacValue.
    pub fields: BTreeMap<String, String>,
    /// What we made of it: `credited`, `recorded`, `repeat`, `refused: <reason>`, `unpaid`, ...
    pub verdict: String,
    pub at: Timestamp,
}

#[derive(Serialize, Deserialize)]
pub(super) struct AuditRecord {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    record: GatewayRecord,
    expires_at: i64,
}

impl Store {
    /// Keeps what ECPay said about a payment (TTL: the store's evidence retention).
    pub async fn append_gateway_record(
        &self,
        merchant_trade_no: &MerchantTradeNo,
        record: &GatewayRecord,
    ) -> Result<(), AppError> {
        let audit = audit_record(merchant_trade_no, record, self.evidence_retention_days);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&audit)?))
            .send()
            .await
            .map_err(|e| super::dynamo_failure("audit record", e.into_service_error()))?;
        Ok(())
    }

    /// Everything ECPay said about one payment, oldest first.
    pub async fn gateway_records(
        &self,
        merchant_trade_no: &MerchantTradeNo,
    ) -> Result<Vec<GatewayRecord>, AppError> {
        let mut records = Vec::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(payment_pk(merchant_trade_no)))
                .expression_attribute_values(":prefix", s(PAYMENT_AUDIT_SK_PREFIX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| super::dynamo_failure("audit records", e.into_service_error()))?;
            for item in output.items.unwrap_or_default() {
                records.push(from_item::<AuditRecord>(item)?.record);
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(records),
            }
        }
    }

    /// Until when ECPay's QueryTradeInfo must not be called (after it answered 403), if at all.
    pub async fn gateway_cooldown(&self) -> Result<Option<i64>, AppError> {
        #[derive(Deserialize)]
        struct Cooldown {
            until: i64,
        }
        Ok(self
            .get_item::<Cooldown>(GATEWAY_PK.to_string(), GATEWAY_COOLDOWN_SK)
            .await?
            .map(|c| c.until))
    }

    pub async fn set_gateway_cooldown(&self, until: i64) -> Result<(), AppError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(GATEWAY_PK))
            .item(SK, s(GATEWAY_COOLDOWN_SK))
            .item("entity", s("GatewayCooldown"))
            .item("until", n(until))
            .item(super::table::TTL_ATTRIBUTE, n(until + 3600))
            .send()
            .await
            .map_err(|e| super::dynamo_failure("gateway cooldown", e.into_service_error()))?;
        Ok(())
    }
}

/// The audit row of one gateway answer, under the payment's partition.
pub(super) fn audit_record(
    merchant_trade_no: &MerchantTradeNo,
    record: &GatewayRecord,
    retention_days: i64,
) -> AuditRecord {
    AuditRecord {
        pk: payment_pk(merchant_trade_no),
        sk: format!(
            "{PAYMENT_AUDIT_SK_PREFIX}{}#{}",
            record
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            uuid::Uuid::new_v4().simple()
        ),
        entity: "GatewayRecord".into(),
        record: record.clone(),
        expires_at: (record.at + chrono::Duration::days(retention_days)).timestamp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_record_is_kept_for_the_evidence_retention() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let record = GatewayRecord {
            source: "notification".into(),
            fields: BTreeMap::new(),
            verdict: "credited".into(),
            at,
        };
        let trade = MerchantTradeNo::parse("PT1").unwrap();
        let kept = audit_record(&trade, &record, DEFAULT_EVIDENCE_RETENTION_DAYS);
        // Paid on 1 January 2026: the year closes at its end, and §38's five years run to 2031's.
        let five_years_after_the_close =
            chrono::DateTime::parse_from_rfc3339("2031-12-31T23:59:59Z")
                .unwrap()
                .timestamp();
        assert!(kept.expires_at > five_years_after_the_close);
        assert_eq!(
            kept.expires_at,
            (at + chrono::Duration::days(2_557)).timestamp()
        );
    }
}

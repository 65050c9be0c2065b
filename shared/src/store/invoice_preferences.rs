//! A member's invoice preference (where their e-invoices go): one item in the member's partition.

use serde::{Deserialize, Serialize};

use super::keys::*;
use super::{to_item, Store};
use crate::domain::invoice::InvoicePreference;
use crate::domain::{Timestamp, UserId};
use crate::error::AppError;

#[derive(Serialize, Deserialize)]
struct PreferenceRecord {
    pk: String,
    sk: String,
    entity: String,
    preference: InvoicePreference,
    updated_at: Timestamp,
}

impl Store {
    /// The member's invoice preference, if they chose one.
    pub async fn invoice_preference(
        &self,
        member: &UserId,
    ) -> Result<Option<InvoicePreference>, AppError> {
        Ok(self
            .get_item::<PreferenceRecord>(user_pk(member), INVOICE_PREFERENCE_SK)
            .await?
            .map(|r| r.preference))
    }

    /// Keeps the member's invoice preference (the last one written wins).
    pub async fn set_invoice_preference(
        &self,
        member: &UserId,
        preference: &InvoicePreference,
        at: Timestamp,
    ) -> Result<(), AppError> {
        let record = PreferenceRecord {
            pk: user_pk(member),
            sk: INVOICE_PREFERENCE_SK.into(),
            entity: "InvoicePreference".into(),
            preference: preference.clone(),
            updated_at: at,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .send()
            .await
            .map_err(|e| super::dynamo_failure("invoice preference", e.into_service_error()))?;
        Ok(())
    }
}

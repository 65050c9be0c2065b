//! A member's saved delivery addresses: items under the member's own partition, at most
//! `max` of them, counted by a set of their ids kept in the same transactions that add and remove
//! them (so two saves at once cannot both take the last slot).

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{PK, SK};
use super::{dynamo_failure, from_item, n, s, to_item, Store, TransactionAttempt};
use crate::domain::{AddressId, ShippingAddress, Timestamp, UserId};
use crate::error::AppError;

/// The attribute holding the set of a member's saved address ids.
const SAVED: &str = "address_ids";

#[derive(Serialize, Deserialize)]
struct AddressRecord {
    pk: String,
    sk: String,
    entity: String,
    id: AddressId,
    #[serde(flatten)]
    address: ShippingAddress,
    created_at: Timestamp,
}

/// A saved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAddress {
    pub id: AddressId,
    pub address: ShippingAddress,
    pub created_at: Timestamp,
}

/// One attempt at saving an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSave {
    Saved,
    /// The member already keeps the most addresses allowed.
    Full,
    Contended,
}

impl Store {
    /// Saves `address` as `id`, unless `member` already keeps `max`.
    pub async fn save_address(
        &self,
        member: &UserId,
        saved: &SavedAddress,
        max: u32,
    ) -> Result<AddressSave, AppError> {
        let slot = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member)))
            .key(SK, s(ADDRESS_SLOTS_SK))
            .update_expression("ADD #saved :id SET entity = :entity")
            .condition_expression("attribute_not_exists(#saved) OR size(#saved) < :max")
            .expression_attribute_names("#saved", SAVED)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![saved.id.to_string()]))
            .expression_attribute_values(":entity", s("AddressSlots"))
            .expression_attribute_values(":max", n(i64::from(max)))
            .build()
            .map_err(AppError::internal)?;
        let record = AddressRecord {
            pk: user_pk(member),
            sk: address_sk(&saved.id),
            entity: "Address".into(),
            id: saved.id.clone(),
            address: saved.address.clone(),
            created_at: saved.created_at,
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().update(slot).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        Ok(match self.transact_once(items).await? {
            TransactionAttempt::Committed => AddressSave::Saved,
            TransactionAttempt::Contended(_) => AddressSave::Contended,
            TransactionAttempt::Refused(c) if c.condition_failed(0) => AddressSave::Full,
            TransactionAttempt::Refused(c) => {
                return Err(AppError::internal(format!(
                    "address save refused: {:?}",
                    c.reasons
                )))
            }
        })
    }

    /// Deletes one of `member`'s addresses; `Ok(false)` when they have no such address.
    pub async fn delete_address(
        &self,
        member: &UserId,
        id: &AddressId,
    ) -> Result<Option<bool>, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member)))
            .key(SK, s(address_sk(id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(AppError::internal)?;
        let slot = Update::builder()
            .table_name(&self.table)
            .key(PK, s(user_pk(member)))
            .key(SK, s(ADDRESS_SLOTS_SK))
            .update_expression("DELETE #saved :id")
            .expression_attribute_names("#saved", SAVED)
            .expression_attribute_values(":id", AttributeValue::Ss(vec![id.to_string()]))
            .build()
            .map_err(AppError::internal)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(slot).build(),
        ];
        // `None`: contended, try again.
        Ok(match self.transact_once(items).await? {
            TransactionAttempt::Committed => Some(true),
            TransactionAttempt::Contended(_) => None,
            TransactionAttempt::Refused(c) if c.condition_failed(0) => Some(false),
            TransactionAttempt::Refused(c) => {
                return Err(AppError::internal(format!(
                    "address delete refused: {:?}",
                    c.reasons
                )))
            }
        })
    }

    /// Every address `member` keeps (at most the cap), oldest first.
    pub async fn list_addresses(&self, member: &UserId) -> Result<Vec<SavedAddress>, AppError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(user_pk(member)))
            .expression_attribute_values(":prefix", s(ADDRESS_SK_PREFIX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| dynamo_failure("addresses", err.into_service_error()))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<AddressRecord>(item).map(SavedAddress::from))
            .collect()
    }

    pub async fn get_address(
        &self,
        member: &UserId,
        id: &AddressId,
    ) -> Result<Option<SavedAddress>, AppError> {
        Ok(self
            .get_item::<AddressRecord>(user_pk(member), &address_sk(id))
            .await?
            .map(SavedAddress::from))
    }
}

impl From<AddressRecord> for SavedAddress {
    fn from(r: AddressRecord) -> Self {
        SavedAddress {
            id: r.id,
            address: r.address,
            created_at: r.created_at,
        }
    }
}

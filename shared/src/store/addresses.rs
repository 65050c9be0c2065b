//! A member's saved delivery addresses: items under the member's own partition, at most
//! `max` of them, counted by a set of their ids kept in the same transactions that add and remove
//! them (so two saves at once cannot both take the last slot).

use serde::{Deserialize, Serialize};

use super::keys::*;
use super::slots::Slots;
use super::{from_item, to_item, Store};
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
pub type AddressSave = super::slots::SlotSave;

fn address_slots(member: &UserId) -> Slots {
    Slots {
        pk: user_pk(member),
        sk: ADDRESS_SLOTS_SK,
        attribute: SAVED,
        entity: "AddressSlots",
    }
}

impl Store {
    /// Saves `address` as `id`, unless `member` already keeps `max`.
    pub async fn save_address(
        &self,
        member: &UserId,
        saved: &SavedAddress,
        max: u32,
    ) -> Result<AddressSave, AppError> {
        let record = AddressRecord {
            pk: user_pk(member),
            sk: address_sk(&saved.id),
            entity: "Address".into(),
            id: saved.id.clone(),
            address: saved.address.clone(),
            created_at: saved.created_at,
        };
        self.put_in_slot(&address_slots(member), &saved.id, max, to_item(&record)?)
            .await
    }

    /// Deletes one of `member`'s addresses; `Ok(false)` when they have no such address.
    pub async fn delete_address(
        &self,
        member: &UserId,
        id: &AddressId,
    ) -> Result<Option<bool>, AppError> {
        self.delete_from_slot(&address_slots(member), id, address_sk(id))
            .await
    }

    /// Every address `member` keeps (at most the cap), oldest first.
    pub async fn list_addresses(&self, member: &UserId) -> Result<Vec<SavedAddress>, AppError> {
        self.items_in_slots(user_pk(member), ADDRESS_SK_PREFIX, "addresses")
            .await?
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

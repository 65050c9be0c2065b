//! Gifts of promotional points that expire (`PROMOTIONAL_POINTS_EXPIRE_DAYS`): one item per gift,
//! put in the transaction that gives it and deleted in the one that expires it, queued on gsi2 by
//! when (spread like the other queues). The item remembers the gift and the account's running total
//! of points ever given once it was given, which is all the expiry needs
//! ([`crate::domain::account::expiring_points`]).

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{PK, SK};
use super::{from_item, to_item, Store, TransactionAttempt};
use crate::domain::{BalanceChange, Timestamp, UserId};
use crate::error::AppError;

/// A gift of promotional points with an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringGift {
    pub member_id: UserId,
    /// The ledger row that gave it.
    pub gift_id: String,
    pub granted: i64,
    /// The account's `promotional_granted` once this gift was given.
    pub granted_total: i64,
    pub expires_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct GiftRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi2pk: String,
    gsi2sk: String,
    #[serde(flatten)]
    gift: ExpiringGift,
}

/// One attempt at expiring a gift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftExpiry {
    Done,
    /// The account moved since it was read: read again.
    AccountChanged,
    Contended,
}

impl Store {
    /// Queues `gift` to expire (in the transaction that gives it).
    pub(super) fn gift_expiry_put(
        &self,
        gift: &ExpiringGift,
    ) -> Result<TransactWriteItem, AppError> {
        let record = GiftRecord {
            pk: gift_expiry_pk(&gift.member_id, &gift.gift_id),
            sk: DUE_SK.into(),
            entity: "GiftExpiry".into(),
            gsi2pk: gifts_expiring_gsi(&gift.gift_id),
            gsi2sk: format!(
                "{}#{}",
                gift.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                gift.gift_id
            ),
            gift: gift.clone(),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&record)?))
            .build()
            .map_err(AppError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Up to `limit` gifts due to expire by `now`, soonest first.
    pub async fn gifts_expiring(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ExpiringGift>, AppError> {
        let due = self
            .due_items(gifts_expiring_partitions(), now, limit)
            .await?;
        self.items_behind(&due)
            .await?
            .into_iter()
            .map(|item| from_item::<GiftRecord>(item).map(|record| record.gift))
            .collect()
    }

    /// Expires `gift`: the balance change the domain worked out (none when nothing of it is left)
    /// and the gift off its queue, in one transaction.
    pub async fn expire_gift(
        &self,
        gift: &ExpiringGift,
        change: Option<&BalanceChange>,
    ) -> Result<GiftExpiry, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, super::s(gift_expiry_pk(&gift.member_id, &gift.gift_id)))
            .key(SK, super::s(DUE_SK))
            .build()
            .map_err(AppError::internal)?;
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        if let Some(change) = change {
            items.push(self.account_change(&change.entry.member_id, change)?);
            items.push(self.ledger_put(change)?);
        }
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => Ok(GiftExpiry::Done),
            TransactionAttempt::Contended(_) => Ok(GiftExpiry::Contended),
            TransactionAttempt::Refused(_) => Ok(GiftExpiry::AccountChanged),
        }
    }
}

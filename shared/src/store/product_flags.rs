//! Who may put a product on sale. Three parties each own one flag on the product item: the merchant
//! (`listed`), an operator's takedown (`blocked`) and the merchant's account being disabled
//! (`merchant_suspended`). Every write of a flag rewrites `is_active` and the sparse catalogue index
//! from all three (`domain::product::on_sale`), conditioned on the item's own version as read, so a
//! flag is never combined with a stale view of the others. Redemptions only condition-check the
//! product item (`is_active`), so none of these writes races a sale's stock.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::keys::*;
use super::products::ProductStock;
use super::table::{GSI2_PK, GSI2_SK, PK, SK};
use super::{n, s, timestamp, AdminWrite, Attempt, ProductWrite, Store, TransactionAttempt};
use crate::domain::product::on_sale;
use crate::domain::{AuditEntry, Product, ProductId, Timestamp, UserId};
use crate::error::AppError;

/// The three parties' flags, as they are to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags {
    listed: bool,
    blocked: bool,
    merchant_suspended: bool,
}

impl Flags {
    fn of(product: &Product) -> Self {
        Flags {
            listed: product.listed,
            blocked: product.blocked,
            merchant_suspended: product.merchant_suspended,
        }
    }
}

/// What one flag write came to.
enum FlagWrite {
    Written(Product),
    /// The product item changed since it was read (or is gone): read again.
    Stale,
    Contended,
}

/// Position of the product's update in a flag write (an audit entry may follow it).
const PRODUCT_ITEM: usize = 0;

impl Store {
    /// Sets `read`'s flags to `flags` in one transaction with `extra` (an audit entry), only if the
    /// product item is still at the version it was read at.
    async fn write_flags(
        &self,
        read: &ProductStock,
        flags: Flags,
        now: Timestamp,
        extra: Vec<TransactWriteItem>,
    ) -> Result<FlagWrite, AppError> {
        let product = &read.product;
        let active = on_sale(flags.listed, flags.blocked, flags.merchant_suspended);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(product_pk(&product.id)))
            .key(SK, s(PRODUCT_SK))
            .condition_expression("attribute_exists(#pk) AND version = :read")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#gsi2pk", GSI2_PK)
            .expression_attribute_names("#gsi2sk", GSI2_SK)
            .expression_attribute_values(":read", n(read.item_version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .expression_attribute_values(":listed", AttributeValue::Bool(flags.listed))
            .expression_attribute_values(":blocked", AttributeValue::Bool(flags.blocked))
            .expression_attribute_values(
                ":suspended",
                AttributeValue::Bool(flags.merchant_suspended),
            )
            .expression_attribute_values(":active", AttributeValue::Bool(active));
        let sets = "SET listed = :listed, blocked = :blocked, merchant_suspended = :suspended, \
                    is_active = :active, version = version + :one, updated_at = :now";
        update = if active {
            update
                .update_expression(format!("{sets}, #gsi2pk = :catalogue, #gsi2sk = id"))
                .expression_attribute_values(":catalogue", s(catalogue_gsi(&product.id)))
        } else {
            update.update_expression(format!("{sets} REMOVE #gsi2pk, #gsi2sk"))
        };
        let mut items = vec![TransactWriteItem::builder()
            .update(update.build().map_err(AppError::internal)?)
            .build()];
        items.extend(extra);
        match self.transact_once(items).await? {
            TransactionAttempt::Committed => {
                let mut written = product.clone();
                written.listed = flags.listed;
                written.blocked = flags.blocked;
                written.merchant_suspended = flags.merchant_suspended;
                written.version += 1;
                written.updated_at = now;
                Ok(FlagWrite::Written(written))
            }
            TransactionAttempt::Contended(_) => Ok(FlagWrite::Contended),
            TransactionAttempt::Refused(c) if c.condition_failed(PRODUCT_ITEM) => {
                Ok(FlagWrite::Stale)
            }
            TransactionAttempt::Refused(c) => Err(AppError::internal(format!(
                "product flag write cancelled unexpectedly: {:?}",
                c.reasons
            ))),
        }
    }

    /// The merchant withdraws their product from sale (their soft delete). Withdrawn already is
    /// fine and changes nothing; another merchant's product is `NotFound`.
    pub async fn withdraw_product(
        &self,
        merchant_id: &UserId,
        product_id: &ProductId,
        now: Timestamp,
    ) -> Result<Attempt<ProductWrite>, AppError> {
        let read = match self.product_stock(product_id).await? {
            Some(read) if read.product.merchant_id == merchant_id => read,
            _ => return Ok(Attempt::Done(ProductWrite::NotFound)),
        };
        if !read.product.listed {
            return Ok(Attempt::Done(ProductWrite::Written(read.product)));
        }
        let flags = Flags {
            listed: false,
            ..Flags::of(&read.product)
        };
        Ok(match self.write_flags(&read, flags, now, vec![]).await? {
            FlagWrite::Written(product) => Attempt::Done(ProductWrite::Written(product)),
            // Changed meanwhile (an edit, a takedown): the retry reads it again.
            FlagWrite::Stale | FlagWrite::Contended => Attempt::Contended,
        })
    }

    /// An operator takes `read` down (`blocked`) or lifts their takedown, with the audit entry in
    /// the same transaction. `Stale` when the product changed since it was read.
    pub async fn set_product_blocked(
        &self,
        read: &ProductStock,
        blocked: bool,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(AdminWrite, Option<Product>), AppError> {
        let flags = Flags {
            blocked,
            ..Flags::of(&read.product)
        };
        Ok(
            match self
                .write_flags(read, flags, now, vec![self.audit_put(audit)?])
                .await?
            {
                FlagWrite::Written(product) => (AdminWrite::Changed, Some(product)),
                FlagWrite::Stale => (AdminWrite::Stale, None),
                FlagWrite::Contended => (AdminWrite::Contended, None),
            },
        )
    }

    /// Marks `read` as its merchant's account being disabled (off sale) or enabled again (back to
    /// what its merchant and operators leave it). `Contended` when it changed since it was read or
    /// DynamoDB cancelled the write: read again.
    pub async fn set_product_suspended(
        &self,
        read: &ProductStock,
        suspended: bool,
        now: Timestamp,
    ) -> Result<Attempt<()>, AppError> {
        let flags = Flags {
            merchant_suspended: suspended,
            ..Flags::of(&read.product)
        };
        Ok(match self.write_flags(read, flags, now, vec![]).await? {
            FlagWrite::Written(_) => Attempt::Done(()),
            FlagWrite::Stale | FlagWrite::Contended => Attempt::Contended,
        })
    }
}

//! Operators and the catalogue: taking a product down until an operator lifts it, and keeping a
//! disabled merchant's products off sale (the sweep run when a merchant is disabled or enabled).

use super::admin::{required_reason, ActivationRequest, AdminService};
use super::catalogue::MerchantProduct;
use super::retry::RetryBudget;
use crate::domain::product::on_sale;
use crate::domain::{AuditAction, AuditEntry, ProductId, UserId};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::PageRequest;
use crate::store::AdminWrite;

impl AdminService<'_> {
    /// Takes any merchant's product off the catalogue (orders keep pointing at it) until an operator
    /// lifts it: the merchant can no longer list it. Already taken down changes nothing and logs
    /// nothing.
    pub async fn deactivate_product(
        &self,
        admin_id: &UserId,
        product_id: &ProductId,
        request: ActivationRequest,
    ) -> Result<MerchantProduct, AppError> {
        self.set_product_blocked(admin_id, product_id, true, request)
            .await
    }

    /// Lifts an operator's takedown: back on sale if its merchant lists it and is enabled. Not
    /// taken down changes nothing and logs nothing.
    pub async fn reinstate_product(
        &self,
        admin_id: &UserId,
        product_id: &ProductId,
        request: ActivationRequest,
    ) -> Result<MerchantProduct, AppError> {
        self.set_product_blocked(admin_id, product_id, false, request)
            .await
    }

    async fn set_product_blocked(
        &self,
        admin_id: &UserId,
        product_id: &ProductId,
        blocked: bool,
        request: ActivationRequest,
    ) -> Result<MerchantProduct, AppError> {
        let mut check = FieldCheck::new();
        let reason = required_reason(&mut check, request.reason);
        let reason = check.finish_with(reason)?;
        let mut budget = RetryBudget::new();
        loop {
            let read = self
                .store
                .product_stock(product_id)
                .await?
                .ok_or_else(not_found::product)?;
            let product = &read.product;
            if product.blocked == blocked {
                return Ok(MerchantProduct::from(read.product));
            }
            let now = self.clock.now();
            let audit = AuditEntry::new(
                admin_id,
                if blocked {
                    AuditAction::ProductDeactivated
                } else {
                    AuditAction::ProductReinstated
                },
                format!("product:{product_id}"),
                serde_json::json!({"is_active": product.is_active(), "blocked": product.blocked, "merchant_id": product.merchant_id}),
                serde_json::json!({"is_active": on_sale(product.listed, blocked, product.merchant_suspended), "blocked": blocked}),
                Some(reason.clone()),
                now,
            );
            match self
                .store
                .set_product_blocked(&read, blocked, &audit, now)
                .await?
            {
                (AdminWrite::Changed, Some(written)) => return Ok(MerchantProduct::from(written)),
                _ => budget.lost().await?,
            }
        }
    }

    /// Takes every product of `merchant_id` off sale (`suspended`), or gives each back what its
    /// merchant and operators leave it. Idempotent, so an interrupted sweep is finished by
    /// repeating the operator's request.
    pub(super) async fn sweep_merchant_products(
        &self,
        merchant_id: &UserId,
        suspended: bool,
    ) -> Result<u32, AppError> {
        use futures::{StreamExt, TryStreamExt};
        /// Products changed at once: a merchant's catalogue is swept in a few round trips without
        /// crowding the table's other writers.
        const AT_ONCE: usize = 8;
        let mut page = PageRequest {
            limit: crate::pagination::MAX_LIMIT,
            cursor: None,
        };
        let mut changed = 0;
        loop {
            let listed = self
                .store
                .list_merchant_products(merchant_id, &page)
                .await?;
            let ids: Vec<ProductId> = listed
                .items
                .iter()
                .filter(|p| p.merchant_suspended != suspended)
                .map(|p| p.id.clone())
                .collect();
            changed += futures::stream::iter(ids)
                .map(|id| async move {
                    let mut budget = RetryBudget::new();
                    loop {
                        let Some(read) = self.store.product_stock(&id).await? else {
                            return Ok::<u32, AppError>(0);
                        };
                        if read.product.merchant_suspended == suspended {
                            return Ok(0);
                        }
                        match self
                            .store
                            .set_product_suspended(&read, suspended, self.clock.now())
                            .await?
                        {
                            crate::store::Attempt::Done(()) => return Ok(1),
                            crate::store::Attempt::Contended => budget.lost().await?,
                        }
                    }
                })
                .buffer_unordered(AT_ONCE)
                .try_fold(0, |sum, one| async move { Ok(sum + one) })
                .await?;
            match listed.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => return Ok(changed),
            }
        }
    }
}

//! Merchants managing their products, and members browsing the catalogue.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::retry::until_uncontended;
use crate::domain::product::{
    check_description, check_name, check_stock, check_stock_shards, parse_fulfilment, parse_price,
};
use crate::domain::{Fulfilment, Product, ProductChanges, ProductId, UserId};
use crate::error::{not_found, AppError, FieldCheck};
use crate::pagination::{Page, PageRequest};
use crate::store::{ProductWrite, Store};

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateProductRequest {
    /// 1–200 characters after trimming.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, example = "Oolong tea gift box")]
    pub name: Option<String>,
    #[schema(value_type = Option<String>, max_length = 2000, example = "150 g, Alishan high-mountain oolong")]
    pub description: Option<String>,
    #[schema(value_type = i64, required = true, minimum = 1, maximum = 10000000, example = 1200)]
    pub points_required: Option<i64>,
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 1000000, example = 50)]
    pub stock: Option<i64>,
    /// How the gift is handed over: `pickup` (the default: a code shown at the counter) or
    /// `delivery` (sent to the address the member gives).
    #[schema(value_type = Option<Fulfilment>)]
    pub fulfilment: Option<String>,
    /// How many items the stock is spread over (1–16): more lets more buyers redeem at once.
    /// Optional: by default one per 64 units, at most 16.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 16, example = 16)]
    pub stock_shards: Option<i64>,
}

/// A partial update: absent or `null` fields stay as they are. `version` is the product version the
/// change is based on (or send `If-Match`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateProductRequest {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<String>,
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000000)]
    pub points_required: Option<i64>,
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000000)]
    pub stock: Option<i64>,
    #[schema(value_type = Option<bool>)]
    pub is_active: Option<bool>,
    /// `pickup` or `delivery`; orders already placed keep theirs.
    #[schema(value_type = Option<Fulfilment>)]
    pub fulfilment: Option<String>,
    /// Raises the number of items the stock is spread over (a smaller figure than the current one
    /// changes nothing: it is never lowered).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 16)]
    pub stock_shards: Option<i64>,
    /// The `version` last read; required unless the `If-Match` header carries it.
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub version: Option<i64>,
}

/// A product as its merchant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MerchantProduct {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub description: String,
    pub points_required: i64,
    pub fulfilment: Fulfilment,
    pub stock: i64,
    /// How many items the stock is spread over, so that many buyers can redeem it at once.
    pub stock_shards: i64,
    /// On sale: listed by the merchant (`is_active` in an update), not taken down by an operator,
    /// and the merchant's account enabled.
    pub is_active: bool,
    /// Taken down by an operator: off sale until an operator lifts it (an update setting
    /// `is_active` to `true` is refused with 409 `product_blocked`).
    pub blocked: bool,
    /// Send back with an update; bumped by every change, redemptions included.
    pub version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A product as members browse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogueProduct {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub description: String,
    pub points_required: i64,
    /// `pickup`: collected with a code at the merchant's counter; `delivery`: redeeming it takes
    /// a shipping address.
    pub fulfilment: Fulfilment,
    pub stock: i64,
    /// `false` when sold out: still listed, but cannot be redeemed until restocked.
    pub in_stock: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Product> for MerchantProduct {
    fn from(p: Product) -> Self {
        MerchantProduct {
            is_active: p.is_active(),
            id: p.id.into(),
            merchant_id: p.merchant_id.into(),
            name: p.name,
            description: p.description,
            points_required: p.points_required.get(),
            fulfilment: p.fulfilment,
            stock: p.stock,
            stock_shards: p.stock_shards.into(),
            blocked: p.blocked,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl From<Product> for CatalogueProduct {
    fn from(p: Product) -> Self {
        CatalogueProduct {
            in_stock: p.stock > 0,
            id: p.id.into(),
            merchant_id: p.merchant_id.into(),
            name: p.name,
            description: p.description,
            points_required: p.points_required.get(),
            fulfilment: p.fulfilment,
            stock: p.stock,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A merchant asked to put back on sale what an operator took down.
fn product_blocked() -> AppError {
    AppError::conflict(
        "product_blocked",
        "an operator took this product down; only an operator can put it back on sale",
    )
}

pub struct CatalogueService<'a> {
    pub store: &'a Store,
    /// What "now" is (see [`crate::clock`]).
    pub clock: &'a crate::clock::Clock,
}

impl CatalogueService<'_> {
    pub async fn create_product(
        &self,
        merchant_id: &UserId,
        request: CreateProductRequest,
    ) -> Result<MerchantProduct, AppError> {
        let mut check = FieldCheck::new();
        let name = check.required("name", request.name);
        let name = name.map(|name| check_name(&mut check, &name));
        let description = request.description.unwrap_or_default();
        check_description(&mut check, &description);
        let points = check
            .required("points_required", request.points_required)
            .parse(&mut check, parse_price);
        let stock = check.required("stock", request.stock);
        if let Some(&stock) = stock.get() {
            check_stock(&mut check, stock);
        }
        let asked_shards = request
            .stock_shards
            .map(|shards| check_stock_shards(&mut check, shards));
        let fulfilment = check.parse("fulfilment", request.fulfilment, parse_fulfilment);
        let (name, points_required, stock) = check.finish_with((name, points, stock))?;
        let now = self.clock.now();
        let product = Product {
            id: ProductId::generate(),
            merchant_id: merchant_id.clone(),
            name,
            description,
            points_required,
            fulfilment: fulfilment.unwrap_or_default(),
            stock,
            // The merchant's explicit count, else one per 64 units.
            stock_shards: asked_shards.unwrap_or_else(|| crate::domain::stock::shards_for(stock)),
            listed: true,
            blocked: false,
            merchant_suspended: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        until_uncontended(|| self.store.create_product(&product)).await?;
        Ok(product.into())
    }

    pub async fn list_my_products(
        &self,
        merchant_id: &UserId,
        page: &PageRequest,
    ) -> Result<Page<MerchantProduct>, AppError> {
        Ok(self
            .store
            .list_merchant_products(merchant_id, page)
            .await?
            .map(MerchantProduct::from))
    }

    pub async fn my_product(
        &self,
        merchant_id: &UserId,
        product_id: &ProductId,
    ) -> Result<MerchantProduct, AppError> {
        match self.store.get_product(product_id).await? {
            Some(product) if product.merchant_id == merchant_id => Ok(product.into()),
            _ => Err(not_found::product()),
        }
    }

    /// Applies a merchant's edit if it is based on the current version.
    pub async fn update_my_product(
        &self,
        merchant_id: &UserId,
        product_id: &ProductId,
        request: UpdateProductRequest,
        if_match: Option<i64>,
    ) -> Result<MerchantProduct, AppError> {
        let mut check = FieldCheck::new();
        let name = request.name.map(|n| check_name(&mut check, &n));
        if let Some(description) = &request.description {
            check_description(&mut check, description);
        }
        let points_required = check.parse("points_required", request.points_required, parse_price);
        if let Some(stock) = request.stock {
            check_stock(&mut check, stock);
        }
        let stock_shards = request
            .stock_shards
            .map(|shards| check_stock_shards(&mut check, shards));
        let fulfilment = check.parse("fulfilment", request.fulfilment, parse_fulfilment);
        let version = match (request.version, if_match) {
            (Some(body), Some(header)) if body != header => {
                check.fail("version", "differs from the If-Match header");
                None
            }
            (Some(v), _) | (None, Some(v)) => Some(v),
            (None, None) => {
                check.fail("version", "is required (or send it as If-Match)");
                None
            }
        };
        let version = check
            .required("version", version)
            .parse(&mut check, |version| {
                (version >= 1)
                    .then_some(version)
                    .ok_or_else(|| "must be a positive integer".to_string())
            });
        let changes = ProductChanges {
            name,
            description: request.description,
            points_required,
            fulfilment,
            stock: request.stock,
            stock_shards,
            is_active: request.is_active,
        };
        if changes.is_empty() {
            check.fail("body", "names no field to change");
        }
        let version = check.finish_with(version)?;
        let written = until_uncontended(|| {
            self.store
                .update_product(merchant_id, product_id, version, &changes, self.clock.now())
        })
        .await?;
        match written {
            ProductWrite::Written(product) => Ok(product.into()),
            ProductWrite::NotFound => Err(not_found::product()),
            ProductWrite::Blocked => Err(product_blocked()),
            ProductWrite::VersionConflict { current_version } => Err(AppError::conflict(
                "version_conflict",
                format!(
                    "the product changed since version {version} (now {current_version}); read it again and reapply your change"
                ),
            )),
        }
    }

    /// Soft delete: off the catalogue, kept for the orders that point at it.
    pub async fn delete_my_product(
        &self,
        merchant_id: &UserId,
        product_id: &ProductId,
    ) -> Result<(), AppError> {
        let written = until_uncontended(|| {
            self.store
                .withdraw_product(merchant_id, product_id, self.clock.now())
        })
        .await?;
        match written {
            ProductWrite::Written(_) => Ok(()),
            ProductWrite::NotFound
            | ProductWrite::VersionConflict { .. }
            | ProductWrite::Blocked => Err(not_found::product()),
        }
    }

    pub async fn browse(
        &self,
        merchant_id: Option<&UserId>,
        page: &PageRequest,
    ) -> Result<Page<CatalogueProduct>, AppError> {
        Ok(self
            .store
            .list_catalogue(merchant_id, page)
            .await?
            .map(CatalogueProduct::from))
    }

    pub async fn view_product(&self, product_id: &ProductId) -> Result<CatalogueProduct, AppError> {
        match self.store.get_product(product_id).await? {
            Some(product) if product.is_active() => Ok(product.into()),
            _ => Err(not_found::product()),
        }
    }
}

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use super::keys::*;
use super::table::{GSI1, GSI1_PK, GSI2, GSI2_PK, PK, SK};
use super::{from_item, n, page_of, s, timestamp, to_item, Filter, ListQuery, Store};
use crate::domain::{Product, ProductChanges, Timestamp};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

#[derive(Serialize, Deserialize)]
pub(super) struct ProductRecord {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    id: String,
    merchant_id: String,
    name: String,
    description: String,
    points_required: i64,
    stock: i64,
    is_active: bool,
    version: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<ProductRecord> for Product {
    fn from(r: ProductRecord) -> Self {
        Product {
            id: r.id,
            merchant_id: r.merchant_id,
            name: r.name,
            description: r.description,
            points_required: r.points_required,
            stock: r.stock,
            is_active: r.is_active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<&Product> for ProductRecord {
    fn from(p: &Product) -> Self {
        ProductRecord {
            pk: product_pk(&p.id),
            sk: PRODUCT_SK.into(),
            entity: "Product".into(),
            gsi1pk: merchant_products_gsi(&p.merchant_id),
            gsi1sk: p.id.clone(),
            gsi2pk: p.is_active.then(|| CATALOGUE_GSI.to_string()),
            gsi2sk: p.is_active.then(|| p.id.clone()),
            id: p.id.clone(),
            merchant_id: p.merchant_id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            points_required: p.points_required,
            stock: p.stock,
            is_active: p.is_active,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// What a merchant's conditional product write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductWrite {
    Written(Product),
    /// No such product, or another merchant's: indistinguishable on purpose.
    NotFound,
    /// The product changed since the version the merchant based the edit on.
    VersionConflict {
        current_version: i64,
    },
}

impl Store {
    pub async fn create_product(&self, product: &Product) -> Result<(), AppError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&ProductRecord::from(product))?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map_err(|err| {
                AppError::internal(format!("put product: {:?}", err.into_service_error()))
            })?;
        Ok(())
    }

    pub async fn get_product(&self, product_id: &str) -> Result<Option<Product>, AppError> {
        Ok(self
            .get_item::<ProductRecord>(product_pk(product_id), PRODUCT_SK)
            .await?
            .map(Product::from))
    }

    /// A merchant's products, active and inactive, newest first.
    pub async fn list_merchant_products(
        &self,
        merchant_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Product>, AppError> {
        let query = ListQuery {
            index: Some(GSI1),
            partition_attribute: GSI1_PK,
            partition_value: merchant_products_gsi(merchant_id),
            sort_prefix: None,
            filter: None,
            scope: format!("merchant-products:{merchant_id}"),
        };
        page_of::<ProductRecord, Product>(self.query_page(query, page).await?)
    }

    /// Active products, newest first; of one merchant when `merchant_id` is given.
    pub async fn list_catalogue(
        &self,
        merchant_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Product>, AppError> {
        let query = match merchant_id {
            None => ListQuery {
                index: Some(GSI2),
                partition_attribute: GSI2_PK,
                partition_value: CATALOGUE_GSI.into(),
                sort_prefix: None,
                filter: None,
                scope: "catalogue".into(),
            },
            Some(merchant_id) => ListQuery {
                index: Some(GSI1),
                partition_attribute: GSI1_PK,
                partition_value: merchant_products_gsi(merchant_id),
                sort_prefix: None,
                filter: Some(Filter {
                    expression: "is_active = :active",
                    names: vec![],
                    values: vec![(":active", AttributeValue::Bool(true))],
                }),
                scope: format!("catalogue:{merchant_id}"),
            },
        };
        page_of::<ProductRecord, Product>(self.query_page(query, page).await?)
    }

    /// Applies a merchant's changes if the product is theirs and still at `expected_version`. One
    /// conditional `UpdateItem`: the check and the write cannot be split by a concurrent redemption.
    pub async fn update_product(
        &self,
        merchant_id: &str,
        product_id: &str,
        expected_version: i64,
        changes: &ProductChanges,
        now: Timestamp,
    ) -> Result<ProductWrite, AppError> {
        let mut sets = vec!["version = version + :one", "updated_at = :now"];
        let mut removes = vec![];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(product_pk(product_id)))
            .key(SK, s(PRODUCT_SK))
            .condition_expression(
                "attribute_exists(#pk) AND merchant_id = :merchant AND version = :expected",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":expected", n(expected_version))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(name) = &changes.name {
            sets.push("#name = :name");
            request = request
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":name", s(name.clone()));
        }
        if let Some(description) = &changes.description {
            sets.push("description = :description");
            request = request.expression_attribute_values(":description", s(description.clone()));
        }
        if let Some(points) = changes.points_required {
            sets.push("points_required = :points");
            request = request.expression_attribute_values(":points", n(points));
        }
        if let Some(stock) = changes.stock {
            sets.push("stock = :stock");
            request = request.expression_attribute_values(":stock", n(stock));
        }
        if let Some(active) = changes.is_active {
            sets.push("is_active = :active");
            request = request.expression_attribute_values(":active", AttributeValue::Bool(active));
            if active {
                sets.push("#gsi2pk = :catalogue, #gsi2sk = id");
                request = request.expression_attribute_values(":catalogue", s(CATALOGUE_GSI));
            } else {
                removes.push("#gsi2pk, #gsi2sk");
            }
            request = request
                .expression_attribute_names("#gsi2pk", GSI2_PK)
                .expression_attribute_names("#gsi2sk", super::table::GSI2_SK);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let result = request.update_expression(expression).send().await;
        self.product_write_outcome(merchant_id, result).await
    }

    /// Takes the product off the catalogue. Already inactive is fine and changes nothing.
    pub async fn deactivate_product(
        &self,
        merchant_id: &str,
        product_id: &str,
        now: Timestamp,
    ) -> Result<ProductWrite, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(product_pk(product_id)))
            .key(SK, s(PRODUCT_SK))
            .update_expression("SET is_active = :false, version = version + :one, updated_at = :now REMOVE #gsi2pk, #gsi2sk")
            .condition_expression("attribute_exists(#pk) AND merchant_id = :merchant AND is_active = :true")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#gsi2pk", GSI2_PK)
            .expression_attribute_names("#gsi2sk", super::table::GSI2_SK)
            .expression_attribute_values(":merchant", s(merchant_id))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", timestamp(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match self.product_write_outcome(merchant_id, result).await? {
            // The only other way the condition fails for the owner: it was already inactive.
            ProductWrite::VersionConflict { .. } => match self.get_product(product_id).await? {
                Some(product) if product.merchant_id == merchant_id => {
                    Ok(ProductWrite::Written(product))
                }
                _ => Ok(ProductWrite::NotFound),
            },
            other => Ok(other),
        }
    }

    /// Reads a conditional product update's result: the new product, or why the condition failed
    /// (from the old item DynamoDB returns on failure).
    async fn product_write_outcome(
        &self,
        merchant_id: &str,
        result: Result<
            aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
            aws_sdk_dynamodb::error::SdkError<UpdateItemError>,
        >,
    ) -> Result<ProductWrite, AppError> {
        match result.map_err(|e| e.into_service_error()) {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| AppError::internal("update returned no attributes"))?;
                Ok(ProductWrite::Written(
                    from_item::<ProductRecord>(item)?.into(),
                ))
            }
            Err(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                let old: Option<ProductRecord> = failed.item.map(from_item).transpose()?;
                match old {
                    Some(old) if old.merchant_id == merchant_id => {
                        Ok(ProductWrite::VersionConflict {
                            current_version: old.version,
                        })
                    }
                    _ => Ok(ProductWrite::NotFound),
                }
            }
            Err(other) => Err(AppError::internal(format!("update product: {other:?}"))),
        }
    }
}

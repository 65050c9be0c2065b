//! The single table's definition. It lives here once; `create_table` builds the emulator's table from
//! it and a test proves `template.yaml` declares exactly the same keys, indexes and TTL attribute.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use crate::error::AppError;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
pub const GSI2: &str = "gsi2";
pub const GSI2_PK: &str = "gsi2pk";
pub const GSI2_SK: &str = "gsi2sk";
/// Epoch seconds; DynamoDB's TTL deletes the item some time after this passes, so reads must also
/// treat an item past this time as absent.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// What no index carries, on purpose: secrets that only a read of the item itself may see.
pub const INDEX_WITHHELD_ATTRIBUTES: &[&str] = &["password_hash", "pickup_code"];

/// What each index carries besides the keys (its own and the table's, which DynamoDB always
/// projects): every attribute a list read from an index turns into a value, and nothing else. Nothing
/// in [`INDEX_WITHHELD_ATTRIBUTES`] is here, so no query, backup or export of an index holds a
/// password hash or a pickup code (the user directory reads `DirectoryRecord`, which has no hash;
/// orders listed from an index have no code). A list whose record gains an attribute must add it
/// here: `the_indexes_carry_every_attribute_but_the_password` compares every indexed item with its
/// index copy. DynamoDB allows 100 such names summed over all of a table's indexes; both indexes
/// project this one list.
pub const INDEX_PROJECTED_ATTRIBUTES: &[&str] = &[
    // Every record
    "entity",
    "id",
    "version",
    "created_at",
    "updated_at",
    "status",
    // Products (a merchant's, the catalogue)
    "merchant_id",
    "name",
    "description",
    "points_required",
    "fulfilment",
    "stock_shards",
    "is_active",
    "listed",
    "blocked",
    "merchant_suspended",
    // Orders (a member's, a merchant's)
    "order_number",
    "member_id",
    "product_id",
    "product_name",
    "quantity",
    "points_cost",
    "promotional_points",
    "pickup_expires_at",
    "shipping",
    "carrier",
    "tracking_number",
    "shipped_at",
    // Pickup codes' guards (the pickups due for expiry), without the code
    "order_id",
    // Payments (a member's, the open ones reconciliation walks)
    "merchant_trade_no",
    "amount",
    "points",
    "trade_no",
    "payment_date",
    "paid_at",
    "last_gateway_message",
    "failure_reason",
    "attempt_of",
    "attempts",
    "paid_attempts",
    "opened_at",
    // Users (the operators' directory), without `password_hash`
    "username",
    "email",
    "role",
    "session_epoch",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// `INCLUDE` projection: these non-key attributes, never `ALL`.
    pub projected: &'static [&'static str],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// Every key attribute of the table and its indexes; all are strings.
    pub string_attributes: Vec<&'static str>,
    /// Global secondary indexes; each projects the keys and `projected`.
    pub indexes: Vec<IndexDefinition>,
    pub ttl_attribute: &'static str,
    /// The table's stream (`NEW_AND_OLD_IMAGES`): an order's change before and after, which the
    /// webhook dispatcher turns into events.
    pub stream_view_type: &'static str,
}

pub fn table_definition() -> TableDefinition {
    TableDefinition {
        partition_key: PK,
        sort_key: SK,
        string_attributes: vec![PK, SK, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK],
        indexes: vec![
            IndexDefinition {
                name: GSI1,
                partition_key: GSI1_PK,
                sort_key: GSI1_SK,
                projected: INDEX_PROJECTED_ATTRIBUTES,
            },
            IndexDefinition {
                name: GSI2,
                partition_key: GSI2_PK,
                sort_key: GSI2_SK,
                projected: INDEX_PROJECTED_ATTRIBUTES,
            },
        ],
        ttl_attribute: TTL_ATTRIBUTE,
        stream_view_type: "NEW_AND_OLD_IMAGES",
    }
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, AppError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(AppError::internal)
}

/// Creates the table (on-demand, as in `template.yaml`) and enables TTL, unless it already exists.
pub async fn ensure_table(client: &Client, table_name: &str) -> Result<(), AppError> {
    let definition = table_definition();
    let exists = match client.describe_table().table_name(table_name).send().await {
        Ok(_) => true,
        Err(err) => match err.into_service_error() {
            aws_sdk_dynamodb::operation::describe_table::DescribeTableError::ResourceNotFoundException(_) => false,
            other => return Err(AppError::internal_during("describe table", other)),
        },
    };
    if exists {
        return ensure_stream(client, table_name).await;
    }

    let mut create = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(stream_specification(&definition)?)
        .key_schema(key(definition.partition_key, KeyType::Hash)?)
        .key_schema(key(definition.sort_key, KeyType::Range)?);
    for attribute in &definition.string_attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(*attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(AppError::internal)?,
        );
    }
    for index in &definition.indexes {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key, KeyType::Hash)?)
                .key_schema(key(index.sort_key, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            index.projected.iter().map(|a| a.to_string()).collect(),
                        ))
                        .build(),
                )
                .build()
                .map_err(AppError::internal)?,
        );
    }
    if let Err(err) = create.send().await {
        // Two processes starting at once may both try; the loser's table already exists.
        let service = err.into_service_error();
        if !matches!(
            service,
            aws_sdk_dynamodb::operation::create_table::CreateTableError::ResourceInUseException(_)
        ) {
            return Err(AppError::internal_during("create table", service));
        }
    }
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(definition.ttl_attribute)
                .enabled(true)
                .build()
                .map_err(AppError::internal)?,
        )
        .send()
        .await
        .map_err(|err| AppError::internal_during("enable TTL", err.into_service_error()))?;
    Ok(())
}

fn stream_specification(definition: &TableDefinition) -> Result<StreamSpecification, AppError> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(definition.stream_view_type))
        .build()
        .map_err(AppError::internal)
}

/// A table made before it had a stream (a local data directory from an earlier version) gets one.
async fn ensure_stream(client: &Client, table_name: &str) -> Result<(), AppError> {
    let described = client
        .describe_table()
        .table_name(table_name)
        .send()
        .await
        .map_err(|err| AppError::internal_during("describe table", err.into_service_error()))?;
    let enabled = described
        .table()
        .and_then(|t| t.stream_specification())
        .is_some_and(|s| s.stream_enabled());
    if enabled {
        return Ok(());
    }
    client
        .update_table()
        .table_name(table_name)
        .stream_specification(stream_specification(&table_definition())?)
        .send()
        .await
        .map_err(|err| AppError::internal_during("enable the stream", err.into_service_error()))?;
    Ok(())
}

//! The one DynamoDB store. Every key, attribute name, condition expression and transaction of the
//! single table lives under this module; callers see domain types and typed outcomes.

mod addresses;
mod adjustments;
mod admin;
mod capacity;
mod credits;
pub mod cursor;
mod deliveries;
mod due;
mod gateway_records;
mod gift_expiry;
mod guards;
mod idempotency;
#[cfg(any(test, feature = "test-support"))]
mod inspection;
mod invoice_preferences;
mod invoices;
mod job_lease;
mod keys;
mod lists;
mod login_limits;
mod open_recharges;
mod order_lifecycle;
mod orders;
mod payments;
mod pickups;
mod points;
mod product_edits;
mod product_flags;
mod products;
mod query_slot;
mod recharges;
mod refunds;
mod rekey;
mod settlements;
mod shard_hints;
mod slots;
mod spread_lists;
pub mod table;
mod tokens;
mod transact;
mod users;
mod webhooks;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use rand::Rng;

use crate::config::Config;
use crate::error::AppError;

pub use addresses::{AddressSave, SavedAddress};
pub use adjustments::{AdjustOutcome, AdjustmentReads};
pub use admin::{AdminWrite, UserSearch};
pub use credits::CreditAttempt;
pub use deliveries::{DeliveryStep, Receipt};
pub use due::DueWork;
pub use gateway_records::{GatewayRecord, DEFAULT_EVIDENCE_RETENTION_DAYS};
pub use gift_expiry::{ExpiringGift, GiftExpiry};
pub use idempotency::{IdempotencyClaim, IdempotentOutcome};
pub use invoices::InvoiceStep;
pub use job_lease::Lease;
pub use login_limits::{LoginCounter, Reservation};
pub use order_lifecycle::{CancelOutcome, CompleteOutcome, OrderSearch, SaleWrites};
pub use orders::{PlaceOutcome, RedemptionReads};
pub use payments::{AttemptOutcome, Expiry, PaymentCreated};
pub use pickups::DuePickup;
pub use points::AccountSnapshot;
pub use product_edits::{ProductWrite, StockMove};
pub use products::{ProductStock, ShardState};
pub use query_slot::QuerySlot;
pub use recharges::FirstOpening;
pub use refunds::{RefundAlso, RefundRequestOutcome, RefundRequestReads, RefundSource, RefundStep};
pub use settlements::{
    statement_id, AddLines, CompletedCancel, PayoutAccount, Statement, StatementState,
};
pub use tokens::{RotateOutcome, Successor};
pub use users::RegisterOutcome;
pub use webhooks::{order_change, DueDelivery, DueQueue, EndpointSave, OrderChange};

pub(crate) use lists::{page_of, Filter, ListQuery};
pub(crate) use shard_hints::ShardHint;
pub(crate) use transact::{dynamo_failure, TransactionAttempt};

type Item = HashMap<String, AttributeValue>;

/// How many times one `BatchGetItem` asks again for keys DynamoDB left unprocessed (throttling)
/// before the read gives up with 503. Completing a single read is the store's job; retrying a
/// *write* is the service's (see `crate::services::retry`).
const MAX_BATCH_READ_ATTEMPTS: u32 = 6;
/// A list request examines at most this many items per item of its page (limit + 1).
pub const EXAMINE_PER_PAGE_ITEM: usize = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(10);
const BACKOFF_CAP: Duration = Duration::from_millis(400);

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    cursors: cursor::CursorCodec,
    /// How long a payment's gateway records are kept (TTL), in days.
    evidence_retention_days: i64,
    /// What this process last saw of each product's stock shards (see [`ShardHint`]).
    shard_hints: std::sync::Arc<std::sync::Mutex<HashMap<String, ShardHint>>>,
}

/// One attempt at a write whose only failure worth retrying is contention: done (with what it
/// produced), or cancelled by a conflicting transaction or throttling, to be retried by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    Done(T),
    Contended,
}

/// Keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_MAX_KEYS: usize = 100;

impl Store {
    /// `secret` keys the pagination cursors' MAC.
    pub(crate) fn new(client: Client, table: impl Into<String>, secret: &[u8]) -> Self {
        // Every call asks for, and counts, its consumed capacity (see `capacity`). Stores derived
        // from this one (`with_http_client`) keep the interceptor with the rest of the config.
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(capacity::CapacityMeter)
                .build(),
        );
        Store {
            client,
            table: table.into(),
            cursors: cursor::CursorCodec::from_secret(secret),
            evidence_retention_days: gateway_records::DEFAULT_EVIDENCE_RETENTION_DAYS,
            shard_hints: Default::default(),
        }
    }

    /// Keeps payments' gateway records `days` (the configuration's `PAYMENT_EVIDENCE_RETENTION_DAYS`).
    pub fn with_evidence_retention(mut self, days: u32) -> Self {
        self.evidence_retention_days = i64::from(days);
        self
    }
    /// Reads `keys` (pk, sk) with strongly consistent reads, in as few `BatchGetItem` calls as
    /// DynamoDB allows (100 keys each; one call for every read in this codebase). Keys DynamoDB
    /// leaves unprocessed (throttling) are asked again after a backoff; what is still missing after
    /// that is a 503, never a silently partial answer. A key with no item is absent from the map.
    pub(crate) async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Item>, AppError> {
        self.batch_get_read(keys, true).await
    }

    /// Like [`Store::batch_get`], eventually consistent: half the read units, and what it returns
    /// may be a second stale. Only for figures shown, never for a decision (a list page's stock:
    /// a redemption reads its shards strongly consistent, and its transaction is conditioned on them).
    pub(crate) async fn batch_get_eventually(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Item>, AppError> {
        self.batch_get_read(keys, false).await
    }

    async fn batch_get_read(
        &self,
        keys: &[(String, String)],
        consistent: bool,
    ) -> Result<HashMap<(String, String), Item>, AppError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = HashMap::with_capacity(keys.len());
        let mut unique: Vec<&(String, String)> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        for chunk in unique.chunks(BATCH_GET_MAX_KEYS) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        (table::PK.to_string(), s(pk.clone())),
                        (table::SK.to_string(), s(sk.clone())),
                    ])
                })
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                if attempt > MAX_BATCH_READ_ATTEMPTS {
                    tracing::warn!(
                        keys = pending.len(),
                        "batch read still throttled after retries"
                    );
                    return Err(AppError::Unavailable {
                        retry_after_secs: 1,
                    });
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(AppError::internal)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|err| dynamo_failure("batch_get_item", err.into_service_error()))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let key = match (item.get(table::PK), item.get(table::SK)) {
                        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                            (pk.clone(), sk.clone())
                        }
                        _ => return Err(AppError::internal("batch read returned an unkeyed item")),
                    };
                    found.insert(key, item);
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    // A partly throttled batch is no failure DynamoDB counts as ThrottledRequests:
                    // the store counts it itself (an alarm watches it).
                    crate::observe::count(
                        crate::observe::Metric::BatchReadsThrottled,
                        pending.len() as f64,
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(found)
    }

    /// The table's items behind `index_items` (index copies carry only the projected attributes), in
    /// the same order, read strongly consistent in as few calls as allowed; one gone meanwhile is
    /// left out.
    pub(crate) async fn items_behind(&self, index_items: &[Item]) -> Result<Vec<Item>, AppError> {
        let keys: Vec<(String, String)> = index_items
            .iter()
            .map(refunds::item_key)
            .collect::<Result<_, _>>()?;
        let mut found = self.batch_get(&keys).await?;
        Ok(keys.iter().filter_map(|key| found.remove(key)).collect())
    }

    /// Builds the SDK client from configuration. With an endpoint override (the local emulator) the
    /// credentials are static dummies; on AWS the default provider chain (the Lambda role) applies.
    pub async fn connect(config: &Config) -> Self {
        let region = aws_config::Region::new(config.region.clone());
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
        if let Some(endpoint) = &config.dynamodb_endpoint {
            loader = loader.endpoint_url(endpoint).credentials_provider(
                aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "static"),
            );
        }
        let sdk_config = loader.load().await;
        Store::new(
            Client::new(&sdk_config),
            config.table_name.clone(),
            secrecy::ExposeSecret::expose_secret(&config.jwt_secret),
        )
    }

    /// One item by its key, read strongly consistent: the generic read every entity's getter uses.
    pub(super) async fn get_item<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(table::PK, s(pk))
            .key(table::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| dynamo_failure("get_item", err.into_service_error()))?;
        output.item.map(from_item).transpose()
    }

    /// Creates this store's table (as `template.yaml` defines it) unless it exists: the local host,
    /// `create-admin` and tests, never on AWS.
    pub async fn ensure_table(&self) -> Result<(), AppError> {
        table::ensure_table(&self.client, &self.table).await
    }

    /// The same store reached through another HTTP client (the local host's in-process emulator,
    /// a test's contention model or fault injector).
    pub fn with_http_client(
        &self,
        http_client: aws_smithy_runtime_api::client::http::SharedHttpClient,
    ) -> Store {
        let config = self
            .client
            .config()
            .to_builder()
            .http_client(http_client)
            .build();
        Store {
            client: Client::from_conf(config),
            table: self.table.clone(),
            cursors: self.cursors.clone(),
            evidence_retention_days: self.evidence_retention_days,
            shard_hints: Default::default(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Opens the connection (TLS, credentials) during Lambda init instead of on the first request.
    pub async fn warm(&self) {
        warm(&self.client, &self.table).await;
    }

    /// The store over a connection opened (and warmed) before the configuration was complete.
    pub fn over(connection: Connection, config: &Config) -> Self {
        let store = Store::new(
            connection.client,
            config.table_name.clone(),
            secrecy::ExposeSecret::expose_secret(&config.jwt_secret),
        );
        match config.dynamodb_endpoint {
            // An emulator's endpoint wants static credentials of its own.
            Some(_) => store.with_endpoint_of(config),
            None => store,
        }
    }

    fn with_endpoint_of(self, config: &Config) -> Self {
        let mut builder = self
            .client
            .config()
            .to_builder()
            .region(aws_config::Region::new(config.region.clone()));
        if let Some(endpoint) = &config.dynamodb_endpoint {
            builder = builder.endpoint_url(endpoint).credentials_provider(
                aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "static"),
            );
        }
        Store {
            client: Client::from_conf(builder.build()),
            ..self
        }
    }
}

/// A DynamoDB connection opened before the configuration is complete: a Lambda function opens it
/// (TLS, credentials) while it reads its secret, so init waits for the longer of the two, not both.
pub struct Connection {
    client: Client,
    table: String,
}

impl Connection {
    pub fn new(sdk_config: &aws_config::SdkConfig, table: &str) -> Self {
        Connection {
            client: Client::new(sdk_config),
            table: table.to_string(),
        }
    }

    pub async fn warm(&self) {
        warm(&self.client, &self.table).await;
    }
}

/// A miss on a key that never exists: the cheapest call the function's role may make, which opens
/// the connection.
async fn warm(client: &Client, table: &str) {
    let result = client
        .get_item()
        .table_name(table)
        .key(table::PK, AttributeValue::S("WARMUP".into()))
        .key(table::SK, AttributeValue::S("WARMUP".into()))
        .send()
        .await;
    if let Err(err) = result {
        tracing::warn!(error = ?err.into_service_error(), "warm-up read failed");
    }
}

/// Full jitter: a random wait up to an exponentially growing, capped ceiling.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    let millis = rand::thread_rng().gen_range(1..=ceiling.as_millis().max(1) as u64);
    Duration::from_millis(millis)
}

/// Serialises a record into an item, failing as an internal error (records are ours, so a failure
/// here is a bug, not bad input).
fn to_item<T: serde::Serialize>(record: &T) -> Result<Item, AppError> {
    serde_dynamo::to_item(record).map_err(AppError::internal)
}

fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, AppError> {
    serde_dynamo::from_item(item).map_err(AppError::internal)
}

/// A `Put` that creates the item only if no item has its key yet.
fn put_new(table: &str, item: Item) -> Result<TransactWriteItem, AppError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#pk)")
        .expression_attribute_names("#pk", table::PK)
        .build()
        .map_err(AppError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Timestamps are stored as RFC 3339 strings, as serde writes them.
fn timestamp(value: crate::domain::Timestamp) -> AttributeValue {
    s(value.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 1..20 {
            let wait = backoff(attempt);
            assert!(wait >= Duration::from_millis(1) && wait <= BACKOFF_CAP);
        }
    }
}

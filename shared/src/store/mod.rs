//! The one DynamoDB store. Every key, attribute name, condition expression and transaction of the
//! single table lives under this module; callers see domain types and typed outcomes.

mod admin;
pub mod cursor;
mod guards;
mod idempotency;
mod keys;
mod login_limits;
mod open_recharges;
mod orders;
mod payments;
mod points;
mod product_flags;
mod products;
mod query_slot;
pub mod table;
mod tokens;
mod users;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use rand::Rng;

use crate::config::Config;
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

pub use admin::{AdjustOutcome, AdjustmentReads, AdminWrite, UserSearch};
pub use idempotency::{IdempotencyClaim, IdempotentOutcome};
pub use login_limits::{LoginCounter, Reservation};
pub use orders::{CancelOutcome, CompleteOutcome, OrderSearch, PlaceOutcome, RedemptionReads};
pub use payments::{
    AttemptOutcome, CreditAttempt, Expiry, GatewayRecord, PaymentCreated, AUDIT_RETENTION_DAYS,
};
pub use points::AccountSnapshot;
pub use products::{ProductStock, ProductWrite, ShardState, StockMove};
pub use query_slot::QuerySlot;
pub use tokens::{RotateOutcome, Successor};
pub use users::RegisterOutcome;

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
    /// What this process last saw of each product's stock shards (see [`ShardHint`]).
    shard_hints: std::sync::Arc<std::sync::Mutex<HashMap<String, ShardHint>>>,
}

/// What one process remembers of a product's stock shards, to plan its next read. Only ever a
/// plan: every decision about stock is taken on a fresh consistent read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ShardHint {
    /// How many shards it has (a count only ever grows), so that a redemption reads exactly the
    /// product's shards; an unknown product is read with every shard key it could have.
    pub count: u8,
    /// Bit `i` set: shard `i` held no stock when last read (or refused an order for want of it).
    /// A redemption samples the others; when every shard is believed dry it reads them all at
    /// once, so the end of a sale (and every "sold out" after it) costs one read, not a sample
    /// followed by a full read.
    pub dry: u32,
}

impl ShardHint {
    /// Shards not believed dry.
    pub fn stocked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.count as usize).filter(|i| self.dry & (1 << i) == 0)
    }
}

/// One attempt at a write whose only failure worth retrying is contention: done (with what it
/// produced), or cancelled by a conflicting transaction or throttling, to be retried by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    Done(T),
    Contended,
}

/// One attempt at a `TransactWriteItems`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransactionAttempt {
    Committed,
    /// A condition failed: nothing was written.
    Refused(Cancelled),
    /// Cancelled by contention (another transaction on an item, or throttling): nothing was written,
    /// and the same request may succeed later. `reasons` is empty when DynamoDB gave none.
    Contended(Cancelled),
}

/// The shard hints remembered per process are bounded: past this many products the memory is
/// cleared (the next read of each product learns its shards again).
const SHARD_COUNT_MEMORY: usize = 10_000;
// A shard hint keeps one bit per shard.
const _: () = assert!(crate::domain::stock::MAX_SHARDS <= 32);
/// Keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_MAX_KEYS: usize = 100;

/// The result of a transaction that DynamoDB did not commit because a condition failed: the
/// cancellation reason code of each item, in the order the items were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cancelled {
    pub reasons: Vec<String>,
}

impl Cancelled {
    pub fn condition_failed(&self, index: usize) -> bool {
        self.reasons
            .get(index)
            .is_some_and(|code| code == "ConditionalCheckFailed")
    }

    /// Whether the item at `index` was contended (or, when DynamoDB named no item, whether any was).
    pub fn contended_at(&self, index: usize) -> bool {
        match self.reasons.get(index) {
            Some(code) => is_contention(code),
            None => self.reasons.is_empty(),
        }
    }
}

impl Store {
    /// `secret` keys the pagination cursors' MAC.
    pub(crate) fn new(client: Client, table: impl Into<String>, secret: &[u8]) -> Self {
        Store {
            client,
            table: table.into(),
            cursors: cursor::CursorCodec::from_secret(secret),
            shard_hints: Default::default(),
        }
    }

    /// What this process last saw of a product's shards, if anything.
    pub(crate) fn shard_hint(&self, product_id: &str) -> Option<ShardHint> {
        self.shard_hints
            .lock()
            .ok()
            .and_then(|hints| hints.get(product_id).copied())
    }

    pub(crate) fn known_shards(&self, product_id: &str) -> Option<u8> {
        self.shard_hint(product_id).map(|hint| hint.count)
    }

    fn update_hint(&self, product_id: &str, change: impl FnOnce(&mut ShardHint)) {
        if let Ok(mut hints) = self.shard_hints.lock() {
            if hints.len() >= SHARD_COUNT_MEMORY && !hints.contains_key(product_id) {
                hints.clear();
            }
            change(hints.entry(product_id.to_string()).or_default());
        }
    }

    pub(crate) fn remember_shards(&self, product_id: &str, shards: u8) {
        self.update_hint(product_id, |hint| hint.count = hint.count.max(shards));
    }

    /// Records the stock read (or found short) on some of a product's shards: `(index, stock)`.
    pub(crate) fn remember_stock(
        &self,
        product_id: &str,
        seen: impl IntoIterator<Item = (usize, i64)>,
    ) {
        self.update_hint(product_id, |hint| {
            for (index, stock) in seen {
                let bit = 1u32 << index.min(31);
                if stock > 0 {
                    hint.dry &= !bit;
                } else {
                    hint.dry |= bit;
                }
            }
        });
    }

    /// Reads `keys` (pk, sk) with strongly consistent reads, in as few `BatchGetItem` calls as
    /// DynamoDB allows (100 keys each; one call for every read in this codebase). Keys DynamoDB
    /// leaves unprocessed (throttling) are asked again after a backoff; what is still missing after
    /// that is a 503, never a silently partial answer. A key with no item is absent from the map.
    pub(crate) async fn batch_get(
        &self,
        keys: &[(String, String)],
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
                    .consistent_read(true)
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
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(found)
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
            shard_hints: Default::default(),
        }
    }

    /// How many items the table holds (a full `Scan` with `Select=COUNT`): how tests prove that a
    /// refused request wrote nothing.
    pub async fn item_count(&self) -> Result<i64, AppError> {
        let mut total = 0i64;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| dynamo_failure("count", err.into_service_error()))?;
            total += i64::from(page.count());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(total),
            }
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Opens the connection (TLS, credentials) during Lambda init instead of on the first request.
    /// A miss on a key that never exists is the cheapest call the function's role may make.
    pub async fn warm(&self) {
        let result = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(table::PK, AttributeValue::S("WARMUP".into()))
            .key(table::SK, AttributeValue::S("WARMUP".into()))
            .send()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = ?err.into_service_error(), "warm-up read failed");
        }
    }

    /// One `TransactWriteItems`, no retry: the service that asked decides what a contended or
    /// refused attempt means (a redemption moves to another stock shard; most writes read again
    /// and retry within their [`crate::services`] retry budget).
    ///
    /// The SDK gives each call a `ClientRequestToken` of its own and re-sends a call whose response
    /// was lost (a timeout, a 5xx) with that same token, so DynamoDB answers the replay with the first
    /// outcome instead of applying the writes twice (proved by a test that loses a response).
    pub(crate) async fn transact_once(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<TransactionAttempt, AppError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result.map_err(classify_transaction_error) {
            Ok(_) => Ok(TransactionAttempt::Committed),
            Err(TransactionFailure::Cancelled(cancelled))
                if cancelled.reasons.iter().any(|c| is_contention(c)) =>
            {
                Ok(TransactionAttempt::Contended(cancelled))
            }
            Err(TransactionFailure::Cancelled(cancelled)) => {
                Ok(TransactionAttempt::Refused(cancelled))
            }
            Err(TransactionFailure::Contention) => {
                Ok(TransactionAttempt::Contended(Cancelled { reasons: vec![] }))
            }
            Err(TransactionFailure::Other(err)) => Err(err),
        }
    }
}

/// One list read from the table or an index, newest first (descending sort key) unless
/// `ascending`.
pub(crate) struct ListQuery {
    /// `None` for the table itself.
    pub index: Option<&'static str>,
    pub partition_attribute: &'static str,
    pub partition_value: String,
    /// Sort key ascending (alphabetical lists) instead of newest first.
    pub ascending: bool,
    /// Restricts the sort key to a prefix: (attribute, prefix).
    pub sort_prefix: Option<(&'static str, String)>,
    /// An optional `FilterExpression` with its placeholders.
    pub filter: Option<Filter>,
    /// What the cursor is bound to: a cursor issued for one list is refused by any other.
    pub scope: String,
}

pub(crate) struct Filter {
    pub expression: &'static str,
    pub names: Vec<(&'static str, &'static str)>,
    pub values: Vec<(&'static str, AttributeValue)>,
}

/// The key attributes DynamoDB needs to resume a query on `index` (or the table).
fn key_attributes(index: Option<&'static str>) -> Vec<&'static str> {
    let definition = table::table_definition();
    let mut names = vec![definition.partition_key, definition.sort_key];
    if let Some(index) = definition.indexes.iter().find(|i| Some(i.name) == index) {
        names.push(index.partition_key);
        names.push(index.sort_key);
    }
    names
}

impl Store {
    /// Reads one page. It asks for one item more than the page holds, so `next_cursor` is `None`
    /// exactly when nothing follows. With a filter, DynamoDB examines items before filtering them, so
    /// a page is read in as few calls as it can but **never examines more than
    /// [`EXAMINE_PER_PAGE_ITEM`] × (limit + 1) items**: when that budget runs out first, the page comes
    /// back short (possibly empty) with a cursor that resumes after the last item examined. A filtered
    /// list over thousands of non-matching rows thus costs about what an unfiltered one does.
    pub(crate) async fn query_page(
        &self,
        query: ListQuery,
        page: &PageRequest,
    ) -> Result<Page<Item>, AppError> {
        let mut start = match &page.cursor {
            Some(cursor) => Some(self.cursors.decode(&query.scope, cursor)?),
            None => None,
        };
        if let Some(start) = &start {
            // A genuine cursor of this scope always points into the queried partition.
            if start.get(query.partition_attribute) != Some(&s(query.partition_value.clone())) {
                return Err(cursor::invalid_cursor());
            }
        }
        let budget = EXAMINE_PER_PAGE_ITEM * (page.limit + 1);
        let mut examined = 0usize;
        let mut items: Vec<Item> = Vec::with_capacity(page.limit + 1);
        loop {
            let wanted = page.limit + 1 - items.len();
            // Unfiltered, every item examined is returned: ask for exactly what the page needs.
            // Filtered, ask for the whole remaining budget at once (one call in the common case).
            let limit = if query.filter.is_some() {
                budget.saturating_sub(examined).max(1)
            } else {
                wanted
            };
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(query.index.map(str::to_string))
                .key_condition_expression(if query.sort_prefix.is_some() {
                    "#pk = :pk AND begins_with(#sk, :prefix)"
                } else {
                    "#pk = :pk"
                })
                .expression_attribute_names("#pk", query.partition_attribute)
                .expression_attribute_values(":pk", s(query.partition_value.clone()))
                .scan_index_forward(query.ascending)
                .limit(limit.min(i32::MAX as usize) as i32)
                .set_exclusive_start_key(start.take());
            if let Some((attribute, prefix)) = &query.sort_prefix {
                request = request
                    .expression_attribute_names("#sk", *attribute)
                    .expression_attribute_values(":prefix", s(prefix.clone()));
            }
            if let Some(filter) = &query.filter {
                request = request.filter_expression(filter.expression);
                for (placeholder, name) in &filter.names {
                    request = request.expression_attribute_names(*placeholder, *name);
                }
                for (placeholder, value) in &filter.values {
                    request = request.expression_attribute_values(*placeholder, value.clone());
                }
            }
            let output = request
                .send()
                .await
                .map_err(|err| dynamo_failure("query", err.into_service_error()))?;
            examined += output.scanned_count.max(0) as usize;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if items.len() > page.limit || start.is_none() || examined >= budget {
                break;
            }
        }
        self.finish_page(
            items,
            page.limit,
            &key_attributes(query.index),
            start,
            &query.scope,
        )
    }

    /// A page from what a list read gathered (`limit + 1` items at most, or fewer when the examine
    /// budget ran out at `start`): the extra item proves more follow, so the cursor resumes after
    /// the page's last item (named by `key_names`); a budget that ran out resumes after the last
    /// item examined; otherwise the list is done.
    fn finish_page(
        &self,
        mut items: Vec<Item>,
        limit: usize,
        key_names: &[&str],
        start: Option<Item>,
        scope: &str,
    ) -> Result<Page<Item>, AppError> {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            let last = items
                .last()
                .ok_or_else(|| AppError::internal("empty page with more"))?;
            let key: Item = key_names
                .iter()
                .filter_map(|name| last.get(*name).map(|v| (name.to_string(), v.clone())))
                .collect();
            Some(self.cursors.encode(scope, &key)?)
        } else if let Some(resume) = start {
            Some(self.cursors.encode(scope, &resume)?)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

impl Store {
    /// One page of a whole-table `Scan` keeping only items `filter` matches, under the same budget
    /// as [`Store::query_page`]: at most [`EXAMINE_PER_PAGE_ITEM`] × (limit + 1) items examined per
    /// page, so a page may come back short with a cursor. For operators' lists that no index serves
    /// (all orders of every merchant); table order, not time order.
    pub(crate) async fn scan_page(
        &self,
        filter: Filter,
        scope: &str,
        page: &PageRequest,
    ) -> Result<Page<Item>, AppError> {
        let mut start = match &page.cursor {
            Some(cursor) => Some(self.cursors.decode(scope, cursor)?),
            None => None,
        };
        let budget = EXAMINE_PER_PAGE_ITEM * (page.limit + 1);
        let mut examined = 0usize;
        let mut items: Vec<Item> = Vec::with_capacity(page.limit + 1);
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(filter.expression)
                .limit(
                    budget
                        .saturating_sub(examined)
                        .max(1)
                        .min(i32::MAX as usize) as i32,
                )
                .set_exclusive_start_key(start.take());
            for (placeholder, name) in &filter.names {
                request = request.expression_attribute_names(*placeholder, *name);
            }
            for (placeholder, value) in &filter.values {
                request = request.expression_attribute_values(*placeholder, value.clone());
            }
            let output = request
                .send()
                .await
                .map_err(|err| dynamo_failure("scan", err.into_service_error()))?;
            examined += output.scanned_count.max(0) as usize;
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if items.len() > page.limit || start.is_none() || examined >= budget {
                break;
            }
        }
        self.finish_page(items, page.limit, &[table::PK, table::SK], start, scope)
    }
}

enum TransactionFailure {
    Cancelled(Cancelled),
    Contention,
    Other(AppError),
}

fn is_contention(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
    )
}

fn classify_transaction_error(err: SdkError<TransactWriteItemsError>) -> TransactionFailure {
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            TransactionFailure::Cancelled(Cancelled {
                reasons: cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|reason| reason.code().unwrap_or("None").to_string())
                    .collect(),
            })
        }
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_) => TransactionFailure::Contention,
        other => TransactionFailure::Other(dynamo_failure("transact_write_items", other)),
    }
}

/// A failed DynamoDB call as this service's error. DynamoDB refuses a key or an item over its size
/// limits (a partition key over 2,048 bytes, sort keys over 1,024, an item over 400 KB) with a
/// `ValidationException` that names the size: what makes a value that long is what a client sent,
/// so it is a 400 (`value_too_long`), never a 500. The domain checks lengths first (on the canonical
/// form, in bytes); this is the net under them. Any other failure is ours: 500, cause kept.
pub(crate) fn dynamo_failure<E>(during: &'static str, err: E) -> AppError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code() == Some("ValidationException") && err.message().is_some_and(is_size_limit) {
        tracing::warn!(during, error = %err, "DynamoDB refused a value over its size limits");
        return AppError::bad_request(
            "value_too_long",
            "a value in the request is longer than the service can store",
        );
    }
    AppError::internal_during(during, err)
}

/// Whether a `ValidationException`'s message is DynamoDB's size refusal ("Size of hashkey has
/// exceeded the maximum size limit of 2048 bytes", "Aggregated size of all range keys has exceeded
/// the size limit of 1024 bytes", "Item size has exceeded the maximum allowed size", ...).
fn is_size_limit(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("size") && message.contains("exceeded")
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

/// A page of raw items as domain values, through their record type.
fn page_of<R, T>(page: Page<Item>) -> Result<Page<T>, AppError>
where
    R: serde::de::DeserializeOwned + Into<T>,
{
    let items = page
        .items
        .into_iter()
        .map(|item| from_item::<R>(item).map(Into::into))
        .collect::<Result<Vec<T>, _>>()?;
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
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

    #[test]
    fn dynamodbs_size_refusals_are_told_from_other_validation_errors() {
        assert!(is_size_limit(
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of 2048 bytes"
        ));
        assert!(is_size_limit(
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
        ));
        assert!(is_size_limit(
            "Item size has exceeded the maximum allowed size"
        ));
        assert!(!is_size_limit(
            "Invalid UpdateExpression: An expression attribute value used in expression is not defined"
        ));
    }

    #[test]
    fn cancellation_reasons_are_read_by_index() {
        let cancelled = Cancelled {
            reasons: vec!["None".into(), "ConditionalCheckFailed".into()],
        };
        assert!(!cancelled.condition_failed(0));
        assert!(cancelled.condition_failed(1));
        assert!(!cancelled.condition_failed(7));
    }
}

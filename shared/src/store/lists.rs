//! Lists: one page of a query or a scan, bounded in what it examines, with a tamper-proof cursor.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{cursor, dynamo_failure, from_item, s, table, Item, Store, EXAMINE_PER_PAGE_ITEM};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

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

impl Filter {
    /// `request` with this filter and its placeholders.
    pub(crate) fn on_query(&self, mut request: QueryFluentBuilder) -> QueryFluentBuilder {
        request = request.filter_expression(self.expression);
        for (placeholder, name) in &self.names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in &self.values {
            request = request.expression_attribute_values(*placeholder, value.clone());
        }
        request
    }

    /// `request` with this filter and its placeholders.
    pub(crate) fn on_scan(&self, mut request: ScanFluentBuilder) -> ScanFluentBuilder {
        request = request.filter_expression(self.expression);
        for (placeholder, name) in &self.names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in &self.values {
            request = request.expression_attribute_values(*placeholder, value.clone());
        }
        request
    }
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
                request = filter.on_query(request);
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
            request = filter.on_scan(request);
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

impl Store {
    /// Every item of the whole table that `filter` keeps (all of them without one), read
    /// consistently: for the local host's one-off backfills and for test support, never for a
    /// request.
    pub(crate) async fn scan_every(&self, filter: Option<&Filter>) -> Result<Vec<Item>, AppError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some(filter) = filter {
                request = filter.on_scan(request);
            }
            let page = request
                .send()
                .await
                .map_err(|err| dynamo_failure("scan", err.into_service_error()))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }
}

/// A page of raw items as domain values, through their record type.
pub(crate) fn page_of<R, T>(page: Page<Item>) -> Result<Page<T>, AppError>
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

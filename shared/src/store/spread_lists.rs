//! Lists whose index entries are spread over several partitions (the catalogue, one merchant's
//! orders; see `keys::CATALOGUE_PARTITIONS`), read back as one list, newest first.
//!
//! Each partition is read in sort-key order, and the pages are merged. An item is only returned
//! once every partition has been read down to it, so nothing is skipped or returned twice: the
//! partition read least deep (its *frontier*, the last sort key it examined, is the highest) bounds
//! what the page may hold, and it alone is read further until the page is full. The first round asks
//! each partition for about its share of the page, so a page costs about the same read units as an
//! unspread one, spread over the partitions. The cursor is the last sort key the page covered: sort
//! keys are unique ids, so one value resumes every partition.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;

use super::lists::Filter;
use super::{dynamo_failure, s, Item, Store, EXAMINE_PER_PAGE_ITEM};
use crate::error::AppError;
use crate::pagination::{Page, PageRequest};

/// One list over an index whose partition key is spread: `partitions` are every value it takes.
pub(crate) struct SpreadQuery {
    pub index: &'static str,
    pub partition_attribute: &'static str,
    pub sort_attribute: &'static str,
    pub partitions: Vec<String>,
    pub filter: Option<Filter>,
    /// What the cursor is bound to: a cursor issued for one list is refused by any other.
    pub scope: String,
}

/// The cursor's one field: the sort key the next page starts below.
const AFTER: &str = "after";

/// One partition's reading so far.
struct Lane {
    partition: String,
    /// Matching items read and not yet returned, in descending sort key order.
    items: Vec<Item>,
    start: Option<Item>,
    /// The lowest sort key examined; `None` once the partition is read to its end.
    frontier: Option<String>,
    done: bool,
    examined: usize,
}

impl Store {
    /// Reads one page, newest first. Under a filter the same budget as [`Store::query_page`] holds
    /// (at most [`EXAMINE_PER_PAGE_ITEM`] × (limit + 1) items examined, over all partitions), so a
    /// page may come back short with a cursor.
    pub(crate) async fn query_spread_page(
        &self,
        query: SpreadQuery,
        page: &PageRequest,
    ) -> Result<Page<Item>, AppError> {
        let after = match &page.cursor {
            Some(cursor) => {
                let key = self.cursors.decode(&query.scope, cursor)?;
                match key.get(AFTER) {
                    Some(AttributeValue::S(after)) => Some(after.clone()),
                    _ => return Err(super::cursor::invalid_cursor()),
                }
            }
            None => None,
        };
        let wanted = page.limit + 1;
        let budget = EXAMINE_PER_PAGE_ITEM * wanted;
        let share = if query.filter.is_some() {
            budget.div_ceil(query.partitions.len())
        } else {
            // About each partition's share of the page, and one more so that a partition holding
            // a little more than its share rarely needs a second read.
            wanted.div_ceil(query.partitions.len()) + 1
        };
        let mut lanes: Vec<Lane> = query
            .partitions
            .iter()
            .map(|partition| Lane {
                partition: partition.clone(),
                items: Vec::new(),
                start: None,
                frontier: None,
                done: false,
                examined: 0,
            })
            .collect();
        try_join_all(
            lanes
                .iter_mut()
                .map(|lane| self.read_lane(&query, after.as_deref(), lane, share)),
        )
        .await?;
        loop {
            let boundary = boundary(&lanes);
            let covered = lanes
                .iter()
                .flat_map(|lane| &lane.items)
                .filter(|item| covers(boundary.as_deref(), &query, item))
                .count();
            let examined: usize = lanes.iter().map(|lane| lane.examined).sum();
            let Some(binding) = boundary.clone() else {
                break;
            };
            if covered >= wanted || (query.filter.is_some() && examined >= budget) {
                break;
            }
            let ask = if query.filter.is_some() {
                budget - examined
            } else {
                wanted - covered
            };
            let lane = lanes
                .iter_mut()
                .find(|lane| !lane.done && lane.frontier.as_deref() == Some(binding.as_str()))
                .ok_or_else(|| AppError::internal("no partition holds the boundary"))?;
            self.read_lane(&query, after.as_deref(), lane, ask).await?;
        }

        let boundary = boundary(&lanes);
        let mut items: Vec<Item> = lanes
            .into_iter()
            .flat_map(|lane| lane.items)
            .filter(|item| covers(boundary.as_deref(), &query, item))
            .collect();
        items.sort_by(|a, b| sort_key(&query, b).cmp(sort_key(&query, a)));
        let resume_below = if items.len() > page.limit {
            items.truncate(page.limit);
            items.last().map(|last| sort_key(&query, last).to_string())
        } else {
            boundary
        };
        let next_cursor = match resume_below {
            Some(below) => {
                let key: Item = [(AFTER.to_string(), s(below))].into_iter().collect();
                Some(self.cursors.encode(&query.scope, &key)?)
            }
            None => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Reads up to `limit` more items of one partition, below `after`.
    async fn read_lane(
        &self,
        query: &SpreadQuery,
        after: Option<&str>,
        lane: &mut Lane,
        limit: usize,
    ) -> Result<(), AppError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(query.index)
            .key_condition_expression(if after.is_some() {
                "#pk = :pk AND #sk < :after"
            } else {
                "#pk = :pk"
            })
            .expression_attribute_names("#pk", query.partition_attribute)
            .expression_attribute_values(":pk", s(lane.partition.clone()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, i32::MAX as usize) as i32)
            .set_exclusive_start_key(lane.start.take());
        if let Some(after) = after {
            request = request
                .expression_attribute_names("#sk", query.sort_attribute)
                .expression_attribute_values(":after", s(after));
        }
        if let Some(filter) = &query.filter {
            request = filter.on_query(request);
        }
        let output = request
            .send()
            .await
            .map_err(|err| dynamo_failure("query", err.into_service_error()))?;
        lane.examined += output.scanned_count.max(0) as usize;
        lane.items.extend(output.items.unwrap_or_default());
        lane.frontier = match &output.last_evaluated_key {
            Some(key) => match key.get(query.sort_attribute) {
                Some(AttributeValue::S(sort)) => Some(sort.clone()),
                _ => return Err(AppError::internal("a resume key without its sort key")),
            },
            None => None,
        };
        lane.done = output.last_evaluated_key.is_none();
        lane.start = output.last_evaluated_key;
        Ok(())
    }
}

/// The highest frontier of a partition not read to its end: every partition has been examined down
/// to it, and not below. `None` when every partition is read to its end.
fn boundary(lanes: &[Lane]) -> Option<String> {
    lanes
        .iter()
        .filter(|lane| !lane.done)
        .filter_map(|lane| lane.frontier.clone())
        .max()
}

/// Whether every partition has been examined down to `item`.
fn covers(boundary: Option<&str>, query: &SpreadQuery, item: &Item) -> bool {
    boundary.is_none_or(|boundary| sort_key(query, item) >= boundary)
}

fn sort_key<'a>(query: &SpreadQuery, item: &'a Item) -> &'a str {
    match item.get(query.sort_attribute) {
        Some(AttributeValue::S(sort)) => sort,
        _ => "",
    }
}

//! Test support: reading the whole table, to prove what requests wrote (or did not), that a
//! restore copies everything, and that the indexes carry what the lists read. A full scan has no
//! place in a request, so none of this is compiled into the functions.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{dynamo_failure, table, Item, Store};
use crate::error::AppError;

impl Store {
    /// How many items the table holds (a full `Scan` with `Select=COUNT`): how tests prove that a
    /// refused request wrote nothing. Test support only: a full scan has no place in a request.
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

    /// Copies every item of this table into `target`'s, as a point-in-time restore makes a new
    /// table with the same items: how the restore runbook is exercised locally (test support).
    pub async fn copy_every_item_to(&self, target: &Store) -> Result<usize, AppError> {
        let items = self.scan_every(None).await?;
        for item in &items {
            target
                .client
                .put_item()
                .table_name(&target.table)
                .set_item(Some(item.clone()))
                .send()
                .await
                .map_err(|err| dynamo_failure("copy item", err.into_service_error()))?;
        }
        Ok(items.len())
    }

    /// Every indexed item whose copy in an index differs from what the index should carry (the
    /// item without `password_hash`): one line per difference, empty when every index is exact.
    pub async fn index_copy_differences(&self) -> Result<Vec<String>, AppError> {
        let mut differences = Vec::new();
        for item in self.scan_every(None).await? {
            for index in table::table_definition().indexes {
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                    (item.get(index.partition_key), item.get(index.sort_key))
                else {
                    continue;
                };
                let copies = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(index.name)
                    .key_condition_expression("#pk = :pk AND #sk = :sk")
                    .expression_attribute_names("#pk", index.partition_key)
                    .expression_attribute_names("#sk", index.sort_key)
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .expression_attribute_values(":sk", AttributeValue::S(sk.clone()))
                    .send()
                    .await
                    .map_err(|err| dynamo_failure("query index", err.into_service_error()))?
                    .items
                    .unwrap_or_default();
                let copy = copies.into_iter().find(|copy| {
                    copy.get(table::PK) == item.get(table::PK)
                        && copy.get(table::SK) == item.get(table::SK)
                });
                let Some(copy) = copy else {
                    differences.push(format!("{} {pk}/{sk}: no copy", index.name));
                    continue;
                };
                let carried = |name: &str| {
                    [table::PK, table::SK, index.partition_key, index.sort_key].contains(&name)
                        || index.projected.contains(&name)
                };
                let keys: Vec<&str> = table::table_definition().string_attributes;
                for name in item.keys() {
                    if !carried(name)
                        && !keys.contains(&name.as_str())
                        && !table::INDEX_WITHHELD_ATTRIBUTES.contains(&name.as_str())
                    {
                        differences.push(format!("{} {pk}/{sk}: {name} not projected", index.name));
                    }
                }
                let expected: Item = item
                    .iter()
                    .filter(|(name, _)| carried(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                if copy != expected {
                    let have: BTreeSet<&String> = copy.keys().collect();
                    let want: BTreeSet<&String> = expected.keys().collect();
                    differences.push(format!(
                        "{} {pk}/{sk}: missing {:?}, extra {:?}",
                        index.name,
                        want.difference(&have).collect::<Vec<_>>(),
                        have.difference(&want).collect::<Vec<_>>(),
                    ));
                }
            }
        }
        Ok(differences)
    }

    /// Removes `attributes` from every item whose `pk` is `pk`, as an earlier version of the code
    /// wrote them (before those attributes existed). Returns how many items it changed.
    pub async fn forget_as_earlier_version(
        &self,
        pk: &str,
        attributes: &[&str],
    ) -> Result<usize, AppError> {
        let mut changed = 0;
        for item in self.scan_every(None).await? {
            if item.get(table::PK) != Some(&AttributeValue::S(pk.into())) {
                continue;
            }
            let Some(sk) = item.get(table::SK).cloned() else {
                continue;
            };
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(table::PK, AttributeValue::S(pk.into()))
                .key(table::SK, sk);
            let mut removes = Vec::new();
            for (i, name) in attributes.iter().enumerate() {
                let placeholder = format!("#a{i}");
                update = update.expression_attribute_names(&placeholder, *name);
                removes.push(placeholder);
            }
            update
                .update_expression(format!("REMOVE {}", removes.join(", ")))
                .send()
                .await
                .map_err(|err| dynamo_failure("forget", err.into_service_error()))?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Sets one string attribute of the item at `pk`/`sk`, as an earlier version of the code wrote
    /// it: how tests make data that predates a change of key shapes.
    pub async fn write_as_earlier_version(
        &self,
        pk: &str,
        sk: &str,
        attribute: &str,
        value: &str,
    ) -> Result<(), AppError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(table::PK, AttributeValue::S(pk.into()))
            .key(table::SK, AttributeValue::S(sk.into()))
            .update_expression("SET #a = :v")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_values(":v", AttributeValue::S(value.into()))
            .send()
            .await
            .map_err(|err| dynamo_failure("overwrite", err.into_service_error()))?;
        Ok(())
    }
}

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

    /// Moves a payment's checkout form back into the payment item and deletes its `CHECKOUT` item,
    /// as payments were stored before the form became its own item.
    pub async fn fold_checkout_as_earlier_version(&self, pk: &str) -> Result<(), AppError> {
        let key = |sk: &str| {
            std::collections::HashMap::from([
                (table::PK.to_string(), AttributeValue::S(pk.into())),
                (table::SK.to_string(), AttributeValue::S(sk.into())),
            ])
        };
        let checkout = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(super::keys::CHECKOUT_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| dynamo_failure("fold", err.into_service_error()))?
            .item
            .ok_or_else(|| AppError::internal("no checkout item"))?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(super::keys::PAYMENT_SK)))
            .update_expression("SET action_url = :url, checkout_fields = :fields");
        for (name, attribute) in [(":url", "action_url"), (":fields", "checkout_fields")] {
            let value = checkout
                .get(attribute)
                .cloned()
                .ok_or_else(|| AppError::internal("checkout item incomplete"))?;
            update = update.expression_attribute_values(name, value);
        }
        update
            .send()
            .await
            .map_err(|err| dynamo_failure("fold", err.into_service_error()))?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(super::keys::CHECKOUT_SK)))
            .send()
            .await
            .map_err(|err| dynamo_failure("fold", err.into_service_error()))?;
        Ok(())
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

/// An item's size as DynamoDB counts it for capacity
/// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
/// each attribute's name plus its value — a string or binary its bytes, a number 1 byte per two
/// significant digits plus 1, a boolean or null 1, a list or map 3 plus 1 per element plus the
/// elements (a map's keys counted as names), a set its members.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    let number = |n: &str| {
        let digits = n
            .trim_start_matches('-')
            .replace('.', "")
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len();
        digits.div_ceil(2) + 1
    };
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

impl Store {
    /// Every item's kind (its key's leading words, ids left out) and size in bytes, largest
    /// first: where a write costs more than one unit per item (test support, for the capacity
    /// bench).
    pub async fn item_sizes(&self) -> Result<Vec<(String, usize)>, AppError> {
        let kind = |key: Option<&AttributeValue>| match key {
            Some(AttributeValue::S(s)) => s.split('#').next().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        let mut sizes: Vec<(String, usize)> = self
            .scan_every(None)
            .await?
            .iter()
            .map(|item| {
                (
                    format!(
                        "{} / {}",
                        kind(item.get(table::PK)),
                        kind(item.get(table::SK))
                    ),
                    item_size(item),
                )
            })
            .collect();
        sizes.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
        Ok(sizes)
    }
}

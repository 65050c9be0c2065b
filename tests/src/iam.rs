//! A model of how AWS IAM authorises the DynamoDB calls a Lambda function makes with its execution
//! role, strict enough to fail where AWS would answer `AccessDeniedException`.
//!
//! Rules, each from AWS's public documentation:
//! - Every DynamoDB API call is authorised as the IAM action of the same name on the table's ARN,
//!   or for `Query`/`Scan` with `IndexName` on `<table ARN>/index/<name>`; a permission on the
//!   table does not cover its indexes ("DynamoDB API permissions: Actions, resources, and
//!   conditions reference"; "Using identity-based policies (IAM policies) with Amazon DynamoDB").
//! - `TransactWriteItems` and `TransactGetItems` are not IAM actions: each item is authorised as
//!   the action it performs — `Put` → `dynamodb:PutItem`, `Update` → `dynamodb:UpdateItem`,
//!   `Delete` → `dynamodb:DeleteItem`, `ConditionCheck` → `dynamodb:ConditionCheckItem`, and each
//!   `Get` of a `TransactGetItems` → `dynamodb:GetItem` ("Using IAM with DynamoDB transactions").
//! - `BatchGetItem` and `BatchWriteItem` are IAM actions of their own, on every table they name;
//!   `dynamodb:GetItem` does not grant `BatchGetItem` (same reference).
//! - A request is allowed only if some `Allow` statement names the action (or a matching
//!   `dynamodb:*` wildcard) and a resource pattern matching the ARN, where `*` matches any run of
//!   characters and `?` one character ("IAM JSON policy elements: Resource").
//!
//! The functions' policies are read from `template.yaml`, so a missing permission fails the test
//! that exercises the call instead of the first request after `sam deploy`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One permission a call needs: (IAM action, resource) with the resource written as the template
/// does relative to the table: `table` or `table/index/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub action: String,
    pub resource: String,
}

/// What a DynamoDB request (its `X-Amz-Target` operation and JSON body) must be allowed to do.
pub fn required_permissions(operation: &str, body: &[u8]) -> Vec<Permission> {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let table = |action: &str| Permission {
        action: format!("dynamodb:{action}"),
        resource: "table".into(),
    };
    match operation {
        "TransactWriteItems" => body["TransactItems"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        let object = item.as_object()?;
                        let kind = object.keys().next()?;
                        Some(table(match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            other => other,
                        }))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "TransactGetItems" => vec![table("GetItem")],
        "Query" | "Scan" => vec![Permission {
            action: format!("dynamodb:{operation}"),
            resource: match body["IndexName"].as_str() {
                Some(index) => format!("table/index/{index}"),
                None => "table".into(),
            },
        }],
        other => vec![table(other)],
    }
}

/// The DynamoDB statements of one function's execution role: (actions, resource patterns).
#[derive(Debug, Clone, Default)]
pub struct Role {
    statements: Vec<(Vec<String>, Vec<String>)>,
}

impl Role {
    /// A role of one grant (to ask whether any call used that grant).
    pub fn single(action: &str, resource: &str) -> Role {
        Role {
            statements: vec![(vec![action.to_string()], vec![resource.to_string()])],
        }
    }

    pub fn allows(&self, needed: &Permission) -> bool {
        self.statements.iter().any(|(actions, resources)| {
            actions.iter().any(|a| glob(a, &needed.action))
                && resources.iter().any(|r| glob(r, &needed.resource))
        })
    }

    /// Every (action, resource pattern) the role grants, to find grants no call uses.
    pub fn grants(&self) -> BTreeSet<(String, String)> {
        self.statements
            .iter()
            .flat_map(|(actions, resources)| {
                actions
                    .iter()
                    .flat_map(move |a| resources.iter().map(move |r| (a.clone(), r.clone())))
            })
            .collect()
    }
}

/// `*` any run of characters, `?` exactly one (IAM's wildcards); case-sensitive as ARNs are.
fn glob(pattern: &str, text: &str) -> bool {
    fn matches(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], t) || (!t.is_empty() && matches(p, &t[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches(&p, &t)
}

/// The table ARN as a template resource expression, relative to the table (`table`,
/// `table/index/*`), or `None` for another resource.
/// The ARN of the table a `TableNameOverride` names (the restore runbook's table).
const OVERRIDE_TABLE_ARN: &str =
    "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${TableNameOverride}";

fn table_resource(value: &serde_yaml::Value) -> Option<String> {
    let text = match value {
        serde_yaml::Value::Tagged(tagged) => {
            let inner = tagged.value.as_str().unwrap_or_default().to_string();
            match tagged.tag.to_string().as_str() {
                "!GetAtt" if inner == "PointsTable.Arn" => return Some("table".into()),
                "!Sub" => inner,
                // `!If [HasTableNameOverride, <the override's ARN>, <the stack's table>]`: a grant
                // must name the same resource of either table, or the override would lose (or gain)
                // a permission.
                "!If" => {
                    let branches = tagged.value.as_sequence()?;
                    let (overridden, own) = (branches.get(1)?, branches.get(2)?);
                    let own = table_resource(own)?;
                    let overridden = override_resource(overridden)?;
                    assert_eq!(
                        own, overridden,
                        "a grant names another resource when the table is overridden"
                    );
                    return Some(own);
                }
                _ => return None,
            }
        }
        serde_yaml::Value::String(s) => s.clone(),
        _ => return None,
    };
    text.strip_prefix("${PointsTable.Arn}")
        .map(|rest| format!("table{rest}"))
}

/// The resource an override branch names: `table` or `table/index/…` of the overriding table.
fn override_resource(value: &serde_yaml::Value) -> Option<String> {
    let serde_yaml::Value::Tagged(tagged) = value else {
        return None;
    };
    (tagged.tag == "!Sub")
        .then(|| tagged.value.as_str())
        .flatten()?
        .strip_prefix(OVERRIDE_TABLE_ARN)
        .map(|rest| format!("table{rest}"))
}

/// Every function's role, by binary name, from the template's `Policies`.
pub fn roles_from_template(template: &str) -> BTreeMap<String, Role> {
    let doc: serde_yaml::Value = serde_yaml::from_str(template).expect("template parses");
    let mut roles = BTreeMap::new();
    let resources = doc["Resources"].as_mapping().expect("resources");
    for resource in resources.values() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("binary")
            .to_string();
        let mut role = Role::default();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                if statement["Effect"] != "Allow" {
                    continue;
                }
                let actions: Vec<String> = statement["Action"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str())
                    .filter(|a| a.starts_with("dynamodb:"))
                    .map(str::to_string)
                    .collect();
                let targets: Vec<String> = statement["Resource"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(table_resource)
                    .collect();
                if !actions.is_empty() && !targets.is_empty() {
                    role.statements.push((actions, targets));
                }
            }
        }
        roles.insert(binary, role);
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_items_need_their_own_actions_and_indexes_their_own_resource() {
        let body = br#"{"TransactItems":[{"ConditionCheck":{}},{"Update":{}},{"Put":{}}]}"#;
        let needed = required_permissions("TransactWriteItems", body);
        let actions: Vec<&str> = needed.iter().map(|p| p.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "dynamodb:ConditionCheckItem",
                "dynamodb:UpdateItem",
                "dynamodb:PutItem"
            ]
        );
        let query = required_permissions("Query", br#"{"IndexName":"gsi2"}"#);
        assert_eq!(query[0].resource, "table/index/gsi2");
        let role = Role {
            statements: vec![(
                vec!["dynamodb:Query".into(), "dynamodb:GetItem".into()],
                vec!["table".into(), "table/index/gsi1".into()],
            )],
        };
        assert!(!role.allows(&query[0]), "gsi1 does not cover gsi2");
        assert!(!role.allows(&required_permissions("BatchGetItem", b"{}")[0]));
        assert!(role.allows(&required_permissions("GetItem", b"{}")[0]));
        assert!(glob("table/index/*", "table/index/gsi2"));
        assert!(!glob("table", "table/index/gsi2"));
    }
}

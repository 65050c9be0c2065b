//! The table the code creates and the table `template.yaml` deploys must be the same table.

use std::collections::BTreeSet;

use serde_yaml::Value;
use shared::store::table::table_definition;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("read template.yaml"))
        .expect("parse template.yaml")
}

fn key_pair(schema: &Value) -> (String, String) {
    let mut hash = String::new();
    let mut range = String::new();
    for element in schema.as_sequence().expect("key schema list") {
        let name = element["AttributeName"].as_str().unwrap().to_string();
        match element["KeyType"].as_str().unwrap() {
            "HASH" => hash = name,
            "RANGE" => range = name,
            other => panic!("unknown key type {other}"),
        }
    }
    (hash, range)
}

#[test]
fn template_yaml_declares_exactly_the_table_the_code_defines() {
    let template = template();
    let tables: Vec<&Value> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::DynamoDB::Table")
        .collect();
    assert_eq!(tables.len(), 1, "exactly one table");
    let table = tables[0];
    let props = &table["Properties"];
    let code = table_definition();

    assert_eq!(props["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        key_pair(&props["KeySchema"]),
        (code.partition_key.to_string(), code.sort_key.to_string())
    );

    let declared: BTreeSet<(String, String)> = props["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_string(),
                a["AttributeType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = code
        .string_attributes
        .iter()
        .map(|a| (a.to_string(), "S".to_string()))
        .collect();
    assert_eq!(declared, expected);

    let indexes: BTreeSet<(String, String, String, String)> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|gsi| {
            let (hash, range) = key_pair(&gsi["KeySchema"]);
            (
                gsi["IndexName"].as_str().unwrap().to_string(),
                hash,
                range,
                gsi["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> = code
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.to_string(),
                i.partition_key.to_string(),
                i.sort_key.to_string(),
                "ALL".to_string(),
            )
        })
        .collect();
    assert_eq!(indexes, expected);

    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(code.ttl_attribute)
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["Enabled"],
        Value::Bool(true)
    );
    assert_eq!(table["DeletionPolicy"], "Retain");
}

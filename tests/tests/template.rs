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

fn function_routes(template: &Value) -> BTreeSet<(String, String, String)> {
    let mut routes = BTreeSet::new();
    for resource in template["Resources"].as_mapping().unwrap().values() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("every function names its binary");
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda");
        for event in resource["Properties"]["Events"]
            .as_mapping()
            .expect("events")
            .values()
        {
            assert_eq!(event["Type"], "HttpApi");
            let props = &event["Properties"];
            routes.insert((
                binary.to_string(),
                props["Method"].as_str().unwrap().to_string(),
                props["Path"].as_str().unwrap().to_string(),
            ));
        }
    }
    routes
}

#[test]
fn every_served_route_is_declared_for_its_function_and_nothing_else_is() {
    let served: BTreeSet<(String, String, String)> = [
        ("fn-auth", fn_auth::ROUTES),
        ("fn-members", fn_members::ROUTES),
        ("fn-merchants", fn_merchants::ROUTES),
        ("fn-ecpay-callback", fn_ecpay_callback::ROUTES),
    ]
    .into_iter()
    .flat_map(|(binary, routes)| {
        routes
            .iter()
            .map(move |(method, path)| (binary.to_string(), method.to_string(), path.to_string()))
    })
    // ECPay does not follow redirects: its callback is declared without the trailing slash too.
    .chain(std::iter::once((
        "fn-ecpay-callback".to_string(),
        "POST".to_string(),
        "/api/payments/ecpay/callback".to_string(),
    )))
    .collect();
    let declared = function_routes(&template());
    let missing: Vec<_> = served.difference(&declared).collect();
    let unserved: Vec<_> = declared.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not declared in template.yaml: {missing:?}"
    );
    assert!(
        unserved.is_empty(),
        "declared in template.yaml but not served: {unserved:?}"
    );
}

#[test]
fn every_function_binary_exists_in_the_workspace_and_targets_arm64() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    let binaries: BTreeSet<String> = function_routes(&template)
        .into_iter()
        .map(|(b, _, _)| b)
        .collect();
    let expected: BTreeSet<String> = ["fn-auth", "fn-members", "fn-merchants", "fn-ecpay-callback"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(binaries, expected);
}

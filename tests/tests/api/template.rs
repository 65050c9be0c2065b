//! `template.yaml` against the code and against AWS's rules: the same table the code defines, routes
//! API Gateway accepts and that deliver every documented operation to the function serving it (by
//! the API Gateway model in `local_api::apigw`), and no secret in any function's environment.

use std::collections::BTreeSet;

use api_tests::TestApi;
use local_api::apigw::{self, Route};
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
    // The stream the webhook dispatcher reads, with the images it needs.
    assert_eq!(
        props["StreamSpecification"]["StreamViewType"],
        code.stream_view_type
    );
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

    // (name, hash key, range key, projection type, projected non-key attributes)
    type IndexShape = (String, String, String, String, BTreeSet<String>);
    let indexes: BTreeSet<IndexShape> = props["GlobalSecondaryIndexes"]
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
                gsi["Projection"]["NonKeyAttributes"]
                    .as_sequence()
                    .map(|names| {
                        names
                            .iter()
                            .map(|n| n.as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    let expected: BTreeSet<IndexShape> = code
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.to_string(),
                i.partition_key.to_string(),
                i.sort_key.to_string(),
                "INCLUDE".to_string(),
                i.projected.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(indexes, expected);
    // DynamoDB's limit: 100 projected non-key attributes summed over every index.
    let projected: usize = code.indexes.iter().map(|i| i.projected.len()).sum();
    assert!(projected <= 100, "{projected} projected attributes");
    assert!(code
        .indexes
        .iter()
        .all(|i| shared::store::table::INDEX_WITHHELD_ATTRIBUTES
            .iter()
            .all(|withheld| !i.projected.contains(withheld))));

    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(code.ttl_attribute)
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["Enabled"],
        Value::Bool(true)
    );
    // A failed first deploy removes the (empty) table it made; afterwards the table is kept.
    assert_eq!(table["DeletionPolicy"], "RetainExceptOnCreate");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
}

fn template_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("read template.yaml")
}

fn deployed_routes() -> Vec<Route> {
    apigw::routes_from_template(&template_text()).unwrap_or_else(|problems| panic!("{problems}"))
}

/// Each function binary with the (method, path template) routes its router serves.
fn served() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    local_api::routers()
        .into_iter()
        .map(|(function, router)| {
            let keys = router.keys().iter();
            (function, keys.map(|k| (k.method, k.template)).collect())
        })
        .collect()
}

/// Every (method, path) operation of the checked-in API document.
fn documented_operations() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("read docs/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("parse docs/openapi.json");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert!(operations.len() >= 25, "the document lists every operation");
    operations
}

/// A concrete path for a template: every `{param}` replaced by a plausible value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{merchant_trade_no}" => "PT20261129ABCDEF0123",
            s if s.starts_with('{') => "0b5e2c1e-7d4f-4a55-9a59-0f3c3f4f9b21",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn no_route_path_ends_in_a_slash_or_breaks_another_api_gateway_rule() {
    let routes = deployed_routes();
    assert!(!routes.is_empty());
    for route in &routes {
        if let Some(path) = &route.path {
            assert!(!path.ends_with('/'), "{} ends in '/'", route.key());
            apigw::check_route(&route.method, path).unwrap();
        }
    }
    // Exactly one catch-all, and it answers the JSON error contract (the small front door).
    let defaults: Vec<&Route> = routes.iter().filter(|r| r.path.is_none()).collect();
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].function, "fn-front-door");
}

#[test]
fn every_documented_operation_lands_on_the_function_that_serves_it_with_or_without_a_trailing_slash(
) {
    let routes = deployed_routes();
    let mut checked = 0;
    for (method, template) in documented_operations() {
        let owners: Vec<&str> = served()
            .into_iter()
            .filter(|(_, served)| served.iter().any(|(m, p)| *m == method && *p == template))
            .map(|(function, _)| function)
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "{method} {template} is served by exactly one function"
        );
        let trimmed = concrete(&template);
        let trimmed = trimmed.trim_end_matches('/');
        for path in [format!("{trimmed}/"), trimmed.to_string()] {
            let selected = apigw::select(&routes, &method, &path)
                .unwrap_or_else(|| panic!("{method} {path}: API Gateway answers Not Found"));
            assert_eq!(
                selected.route.function,
                owners[0],
                "{method} {path} reaches {} via {}",
                selected.route.function,
                selected.route.key()
            );
            checked += 1;
        }
    }
    assert!(checked >= 50);
}

#[test]
fn every_path_of_a_group_reaches_its_function_so_its_router_answers_the_error_contract() {
    let routes = deployed_routes();
    for (prefix, function) in [
        ("/api/auth/", "fn-auth"),
        ("/api/members/", "fn-members"),
        ("/api/merchants/", "fn-merchants"),
        ("/api/payments/", "fn-ecpay-callback"),
    ] {
        for rest in ["nope", "nope/", "a/b/c", "orders/x/y/z/"] {
            for method in ["GET", "POST", "PATCH", "DELETE", "HEAD"] {
                let path = format!("{prefix}{rest}");
                let selected = apigw::select(&routes, method, &path).expect("a route");
                assert_eq!(selected.route.function, function, "{method} {path}");
            }
        }
    }
    // Outside every group, the catch-all still reaches a function (never API Gateway's bare 404).
    for path in [
        "/",
        "/api",
        "/api/auth",
        "/api/docs/",
        "/api/openapi.json",
        "/favicon.ico",
    ] {
        let selected = apigw::select(&routes, "GET", path).expect("the $default route");
        assert_eq!(selected.route.key(), "$default", "{path}");
        assert_eq!(selected.route.function, "fn-front-door", "{path}");
    }
}

#[test]
fn no_secret_is_in_any_function_environment_and_each_function_may_read_only_its_secret() {
    let template = template();
    let text = template_text();
    assert!(
        !text.contains("resolve:secretsmanager"),
        "no dynamic reference puts a secret value into the environment"
    );
    let mut environments = vec![&template["Globals"]["Function"]["Environment"]["Variables"]];
    let functions: Vec<&Value> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Function")
        .collect();
    assert_eq!(functions.len(), 9);
    for function in &functions {
        environments.push(&function["Properties"]["Environment"]["Variables"]);
    }
    for variables in environments {
        if let Some(variables) = variables.as_mapping() {
            for name in variables.keys() {
                let name = name.as_str().unwrap();
                assert!(
                    !shared::secrets::SECRET_KEYS.contains(&name),
                    "{name} must come from Secrets Manager, not the environment"
                );
            }
        }
    }
    assert!(
        matches!(
            template["Globals"]["Function"]["Environment"]["Variables"]["SECRET_ID"],
            Value::Tagged(_)
        ),
        "every function is told the secret's id"
    );
    for function in functions {
        if function["Metadata"]["BuildProperties"]["Binary"] == "fn-front-door" {
            // The `$default` front door reads no secret and no table: no policy at all.
            assert!(function["Properties"].get("Policies").is_none());
            continue;
        }
        let statements: Vec<&Value> = function["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|p| p["Statement"].as_sequence().unwrap().iter())
            .collect();
        let secret_statements: Vec<&&Value> = statements
            .iter()
            .filter(|s| {
                s["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().starts_with("secretsmanager:"))
            })
            .collect();
        assert_eq!(secret_statements.len(), 1);
        let statement = secret_statements[0];
        assert_eq!(
            statement["Action"].as_sequence().unwrap(),
            &vec![Value::from("secretsmanager:GetSecretValue")]
        );
        let resources = statement["Resource"].as_sequence().unwrap();
        assert_eq!(
            resources.len(),
            1,
            "one secret, never a wildcard over all of them"
        );
        let arn = serde_yaml::to_string(&resources[0]).unwrap();
        assert!(arn.contains(":secret:${SecretName}-??????"), "{arn}");
    }
}

#[test]
fn the_log_level_is_the_codes_unless_a_parameter_sets_one() {
    let template = template();
    let rust_log = &template["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"];
    let text = serde_yaml::to_string(rust_log).unwrap();
    assert!(
        text.contains("HasLogLevel"),
        "RUST_LOG is conditional: {text}"
    );
    assert!(template["Parameters"]["EcpayEnvironment"]["Default"].is_null());
    assert_eq!(
        template["Resources"]["HttpApi"]["Properties"]["FailOnWarnings"],
        true
    );
}

#[test]
fn every_function_binary_exists_in_the_workspace_and_targets_arm64() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    let binaries: BTreeSet<String> = deployed_routes().into_iter().map(|r| r.function).collect();
    // Every group's router, and the front door (`$default`), which has no routes of its own.
    let expected: BTreeSet<String> = served()
        .into_iter()
        .map(|(binary, _)| binary.to_string())
        .chain(["fn-front-door".to_string()])
        .collect();
    assert_eq!(binaries, expected);
    // The scheduled reconciliation has no route: one schedule (one run at a time is the job's lease,
    // `one_reconciliation_run_at_a_time_and_a_dead_runs_lease_runs_out`).
    let reconcile = &template["Resources"]["ReconcileFunction"];
    assert_eq!(
        reconcile["Metadata"]["BuildProperties"]["Binary"],
        "fn-reconcile"
    );
    let schedule = &reconcile["Properties"]["Events"]["EveryFiveMinutes"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    assert_eq!(
        schedule["Properties"]["ScheduleExpression"],
        "rate(5 minutes)"
    );
}

/// The event API Gateway sends for `method rawPath` on a stage, after it matched `route_key`.
fn api_gateway_event(
    method: &str,
    raw_path: &str,
    stage: &str,
    route_key: &str,
    proxy: Option<&str>,
    token: Option<&str>,
) -> serde_json::Value {
    let mut headers =
        serde_json::json!({"host": "abc123.execute-api.ap-northeast-1.amazonaws.com"});
    if let Some(token) = token {
        headers["authorization"] = format!("Bearer {token}").into();
    }
    api_tests::fakes::http_api_event_on(
        method,
        raw_path,
        stage,
        route_key,
        proxy,
        headers,
        None,
        "apigw-req-1",
    )
}

fn lambda_request(event: serde_json::Value) -> lambda_http::Request {
    let parsed: lambda_http::request::LambdaRequest =
        serde_json::from_value(event).expect("an API Gateway v2 event");
    lambda_http::Request::from(parsed)
}

#[tokio::test]
async fn behind_a_stage_or_base_path_a_function_routes_on_the_path_api_gateway_matched() {
    let api = api_tests::TestApi::start().await;
    let (_, token, _) = api.signed_up("stagey", "MEMBER").await;

    // Stage "prod": rawPath keeps "/prod", the route key and proxy parameter do not.
    for (raw_path, proxy) in [
        ("/prod/api/members/points/", "points/"),
        ("/prod/api/members/points", "points"),
    ] {
        let req = lambda_request(api_gateway_event(
            "GET",
            raw_path,
            "prod",
            "ANY /api/members/{proxy+}",
            Some(proxy),
            Some(&token),
        ));
        let response = fn_members::handle(&api.ctx, req).await;
        assert_eq!(response.status(), 200, "{raw_path}");
        // API Gateway's request id is echoed when the client sent none.
        assert_eq!(response.headers()["x-request-id"], "apigw-req-1");
    }

    // A custom domain's base path ("/v1") on the $default stage: only the matched path counts.
    let req = lambda_request(api_gateway_event(
        "GET",
        "/v1/api/auth/me",
        "$default",
        "ANY /api/auth/{proxy+}",
        Some("me"),
        Some(&token),
    ));
    assert_eq!(fn_auth::handle(&api.ctx, req).await.status(), 200);

    // Unknown paths of a group are the group's JSON 404, wrong methods its 405 with Allow.
    let req = lambda_request(api_gateway_event(
        "GET",
        "/prod/api/members/nothing-here/",
        "prod",
        "ANY /api/members/{proxy+}",
        Some("nothing-here/"),
        Some(&token),
    ));
    let response = fn_members::handle(&api.ctx, req).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
    let req = lambda_request(api_gateway_event(
        "DELETE",
        "/prod/api/members/points/",
        "prod",
        "ANY /api/members/{proxy+}",
        Some("points/"),
        Some(&token),
    ));
    let response = fn_members::handle(&api.ctx, req).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");

    // The $default route with a named stage: the stage is not part of the path either.
    let req = lambda_request(api_gateway_event(
        "GET",
        "/prod/api/openapi.json",
        "prod",
        "$default",
        None,
        None,
    ));
    let response = fn_front_door::handle(&api.ctx.metrics, req).await;
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert!(document["paths"]["/api/members/points/"].is_object());
}

/// Every user journey once, through the host's dispatch (so each DynamoDB call is attributed to the
/// function that would make it on AWS), plus the scheduled job.
async fn every_journey_once(api: &std::sync::Arc<TestApi>) {
    use serde_json::json;
    // Auth: register, a failed and a good login, refresh, me, logout.
    let (_, operator) = api.signed_in_admin("olive").await;
    let (merchant_id, shop, _) = api.signed_up("shop", "MERCHANT").await;
    let (member_id, token) = api.member_with_points("mia", 2_000).await;
    api.login("mia", "wrong password!").await.assert_status(401);
    let session = api.login("mia", api_tests::PASSWORD).await;
    let refreshed = api
        .post(
            "/api/auth/refresh/",
            json!({"refresh": session.body["refresh"]}),
            None,
        )
        .await;
    refreshed.assert_status(200);
    api.get("/api/auth/me/", Some(&token))
        .await
        .assert_status(200);
    api.post(
        "/api/auth/logout/",
        json!({"refresh": refreshed.body["refresh"]}),
        None,
    )
    .await
    .assert_status(204);

    // Merchants: a hot product, an edit, a listing, a takedown.
    let product = api.create_hot_product(&shop, "Mug", 100, 40, 4).await;
    let id = product["id"].as_str().unwrap().to_string();
    let edited = api
        .put(
            &format!("/api/merchants/products/{id}/"),
            json!({"stock": 60, "version": product["version"]}),
            Some(&shop),
        )
        .await;
    edited.assert_status(200);
    api.get("/api/merchants/products/", Some(&shop))
        .await
        .assert_status(200);
    api.get(&format!("/api/merchants/products/{id}/"), Some(&shop))
        .await
        .assert_status(200);
    let spare = api.create_product(&shop, "Spare", 5, 1).await;
    api.delete(
        &format!("/api/merchants/products/{}/", spare["id"].as_str().unwrap()),
        Some(&shop),
    )
    .await
    .assert_status(204);

    // Members: browse, redeem (with a replayed key), cancel, and the merchant completes another.
    api.get("/api/members/products/", Some(&token))
        .await
        .assert_status(200);
    api.get(&format!("/api/members/products/{id}/"), Some(&token))
        .await
        .assert_status(200);
    let keyed = |key: &str| {
        http::Request::builder()
            .method("POST")
            .uri("/api/members/orders/")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(serde_json::to_vec(&json!({"product_id": id, "quantity": 1})).unwrap())
            .unwrap()
    };
    let placed = api.send(keyed("k-1")).await;
    placed.assert_status(201);
    api.send(keyed("k-1")).await.assert_status(201);
    let order = placed.body["id"].as_str().unwrap().to_string();
    api.post(
        &format!("/api/members/orders/{order}/cancel/"),
        json!({}),
        Some(&token),
    )
    .await
    .assert_status(200);
    let second = api.redeem(&token, &id, 1).await;
    second.assert_status(201);
    api.hand_over(&shop, &second.body).await.assert_status(200);
    let second = second.body["id"].as_str().unwrap().to_string();
    let third = api.redeem(&token, &id, 1).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/api/merchants/orders/{third}/cancel/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(200);
    // A sale to the last unit reads every shard and moves stock between them.
    let big = api.redeem(&token, &id, 15).await;
    assert!(big.status == 201 || big.status == 409, "{}", big.status);
    for path in [
        "/api/members/orders/",
        "/api/members/transactions/",
        "/api/members/payments/",
        "/api/members/points/",
    ] {
        api.get(path, Some(&token)).await.assert_status(200);
    }
    api.get(&format!("/api/members/orders/{order}/"), Some(&token))
        .await
        .assert_status(200);
    api.get("/api/merchants/orders/", Some(&shop))
        .await
        .assert_status(200);
    api.get(&format!("/api/merchants/orders/{second}/"), Some(&shop))
        .await
        .assert_status(200);

    // Payments: a checkout link opened, one recharge left open for the job and the operator.
    let checkout = api.start_recharge(&token, 300).await;
    let trade_no = checkout["merchant_trade_no"].as_str().unwrap().to_string();
    api.get(&format!("/api/members/payments/{trade_no}/"), Some(&token))
        .await
        .assert_status(200);
    let link = checkout["checkout_url"].as_str().unwrap();
    api.get(&link[link.find("/api/").unwrap()..], None)
        .await
        .assert_status(200);
    // Two more paid at ECPay whose notifications are lost: the operator reconciles one now, the
    // scheduled job finds the other.
    let mut lost = Vec::new();
    for _ in 0..2 {
        let checkout = api.start_recharge(&token, 200).await;
        let number = api.paid_without_notification(&checkout).await;
        lost.push(number);
    }
    let now = api
        .post(
            &format!("/api/admin/payments/{}/reconcile/", lost[0]),
            json!({}),
            Some(&operator),
        )
        .await;
    assert_eq!(now.body["result"], "credited");
    let report = local_api::host::as_function("fn-reconcile", fn_reconcile::run(&api.ctx))
        .await
        .unwrap();
    assert_eq!(report.credited, 1, "{report:?}");
    Box::pin(refund_journey(api, &token, &operator)).await;
    Box::pin(settlement_journey(
        api,
        &token,
        &shop,
        &merchant_id,
        &id,
        &operator,
    ))
    .await;
    Box::pin(invoice_journey(api, &token, &operator)).await;
    // Pickups: the QR code, a wrong code, and the job's pass over uncollected ones (one is due).
    api.get(
        &format!("/api/members/orders/{order}/pickup.svg"),
        Some(&token),
    )
    .await
    .assert_status(404); // cancelled above: no code to show
    let pending = api.redeem(&token, &id, 1).await;
    pending.assert_status(201);
    let pending_id = pending.body["id"].as_str().unwrap();
    api.get(
        &format!("/api/members/orders/{pending_id}/pickup.svg"),
        Some(&token),
    )
    .await
    .assert_status(200);
    api.post(
        "/api/merchants/orders/redeem-code/",
        json!({"code": "ABCDEFGH23"}),
        Some(&shop),
    )
    .await
    .assert_status(404);

    // Operators: every route.
    for path in [
        "/api/admin/users/?q=mi".to_string(),
        "/api/admin/users/?q=mia@".to_string(),
        "/api/admin/payments/".to_string(),
        "/api/admin/orders/".to_string(),
        format!("/api/admin/orders/?merchant_id={merchant_id}"),
        format!("/api/admin/orders/?member_id={member_id}&status=pending"),
        "/api/admin/audit/".to_string(),
    ] {
        api.get(&path, Some(&operator)).await.assert_status(200);
    }
    let adjust = |key: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!(
                "/api/admin/members/{member_id}/points/adjustments/"
            ))
            .header("authorization", format!("Bearer {operator}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(serde_json::to_vec(&json!({"amount": 7, "reason": "goodwill"})).unwrap())
            .unwrap()
    };
    api.send(adjust("a-1")).await.assert_status(201);
    api.send(adjust("a-1")).await.assert_status(201);
    api.post(
        &format!("/api/admin/payments/{trade_no}/reconcile/"),
        json!({}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/admin/products/{id}/deactivate/"),
        json!({"reason": "recall"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/admin/products/{id}/reinstate/"),
        json!({"reason": "recall over"}),
        Some(&operator),
    )
    .await
    .assert_status(200);
    // A member, a merchant (whose products leave sale and return) and another operator (the
    // acting one is checked still active in the same transaction).
    let (other_operator, _) = api.signed_in_admin("omar").await;
    for user in [&member_id, &merchant_id, &other_operator] {
        for verb in ["disable", "enable"] {
            api.post(
                &format!("/api/admin/users/{user}/{verb}/"),
                json!({"reason": "check"}),
                Some(&operator),
            )
            .await
            .assert_status(200);
        }
    }
    // Deliveries: an address saved and deleted, one shipped and confirmed, one shipped and lost
    // (the merchant cancels it), one cancelled by its member before it ships, the packing list.
    let (_, depot, _) = api.signed_up("depot", "MERCHANT").await;
    let parcel = api
        .post(
            "/api/merchants/products/",
            json!({"name": "Parcel", "points_required": 5, "stock": 10, "fulfilment": "delivery"}),
            Some(&depot),
        )
        .await;
    parcel.assert_status(201);
    let (_, dora) = api.member_with_points("dora", 500).await;
    let parcel = parcel.body["id"].as_str().unwrap().to_string();
    let shipping = json!({"recipient_name": "Mia", "phone": "0912345678", "postal_code": "106", "address": "Taipei"});
    let saved = api
        .post("/api/members/addresses/", shipping.clone(), Some(&dora))
        .await;
    saved.assert_status(201);
    api.get("/api/members/addresses/", Some(&dora))
        .await
        .assert_status(200);
    let deliveries: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            let placed = api
                .post(
                    "/api/members/orders/",
                    json!({"product_id": parcel, "quantity": 1, "shipping_address_id": saved.body["id"]}),
                    Some(&dora),
                )
                .await;
            placed.assert_status(201);
            ids.push(placed.body["id"].as_str().unwrap().to_string());
        }
        ids
    };
    api.delete(
        &format!(
            "/api/members/addresses/{}/",
            saved.body["id"].as_str().unwrap()
        ),
        Some(&dora),
    )
    .await
    .assert_status(204);
    for shipped in &deliveries[..2] {
        api.post(
            &format!("/api/merchants/orders/{shipped}/ship/"),
            json!({"carrier": "T-Cat", "tracking_number": "123"}),
            Some(&depot),
        )
        .await
        .assert_status(200);
    }
    api.post(
        &format!("/api/members/orders/{}/confirm-receipt/", deliveries[0]),
        json!({}),
        Some(&dora),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/merchants/orders/{}/cancel/", deliveries[1]),
        json!({}),
        Some(&depot),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/members/orders/{}/cancel/", deliveries[2]),
        json!({}),
        Some(&dora),
    )
    .await
    .assert_status(200);
    api.get(
        "/api/merchants/orders/?status=pending&fulfilment=delivery",
        Some(&depot),
    )
    .await
    .assert_status(200);
    api.get("/api/merchants/orders/export.csv", Some(&depot))
        .await
        .assert_status(200);
    let awaiting = api
        .post(
            "/api/members/orders/",
            json!({"product_id": parcel, "quantity": 1, "shipping": shipping}),
            Some(&dora),
        )
        .await;
    awaiting.assert_status(201);
    api.post(
        &format!(
            "/api/merchants/orders/{}/ship/",
            awaiting.body["id"].as_str().unwrap()
        ),
        json!({"carrier": "T-Cat", "tracking_number": "124"}),
        Some(&depot),
    )
    .await
    .assert_status(200);

    // Last (tokens expire with the clock): the job's pass over uncollected pickups, unconfirmed
    // deliveries, and (later still) the addresses kept long enough.
    api.advance_clock(std::time::Duration::from_secs(31 * 24 * 3600));
    let expired =
        local_api::host::as_function("fn-reconcile", fn_reconcile::run_fulfilment(&api.ctx))
            .await
            .unwrap();
    assert!(expired.pickups.cancelled >= 1, "{expired:?}");
    assert_eq!(expired.deliveries.completed, 1, "{expired:?}");
    // The operator's gift above (30 days to expire, as configured) ends.
    let gifts = local_api::host::as_function("fn-reconcile", fn_reconcile::run_expiry(&api.ctx))
        .await
        .unwrap();
    assert_eq!(gifts.gifts, 1, "{gifts:?}");
    // A month has ended since the journey began: the month-end run makes its statements.
    local_api::host::as_function("fn-reconcile", fn_reconcile::run_settlements(&api.ctx))
        .await
        .unwrap();
    api.advance_clock(std::time::Duration::from_secs(181 * 24 * 3600));
    let redacted =
        local_api::host::as_function("fn-reconcile", fn_reconcile::run_fulfilment(&api.ctx))
            .await
            .unwrap();
    assert_eq!(redacted.deliveries.redacted, 4, "{redacted:?}");
}

/// The refunds part of the journey (its own future: the whole journey's would overflow the stack).
async fn refund_journey(api: &std::sync::Arc<TestApi>, token: &str, operator: &str) {
    use serde_json::json;
    // Refunds: points handed back, the job returns one to the card; operators list, retry and
    // close another by hand.
    api.post(
        "/api/members/points/refunds/",
        json!({"points": 100}),
        Some(token),
    )
    .await
    .assert_status(201);
    api.get("/api/members/points/refunds/", Some(token))
        .await
        .assert_status(200);
    // Where the member's e-invoices go.
    api.put(
        "/api/members/invoice-preference/",
        json!({"kind": "donation", "love_code": "168"}),
        Some(token),
    )
    .await
    .assert_status(200);
    api.get("/api/members/invoice-preference/", Some(token))
        .await
        .assert_status(200);
    let refunded =
        local_api::host::as_function("fn-reconcile", fn_reconcile::run_refunds(&api.ctx))
            .await
            .unwrap();
    assert_eq!(refunded.refunded, 1, "{refunded:?}");
    let by_hand = api
        .post(
            "/api/members/points/refunds/",
            json!({"points": 50}),
            Some(token),
        )
        .await;
    by_hand.assert_status(201);
    let by_hand = by_hand.body["id"].as_str().unwrap().to_string();
    api.get("/api/admin/refunds/", Some(operator))
        .await
        .assert_status(200);
    api.post(
        &format!("/api/admin/refunds/{by_hand}/retry/"),
        json!({}),
        Some(operator),
    )
    .await
    .assert_status(200);
    api.post(
        &format!("/api/admin/refunds/{by_hand}/close/"),
        json!({"reference": "TRF-1"}),
        Some(operator),
    )
    .await
    .assert_status(200);
}

/// The settlement part of the journey: a commission, a payout account, a completed order's line,
/// a period closed, its statement read, exported and paid, and a completed order cancelled.
async fn settlement_journey(
    api: &std::sync::Arc<TestApi>,
    member: &str,
    shop: &str,
    merchant_id: &str,
    product: &str,
    operator: &str,
) {
    use serde_json::json;
    api.put(
        &format!("/api/admin/merchants/{merchant_id}/commission/"),
        json!({"percent": 9, "reason": "partner"}),
        Some(operator),
    )
    .await
    .assert_status(200);
    api.put(
        "/api/merchants/payout-account/",
        json!({"bank_code": "812", "account_number": "0001234567", "holder_name": "Shop"}),
        Some(shop),
    )
    .await
    .assert_status(200);
    api.get("/api/merchants/payout-account/", Some(shop))
        .await
        .assert_status(200);
    let placed = api.redeem(member, product, 1).await;
    placed.assert_status(201);
    api.hand_over(shop, &placed.body).await.assert_status(200);
    let sold = api.redeem(member, product, 1).await;
    sold.assert_status(201);
    api.hand_over(shop, &sold.body).await.assert_status(200);
    api.post(
        &format!(
            "/api/admin/orders/{}/cancel/",
            sold.body["id"].as_str().unwrap()
        ),
        json!({"reason": "not handed over"}),
        Some(operator),
    )
    .await
    .assert_status(200);
    // Hold the lines a little: a period closed "today" takes what is available by now.
    let far = shared::domain::codes::in_taipei(api.ctx.clock.now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    let closed = api
        .post(
            "/api/admin/settlements/close/",
            json!({"period_end": far}),
            Some(operator),
        )
        .await;
    closed.assert_status(200);
    for path in ["/api/merchants/settlements/".to_string()] {
        api.get(&path, Some(shop)).await.assert_status(200);
    }
    api.get("/api/admin/settlements/", Some(operator))
        .await
        .assert_status(200);
    if let Some(id) = closed.body["statements"][0]["id"].as_str() {
        api.get(&format!("/api/merchants/settlements/{id}/"), Some(shop))
            .await
            .assert_status(200);
        api.get(
            &format!("/api/merchants/settlements/{id}/export.csv"),
            Some(shop),
        )
        .await
        .assert_status(200);
        api.get(&format!("/api/admin/settlements/{id}/"), Some(operator))
            .await
            .assert_status(200);
        api.get(
            &format!("/api/admin/settlements/{id}/export.csv"),
            Some(operator),
        )
        .await
        .assert_status(200);
        api.post(
            &format!("/api/admin/settlements/{id}/failed/"),
            json!({}),
            Some(operator),
        )
        .await
        .assert_status(200);
    }
}

/// The e-invoice part of the journey (`at_redemption`): the job issues the completed orders'
/// invoices (one refused, so failed) and voids the cancelled one's; an operator lists the failed
/// one and retries it; the member lists theirs.
async fn invoice_journey(api: &std::sync::Arc<TestApi>, member: &str, operator: &str) {
    use serde_json::json;
    api.host
        .simulator
        .invoices
        .refuse_next_issue("載具號碼不存在");
    let first = local_api::host::as_function("fn-reconcile", fn_reconcile::run_invoices(&api.ctx))
        .await
        .unwrap();
    assert_eq!(first.failed, 1, "{first:?}");
    let failed = api.get("/api/admin/invoices/failed/", Some(operator)).await;
    failed.assert_status(200);
    let relate = failed.body["items"][0]["relate_number"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/api/admin/invoices/{relate}/retry/"),
        json!({}),
        Some(operator),
    )
    .await
    .assert_status(200);
    let again = local_api::host::as_function("fn-reconcile", fn_reconcile::run_invoices(&api.ctx))
        .await
        .unwrap();
    assert_eq!(again.issued, 1, "{again:?}");
    let listed = api.get("/api/members/invoices/", Some(member)).await;
    listed.assert_status(200);
    assert!(!listed.body["items"].as_array().unwrap().is_empty());
}

/// Every journey in one test is one deep future: in a debug build its frames outgrow a test
/// thread's 2 MiB, so it runs on a thread of its own with room.
#[test]
fn every_dynamodb_call_a_function_makes_is_allowed_by_its_role_and_no_grant_goes_unused() {
    std::thread::Builder::new()
        .stack_size(64 * 1024 * 1024)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(every_call_allowed_and_every_grant_used())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn every_call_allowed_and_every_grant_used() {
    let api = TestApi::start_with(|config| {
        config.payments.reconcile_after = std::time::Duration::ZERO;
        config.payments.query_spacing = std::time::Duration::from_millis(250);
        config.payments.promotional_expire_days = Some(30);
        config.invoices.mode = shared::domain::e_invoice::InvoiceMode::AtRedemption;
        config.webhooks.allow_private = true;
        config.webhooks.retry_scale = 0.001;
    })
    .await;
    api.start_webhooks();
    webhook_journey(&api).await;
    every_journey_once(&api).await;
    let roles = api_tests::iam::roles_from_template(&template_text());
    let mut used = api.dynamodb_calls.permissions();
    // Each function's init opens its connection with one GetItem on a key that never exists
    // (`Store::warm`, from `shared::lambda`), outside any request: a call its role must allow.
    // (The front door has no table, and no grant on it.)
    for (function, _) in roles.iter().filter(|(_, role)| !role.grants().is_empty()) {
        let name: &'static str = Box::leak(function.clone().into_boxed_str());
        used.push((
            name,
            api_tests::iam::Permission {
                action: "dynamodb:GetItem".into(),
                resource: "table".into(),
            },
        ));
    }
    let mut denied = BTreeSet::new();
    for (function, permission) in &used {
        let role = roles
            .get(*function)
            .unwrap_or_else(|| panic!("{function} has no role in template.yaml"));
        if !role.allows(permission) {
            denied.insert(format!(
                "{function}: {} on {}",
                permission.action, permission.resource
            ));
        }
    }
    assert!(
        denied.is_empty(),
        "AWS would answer AccessDeniedException to:\n  {}",
        denied.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    // Least privilege: every grant is used by some call of its function.
    let mut unused = BTreeSet::new();
    for (function, role) in &roles {
        for (action, resource) in role.grants() {
            let single = api_tests::iam::Role::single(&action, &resource);
            if !used.iter().any(|(f, p)| f == function && single.allows(p)) {
                unused.insert(format!("{function}: {action} on {resource}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "granted but never used (remove, or add the journey that needs it):\n  {}",
        unused.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// A merchant's webhook receiving an order's events, failing once (a retry from the due queue), a
/// test message, a replay, a rotation and a deletion: every call of the dispatcher, the sender, the
/// merchants' routes and the scheduled job's part.
async fn webhook_journey(api: &std::sync::Arc<TestApi>) {
    use serde_json::json;
    use std::sync::atomic::{AtomicU16, Ordering};
    let status = std::sync::Arc::new(AtomicU16::new(503));
    let seen = std::sync::Arc::new(AtomicU16::new(0));
    let (answer, count) = (status.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (answer, count) = (answer.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (_, shop, _) = api.signed_up("hook_shop", "MERCHANT").await;
    let (_, mia) = api.member_with_points("hook_mia", 100).await;
    let hook = api
        .post(
            "/api/merchants/webhooks/",
            json!({"url": url, "events": ["order.placed"]}),
            Some(&shop),
        )
        .await;
    hook.assert_status(201);
    let id = hook.body["id"].as_str().unwrap().to_string();
    api.get("/api/merchants/webhooks/", Some(&shop))
        .await
        .assert_status(200);
    let mug = api.create_product(&shop, "Hook mug", 10, 5).await;
    api.redeem(&mia, mug["id"].as_str().unwrap(), 1)
        .await
        .assert_status(201);
    // Down through the first retries: the fourth attempt waits 30 minutes (1.8 s here), over the
    // queue's limit at full scale only, so the due queue is exercised by the job's run below.
    for _ in 0..200 {
        if seen.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.load(Ordering::SeqCst) >= 2);
    status.store(200, Ordering::SeqCst);
    local_api::host::as_function("fn-reconcile", fn_reconcile::run_webhooks(&api.ctx))
        .await
        .unwrap();
    let deliveries = api
        .get(
            &format!("/api/merchants/webhooks/{id}/deliveries/"),
            Some(&shop),
        )
        .await;
    deliveries.assert_status(200);
    let first = deliveries.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/api/merchants/webhooks/{id}/test/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(202);
    api.post(
        &format!("/api/merchants/webhooks/{id}/deliveries/{first}/replay/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(202);
    api.post(
        &format!("/api/merchants/webhooks/{id}/rotate-secret/"),
        json!({}),
        Some(&shop),
    )
    .await
    .assert_status(200);
    for _ in 0..200 {
        if seen.load(Ordering::SeqCst) >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    api.delete(&format!("/api/merchants/webhooks/{id}/"), Some(&shop))
        .await
        .assert_status(204);
}

/// The physical names CloudFormation would otherwise generate per stack, by resource type: set to a
/// literal, the second stack in an account (or a replacement of the resource) fails on the name.
const PHYSICAL_NAMES: &[(&str, &str)] = &[
    ("AWS::Serverless::Function", "FunctionName"),
    ("AWS::Lambda::Function", "FunctionName"),
    ("AWS::DynamoDB::Table", "TableName"),
    ("AWS::IAM::Role", "RoleName"),
    ("AWS::Logs::LogGroup", "LogGroupName"),
    ("AWS::CloudWatch::Alarm", "AlarmName"),
    ("AWS::CloudWatch::Dashboard", "DashboardName"),
    ("AWS::SNS::Topic", "TopicName"),
    ("AWS::Scheduler::Schedule", "Name"),
    ("AWS::Events::Rule", "Name"),
    ("AWS::SQS::Queue", "QueueName"),
];

/// Whether `value` is a name that differs per stack or per resource: an intrinsic (`!Sub` with a
/// `${…}`, `!Ref`, `!GetAtt`, `!Join`, `!If`), never a bare literal.
fn names_per_stack(value: &Value) -> bool {
    match value {
        Value::Tagged(tagged) => match tagged.tag.to_string().as_str() {
            "!Sub" => serde_yaml::to_string(&tagged.value).is_ok_and(|text| text.contains("${")),
            _ => true,
        },
        Value::Mapping(map) => map.keys().any(|k| {
            k.as_str()
                .is_some_and(|k| k.starts_with("Fn::") || k == "Ref")
        }),
        _ => false,
    }
}

#[test]
fn no_resource_has_a_fixed_physical_name_so_a_second_stack_deploys_beside_the_first() {
    let template = template();
    let mut fixed = Vec::new();
    for (logical, resource) in template["Resources"].as_mapping().unwrap() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        for (_, property) in PHYSICAL_NAMES.iter().filter(|(t, _)| *t == kind) {
            let value = &resource["Properties"][*property];
            if !value.is_null() && !names_per_stack(value) {
                fixed.push(format!("{}.{property}", logical.as_str().unwrap()));
            }
        }
        // A SAM schedule event names its schedule after the function unless told not to.
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (event, spec) in events {
                if spec["Type"] == "ScheduleV2" {
                    let name = &spec["Properties"]["Name"];
                    let omitted = spec["Properties"]["OmitName"] == Value::Bool(true);
                    if !omitted && (name.is_null() || !names_per_stack(name)) {
                        fixed.push(format!(
                            "{}.Events.{} (set OmitName: true)",
                            logical.as_str().unwrap(),
                            event.as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    assert!(fixed.is_empty(), "fixed physical names: {fixed:?}");
    // The check itself: a literal is caught, an intrinsic is not.
    assert!(!names_per_stack(&Value::String("points-reconcile".into())));
    let sub: Value = serde_yaml::from_str("!Sub \"${AWS::StackName}-reconcile\"").unwrap();
    assert!(names_per_stack(&sub));
    let literal_sub: Value = serde_yaml::from_str("!Sub \"points-reconcile\"").unwrap();
    assert!(!names_per_stack(&literal_sub));
}

#[test]
fn reserved_concurrency_is_only_ever_a_parameter_so_a_new_account_can_deploy() {
    let template = template();
    let parameters = template["Parameters"].as_mapping().unwrap();
    for (logical, resource) in template["Resources"].as_mapping().unwrap() {
        let reserved = &resource["Properties"]["ReservedConcurrentExecutions"];
        if reserved.is_null() {
            continue;
        }
        // `!If [Condition, !Ref Parameter, !Ref AWS::NoValue]`: none unless the deployer asks.
        let text = serde_yaml::to_string(reserved).unwrap();
        let Value::Tagged(tagged) = reserved else {
            panic!("{logical:?}: a literal ReservedConcurrentExecutions ({text}) fails on accounts with a small concurrency quota");
        };
        assert_eq!(tagged.tag.to_string(), "!If", "{logical:?}: {text}");
        assert!(
            text.contains("AWS::NoValue"),
            "{logical:?}: none by default: {text}"
        );
        assert!(
            parameters
                .keys()
                .any(|p| text.contains(&format!("!Ref {}", p.as_str().unwrap()))),
            "{logical:?}: from a parameter: {text}"
        );
    }
    assert!(
        template["Resources"]["ReconcileFunction"]["Properties"]["EventInvokeConfig"]
            ["MaximumRetryAttempts"]
            == Value::Number(0.into()),
        "Scheduler invokes asynchronously: Lambda's own retries would re-run the job"
    );
}

/// The flash sale's rate measured locally (docs/contention.md: orders placed per second, the members
/// group's hottest traffic); the members group's throttle must leave it several times over.
const MEASURED_SALE_ORDERS_PER_SECOND: i64 = 447;

#[test]
fn each_route_group_is_throttled_on_its_own_and_the_members_group_carries_a_sale() {
    let template = template();
    let settings = template["Resources"]["HttpApi"]["Properties"]["RouteSettings"]
        .as_mapping()
        .expect("RouteSettings per group");
    let parameters = &template["Parameters"];
    let default_of = |value: &Value| -> i64 {
        let Value::Tagged(reference) = value else {
            panic!("a limit from a parameter, not a literal: {value:?}");
        };
        assert_eq!(reference.tag.to_string(), "!Ref");
        let name = reference.value.as_str().unwrap();
        parameters[name]["Default"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} has a default"))
    };
    for route in deployed_routes().iter().filter(|r| r.path.is_some()) {
        let key = route.key();
        let group = &settings[Value::String(key.clone())];
        assert!(!group.is_null(), "{key} has no throttling of its own");
        let (rate, burst) = (
            default_of(&group["ThrottlingRateLimit"]),
            default_of(&group["ThrottlingBurstLimit"]),
        );
        assert!(
            rate > 0 && burst >= rate,
            "{key}: rate {rate}, burst {burst}"
        );
    }
    let members = &settings[Value::String("ANY /api/members/{proxy+}".into())];
    assert!(
        default_of(&members["ThrottlingRateLimit"]) >= 4 * MEASURED_SALE_ORDERS_PER_SECOND,
        "the members group must carry a flash sale several times over"
    );
}

#[test]
fn on_call_sees_every_metric_on_the_dashboard_and_every_function_has_its_alarms() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let dashboard = &template["Resources"]["Dashboard"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let body = serde_yaml::to_string(&dashboard["Properties"]["DashboardBody"]).unwrap();
    for metric in shared::observe::Metric::ALL {
        assert!(
            body.contains(metric.name()),
            "{} not on the dashboard",
            metric.name()
        );
    }
    let functions: Vec<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, _)| name.as_str().unwrap().to_string())
        .collect();
    assert_eq!(functions.len(), 9);
    let alarms: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect();
    for function in &functions {
        assert!(
            body.contains(&format!("${{{function}}}")),
            "{function} not on the dashboard"
        );
        for metric in ["Errors", "Throttles", "Duration"] {
            let watched = alarms.iter().any(|alarm| {
                let p = &alarm["Properties"];
                p["Namespace"] == "AWS/Lambda"
                    && p["MetricName"] == metric
                    && serde_yaml::to_string(&p["Dimensions"])
                        .unwrap()
                        .contains(&format!("!Ref {function}"))
            });
            assert!(watched, "no {metric} alarm on {function}");
        }
    }
    // Every alarm on a business metric names one the code emits.
    for alarm in &alarms {
        let p = &alarm["Properties"];
        if serde_yaml::to_string(&p["Namespace"])
            .unwrap()
            .contains("PointsRedemption/")
        {
            let name = p["MetricName"].as_str().unwrap();
            assert!(
                shared::observe::Metric::ALL
                    .iter()
                    .any(|m| m.name() == name),
                "an alarm on {name}, which no code emits"
            );
        }
    }
}

#[test]
fn a_table_name_override_moves_every_function_and_every_grant_to_the_restored_table() {
    let template = template();
    let text = template_text();
    assert_eq!(
        serde_yaml::to_string(
            &template["Globals"]["Function"]["Environment"]["Variables"]["TABLE_NAME"]
        )
        .unwrap()
        .trim(),
        "!If\n- HasTableNameOverride\n- !Ref TableNameOverride\n- !Ref PointsTable"
    );
    // No grant or alarm names the stack's table alone: each is an `!If` on the override (the IAM
    // model checks that both branches name the same resource).
    for bare in [
        "- !GetAtt PointsTable.Arn\n",
        "- !Sub \"${PointsTable.Arn}",
        "Value: !Ref PointsTable\n",
    ] {
        assert!(
            !text.contains(bare),
            "{bare:?} does not follow TableNameOverride"
        );
    }
    let roles = api_tests::iam::roles_from_template(&text);
    assert_eq!(roles.len(), 9, "every function's grants parse");
    for (binary, role) in &roles {
        // Every function but the `$default` front door reads the table.
        assert_eq!(
            role.grants().is_empty(),
            binary == "fn-front-door",
            "{binary}"
        );
    }
}

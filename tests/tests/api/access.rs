//! Who may call each route, proved over every route of every function as the routers hold them: a new
//! route is swept by itself. Each is called with no token, an expired token, a token signed with
//! another key, a refresh token, every wrong role, and a disabled user of the right role; each must be
//! refused with the documented 401/403 code, and the table must not change.

use http::Method;
use serde_json::{json, Value};
use shared::auth::JwtKeys;
use shared::domain::Role;

use api_tests::{user_id, TestApi};

const SOME_ID: &str = "0b5e2c1e-7d4f-4a55-9a59-0f3c3f4f9b21";

/// A path of `template` whose parameters name something of the right shape (a user, product or order
/// id; a MerchantTradeNo), so the request is refused for who calls it and for nothing else.
fn concrete(template: &str) -> String {
    template
        .replace("{merchant_trade_no}", "PR0000000000000000X1")
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                SOME_ID
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A body the route would accept from the right caller, where the route checks the session only
/// after reading it (`MEMBER_SESSION_IN_READ`): the disabled caller must be refused for being
/// disabled, not for a malformed body.
fn body_for(template: &str) -> Value {
    match template {
        "/api/members/orders/" => json!({"product_id": SOME_ID, "quantity": 1}),
        _ => json!({"reason": "sweep", "amount": 5}),
    }
}

struct Users {
    member: (String, String),
    merchant: (String, String),
    operator: (String, String),
}

impl Users {
    fn of(&self, role: Role) -> &(String, String) {
        match role {
            Role::Member => &self.member,
            Role::Merchant => &self.merchant,
            Role::Admin => &self.operator,
        }
    }
}

#[tokio::test]
async fn every_route_of_every_function_refuses_who_may_not_call_it() {
    let api = TestApi::start().await;
    let (_, operator_token) = api.signed_in_admin("olive").await;
    let (member_id, member_token, _) = api.signed_up("mia", "MEMBER").await;
    let (merchant_id, merchant_token, _) = api.signed_up("shop", "MERCHANT").await;
    let (admin_id, _) = api.signed_in_admin("omar").await;
    let users = Users {
        member: (member_id, member_token),
        merchant: (merchant_id, merchant_token),
        operator: (
            admin_id.clone(),
            api.login("omar", api_tests::PASSWORD).await.body["access"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
    };
    // Disabled users of each role, each holding a token from before (their sessions ended).
    let mut disabled = Vec::new();
    for (name, role) in [("dora", "MEMBER"), ("dan_shop", "MERCHANT")] {
        let (id, token, _) = api.signed_up(name, role).await;
        disabled.push((Role::parse(role).unwrap(), id, token));
    }
    let (ops_id, ops_token) = api.signed_in_admin("otto").await;
    disabled.push((Role::Admin, ops_id, ops_token));
    for (_, id, _) in &disabled {
        api.post(
            &format!("/api/admin/users/{id}/disable/"),
            json!({"reason": "sweep"}),
            Some(&operator_token),
        )
        .await
        .assert_status(200);
    }
    let now = api.ctx.clock.unix_now();
    let other_keys = JwtKeys::new(
        b"another-deployment-another-secret!!",
        std::time::Duration::from_secs(900),
        std::time::Duration::from_secs(1_209_600),
    );
    let before = api.item_count().await;
    let mut swept = 0;
    for (function, router) in local_api::routers() {
        for (key, access) in router.routes() {
            if access.is_public() {
                continue;
            }
            swept += 1;
            let method = Method::from_bytes(key.method.as_bytes()).unwrap();
            let path = concrete(key.template);
            let body = (method != Method::GET).then(|| body_for(key.template));
            let route = format!("{function}: {} {}", key.method, key.template);
            let refused = |answer: api_tests::TestResponse, status: u16, code: &str, case: &str| {
                assert_eq!(
                    (answer.status.as_u16(), answer.error_code()),
                    (status, code),
                    "{route}, {case}: {}",
                    String::from_utf8_lossy(&answer.raw)
                );
            };
            // Whoever the route is for, a caller must show a valid access token of this deployment.
            let role = access.role_required().unwrap_or(Role::Member);
            let (id, _) = users.of(role);
            let expired = api
                .ctx
                .keys
                .issue_access(&user_id(id), role, 0, now - 3_600)
                .unwrap()
                .token;
            let foreign = other_keys
                .issue_access(&user_id(id), role, 0, now)
                .unwrap()
                .token;
            let refresh = api
                .ctx
                .keys
                .issue_refresh(&user_id(id), role, 0, "family", now)
                .unwrap()
                .token;
            refused(
                api.call(method.clone(), &path, body.clone(), None).await,
                401,
                "missing_token",
                "no token",
            );
            refused(
                api.call(method.clone(), &path, body.clone(), Some(&expired))
                    .await,
                401,
                "token_expired",
                "an expired token",
            );
            refused(
                api.call(method.clone(), &path, body.clone(), Some(&foreign))
                    .await,
                401,
                "invalid_token",
                "a token signed with another key",
            );
            refused(
                api.call(method.clone(), &path, body.clone(), Some(&refresh))
                    .await,
                401,
                "wrong_token_type",
                "a refresh token",
            );
            // Every role but the one the route is for.
            if let Some(required) = access.role_required() {
                for wrong in [Role::Member, Role::Merchant, Role::Admin] {
                    if wrong == required {
                        continue;
                    }
                    let (_, token) = users.of(wrong);
                    refused(
                        api.call(method.clone(), &path, body.clone(), Some(token))
                            .await,
                        403,
                        "forbidden",
                        &format!("a {wrong:?}"),
                    );
                }
            }
            // A disabled user of a role the route is for.
            for (role, _, token) in &disabled {
                if access
                    .role_required()
                    .is_some_and(|required| required != *role)
                {
                    continue;
                }
                refused(
                    api.call(method.clone(), &path, body.clone(), Some(token))
                        .await,
                    401,
                    "account_disabled",
                    &format!("a disabled {role:?}"),
                );
            }
        }
    }
    assert!(swept >= 30, "only {swept} routes swept");
    assert_eq!(
        api.item_count().await,
        before,
        "no refused request wrote anything"
    );
}

#[tokio::test]
async fn each_operations_security_in_the_document_is_its_declared_access() {
    let document: Value = serde_json::from_str(&local_api::openapi::document_json()).unwrap();
    for (function, router) in local_api::routers() {
        for (key, access) in router.routes() {
            let operation = &document["paths"][key.template][key.method.to_lowercase()];
            assert!(
                operation.is_object(),
                "{function}: {} {}",
                key.method,
                key.template
            );
            let security = operation.get("security");
            if access.is_public() {
                assert!(
                    security.is_none(),
                    "{} {} is public",
                    key.method,
                    key.template
                );
            } else {
                assert_eq!(
                    security,
                    Some(&json!([{"bearer": []}])),
                    "{} {}",
                    key.method,
                    key.template
                );
            }
        }
    }
}

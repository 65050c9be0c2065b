//! The real `fn-auth` binary, started as Lambda starts it: against a (fake) Lambda Runtime API, with
//! `SECRET_ID` and no secret in its environment, its secret in a (fake) Secrets Manager and its table
//! in the embedded DynamoDB, both reached through the SDK's standard endpoint variables. It must sign
//! a member up and in end to end and write one log line per request; with a bad secret it must refuse
//! to start, saying why without printing the secret.

// A test harness: a failed unwrap is a failed test, with the value it failed on.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_tests::fakes::{http_api_event, FakeLambdaRuntime, FakeSecretsManager, Outcome};
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const SECRET_ID: &str = "points-redemption-test";
const JWT_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";

struct Function {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Function {
    fn start(runtime_api: &str, secrets_endpoint: &str, dynamodb_endpoint: &str) -> Function {
        Self::start_with(runtime_api, secrets_endpoint, dynamodb_endpoint, &[])
    }

    fn start_with(
        runtime_api: &str,
        secrets_endpoint: &str,
        dynamodb_endpoint: &str,
        extra_env: &[(&str, &str)],
    ) -> Function {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fn-auth"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "fn-auth")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/fn-auth")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "ap-northeast-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_endpoint)
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
            .env("TABLE_NAME", "points-lambda-test")
            .env("SECRET_ID", SECRET_ID)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the fn-auth binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let pipe = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Function { child, stdout }
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn table(endpoint: &str) {
    let config = shared::Config::local(
        endpoint.to_string(),
        "points-lambda-test".into(),
        b"unused-unused-unused-unused-unused".to_vec(),
    );
    let store = shared::store::Store::connect(&config).await;
    store.ensure_table().await.expect("create the table");
}

fn json_event(method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> Value {
    let mut headers = json!({"host": "abc123.execute-api.ap-northeast-1.amazonaws.com",
                             "content-type": "application/json"});
    if let Some(token) = token {
        headers["authorization"] = format!("Bearer {token}").into();
    }
    let body = body.map(|b| b.to_string());
    http_api_event(method, path, "/api/auth", headers, body.as_deref())
}

fn response_of(outcome: Option<Outcome>) -> (u16, Value, Value) {
    match outcome {
        Some(Outcome::Response(response)) => {
            let status = response["statusCode"].as_u64().unwrap_or_default() as u16;
            let raw = response["body"].as_str().unwrap_or_default();
            let body = if response["isBase64Encoded"] == true {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap();
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            } else {
                serde_json::from_str(raw).unwrap_or(Value::Null)
            };
            (status, body, response["headers"].clone())
        }
        other => panic!("no response from the function: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_starts_from_secrets_manager_alone_and_serves_a_login_end_to_end() {
    let emulator = local_api::Emulator::in_memory().expect("emulator");
    table(emulator.endpoint()).await;
    let secrets = FakeSecretsManager::start(&[(
        SECRET_ID,
        json!({"JWT_SECRET": JWT_SECRET, "ECPAY_MERCHANT_ID": "3002607",
               "ECPAY_HASH_KEY": "pwFHCqoQZGmho4w6", "ECPAY_HASH_IV": "EkRm7iFT261dpevs"}),
    )])
    .await;
    let runtime = FakeLambdaRuntime::start().await;
    let started = Instant::now();
    let function = Function::start(&runtime.api(), secrets.endpoint(), emulator.endpoint());

    let wait = Duration::from_secs(30);
    let register = json!({"username": "lambda_amy", "email": "amy@example.com",
                          "password": "correct horse battery", "role": "MEMBER"});
    let (register_id, outcome) = runtime
        .invoke(
            json_event("POST", "/api/auth/register/", Some(register), None),
            wait,
        )
        .await;
    let (status, _, _) = response_of(outcome);
    assert_eq!(status, 201);
    let init = runtime.first_next().expect("the function asked for work") - started;
    println!("fn-auth (dev build) init with the Secrets Manager read: {init:?}");
    assert_eq!(secrets.calls(), 1, "the secret is read once, at init");

    let login = json!({"username": "lambda_amy", "password": "correct horse battery"});
    let mut login_event = json_event("POST", "/api/auth/login", Some(login), None);
    // An unsafe client id (quotes, spaces) is neither echoed nor logged: API Gateway's is used for both.
    login_event["headers"]["x-request-id"] = "evil\" id=\"forged".into();
    let login_apigw_id = login_event["requestContext"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let (login_id, outcome) = runtime.invoke(login_event, wait).await;
    let (status, tokens, headers) = response_of(outcome);
    assert_eq!(headers["x-request-id"], login_apigw_id.as_str());
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access"]
        .as_str()
        .expect("an access token")
        .to_string();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header["kid"].as_str(),
        Some(shared::auth::jwt::key_id(JWT_SECRET.as_bytes()).as_str()),
        "signed with the secret from Secrets Manager"
    );
    assert_eq!(headers["cache-control"], "no-store");

    let mut me_event = json_event("GET", "/api/auth/me/", None, Some(&access));
    me_event["headers"]["x-request-id"] = "client-trace-42".into();
    let (me_id, outcome) = runtime.invoke(me_event, wait).await;
    let (status, me, headers) = response_of(outcome);
    assert_eq!(status, 200);
    assert_eq!(me["username"], "lambda_amy");
    assert_eq!(headers["x-request-id"], "client-trace-42");
    assert_eq!(secrets.calls(), 1, "never read again per request");

    // One JSON line per request, carrying the ids, the route, the status, the latency and the user.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = function.lines();
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "{lines:#?}");
    // Every field at the top level, with the function's name and its cold start (the first only).
    let cold: Vec<&Value> = requests.iter().map(|l| &l["cold_start"]).collect();
    assert_eq!(
        cold,
        [&Value::Bool(true), &Value::Bool(false), &Value::Bool(false)]
    );
    assert!(requests.iter().all(|l| l["service"] == "fn-auth"));
    for (line, (id, route, status)) in requests.iter().zip([
        (&register_id, "POST /api/auth/register/", 201),
        (&login_id, "POST /api/auth/login/", 200),
        (&me_id, "GET /api/auth/me/", 200),
    ]) {
        assert_eq!(line["lambda_request_id"], id.as_str());
        assert!(line["apigw_request_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("apigw-")));
        assert_eq!(line["route"], route);
        assert_eq!(line["status"], status);
        assert!(line["latency_ms"].as_f64().is_some());
    }
    assert_eq!(requests[2]["request_id"], "client-trace-42");
    // The id in the response is the id in the log.
    assert_eq!(requests[1]["request_id"], login_apigw_id.as_str());
    assert!(requests[1]["client_request_id"].is_null());
    assert_eq!(requests[2]["user_id"], me["id"]);
    assert!(requests[1]["user_id"].is_null());
    assert!(
        !lines.iter().any(|l| l.contains(JWT_SECRET)),
        "the secret never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_whose_secret_is_short_missing_or_public_refuses_to_start_without_printing_it() {
    let emulator = local_api::Emulator::in_memory().expect("emulator");
    let short = "tooshort-but-secret";
    for (secrets, expected) in [
        (
            vec![(SECRET_ID, json!({"JWT_SECRET": short}))],
            "JWT_SECRET is invalid",
        ),
        (
            vec![("another-secret", json!({}))],
            "ResourceNotFoundException",
        ),
    ] {
        let secrets = FakeSecretsManager::start(&secrets).await;
        let runtime = FakeLambdaRuntime::start().await;
        let mut function = Function::start(&runtime.api(), secrets.endpoint(), emulator.endpoint());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = function.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the function did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!status.success(), "init must fail");
        assert!(runtime.first_next().is_none(), "it never asked for work");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lines = function.lines();
        let failure = lines
            .iter()
            .find(|l| l.contains("init failed"))
            .unwrap_or_else(|| panic!("no init failure line in {lines:#?}"));
        assert!(failure.contains(expected), "{failure}");
        assert!(failure.contains(SECRET_ID), "names the secret: {failure}");
        assert!(!lines.iter().any(|l| l.contains(short)), "{lines:#?}");
    }
}

#[tokio::test]
async fn with_a_secret_id_the_secret_keys_come_from_the_secret_and_never_from_the_environment() {
    let previous = "p".repeat(40);
    let secrets = FakeSecretsManager::start(&[(
        SECRET_ID,
        json!({"JWT_SECRET": JWT_SECRET, "JWT_PREVIOUS_SECRET": previous}),
    )])
    .await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ap-northeast-1"))
        .endpoint_url(secrets.endpoint())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let env = |name: &str| match name {
        "SECRET_ID" => Some(SECRET_ID.to_string()),
        // Stale plaintext values left in an environment are ignored once a secret is named.
        "JWT_SECRET" => Some("from-the-environment-from-the-environment".to_string()),
        "ECPAY_HASH_KEY" => Some("fromtheenvironment".to_string()),
        _ => None,
    };
    let config = shared::lambda::load_config(env, &sdk).await.unwrap();
    assert_eq!(config.jwt_secret.expose_secret(), JWT_SECRET.as_bytes());
    assert_eq!(
        config
            .jwt_previous_secret
            .as_ref()
            .map(|secret| secret.expose_secret()),
        Some(previous.as_bytes())
    );
    assert_ne!(
        config.payments.credentials.hash_key.expose_secret(),
        "fromtheenvironment"
    );

    // Without SECRET_ID (local runs, tests) the environment is the source.
    let env = |name: &str| match name {
        "JWT_SECRET" => Some(JWT_SECRET.to_string()),
        _ => None,
    };
    let config = shared::lambda::load_config(env, &sdk).await.unwrap();
    assert_eq!(config.jwt_secret.expose_secret(), JWT_SECRET.as_bytes());
    assert_eq!(secrets.calls(), 1);
}

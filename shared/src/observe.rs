//! What every request leaves behind, on Lambda and locally alike: one JSON log line, and — when the
//! request called DynamoDB, moved money or met contention — one CloudWatch Embedded Metric Format
//! (EMF) line. The DynamoDB capacity it consumed is on both (`dynamodb_read_units`,
//! `dynamodb_write_units`; counted by the store's `capacity` interceptor).
//!
//! Every function's `handle` and the local host's own routes go through [`serve`]. Code deeper down
//! (services, the store, `http::authenticate`) adds facts to the request it runs in through
//! [`record_user`] and [`count`], which use a task-local, so no signature has to carry a recorder.
//! Outside a request (a test calling a service directly) both are no-ops.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use crate::error::AppError;
use crate::http::{finish, matched_path, REQUEST_ID_HEADER};

/// The business metrics the functions emit. Alarms in `template.yaml` refer to these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// A redemption committed (not an idempotent replay).
    OrdersPlaced,
    /// Points added to balances by verified payments.
    PointsCredited,
    /// ECPay notifications answered with anything but `1|OK` (bad MAC, unknown trade, wrong amount).
    RechargeCallbacksRefused,
    /// `TransactWriteItems` attempts cancelled by contention or throttling and retried.
    TransactionConflictsRetried,
    /// Requests answered 503 (contention outlasted the retries).
    ServiceUnavailable,
    /// Redemptions answered 503: the flash-sale alarm.
    RedemptionsUnavailable,
    /// A payment credited after it had expired or failed (the member paid late, or ECPay's first
    /// word was "abnormal").
    PaidAfterFailure,
    /// QueryTradeInfo answers that failed verification or reported another amount.
    GatewayAnswersRefused,
    /// DynamoDB calls throttled or failed past the SDK's retries (answered 503).
    DynamoDbUnavailable,
    /// Keys a `BatchGetItem` left unprocessed (partial throttling), asked again by the store.
    BatchReadsThrottled,
    /// DynamoDB read capacity units the request consumed (tables and indexes; what on-demand bills).
    DynamoDbReadUnits,
    /// DynamoDB write capacity units the request consumed (tables and indexes).
    DynamoDbWriteUnits,
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::OrdersPlaced,
        Metric::PointsCredited,
        Metric::RechargeCallbacksRefused,
        Metric::TransactionConflictsRetried,
        Metric::ServiceUnavailable,
        Metric::RedemptionsUnavailable,
        Metric::PaidAfterFailure,
        Metric::GatewayAnswersRefused,
        Metric::DynamoDbUnavailable,
        Metric::BatchReadsThrottled,
        Metric::DynamoDbReadUnits,
        Metric::DynamoDbWriteUnits,
    ];

    /// DynamoDB capacity, counted on every request (see [`emf_document`] for why that matters).
    pub fn is_capacity(self) -> bool {
        matches!(self, Metric::DynamoDbReadUnits | Metric::DynamoDbWriteUnits)
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::OrdersPlaced => "OrdersPlaced",
            Metric::PointsCredited => "PointsCredited",
            Metric::RechargeCallbacksRefused => "RechargeCallbacksRefused",
            Metric::TransactionConflictsRetried => "TransactionConflictsRetried",
            Metric::ServiceUnavailable => "ServiceUnavailable",
            Metric::RedemptionsUnavailable => "RedemptionsUnavailable",
            Metric::PaidAfterFailure => "PaidAfterFailure",
            Metric::GatewayAnswersRefused => "GatewayAnswersRefused",
            Metric::DynamoDbUnavailable => "DynamoDbUnavailable",
            Metric::BatchReadsThrottled => "BatchReadsThrottled",
            Metric::DynamoDbReadUnits => "DynamoDbReadUnits",
            Metric::DynamoDbWriteUnits => "DynamoDbWriteUnits",
        }
    }
}

/// The process's service: the function binary it runs (`fn-members`), set once at init by
/// [`set_service`]; the local host, which serves every function, is `local-api`. A stable name for
/// logs and metric dimensions (the deployed function's own name carries the stack's suffix).
static SERVICE: OnceLock<String> = OnceLock::new();
/// Whether this process has finished a request or a job yet: the first one is its cold start.
static WARM: AtomicBool = AtomicBool::new(false);
/// The code's version, in every log line (with Lambda's published version when there is one).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Names this process's service (see [`SERVICE`]); the first call wins.
pub fn set_service(name: &str) {
    let _ = SERVICE.set(name.to_string());
}

/// Lambda's published version of this function (`AWS_LAMBDA_FUNCTION_VERSION`), read once: it does
/// not change for the life of an instance.
fn function_version() -> Option<&'static str> {
    static VERSION: OnceLock<Option<String>> = OnceLock::new();
    VERSION
        .get_or_init(|| std::env::var("AWS_LAMBDA_FUNCTION_VERSION").ok())
        .as_deref()
}

fn service() -> &'static str {
    SERVICE.get().map(String::as_str).unwrap_or("local-api")
}

/// Whether this is the process's first request (or job): true once, then false.
fn cold_start() -> bool {
    !WARM.swap(true, Ordering::Relaxed)
}

/// The route whose 503s are counted as [`Metric::RedemptionsUnavailable`].
pub const REDEMPTION_ROUTE: &str = "POST /api/members/orders/";

/// The default CloudWatch namespace (`METRICS_NAMESPACE` overrides it; the template sets one per stack).
pub const DEFAULT_NAMESPACE: &str = "PointsRedemption";

/// Where EMF documents go: stdout on Lambda (CloudWatch Logs extracts the metrics, no API call), or
/// a buffer a test reads.
#[derive(Clone, Debug)]
pub enum MetricsSink {
    Stdout {
        namespace: String,
    },
    Capture(Arc<Mutex<Vec<serde_json::Value>>>),
    /// Counted nowhere (long benchmarks, where a capture would itself grow without bound).
    Discard,
}

impl MetricsSink {
    pub fn stdout(namespace: impl Into<String>) -> Self {
        MetricsSink::Stdout {
            namespace: namespace.into(),
        }
    }

    /// Keeps every document in memory (tests read them back).
    #[cfg(any(test, feature = "test-support"))]
    pub fn capture() -> Self {
        MetricsSink::Capture(Arc::default())
    }

    /// Every document captured so far (empty for stdout).
    #[cfg(any(test, feature = "test-support"))]
    pub fn captured(&self) -> Vec<serde_json::Value> {
        match self {
            MetricsSink::Capture(buffer) => buffer.lock().map(|b| b.clone()).unwrap_or_default(),
            MetricsSink::Stdout { .. } | MetricsSink::Discard => Vec::new(),
        }
    }

    /// The sum of one metric over every captured document.
    #[cfg(any(test, feature = "test-support"))]
    pub fn captured_total(&self, metric: Metric) -> f64 {
        self.captured()
            .iter()
            .filter_map(|doc| doc.get(metric.name()).and_then(|v| v.as_f64()))
            .sum()
    }

    fn emit(&self, values: &BTreeMap<Metric, f64>, timestamp_ms: i64, route: &str) {
        if values.is_empty() {
            return;
        }
        match self {
            MetricsSink::Stdout { namespace } => {
                // One line, straight to stdout: Lambda ships it to CloudWatch Logs as it is, which
                // is what EMF needs (a tracing line would wrap it in other fields).
                println!("{}", emf_document(namespace, values, timestamp_ms, route));
            }
            MetricsSink::Capture(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    buffer.push(emf_document(DEFAULT_NAMESPACE, values, timestamp_ms, route));
                }
            }
            MetricsSink::Discard => {}
        }
    }
}

/// An EMF document as the specification describes it
/// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
/// a root `_aws` member with `Timestamp` (ms since the epoch) and `CloudWatchMetrics` directives, each
/// naming the namespace, its dimension sets and its metrics; every metric's value is a root member of
/// the same name, and so is each dimension's (`service`, `route`).
///
/// Business metrics have two dimension sets: none (the alarms refer to each metric by namespace and
/// name alone; the namespace is per stack) and (`service`, `route`), so a dashboard can tell which
/// function and operation moved. The capacity units are on every request, so they get none and
/// (`service`) only: CloudWatch bills each metric-and-dimensions combination as a custom metric
/// (docs/cost.md), and units by route are one Logs Insights query away on the log line.
pub fn emf_document(
    namespace: &str,
    values: &BTreeMap<Metric, f64>,
    timestamp_ms: i64,
    route: &str,
) -> serde_json::Value {
    let definitions = |capacity: bool| -> Vec<serde_json::Value> {
        values
            .keys()
            .filter(|m| m.is_capacity() == capacity)
            .map(|m| serde_json::json!({"Name": m.name(), "Unit": "Count"}))
            .collect()
    };
    let mut directives = Vec::new();
    let business = definitions(false);
    if !business.is_empty() {
        directives.push(serde_json::json!({
            "Namespace": namespace,
            "Dimensions": [[], ["service", "route"]],
            "Metrics": business,
        }));
    }
    let capacity = definitions(true);
    if !capacity.is_empty() {
        directives.push(serde_json::json!({
            "Namespace": namespace,
            "Dimensions": [[], ["service"]],
            "Metrics": capacity,
        }));
    }
    let mut document = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": directives,
        },
        "service": service(),
        "route": route,
    });
    if let Some(root) = document.as_object_mut() {
        for (metric, value) in values {
            root.insert(metric.name().to_string(), serde_json::json!(value));
        }
    }
    document
}

#[derive(Default)]
struct RequestFacts {
    user_id: Option<String>,
    metrics: BTreeMap<Metric, f64>,
}

tokio::task_local! {
    static FACTS: RefCell<RequestFacts>;
}

/// Notes the authenticated caller on the current request's log line.
pub fn record_user(user_id: &str) {
    let _ = FACTS.try_with(|facts| facts.borrow_mut().user_id = Some(user_id.to_string()));
}

/// Adds `value` to a metric of the current request (emitted once, when the request ends).
pub fn count(metric: Metric, value: f64) {
    let _ =
        FACTS.try_with(|facts| *facts.borrow_mut().metrics.entry(metric).or_insert(0.0) += value);
}

/// Runs `work` outside any HTTP request (a scheduled job) and emits the metrics it counted.
pub async fn in_job<T>(sink: &MetricsSink, work: impl Future<Output = T>) -> T {
    let (output, facts) = FACTS
        .scope(RefCell::new(RequestFacts::default()), async {
            let output = work.await;
            (output, FACTS.with(|f| std::mem::take(&mut *f.borrow_mut())))
        })
        .await;
    let cold_start = cold_start();
    tracing::info!(
        service = service(),
        cold_start,
        version = VERSION,
        dynamodb_read_units = facts.metrics.get(&Metric::DynamoDbReadUnits).copied(),
        dynamodb_write_units = facts.metrics.get(&Metric::DynamoDbWriteUnits).copied(),
        "job"
    );
    sink.emit(&facts.metrics, chrono::Utc::now().timestamp_millis(), "job");
    output
}

/// The ids a request is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    /// Echoed in `X-Request-Id` and logged as `request_id`: the caller's own id when it is short and
    /// safe, else API Gateway's request id, else Lambda's, else a fresh UUID.
    pub request_id: String,
    /// The caller's `X-Request-Id` when it was accepted.
    pub client_request_id: Option<String>,
    pub lambda_request_id: Option<String>,
    pub apigw_request_id: Option<String>,
}

/// A client request id is logged and echoed as is only when it is 1–128 characters of letters,
/// digits and `-_.:/+=@`: nothing that could forge a log field or a header.
pub fn acceptable_client_request_id(raw: &str) -> bool {
    (1..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

impl RequestIds {
    pub fn of(req: &Request) -> Self {
        let client_request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable_client_request_id(v))
            .map(str::to_string);
        let lambda_request_id = req
            .lambda_context_ref()
            .map(|ctx| ctx.request_id.clone())
            .filter(|id| !id.is_empty());
        let apigw_request_id = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
            _ => None,
        }
        .filter(|id| !id.is_empty());
        let request_id = client_request_id
            .clone()
            .or_else(|| apigw_request_id.clone())
            .or_else(|| lambda_request_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        RequestIds {
            request_id,
            client_request_id,
            lambda_request_id,
            apigw_request_id,
        }
    }
}

/// Answers one request: runs `answer` inside the request's span and facts, renders errors through the
/// one mapping, adds the standard headers, then writes the request's log line and metrics. `route` is
/// the template the request matched (`POST /api/members/orders/{id}/cancel/`, from
/// [`crate::http::Router::label`]), so log lines group by operation; `None` for a 404 or 405.
pub async fn serve<F>(
    sink: &MetricsSink,
    req: &Request,
    route: Option<String>,
    answer: F,
) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, AppError>> + Send,
{
    // Boxed: the routers' futures are deep already, and wrapping them in the scope and span below
    // pushes callers (tests that race many requests) past the compiler's type-depth limit.
    let answer: std::pin::Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(answer);
    let started = Instant::now();
    let ids = RequestIds::of(req);
    let method = req.method().as_str().to_string();
    let path = matched_path(req);
    let span = tracing::info_span!(
        "request",
        request_id = %ids.request_id,
        lambda_request_id = ids.lambda_request_id.as_deref(),
        apigw_request_id = ids.apigw_request_id.as_deref(),
    );
    let (result, facts) = FACTS
        .scope(
            RefCell::new(RequestFacts::default()),
            async {
                let result = answer.await;
                (result, FACTS.with(|f| std::mem::take(&mut *f.borrow_mut())))
            }
            .instrument(span.clone()),
        )
        .await;
    let error_code = result.as_ref().err().map(AppError::code);
    let language = crate::error::messages::Language::negotiate(
        req.headers()
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let response = span.in_scope(|| finish(result, &ids.request_id, language));
    let status = response.status().as_u16();

    let mut metrics = facts.metrics;
    if status == 503 {
        *metrics.entry(Metric::ServiceUnavailable).or_insert(0.0) += 1.0;
        if route.as_deref() == Some(REDEMPTION_ROUTE) {
            *metrics.entry(Metric::RedemptionsUnavailable).or_insert(0.0) += 1.0;
        }
    }
    let xray_trace_id = req
        .lambda_context_ref()
        .and_then(|ctx| ctx.xray_trace_id.clone())
        .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok());
    let route = route.as_deref().unwrap_or("unmatched");
    tracing::info!(
        service = service(),
        cold_start = cold_start(),
        version = VERSION,
        function_version = function_version(),
        request_id = %ids.request_id,
        client_request_id = ids.client_request_id.as_deref(),
        function_request_id = ids.lambda_request_id.as_deref(),
        lambda_request_id = ids.lambda_request_id.as_deref(),
        xray_trace_id = xray_trace_id.as_deref(),
        apigw_request_id = ids.apigw_request_id.as_deref(),
        method = %method,
        route,
        path = %path,
        status,
        error_code,
        latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        dynamodb_read_units = metrics.get(&Metric::DynamoDbReadUnits).copied(),
        dynamodb_write_units = metrics.get(&Metric::DynamoDbWriteUnits).copied(),
        user_id = facts.user_id.as_deref(),
        "request"
    );
    sink.emit(&metrics, chrono::Utc::now().timestamp_millis(), route);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_document_names_every_metric_it_carries_and_nothing_else() {
        let mut values = BTreeMap::new();
        values.insert(Metric::OrdersPlaced, 1.0);
        values.insert(Metric::TransactionConflictsRetried, 3.0);
        let doc = emf_document(
            "PointsRedemption/test",
            &values,
            1_795_660_800_000,
            "POST /api/members/orders/",
        );
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_660_800_000i64);
        assert_eq!(directive["Namespace"], "PointsRedemption/test");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([[], ["service", "route"]])
        );
        assert_eq!(doc["route"], "POST /api/members/orders/");
        assert!(doc["service"].is_string());
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["OrdersPlaced", "TransactionConflictsRetried"]);
        assert_eq!(doc["OrdersPlaced"], 1.0);
        assert_eq!(doc["TransactionConflictsRetried"], 3.0);
        // A metric value must be a root member, and so must each dimension's value; nothing else
        // is at the root.
        assert_eq!(doc.as_object().unwrap().len(), 5);
    }

    #[test]
    fn capacity_units_are_counted_by_function_not_by_route() {
        let mut values = BTreeMap::new();
        values.insert(Metric::OrdersPlaced, 1.0);
        values.insert(Metric::DynamoDbReadUnits, 6.0);
        values.insert(Metric::DynamoDbWriteUnits, 17.0);
        let doc = emf_document("ns", &values, 0, "POST /api/members/orders/");
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(directives[0]["Metrics"][0]["Name"], "OrdersPlaced");
        assert_eq!(
            directives[1]["Dimensions"],
            serde_json::json!([[], ["service"]])
        );
        let names: Vec<&str> = directives[1]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["DynamoDbReadUnits", "DynamoDbWriteUnits"]);
        assert_eq!(doc["DynamoDbWriteUnits"], 17.0);
        // Units alone: one directive, no empty one.
        let units = BTreeMap::from([(Metric::DynamoDbReadUnits, 2.0)]);
        let doc = emf_document("ns", &units, 0, "GET /api/members/points/");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn only_short_safe_client_request_ids_are_kept() {
        assert!(acceptable_client_request_id("trace-abc-123"));
        assert!(acceptable_client_request_id(
            "Root=1-5759e988-bd862e3fe1be46a994272793"
        ));
        assert!(!acceptable_client_request_id(""));
        assert!(!acceptable_client_request_id("a b"));
        assert!(!acceptable_client_request_id("x\"y"));
        assert!(!acceptable_client_request_id(&"a".repeat(129)));
    }
}

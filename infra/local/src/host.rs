use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::State;
use axum::response::IntoResponse;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::error::RequestError;
use shared::{AppContext, AppError, Config};

use crate::apigw;
use crate::ecpay_simulator::EcpaySimulator;

/// Puts a layer between the DynamoDB client and the emulator's HTTP connector.
pub type HttpClientWrapper = Box<
    dyn FnOnce(
            aws_smithy_runtime_api::client::http::SharedHttpClient,
        ) -> aws_smithy_runtime_api::client::http::SharedHttpClient
        + Send,
>;

/// How long the host waits for a request's body. API Gateway receives the whole request before a
/// function is invoked, so on AWS a slow client holds nothing of ours; here the body is read before
/// the request is admitted to its function's in-flight cap, and a body still incomplete after this
/// is refused (408) so a trickle of bytes cannot hold a connection's task for ever.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything the local host serves: the functions' routers over one context, the API document,
/// and the ECPay simulator.
pub struct LocalApi {
    pub ctx: AppContext,
    pub simulator: Arc<EcpaySimulator>,
    /// Requests being served at once are capped per function (`MAX_IN_FLIGHT` each): past it the
    /// host answers 503 `overloaded` with `Retry-After` before reading the body, so no burst can
    /// exhaust memory or threads. Per function, as on AWS each Lambda function scales (and is
    /// throttled) on its own: a login flood fills the auth function's share, not the members'.
    in_flight: Arc<InFlight>,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    body_timeout: std::time::Duration,
    /// API Gateway's CORS, as the template configures it (see [`crate::cors`]).
    cors: crate::cors::Cors,
    /// The webhook queue's far end, until [`LocalApi::start_webhooks`] hands it to the sender.
    webhook_jobs:
        std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::webhooks::Queued>>>,
}

/// The in-flight caps, one per function (and one for what no function serves).
#[derive(Debug)]
struct InFlight {
    limit: usize,
    by_function: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        InFlight {
            limit: limit.max(1),
            by_function: Default::default(),
        }
    }

    /// A place for one more request to `function`, if it has one.
    fn try_enter(&self, function: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = match self.by_function.lock() {
            Ok(mut caps) => Arc::clone(
                caps.entry(function.to_string())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.limit))),
            ),
            Err(_) => return None,
        };
        semaphore.try_acquire_owned().ok()
    }
}

/// The default cap on requests served at once by the local host.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// The simulator answers a query closer than this to the previous one with 403 (and locks out for
/// 30 minutes, as ECPay does); the default spacing of our queries is 1 s.
pub const SIMULATOR_MIN_QUERY_GAP: std::time::Duration = std::time::Duration::from_millis(200);

impl LocalApi {
    pub fn new(mut ctx: AppContext) -> Self {
        let (queue, webhook_jobs) = crate::webhooks::LocalQueue::new();
        ctx.webhook_queue = Arc::new(queue);
        let simulator = EcpaySimulator::new(
            ctx.config.payments.credentials.clone(),
            SIMULATOR_MIN_QUERY_GAP,
        );
        LocalApi {
            ctx,
            simulator,
            in_flight: Arc::new(InFlight::new(DEFAULT_MAX_IN_FLIGHT)),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            cors: crate::cors::Cors::deployed(crate::cors::Cors::origins_from(None)),
            webhook_jobs: std::sync::Mutex::new(Some(webhook_jobs)),
        }
    }

    /// Runs webhooks as AWS would: the dispatcher over `database`'s stream of this host's table,
    /// and the sender over this host's queue. Once per host (a second call does nothing).
    pub fn start_webhooks(self: &Arc<Self>, database: dynoxide::Database) {
        let jobs = self
            .webhook_jobs
            .lock()
            .ok()
            .and_then(|mut jobs| jobs.take());
        if let Some(jobs) = jobs {
            crate::webhooks::spawn_sender(Arc::clone(self), jobs);
            crate::webhooks::spawn_dispatcher(Arc::clone(self), database);
        }
    }

    /// Allows `origins` to call the API from a browser (`CORS_ALLOWED_ORIGINS`).
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors.allow_origins = origins;
        self
    }

    /// Sets how long a request's body may take to arrive (see [`DEFAULT_BODY_TIMEOUT`]).
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Sets the cap on requests each function serves at once (at least one).
    pub fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.in_flight = Arc::new(InFlight::new(limit));
        self
    }

    /// Judges time by `clock` everywhere: the context's rules and the ECPay simulator alike.
    pub fn set_clock(&mut self, clock: shared::clock::Clock) {
        self.simulator.set_clock(clock.clone());
        self.ctx.set_clock(clock);
    }

    /// Answers QueryTradeInfo from this host's simulator in process instead of over HTTP (tests).
    pub fn query_simulator_in_process(&mut self) {
        self.ctx.gateway = Arc::new(crate::ecpay_simulator::SimulatorTransport(
            self.simulator.clone(),
        ));
    }

    /// Creates the table if it is missing, then builds the host over it.
    pub async fn connect(config: Config) -> Result<Self, AppError> {
        Self::connect_with(config, None).await
    }

    /// Like [`LocalApi::connect`]; with a contention model, every DynamoDB call goes through it
    /// (`DYNAMODB_CONTENTION=aws`, see [`crate::contention`]).
    pub async fn connect_with(
        config: Config,
        contention: Option<crate::contention::ContentionModel>,
    ) -> Result<Self, AppError> {
        match contention {
            None => Self::connect_through(config, None).await,
            Some(model) => {
                Self::connect_through(config, Some(Box::new(move |inner| model.wrap(inner)))).await
            }
        }
    }

    /// Like [`LocalApi::connect`], with the SDK's HTTP client wrapped by `wrap` (a contention model,
    /// or a test's fault injector) between the DynamoDB client and the emulator.
    pub async fn connect_through(
        config: Config,
        wrap: Option<HttpClientWrapper>,
    ) -> Result<Self, AppError> {
        let store = shared::store::Store::connect(&config).await;
        store.ensure_table().await?;
        // An emulator of this process is reached in process (no loopback HTTP); any other endpoint
        // over plain HTTP, with the connector the SDK builds for an http:// URL.
        let in_process = config
            .dynamodb_endpoint
            .as_deref()
            .and_then(crate::in_process::InProcessDynamo::for_endpoint);
        let store = match (wrap, in_process) {
            (None, None) => store,
            (wrap, in_process) => {
                let inner = match in_process {
                    Some(engine) => engine.http_client(),
                    None => aws_smithy_http_client::Builder::new().build_http(),
                };
                store.with_http_client(match wrap {
                    Some(wrap) => wrap(inner),
                    None => inner,
                })
            }
        };
        Ok(LocalApi::new(AppContext::new(config, store)))
    }

    /// Hands the request to the function API Gateway would invoke for it: the route is selected by
    /// the API Gateway model over the routes `template.yaml` declares, and the request carries what
    /// API Gateway puts in the event (route key, decoded path parameters, a request id, the stage).
    /// The ECPay simulator's paths, which exist only locally, are served before routing.
    pub async fn dispatch(&self, req: Request) -> Response<Body> {
        let selected = select_route(req.method().as_str(), req.uri().path());
        self.dispatch_selected(selected, req).await
    }

    /// [`LocalApi::dispatch`] with the route already selected (the HTTP server selects it once,
    /// to find the function whose in-flight cap the request counts against).
    async fn dispatch_selected(
        &self,
        selected: Option<apigw::Selected<'static>>,
        req: Request,
    ) -> Response<Body> {
        let ctx = &self.ctx;
        if req.uri().path().starts_with(crate::ecpay_simulator::PREFIX) {
            return shared::observe::serve(&ctx.metrics, &req, None, self.simulator.handle(&req))
                .await;
        }
        // API Gateway answers a preflight itself, for any path, without invoking a function.
        if let Some(headers) = self.cors.preflight(req.method(), req.headers()) {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = http::StatusCode::NO_CONTENT;
            *response.headers_mut() = headers;
            return response;
        }
        let origin = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(str::to_string);
        let mut response = self.invoke(selected, req).await;
        self.cors
            .decorate(origin.as_deref(), response.headers_mut());
        response
    }

    /// Invokes the function API Gateway selected (or answers its own 404).
    async fn invoke(
        &self,
        selected: Option<apigw::Selected<'static>>,
        req: Request,
    ) -> Response<Body> {
        let ctx = &self.ctx;
        let Some(selected) = selected else {
            // API Gateway's own answer when nothing (not even `$default`) matches.
            return api_gateway_not_found();
        };
        let function = selected.route.function.clone();
        let req = with_route(req, selected);
        // Boxed: each function's future is large, and nesting them all in this one made callers'
        // futures deeper than the compiler's layout limit.
        match function.as_str() {
            "fn-auth" => as_function("fn-auth", Box::pin(fn_auth::handle(ctx, req))).await,
            "fn-front-door" => {
                as_function(
                    "fn-front-door",
                    Box::pin(fn_front_door::handle(&ctx.metrics, req)),
                )
                .await
            }
            "fn-admin" => as_function("fn-admin", Box::pin(fn_admin::handle(ctx, req))).await,
            "fn-members" => as_function("fn-members", Box::pin(fn_members::handle(ctx, req))).await,
            "fn-merchants" => {
                as_function("fn-merchants", Box::pin(fn_merchants::handle(ctx, req))).await
            }
            "fn-ecpay-callback" => {
                as_function(
                    "fn-ecpay-callback",
                    Box::pin(fn_ecpay_callback::handle(ctx, req)),
                )
                .await
            }
            other => {
                tracing::error!(
                    function = other,
                    "template.yaml routes to an unknown function"
                );
                api_gateway_not_found()
            }
        }
    }
}

tokio::task_local! {
    /// The Lambda function whose code is running, as `template.yaml` names its binary: what the
    /// IAM model (`api_tests::iam`) checks each DynamoDB call against.
    static FUNCTION: &'static str;
}

/// Runs `work` as the function `binary` (the local host's dispatch; tests for the scheduled job).
pub async fn as_function<F: std::future::Future>(binary: &'static str, work: F) -> F::Output {
    FUNCTION.scope(binary, work).await
}

/// The function whose code is making the current call, if any (see [`as_function`]).
pub fn current_function() -> Option<&'static str> {
    FUNCTION.try_with(|binary| *binary).ok()
}

/// The route API Gateway would select for a request, over the routes `template.yaml` declares.
fn select_route(method: &str, path: &str) -> Option<apigw::Selected<'static>> {
    apigw::select(apigw::deployed_routes(), method, path)
}

/// What API Gateway answers itself when no route matches (its integration is never invoked).
fn api_gateway_not_found() -> Response<Body> {
    let mut response = Response::new(Body::from(r#"{"message":"Not Found"}"#));
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Fills in the request context as API Gateway's payload format 2.0 does for the selected route.
fn with_route(req: Request, selected: apigw::Selected<'_>) -> Request {
    let mut context = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.clone(),
        _ => Default::default(),
    };
    context.route_key = Some(selected.route.key());
    context.stage = Some("$default".into());
    if context.request_id.is_none() {
        context.request_id = Some(uuid::Uuid::new_v4().to_string());
    }
    context.http.method = req.method().clone();
    context.http.path = Some(req.uri().path().to_string());
    req.with_request_context(RequestContext::ApiGatewayV2(context))
        .with_path_parameters(selected.path_parameters)
}

/// The HTTP server's router: every request goes through [`LocalApi::dispatch`] (whose request
/// wrapper writes the log line).
pub fn router(api: Arc<LocalApi>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(api)
}

/// Turns a plain HTTP request into what API Gateway hands a Lambda function: the same body, and the
/// query string parsed into `queryStringParameters` (the routers read parameters only from there).
pub fn into_lambda_request(parts: http::request::Parts, body: Vec<u8>) -> Request {
    let query: HashMap<String, Vec<String>> = parts
        .uri
        .query()
        .map(|q| {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for (key, value) in form_urlencoded::parse(q.as_bytes()) {
                map.entry(key.into_owned())
                    .or_default()
                    .push(value.into_owned());
            }
            map
        })
        .unwrap_or_default();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body)
    };
    http::Request::from_parts(parts, body)
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(Default::default()))
}

async fn handle(
    State(api): State<Arc<LocalApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    // The socket's peer is the client address, as API Gateway's sourceIp is on AWS.
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let selected = select_route(req.method().as_str(), req.uri().path());
    let function = selected.as_ref().map_or("", |s| s.route.function.as_str());
    let (parts, body) = req.into_parts();
    // The body first, as API Gateway receives it before invoking anything: a declared length over
    // the limit is refused without reading a byte, and a body that trickles in is cut off, both
    // before the request takes a place in its function's cap.
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = shared::http::MAX_BODY_BYTES;
    let body = if declared.is_some_and(|length| length > limit as u64) {
        Err(RequestError::PayloadTooLarge { limit })
    } else {
        match tokio::time::timeout(api.body_timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(RequestError::PayloadTooLarge { limit }),
            Err(_) => Err(RequestError::BodyTimeout {
                seconds: api.body_timeout.as_secs(),
            }),
        }
    };
    let admitted = match &body {
        Ok(bytes) => api
            .in_flight
            .try_enter(function)
            .map(|permit| (bytes.clone(), permit)),
        Err(_) => None,
    };
    let response = match (admitted, body) {
        (Some((bytes, _serving)), _) => {
            api.dispatch_selected(
                selected,
                with_source_ip(into_lambda_request(parts, bytes.to_vec()), peer),
            )
            .await
        }
        (None, body) => {
            let refused = match body {
                Err(refused) => AppError::from(refused),
                Ok(_) => AppError::Overloaded {
                    retry_after_secs: 1,
                },
            };
            let req = into_lambda_request(parts, Vec::new());
            shared::observe::serve(
                &api.ctx.metrics,
                &req,
                None,
                std::future::ready(Err(refused)),
            )
            .await
        }
    };
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = body.as_ref().to_vec();
    (parts.status, parts.headers, AxumBody::from(bytes)).into_response()
}

/// Sets the client address API Gateway would report (`requestContext.http.sourceIp`).
pub fn with_source_ip(req: Request, ip: Option<String>) -> Request {
    let mut context = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.clone(),
        _ => Default::default(),
    };
    context.http.source_ip = ip;
    req.with_request_context(RequestContext::ApiGatewayV2(context))
}

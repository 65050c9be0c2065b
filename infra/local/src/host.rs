use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body as AxumBody;
use axum::extract::State;
use axum::response::IntoResponse;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::store::table::ensure_table;
use shared::{AppContext, AppError, Config};

use crate::ecpay_simulator::EcpaySimulator;

/// Bodies past this are refused before they are buffered; the routers enforce the API's 64 KiB.
const HOST_BODY_LIMIT: usize = 1024 * 1024;

/// Everything the local host serves: the functions' routers over one context, the API document,
/// and the ECPay simulator.
pub struct LocalApi {
    pub ctx: AppContext,
    simulator: EcpaySimulator,
}

impl LocalApi {
    pub fn new(ctx: AppContext) -> Self {
        let simulator = EcpaySimulator::new(ctx.config.payments.credentials.clone());
        LocalApi { ctx, simulator }
    }

    /// Creates the table if it is missing, then builds the host over it.
    pub async fn connect(config: Config) -> Result<Self, AppError> {
        let store = shared::store::Store::connect(&config).await;
        ensure_table(store.client(), store.table_name()).await?;
        Ok(LocalApi::new(AppContext::new(config, store)))
    }

    /// Sends the request to the function that owns its path prefix, as API Gateway's routes do.
    pub async fn dispatch(&self, req: Request) -> Response<Body> {
        let ctx = &self.ctx;
        let path = req.uri().path();
        if under(path, "/api/auth") {
            return fn_auth::handle(ctx, req).await;
        }
        if under(path, "/api/members") {
            return fn_members::handle(ctx, req).await;
        }
        if under(path, "/api/merchants") {
            return fn_merchants::handle(ctx, req).await;
        }
        if under(path, "/api/payments") {
            return fn_ecpay_callback::handle(ctx, req).await;
        }
        let request_id = shared::http::request_id(&req);
        let answer = if path.starts_with(crate::ecpay_simulator::PREFIX) {
            self.simulator.handle(&req).await
        } else {
            crate::openapi::serve(path)
                .unwrap_or_else(|| Err(AppError::not_found("route_not_found", "no such route")))
        };
        shared::http::finish(answer, &request_id)
    }
}

/// The HTTP server's router: every request goes through [`LocalApi::dispatch`], with one JSON log
/// line each.
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

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

async fn handle(
    State(api): State<Arc<LocalApi>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get(shared::http::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        parts.headers.insert(shared::http::REQUEST_ID_HEADER, value);
    }
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();

    let response = match axum::body::to_bytes(body, HOST_BODY_LIMIT).await {
        Ok(bytes) => {
            api.dispatch(into_lambda_request(parts, bytes.to_vec()))
                .await
        }
        Err(_) => shared::http::finish(
            Err(AppError::PayloadTooLarge {
                limit: shared::http::MAX_BODY_BYTES,
            }),
            &request_id,
        ),
    };
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = body.as_ref().to_vec();
    (parts.status, parts.headers, AxumBody::from(bytes)).into_response()
}

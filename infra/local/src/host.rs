use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::store::table::ensure_table;
use shared::{AppContext, AppError, Config};

/// Connects to the emulator at `endpoint`, creates the table if it is missing, and builds the
/// context every router shares.
pub async fn connect_context(
    endpoint: &str,
    table_name: &str,
    jwt_secret: Vec<u8>,
) -> Result<AppContext, AppError> {
    let config = Config::local(endpoint.to_string(), table_name.to_string(), jwt_secret);
    connect_with_config(config).await
}

pub async fn connect_with_config(config: Config) -> Result<AppContext, AppError> {
    let store = shared::store::Store::connect(&config).await;
    ensure_table(store.client(), store.table_name()).await?;
    Ok(AppContext::new(config, store))
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

/// Sends the request to the function that owns its path prefix, as API Gateway's routes do.
pub async fn dispatch(ctx: &AppContext, req: Request) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with("/api/auth/") || path == "/api/auth" {
        fn_auth::handle(ctx, req).await
    } else {
        let request_id = shared::http::request_id(&req);
        shared::http::finish(
            Err(AppError::not_found("route_not_found", "no such route")),
            &request_id,
        )
    }
}

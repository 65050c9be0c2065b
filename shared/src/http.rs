//! The HTTP edge shared by every function: JSON bodies in, JSON responses out, and the single
//! mapping from [`AppError`] to a status code and error body.

use http::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Claims, JwtKeys, TokenKind};
use crate::domain::Role;
use crate::error::{AppError, FieldErrors, RequestError};

pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// Per-field problems, when the request had invalid fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>, nullable = false)]
    pub fields: Option<FieldErrors>,
}

/// The path the function routes on: the path API Gateway *matched*, rebuilt from the route key and
/// its path parameters (`ANY /api/auth/{proxy+}` with `proxy = "login/"` is `/api/auth/login/`). A
/// stage name (`/prod/api/...`) or a custom domain's base path (`/v1/api/...`) in front of the routes
/// is thus never seen: API Gateway strips both before it matches a route, while `rawPath` (and the
/// URI `lambda_http` builds from it) keeps them. For the `$default` route, or a request that did not
/// come through API Gateway, it is the URI's path minus a leading `/<stage>` segment.
pub fn matched_path(req: &Request) -> String {
    use lambda_http::request::RequestContext;
    let raw = req.uri().path();
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return raw.to_string();
    };
    if let Some(template) = ctx
        .route_key
        .as_deref()
        .filter(|key| *key != "$default")
        .and_then(|key| key.split_once(' ').map(|(_, path)| path))
    {
        let params = req.path_parameters_ref();
        let mut rebuilt = String::with_capacity(raw.len());
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            rebuilt.push('/');
            match segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|name| name.trim_end_matches('+'))
            {
                Some(name) => {
                    let value = params.and_then(|p| p.first(name)).unwrap_or_default();
                    rebuilt.push_str(value.trim_start_matches('/'));
                }
                None => rebuilt.push_str(segment),
            }
        }
        return rebuilt;
    }
    match ctx.stage.as_deref() {
        Some(stage) if stage != "$default" && !stage.is_empty() => raw
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(stage))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| {
                if rest.is_empty() {
                    "/".to_string()
                } else {
                    rest.to_string()
                }
            })
            .unwrap_or_else(|| raw.to_string()),
        _ => raw.to_string(),
    }
}

/// A (matched) path split into segments, ignoring empty ones, so `/api/auth/me/` and `/api/auth/me`
/// match alike.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Refuses the request with 405 unless its method is one of `allowed`.
pub fn allow(req: &Request, allowed: &'static [&'static str]) -> Result<(), AppError> {
    if allowed.contains(&req.method().as_str())
        || (req.method() == Method::HEAD && allowed.contains(&"GET"))
    {
        Ok(())
    } else {
        Err(RequestError::MethodNotAllowed { allowed }.into())
    }
}

/// Parses the JSON body. Syntax errors are `malformed_json`; well-formed JSON of the wrong shape is
/// `invalid_body` naming the offending field.
pub fn parse_json<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    let bytes = body_of(
        req,
        |media| media == "application/json" || media.ends_with("+json"),
        "application/json",
    )?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::bad_request(
            "malformed_json",
            "the request body must be a JSON object",
        ));
    }
    // Through `Value` first: serde would otherwise accept a JSON array as a struct.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        AppError::bad_request("malformed_json", "the request body is not valid JSON")
    })?;
    if !value.is_object() {
        let mut fields = FieldErrors::new();
        fields.insert("body".into(), "must be a JSON object".into());
        return Err(AppError::BadRequest {
            code: "invalid_body",
            message: "the request body has the wrong shape".into(),
            fields,
        });
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        json_problem(err.into_inner(), path)
    })
}

fn json_problem(inner: serde_json::Error, path: String) -> AppError {
    match inner.classify() {
        serde_json::error::Category::Data => {
            let mut fields = FieldErrors::new();
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            fields.insert(field, data_problem(&inner));
            AppError::BadRequest {
                code: "invalid_body",
                message: "the request body has the wrong shape".into(),
                fields,
            }
        }
        _ => AppError::bad_request("malformed_json", "the request body is not valid JSON"),
    }
}

/// The body, if its media type (when one is declared) is acceptable and it is within the size limit.
fn body_of<'r>(
    req: &'r Request,
    accepts: impl Fn(&str) -> bool,
    expected: &str,
) -> Result<&'r [u8], AppError> {
    if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !accepts(&media) {
            return Err(RequestError::UnsupportedMediaType {
                message: format!("the request body must be {expected}"),
            }
            .into());
        }
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }
        .into());
    }
    Ok(bytes)
}

/// serde's message without its " at line 1 column 9" suffix, which means nothing to an API client.
fn data_problem(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The caller's access-token claims, optionally requiring a role (403 for the wrong one).
pub fn authenticate(req: &Request, keys: &JwtKeys, role: Option<Role>) -> Result<Claims, AppError> {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AppError::unauthenticated("missing_token", "an access token is required"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::unauthenticated(
                "missing_token",
                "use the Authorization: Bearer <token> scheme",
            )
        })?;
    let claims = keys.verify(token, TokenKind::Access)?;
    crate::observe::record_user(&claims.sub);
    if let Some(required) = role {
        if claims.role != required {
            return Err(AppError::Forbidden {
                message: format!("this route is for {} accounts", required.as_str()),
            });
        }
    }
    Ok(claims)
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response<Body>, AppError> {
    let bytes = serde_json::to_vec(body).map_err(AppError::internal)?;
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::Binary(bytes))
        .map_err(AppError::internal)
}

/// The replay of a 201 answered before under the same Idempotency-Key: its JSON body verbatim,
/// marked `Idempotent-Replayed: true`.
pub fn replayed_created(body: String) -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header("idempotent-replayed", "true")
        .body(Body::from(body))
        .map_err(AppError::internal)
}

pub fn no_content() -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .map_err(AppError::internal)
}

/// The single mapping from application error to HTTP status, headers and body.
pub fn error_response(err: &AppError) -> Response<Body> {
    let (message, fields): (String, Option<&FieldErrors>) = match err {
        AppError::Validation { message, fields } => (message.clone(), Some(fields)),
        AppError::BadRequest {
            message, fields, ..
        }
        | AppError::Conflict {
            message, fields, ..
        } => (message.clone(), (!fields.is_empty()).then_some(fields)),
        AppError::Internal { source } => {
            // Logged inside the request's span, so the line carries the request ids: the chain of
            // causes, and the innermost one's debug form (an SDK error's code and request id).
            let mut innermost: &(dyn std::error::Error + 'static) = source.as_ref();
            while let Some(next) = innermost.source() {
                innermost = next;
            }
            tracing::error!(
                error = err.cause_chain().unwrap_or_default(),
                detail = ?innermost,
                "internal error"
            );
            ("something went wrong on our side".into(), None)
        }
        other => (other.to_string(), None),
    };
    let (status, code) = (err.status(), err.code());
    let envelope = ErrorResponse {
        error: ErrorDetail {
            code: code.to_string(),
            message,
            fields: fields.cloned(),
        },
    };
    let body = serde_json::to_vec(&envelope)
        .unwrap_or_else(|_| b"{\"error\":{\"code\":\"internal_error\",\"message\":\"\"}}".to_vec());
    let mut response = Response::new(Body::Binary(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    match err {
        AppError::Request(RequestError::MethodNotAllowed { allowed }) => {
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                headers.insert(ALLOW, value);
            }
        }
        AppError::Unauthenticated { .. } => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        AppError::TooManyRequests {
            retry_after_secs, ..
        }
        | AppError::Unavailable { retry_after_secs }
        | AppError::Overloaded { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        _ => {}
    }
    response
}

/// Turns a handler's result into the response, adding the headers every route carries.
pub fn finish(result: Result<Response<Body>, AppError>, request_id: &str) -> Response<Body> {
    let mut response = match result {
        Ok(response) => response,
        Err(err) => error_response(&err),
    };
    let headers = response.headers_mut();
    // Responses carry tokens, balances and personal data: never cache any of them.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

/// The first value of a query-string parameter (API Gateway's `queryStringParameters`).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|params| params.first(name))
        .map(str::to_string)
}

pub fn invalid_query(field: &str, problem: &str) -> AppError {
    let mut fields = FieldErrors::new();
    fields.insert(field.to_string(), problem.to_string());
    AppError::BadRequest {
        code: "invalid_query",
        message: "a query parameter is invalid".into(),
        fields,
    }
}

/// `?limit=` (1–100, default 20) and `?cursor=`, as every list takes them.
pub fn page_request(req: &Request) -> Result<crate::pagination::PageRequest, AppError> {
    use crate::pagination::{PageRequest, DEFAULT_LIMIT, MAX_CURSOR_LEN, MAX_LIMIT};
    let limit = match query_param(req, "limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => return Err(invalid_query("limit", "must be an integer from 1 to 100")),
        },
    };
    let cursor = query_param(req, "cursor").filter(|c| !c.is_empty());
    if cursor.as_ref().is_some_and(|c| c.len() > MAX_CURSOR_LEN) {
        return Err(invalid_query("cursor", "is not a cursor this list issued"));
    }
    Ok(PageRequest { limit, cursor })
}

/// An optional id filter (`?merchant_id=`): absent, or a UUID.
pub fn id_query_param(req: &Request, name: &str) -> Result<Option<String>, AppError> {
    match query_param(req, name) {
        None => Ok(None),
        Some(raw) if crate::domain::is_id(&raw) => Ok(Some(raw)),
        Some(_) => Err(invalid_query(name, "must be an id (UUID)")),
    }
}

/// The version in an `If-Match` header (`"3"`, `W/"3"` or `3`), if one was sent.
pub fn if_match_version(req: &Request) -> Result<Option<i64>, AppError> {
    let Some(value) = req.headers().get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    match raw.parse::<i64>() {
        Ok(version) if version >= 1 => Ok(Some(version)),
        _ => {
            let mut fields = FieldErrors::new();
            fields.insert(
                "If-Match".into(),
                "must be a product version such as \"3\"".into(),
            );
            Err(AppError::BadRequest {
                code: "invalid_header",
                message: "the If-Match header is invalid".into(),
                fields,
            })
        }
    }
}

/// A `text/plain` answer (ECPay's `1|OK` contract).
pub fn text(status: StatusCode, body: &str) -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .map_err(AppError::internal)
}

/// A `text/html` page, for links a browser opens.
pub fn html(status: StatusCode, body: String) -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(body))
        .map_err(AppError::internal)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The body as `application/x-www-form-urlencoded` pairs, in the order sent (a JSON or other
/// content type is refused). API Gateway's base64 encoding is already undone by `lambda_http`.
pub fn parse_form(req: &Request) -> Result<Vec<(String, String)>, AppError> {
    let form = "application/x-www-form-urlencoded";
    let bytes = body_of(req, |media| media == form, form)?;
    Ok(form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// `?status=` of an order list: absent, or one of the order statuses.
pub fn order_status_param(req: &Request) -> Result<Option<crate::domain::OrderStatus>, AppError> {
    match query_param(req, "status") {
        None => Ok(None),
        Some(raw) => crate::domain::OrderStatus::parse(&raw)
            .map(Some)
            .ok_or_else(|| invalid_query("status", "must be pending, completed or cancelled")),
    }
}

/// The `Idempotency-Key` header, if sent and well-formed (1–64 visible ASCII characters).
pub fn idempotency_key(req: &Request) -> Result<Option<String>, AppError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| crate::services::orders::invalid_idempotency_key())?;
    crate::services::orders::check_idempotency_key(key)?;
    Ok(Some(key.to_string()))
}

/// `https://<domain>` of the API Gateway endpoint that received the request, when there is one.
/// It comes from API Gateway's request context, not from a header a client could forge.
pub fn request_origin(req: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    let domain = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.domain_name.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.domain_name.clone(),
        _ => None,
    }?;
    (!domain.is_empty()).then(|| format!("https://{domain}"))
}

/// The client's address as API Gateway saw it (`requestContext.http.sourceIp`; the local host puts
/// the socket's peer there). Never read from a header, which a client could set.
pub fn client_address(req: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.clone(),
        _ => None,
    }
    .filter(|ip| !ip.is_empty())
}

//! Reading a request: its JSON or form body (size and media type checked), its bearer token, its
//! query parameters and the headers the API defines. Every refusal is a 4xx [`AppError`].

use http::header::CONTENT_TYPE;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;

use crate::auth::{Claims, JwtKeys, TokenKind};
use crate::domain::{Role, UserId};
use crate::error::{AppError, FieldErrors, RequestError};

pub const MAX_BODY_BYTES: usize = 64 * 1024;

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

/// An optional user filter (`?merchant_id=`, `?member_id=`): absent, or a user id (a UUID).
pub fn id_query_param(req: &Request, name: &str) -> Result<Option<UserId>, AppError> {
    match query_param(req, name) {
        None => Ok(None),
        Some(raw) => UserId::parse(&raw)
            .map(Some)
            .ok_or_else(|| invalid_query(name, "must be an id (UUID)")),
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
            .ok_or_else(|| {
                invalid_query("status", "must be pending, shipped, completed or cancelled")
            }),
    }
}

/// `?fulfilment=`: absent, `pickup` or `delivery`.
pub fn fulfilment_param(req: &Request) -> Result<Option<crate::domain::Fulfilment>, AppError> {
    match query_param(req, "fulfilment") {
        None => Ok(None),
        Some(raw) => crate::domain::Fulfilment::parse(&raw)
            .map(Some)
            .ok_or_else(|| invalid_query("fulfilment", "must be pickup or delivery")),
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

/// The language the request's `Accept-Language` prefers (see [`crate::error::messages::Language`]).
pub fn language_of(req: &Request) -> crate::error::messages::Language {
    crate::error::messages::Language::negotiate(
        req.headers()
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

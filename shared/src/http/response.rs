//! Writing a response: JSON, text and HTML bodies, and the one mapping from [`AppError`] to a
//! status code, headers and error body.

use http::header::{
    HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_TYPE, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::messages::Language;
use crate::error::{AppError, FieldErrors, RequestError};

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

/// The single mapping from application error to HTTP status, headers and body, in English.
pub fn error_response(err: &AppError) -> Response<Body> {
    error_response_in(err, Language::English)
}

/// [`error_response`] with its message in `language` (the `code` is the same in every language).
pub fn error_response_in(err: &AppError, language: Language) -> Response<Body> {
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
    let catalogued = crate::error::messages::message(code, language);
    if catalogued.is_none() {
        // Caught by the catalogue's tests and the fuzz run's log check: every code has both.
        tracing::warn!(code, "error code without messages");
    }
    let message = match (language, catalogued) {
        (Language::TraditionalChinese, Some(chinese)) => chinese.to_string(),
        _ => message,
    };
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
    headers.insert(CONTENT_LANGUAGE, HeaderValue::from_static(language.tag()));
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

/// Turns a handler's result into the response (an error's message in `language`), adding the
/// headers every route carries.
pub fn finish(
    result: Result<Response<Body>, AppError>,
    request_id: &str,
    language: Language,
) -> Response<Body> {
    let mut response = match result {
        Ok(response) => response,
        Err(err) => error_response_in(&err, language),
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

/// A `text/plain` answer (ECPay's `1|OK` contract).
pub fn text(status: StatusCode, body: &str) -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .map_err(AppError::internal)
}

/// A `text/html` page, for links a browser opens.
/// `text` as a QR code (`image/svg+xml`, medium error correction, a 4-module quiet zone): what a
/// member shows at the counter for the merchant's scanner. Never cached: it is a credential.
pub fn qr_svg(text: &str) -> Result<Response<Body>, AppError> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M)
        .map_err(|err| AppError::internal_during("QR code", err.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "image/svg+xml")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        // An SVG opened on its own is a document: it may run nothing and load nothing.
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .body(Body::from(svg))
        .map_err(AppError::internal)
}

/// A CSV download named `filename`. When rows remain, `next` is the query of the next part (its
/// cursor among it): sent as a relative `Link: <path?query>; rel="next"` and as `X-Next-Cursor`.
pub fn csv_download(
    filename: &str,
    csv: String,
    path: &str,
    next: Option<(Vec<(&str, String)>, String)>,
) -> Result<Response<Body>, AppError> {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/csv; charset=utf-8")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{filename}\""),
        )
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff");
    if let Some((query, cursor)) = next {
        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &query {
            encoded.append_pair(name, value);
        }
        response = response
            .header(
                "link",
                format!("<{path}?{}>; rel=\"next\"", encoded.finish()),
            )
            .header("x-next-cursor", cursor);
    }
    response.body(Body::from(csv)).map_err(AppError::internal)
}

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

/// A Content-Security-Policy hash source (`'sha256-…'`, CSP Level 2) for the inline block between
/// `open` and `close` in `html`: exactly the text the browser hashes, so a page's own inline script
/// or style runs while anything injected into it does not. Empty text if the block is missing.
pub fn inline_source_hash(html: &str, open: &str, close: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let text = html
        .split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map_or("", |(inner, _)| inner);
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_scripts_hash_is_the_one_the_csp_specification_gives() {
        // W3C Content Security Policy Level 3, "Hash usage for script elements".
        assert_eq!(
            inline_source_hash(
                "<script>alert('Hello, world.');</script>",
                "<script>",
                "</script>"
            ),
            "'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='"
        );
    }
}

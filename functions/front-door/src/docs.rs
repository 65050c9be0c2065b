//! The OpenAPI document and the Swagger UI that renders it, served by this function because API
//! Gateway's `$default` route (everything no greedy route takes) invokes it.
//! The document is `docs/openapi.json` as checked in, which a test keeps equal to the one generated
//! from the code.

use std::sync::Arc;

use lambda_http::http::header::{CONTENT_TYPE, LOCATION};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use shared::AppError;

pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const DOCS_PATH: &str = "/api/docs/";

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The docs page's Content-Security-Policy: Swagger UI's own files only (its page has no inline
/// script), the document from this API, and never inside another site's frame. Styles may be inline:
/// Swagger UI's React components set them.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves the document and the docs page; `None` when the path is not theirs.
pub fn serve(path: &str) -> Option<Result<Response<Body>, AppError>> {
    if path == DOCUMENT_PATH {
        return Some(
            Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(Body::from(DOCUMENT))
                .map_err(AppError::internal),
        );
    }
    if path == DOCS_PATH.trim_end_matches('/') {
        // Relative, so it keeps a stage or base path the browser used.
        return Some(
            Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(LOCATION, "docs/")
                .body(Body::Empty)
                .map_err(AppError::internal),
        );
    }
    let rest = path.strip_prefix(DOCS_PATH)?;
    // Relative to the docs page, so it also works behind a stage or a custom domain's base path.
    let config = Arc::new(utoipa_swagger_ui::Config::from("../openapi.json"));
    Some(match utoipa_swagger_ui::serve(rest, config) {
        Ok(Some(file)) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, file.content_type)
            .header("content-security-policy", DOCS_CSP)
            .header("x-frame-options", "DENY")
            .body(Body::Binary(file.bytes.into_owned()))
            .map_err(AppError::internal),
        Ok(None) => Err(AppError::route_not_found("file")),
        // swagger-ui's error is a plain `Box<dyn Error>` (not Send): kept as its message.
        Err(err) => Err(AppError::internal_during("swagger ui", err.to_string())),
    })
}

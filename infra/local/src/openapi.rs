//! The API document, merged from every function's routes, and the Swagger UI that renders it.

use std::sync::{Arc, OnceLock};

use http::header::{CONTENT_TYPE, LOCATION};
use http::StatusCode;
use lambda_http::{Body, Response};
use shared::AppError;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const DOCS_PATH: &str = "/api/docs/";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Points redemption API",
        version = "0.1.0",
        description = "點數兌換贈品系統: members buy points through ECPay and redeem them for merchants' products.\n\nEvery error answers `{\"error\": {\"code\", \"message\", \"fields\"?}}`."
    ),
    modifiers(&BearerScheme)
)]
struct RootApi;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /api/auth/login/ or /api/auth/refresh/",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole API: every function's routes in one OpenAPI 3.1 document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = RootApi::openapi();
    doc.merge(fn_auth::AuthApi::openapi());
    doc.merge(fn_members::MembersApi::openapi());
    doc.merge(fn_merchants::MerchantsApi::openapi());
    doc.merge(fn_ecpay_callback::PaymentsApi::openapi());
    doc
}

/// The document as checked in at `docs/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

fn cached_document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(document_json)
}

/// Serves the document and the docs page; `None` when the path is not theirs.
pub fn serve(path: &str) -> Option<Result<Response<Body>, AppError>> {
    if path == DOCUMENT_PATH {
        return Some(
            Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(Body::from(cached_document()))
                .map_err(AppError::internal),
        );
    }
    if path == DOCS_PATH.trim_end_matches('/') {
        return Some(
            Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(LOCATION, DOCS_PATH)
                .body(Body::Empty)
                .map_err(AppError::internal),
        );
    }
    let rest = path.strip_prefix(DOCS_PATH)?;
    let config = Arc::new(utoipa_swagger_ui::Config::from(DOCUMENT_PATH));
    Some(match utoipa_swagger_ui::serve(rest, config) {
        Ok(Some(file)) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, file.content_type)
            .body(Body::Binary(file.bytes.into_owned()))
            .map_err(AppError::internal),
        Ok(None) => Err(AppError::not_found("route_not_found", "no such file")),
        Err(err) => Err(AppError::internal(err)),
    })
}

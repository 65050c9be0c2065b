//! The API document, merged from every function's routes. It is checked in as `docs/openapi.json`
//! (a test keeps the two equal), which is what `fn-auth` serves with the Swagger UI.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
    doc.merge(grouped(fn_auth::AuthApi::document(), "auth"));
    doc.merge(grouped(fn_admin::AdminApi::document(), "admin"));
    doc.merge(grouped(fn_members::MembersApi::document(), "members"));
    doc.merge(grouped(fn_merchants::MerchantsApi::document(), "merchants"));
    doc.merge(grouped(
        fn_ecpay_callback::PaymentsApi::document(),
        "payments",
    ));
    doc
}

/// `document` with each operationId prefixed by its group (`members_list_orders`): OpenAPI requires
/// them unique across the document, and code generators (openapi-typescript) refuse duplicates, while
/// each function's router names its handlers without the prefix in its own document.
fn grouped(mut document: utoipa::openapi::OpenApi, group: &str) -> utoipa::openapi::OpenApi {
    for item in document.paths.paths.values_mut() {
        for operation in shared::http::operations_mut(item) {
            if let Some(id) = operation.operation_id.as_mut() {
                *id = format!("{group}_{id}");
            }
        }
    }
    document
}

/// The document as checked in at `docs/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

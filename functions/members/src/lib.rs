//! The members function: browsing the catalogue (and, later, points, orders and the ledger).
//! Every route requires an access token with role MEMBER.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::Role;
use shared::http::{
    allow, authenticate, finish, id_query_param, json, page_request, request_id, segments,
    ErrorResponse,
};
use shared::pagination::{Page, PageParams};
use shared::services::catalogue::CatalogueProduct;
use shared::{AppContext, AppError};
use utoipa::OpenApi;

type Answer = Result<Response<Body>, AppError>;

#[derive(OpenApi)]
#[openapi(
    paths(browse_products, view_product),
    components(schemas(CatalogueProduct, Page<CatalogueProduct>, ErrorResponse)),
    tags((name = "members", description = "What members do (role MEMBER)"))
)]
pub struct MembersApi;

pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/members/products/"),
    ("GET", "/api/members/products/{id}/"),
];

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    let request_id = request_id(&req);
    finish(route(ctx, &req).await, &request_id)
}

async fn route(ctx: &AppContext, req: &Request) -> Answer {
    let path = segments(req);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["api", "members", "products"] => {
            allow(req, &["GET"])?;
            browse_products(ctx, req).await
        }
        ["api", "members", "products", id] => {
            allow(req, &["GET"])?;
            view_product(ctx, req, id).await
        }
        _ => Err(AppError::not_found("route_not_found", "no such route")),
    }
}

fn member_id(ctx: &AppContext, req: &Request) -> Result<String, AppError> {
    Ok(authenticate(req, &ctx.keys, Some(Role::Member))?.sub)
}

/// The catalogue: active products of every merchant, newest first. Sold-out products are listed
/// with `in_stock: false`.
#[utoipa::path(
    get, path = "/api/members/products/", tag = "members",
    params(
        PageParams,
        ("merchant_id" = Option<String>, Query, description = "Only this merchant's products (an id)",
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = Page<CatalogueProduct>),
        (status = 400, description = "Invalid limit, cursor or merchant_id", body = ErrorResponse),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a member", body = ErrorResponse),
    )
)]
async fn browse_products(ctx: &AppContext, req: &Request) -> Answer {
    member_id(ctx, req)?;
    let page = page_request(req)?;
    let merchant = id_query_param(req, "merchant_id")?;
    json(
        StatusCode::OK,
        &ctx.catalogue().browse(merchant.as_deref(), &page).await?,
    )
}

/// One active product.
#[utoipa::path(
    get, path = "/api/members/products/{id}/", tag = "members",
    params(("id" = String, Path, description = "Product id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = CatalogueProduct),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a member", body = ErrorResponse),
        (status = 404, description = "No such active product", body = ErrorResponse),
    )
)]
async fn view_product(ctx: &AppContext, req: &Request, id: &str) -> Answer {
    member_id(ctx, req)?;
    json(StatusCode::OK, &ctx.catalogue().view_product(id).await?)
}

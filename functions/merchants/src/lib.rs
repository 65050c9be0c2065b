//! The merchants function: a merchant's own products (and, later, the orders on them).
//! Every route requires an access token with role MERCHANT.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::domain::Role;
use shared::http::{
    allow, authenticate, finish, if_match_version, json, no_content, page_request, parse_json,
    request_id, segments, ErrorResponse,
};
use shared::pagination::{Page, PageParams};
use shared::services::catalogue::{CreateProductRequest, MerchantProduct, UpdateProductRequest};
use shared::{AppContext, AppError};
use utoipa::OpenApi;

type Answer = Result<Response<Body>, AppError>;

#[derive(OpenApi)]
#[openapi(
    paths(create_product, list_products, get_product, update_product, delete_product),
    components(schemas(CreateProductRequest, UpdateProductRequest, MerchantProduct, Page<MerchantProduct>, ErrorResponse)),
    tags((name = "merchants", description = "A merchant's products (role MERCHANT)"))
)]
pub struct MerchantsApi;

pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/merchants/products/"),
    ("GET", "/api/merchants/products/"),
    ("GET", "/api/merchants/products/{id}/"),
    ("PUT", "/api/merchants/products/{id}/"),
    ("DELETE", "/api/merchants/products/{id}/"),
];

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    let request_id = request_id(&req);
    finish(route(ctx, &req).await, &request_id)
}

async fn route(ctx: &AppContext, req: &Request) -> Answer {
    let path = segments(req);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["api", "merchants", "products"] => {
            allow(req, &["GET", "POST"])?;
            if req.method() == "POST" {
                create_product(ctx, req).await
            } else {
                list_products(ctx, req).await
            }
        }
        ["api", "merchants", "products", id] => {
            allow(req, &["GET", "PUT", "DELETE"])?;
            match req.method().as_str() {
                "PUT" => update_product(ctx, req, id).await,
                "DELETE" => delete_product(ctx, req, id).await,
                _ => get_product(ctx, req, id).await,
            }
        }
        _ => Err(AppError::not_found("route_not_found", "no such route")),
    }
}

fn merchant_id(ctx: &AppContext, req: &Request) -> Result<String, AppError> {
    Ok(authenticate(req, &ctx.keys, Some(Role::Merchant))?.sub)
}

/// The product with its version as an `ETag`, for a later `If-Match`.
fn product_answer(status: StatusCode, product: &MerchantProduct) -> Answer {
    let mut response = json(status, product)?;
    if let Ok(etag) = format!("\"{}\"", product.version).parse() {
        response
            .headers_mut()
            .insert(lambda_http::http::header::ETAG, etag);
    }
    Ok(response)
}

/// List a new product; it is active at once.
#[utoipa::path(
    post, path = "/api/merchants/products/", tag = "merchants",
    request_body = CreateProductRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Listed", body = MerchantProduct, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "Malformed body or invalid fields", body = ErrorResponse),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a merchant", body = ErrorResponse),
        (status = 413, description = "Body over 64 KiB", body = ErrorResponse),
        (status = 415, description = "Body is not JSON", body = ErrorResponse),
    )
)]
async fn create_product(ctx: &AppContext, req: &Request) -> Answer {
    let merchant = merchant_id(ctx, req)?;
    let product = ctx
        .catalogue()
        .create_product(&merchant, parse_json(req)?)
        .await?;
    product_answer(StatusCode::CREATED, &product)
}

/// My products, active and inactive, newest first.
#[utoipa::path(
    get, path = "/api/merchants/products/", tag = "merchants",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = Page<MerchantProduct>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorResponse),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a merchant", body = ErrorResponse),
    )
)]
async fn list_products(ctx: &AppContext, req: &Request) -> Answer {
    let merchant = merchant_id(ctx, req)?;
    let page = page_request(req)?;
    json(
        StatusCode::OK,
        &ctx.catalogue().list_my_products(&merchant, &page).await?,
    )
}

/// One of my products.
#[utoipa::path(
    get, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Product id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = MerchantProduct, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a merchant", body = ErrorResponse),
        (status = 404, description = "No such product of mine", body = ErrorResponse),
    )
)]
async fn get_product(ctx: &AppContext, req: &Request, id: &str) -> Answer {
    let merchant = merchant_id(ctx, req)?;
    product_answer(
        StatusCode::OK,
        &ctx.catalogue().my_product(&merchant, id).await?,
    )
}

/// Change a product. Carries the `version` last read (body or `If-Match`); a stale one is refused
/// with 409 and nothing changes.
#[utoipa::path(
    put, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(
        ("id" = String, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "The version last read, e.g. \"3\" (instead of `version` in the body)"),
    ),
    request_body = UpdateProductRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated; `version` went up by one", body = MerchantProduct, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "Malformed body, invalid fields, no version, or nothing to change", body = ErrorResponse),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a merchant", body = ErrorResponse),
        (status = 404, description = "No such product of mine", body = ErrorResponse),
        (status = 409, description = "Stale version: the product changed since it was read", body = ErrorResponse),
        (status = 413, description = "Body over 64 KiB", body = ErrorResponse),
        (status = 415, description = "Body is not JSON", body = ErrorResponse),
    )
)]
async fn update_product(ctx: &AppContext, req: &Request, id: &str) -> Answer {
    let merchant = merchant_id(ctx, req)?;
    let if_match = if_match_version(req)?;
    let product = ctx
        .catalogue()
        .update_my_product(&merchant, id, parse_json(req)?, if_match)
        .await?;
    product_answer(StatusCode::OK, &product)
}

/// Take a product off the catalogue (soft delete; orders keep pointing at it). Repeating is fine.
#[utoipa::path(
    delete, path = "/api/merchants/products/{id}/", tag = "merchants",
    params(("id" = String, Path, description = "Product id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Inactive now"),
        (status = 401, description = "Missing or invalid access token", body = ErrorResponse),
        (status = 403, description = "Not a merchant", body = ErrorResponse),
        (status = 404, description = "No such product of mine", body = ErrorResponse),
    )
)]
async fn delete_product(ctx: &AppContext, req: &Request, id: &str) -> Answer {
    let merchant = merchant_id(ctx, req)?;
    ctx.catalogue().delete_my_product(&merchant, id).await?;
    no_content()
}

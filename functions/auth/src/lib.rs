//! The auth function's router: registration, login, token refresh and logout, and `me`.
//! The same `handle` runs under Lambda (`main.rs`) and under the local host.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::http::{
    allow, authenticate, finish, json, no_content, parse_json, request_id, segments,
};
use shared::{AppContext, AppError};

pub const ROUTE_PREFIX: &str = "/api/auth/";

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    let request_id = request_id(&req);
    finish(route(ctx, &req).await, &request_id)
}

async fn route(ctx: &AppContext, req: &Request) -> Result<Response<Body>, AppError> {
    let path = segments(req);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["api", "auth", "register"] => {
            allow(req, &["POST"])?;
            let profile = ctx.auth().register(parse_json(req)?).await?;
            json(StatusCode::CREATED, &profile)
        }
        ["api", "auth", "login"] => {
            allow(req, &["POST"])?;
            let tokens = ctx.auth().login(parse_json(req)?).await?;
            json(StatusCode::OK, &tokens)
        }
        ["api", "auth", "refresh"] => {
            allow(req, &["POST"])?;
            let tokens = ctx.auth().refresh(parse_json(req)?).await?;
            json(StatusCode::OK, &tokens)
        }
        ["api", "auth", "logout"] => {
            allow(req, &["POST"])?;
            ctx.auth().logout(parse_json(req)?).await?;
            no_content()
        }
        ["api", "auth", "me"] => {
            allow(req, &["GET"])?;
            let claims = authenticate(req, &ctx.keys, None)?;
            json(StatusCode::OK, &ctx.auth().me(&claims).await?)
        }
        _ => Err(AppError::not_found("route_not_found", "no such route")),
    }
}

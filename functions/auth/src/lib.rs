//! The auth function's router: registration, login, token refresh and logout, and `me`.
//! The same `handle` runs under Lambda (`main.rs`) and under the local host. Each route is one
//! function whose `#[utoipa::path]` is its entry in the OpenAPI document.

use lambda_http::{http::StatusCode, Body, Request, Response};
use shared::http::openapi::JsonBody;
use shared::http::{
    allow, json, matched_path, no_content, parse_json, Answer, Call, ErrorResponse,
};
use shared::services::auth::{
    LoginRequest, RefreshRequest, RegisterRequest, TokenPair, UserProfile,
};
use shared::{AppContext, AppError};

shared::api! {
    /// This function's part of the API document.
    pub struct AuthApi {
        // Each route once: its method and path are in its `#[utoipa::path]`, nowhere else.
        handlers: [
            register: PUBLIC,
            login: PUBLIC,
            refresh: PUBLIC,
            logout: PUBLIC,
            me: SIGNED_IN,
        ],
        components(schemas(RegisterRequest, LoginRequest, RefreshRequest, TokenPair, UserProfile, ErrorResponse)),
        tags((name = "auth", description = "Accounts and sessions"))
    }
}

pub async fn handle(ctx: &AppContext, req: Request) -> Response<Body> {
    let path = matched_path(&req);
    let matched = AuthApi::router().find(req.method(), &path);
    let label = matched.label();
    shared::observe::serve(&ctx.metrics, &req, label, matched.answer(ctx, &req)).await
}

/// Register a member or a merchant. A member starts with an empty point account.
#[utoipa::path(
    post, path = "/api/auth/register/", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserProfile),
        (status = 400, description = "Malformed body or invalid fields", body = ErrorResponse),
        (status = 409, description = "Username or email already registered (case-insensitive)", body = ErrorResponse),
        JsonBody,
        (status = 503, description = "`overloaded` (more password checks waiting than this instance takes on) or storage contended; nothing changed, retry after `Retry-After` seconds", body = ErrorResponse),
    )
)]
async fn register(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let profile = ctx.auth().register(parse_json(req)?).await?;
    json(StatusCode::CREATED, &profile)
}

/// Exchange username and password for an access token (15 min) and a refresh token (14 days).
/// Limits (per 15-minute window): 10 failed attempts per username from one client address, 50 per
/// address across usernames, then 429; past 10 for a username from anywhere, one attempt per 5 s.
#[utoipa::path(
    post, path = "/api/auth/login/", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 400, description = "Malformed body or missing fields", body = ErrorResponse),
        (status = 401, description = "Wrong username or password (same answer for both)", body = ErrorResponse),
        JsonBody,
        (status = 429, description = "Too many failed logins for this username or from this address; see `Retry-After`", body = ErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds until the window closes"))),
        (status = 503, description = "`overloaded` (more password checks waiting than this instance takes on) or storage contended; nothing changed, retry after `Retry-After` seconds", body = ErrorResponse),
    )
)]
async fn login(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let address = shared::http::client_address(req);
    let tokens = ctx
        .auth()
        .login(parse_json(req)?, address.as_deref())
        .await?;
    json(StatusCode::OK, &tokens)
}

/// Trade a refresh token for a new access **and** refresh token. Each refresh token works once;
/// presenting one that was already used revokes its whole session.
#[utoipa::path(
    post, path = "/api/auth/refresh/", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair", body = TokenPair),
        (status = 400, description = "Malformed body or missing field", body = ErrorResponse),
        (status = 401, description = "Invalid, expired, reused or revoked refresh token", body = ErrorResponse),
        JsonBody,
    )
)]
async fn refresh(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    let tokens = ctx.auth().refresh(parse_json(req)?).await?;
    json(StatusCode::OK, &tokens)
}

/// End the session the refresh token belongs to. Idempotent.
#[utoipa::path(
    post, path = "/api/auth/logout/", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Session ended"),
        (status = 400, description = "Malformed body or missing field", body = ErrorResponse),
        (status = 401, description = "Not a valid refresh token", body = ErrorResponse),
        JsonBody,
    )
)]
async fn logout(ctx: &AppContext, req: &Request, _call: &Call) -> Answer {
    ctx.auth().logout(parse_json(req)?).await?;
    no_content()
}

/// The caller's profile: a cheap way for a front end to check its access token.
#[utoipa::path(
    get, path = "/api/auth/me/", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = UserProfile),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorResponse),
    )
)]
async fn me(_ctx: &AppContext, req: &Request, call: &Call) -> Answer {
    allow(req, &["GET"])?;
    // The router read the user to check the session: the profile is that read.
    let user = call.caller()?.user.as_ref().ok_or_else(|| {
        AppError::internal("me is declared SIGNED_IN, so the router reads the user")
    })?;
    json(StatusCode::OK, &UserProfile::from(user))
}

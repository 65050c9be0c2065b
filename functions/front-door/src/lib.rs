//! API Gateway's `$default` route: everything no group's greedy route takes. It serves the API
//! document and its docs page, and answers every other path with the JSON `route_not_found`. It
//! needs no secret and no table, so it is small (128 MB) and starts without either: the 404s of bots
//! and scanners no longer wake the 1,024 MB auth function or read the secret.
//! The same `handle` runs under Lambda (`main.rs`) and under the local host.

pub mod docs;

use lambda_http::{Body, Request, Response};
use shared::http::{allow, matched_path, Answer};
use shared::observe::MetricsSink;
use shared::AppError;

pub async fn handle(metrics: &MetricsSink, req: Request) -> Response<Body> {
    let path = matched_path(&req);
    shared::observe::serve(metrics, &req, None, answer(&req, &path)).await
}

/// The API document and its docs page, else `route_not_found`.
async fn answer(req: &Request, path: &str) -> Answer {
    match docs::serve(path) {
        Some(answer) => {
            allow(req, &["GET"])?;
            answer
        }
        None => Err(AppError::route_not_found("route")),
    }
}

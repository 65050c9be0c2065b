//! The HTTP edge shared by every function, in three parts: routing on the path API Gateway matched
//! (here), reading requests ([`extract`]: bodies, credentials, query parameters, headers) and
//! writing responses ([`response`]: JSON, the single mapping from [`AppError`] to a status code and
//! error body, and the headers every answer carries).

mod access;
mod extract;
pub mod openapi;
mod response;
mod router;

pub use access::{Access, Caller};
pub use extract::*;
pub use response::*;
pub use router::{
    operations_mut, write_security, Answer, Call, Handler, Matched, PathParams, Pending, RouteKey,
    Router,
};

use http::Method;
use lambda_http::{Request, RequestExt};

use crate::error::{AppError, RequestError};

/// The path the function routes on: the path API Gateway *matched*, rebuilt from the route key and
/// its path parameters (`ANY /api/auth/{proxy+}` with `proxy = "login/"` is `/api/auth/login/`). A
/// stage name (`/prod/api/...`) or a custom domain's base path (`/v1/api/...`) in front of the routes
/// is thus never seen: API Gateway strips both before it matches a route, while `rawPath` (and the
/// URI `lambda_http` builds from it) keeps them. For the `$default` route, or a request that did not
/// come through API Gateway, it is the URI's path minus a leading `/<stage>` segment.
pub fn matched_path(req: &Request) -> String {
    use lambda_http::request::RequestContext;
    let raw = req.uri().path();
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return raw.to_string();
    };
    if let Some(template) = ctx
        .route_key
        .as_deref()
        .filter(|key| *key != "$default")
        .and_then(|key| key.split_once(' ').map(|(_, path)| path))
    {
        let params = req.path_parameters_ref();
        let mut rebuilt = String::with_capacity(raw.len());
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            rebuilt.push('/');
            match segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|name| name.trim_end_matches('+'))
            {
                Some(name) => {
                    let value = params.and_then(|p| p.first(name)).unwrap_or_default();
                    rebuilt.push_str(value.trim_start_matches('/'));
                }
                None => rebuilt.push_str(segment),
            }
        }
        return rebuilt;
    }
    match ctx.stage.as_deref() {
        Some(stage) if stage != "$default" && !stage.is_empty() => raw
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(stage))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| {
                if rest.is_empty() {
                    "/".to_string()
                } else {
                    rest.to_string()
                }
            })
            .unwrap_or_else(|| raw.to_string()),
        _ => raw.to_string(),
    }
}

/// Refuses the request with 405 unless its method is one of `allowed`.
pub fn allow(req: &Request, allowed: &'static [&'static str]) -> Result<(), AppError> {
    if allowed.contains(&req.method().as_str())
        || (req.method() == Method::HEAD && allowed.contains(&"GET"))
    {
        Ok(())
    } else {
        Err(RequestError::MethodNotAllowed {
            allowed: allowed.to_vec(),
        }
        .into())
    }
}

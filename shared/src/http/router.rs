//! Each route written once. A route's method and path live only in its handler's `#[utoipa::path]`
//! attribute; [`api!`](crate::api) lists each handler once, which both puts it in the function's
//! part of the API document and builds the [`Router`] *from that document* (matching operations to
//! handlers by `operationId`, which utoipa sets to the function's name). So the document, the
//! dispatch, the route labels in logs and the routes the SAM template is checked against cannot
//! disagree: there is one source.
//!
//! Matching is by path segments, ignoring empty ones (`/api/auth/me` and `/api/auth/me/` alike; ECPay
//! does not follow redirects), a `{name}` segment matching any one segment. A path matching several
//! templates takes the one with more literal segments first, as API Gateway prefers the most specific
//! route ("Routing API requests", HTTP API developer guide:
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>).
//!
//! One job (from a request to its handler), kept in one file with its tests; who may call a route
//! is in `access.rs`.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use lambda_http::{Body, Request, Response};
use utoipa::openapi::path::{Operation, PathItem};

use super::access::{Access, Caller};
use crate::domain::UserId;
use crate::error::{AppError, RequestError};
use crate::AppContext;

/// What a handler answers: a response, or an error the one mapping renders.
pub type Answer = Result<Response<Body>, AppError>;

/// A handler's future, boxed so handlers of different shapes fit one table.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Every handler has this shape: the context, the request, and the call (the path's `{parameters}`
/// and the caller the router admitted).
pub type Handler = for<'a> fn(&'a AppContext, &'a Request, &'a Call) -> Pending<'a>;

/// What the router hands a handler besides the request: the matched path's parameters and, on a
/// route that is not public, the caller it admitted (see [`Access`]).
#[derive(Debug, Default, Clone)]
pub struct Call {
    pub params: PathParams,
    pub caller: Option<Caller>,
}

impl Call {
    /// See [`PathParams::parse`].
    pub fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        refused: impl FnOnce() -> AppError,
    ) -> Result<T, AppError> {
        self.params.parse(name, parse, refused)
    }

    /// The caller the router admitted. A handler of a public route asking for one is a bug in its
    /// declaration (500, and the access sweep catches it).
    pub fn caller(&self) -> Result<&Caller, AppError> {
        self.caller
            .as_ref()
            .ok_or_else(|| AppError::internal("a public route asked for its caller"))
    }

    /// The admitted caller's id.
    pub fn user_id(&self) -> Result<UserId, AppError> {
        Ok(self.caller()?.id.clone())
    }
}

/// The values of a matched template's `{parameters}`, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// The raw segment a `{name}` matched, or `""` if the template has no such parameter (a typo
    /// there fails every request of the route, which the route's tests catch).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// The `{name}` segment parsed into what it names (`ProductId::parse`), or `refused()` when it
    /// names nothing: the one place a path segment becomes a typed value.
    pub fn parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        refused: impl FnOnce() -> AppError,
    ) -> Result<T, AppError> {
        parse(self.get(name)).ok_or_else(refused)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

/// One (method, path template) a function serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteKey {
    pub method: &'static str,
    pub template: &'static str,
}

struct Route {
    key: RouteKey,
    access: Access,
    segments: Vec<Segment>,
    /// How many of `segments` are literal: where several templates match, the most wins.
    specificity: usize,
    handler: Handler,
}

/// A function's routes, built once per cold start from its part of the API document.
pub struct Router {
    routes: Vec<Route>,
    keys: Vec<RouteKey>,
    problems: Vec<String>,
}

/// Where a request lands.
pub enum Matched {
    Route {
        key: RouteKey,
        access: Access,
        handler: Handler,
        params: PathParams,
    },
    /// The path is served, but not for this method: 405 with these in `Allow`.
    WrongMethod {
        allowed: Vec<&'static str>,
    },
    NoRoute,
}

/// The operations of a path item, in the document's method order.
fn operations(item: &PathItem) -> [(&'static str, Option<&Operation>); 8] {
    [
        ("GET", item.get.as_ref()),
        ("PUT", item.put.as_ref()),
        ("POST", item.post.as_ref()),
        ("DELETE", item.delete.as_ref()),
        ("OPTIONS", item.options.as_ref()),
        ("HEAD", item.head.as_ref()),
        ("PATCH", item.patch.as_ref()),
        ("TRACE", item.trace.as_ref()),
    ]
}

/// Every operation of `item`, to change (the document's operationIds, its security).
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Leaks a string built once per cold start, so route keys can be `&'static` like the literals
/// they replace. Bounded: the router is built once per process.
fn forever(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

impl Router {
    /// The router for `document`'s operations, each answered by the handler named by its
    /// `operationId`. An operation without a handler, or a handler without an operation, is a
    /// problem ([`Router::problems`]); a test asserts every function has none.
    pub fn from_document(
        document: &utoipa::openapi::OpenApi,
        handlers: &[(&'static str, Access, Handler)],
    ) -> Router {
        let mut routes = Vec::new();
        let mut problems = Vec::new();
        let mut used = vec![false; handlers.len()];
        for (path, item) in document.paths.paths.iter() {
            let template = forever(path.clone());
            let segments: Vec<Segment> = template
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name),
                        None => Segment::Literal(s),
                    },
                )
                .collect();
            let specificity = segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            for (method, operation) in operations(item) {
                let Some(operation) = operation else { continue };
                let id = operation.operation_id.as_deref().unwrap_or_default();
                match handlers.iter().position(|(name, _, _)| *name == id) {
                    Some(at) => {
                        used[at] = true;
                        routes.push(Route {
                            key: RouteKey { method, template },
                            access: handlers[at].1,
                            segments: segments.clone(),
                            specificity,
                            handler: handlers[at].2,
                        });
                    }
                    None => problems.push(format!(
                        "{method} {template}: no handler named `{id}` answers it"
                    )),
                }
            }
        }
        for ((name, _, _), used) in handlers.iter().zip(used) {
            if !used {
                problems.push(format!("handler `{name}` has no operation in the document"));
            }
        }
        // Most literal segments first, so a literal beats a `{parameter}` in the same place.
        routes.sort_by_key(|route| std::cmp::Reverse(route.specificity));
        let keys = routes.iter().map(|route| route.key).collect();
        Router {
            routes,
            keys,
            problems,
        }
    }

    /// Every (method, template) served, most specific first.
    pub fn keys(&self) -> &[RouteKey] {
        &self.keys
    }

    /// Every route served with who may call it, most specific first.
    pub fn routes(&self) -> impl Iterator<Item = (RouteKey, Access)> + '_ {
        self.routes.iter().map(|route| (route.key, route.access))
    }

    /// Operations without handlers and handlers without operations; empty when the function is sound.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Where `method path` lands. `HEAD` is answered by the `GET` route (its body is dropped by
    /// the transport).
    pub fn find(&self, method: &Method, path: &str) -> Matched {
        let wanted: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        let mut allowed: Vec<&'static str> = Vec::new();
        let mut best: Option<usize> = None;
        for route in &self.routes {
            let Some(params) = match_segments(&route.segments, &wanted) else {
                continue;
            };
            if best.is_some_and(|best| route.specificity < best) {
                break;
            }
            best = Some(route.specificity);
            if route.key.method == method {
                return Matched::Route {
                    key: route.key,
                    access: route.access,
                    handler: route.handler,
                    params,
                };
            }
            allowed.push(route.key.method);
        }
        if allowed.is_empty() {
            Matched::NoRoute
        } else {
            allowed.sort_by_key(|m| method_order(m));
            Matched::WrongMethod { allowed }
        }
    }

    /// Serves one request end to end: routed (once) on the path API Gateway matched, inside the
    /// request's span, logged and measured under its route label ([`crate::observe::serve`]).
    pub async fn serve(&self, ctx: &AppContext, req: &Request) -> Response<Body> {
        let matched = self.find(req.method(), &super::matched_path(req));
        let label = matched.label();
        crate::observe::serve(&ctx.metrics, req, label, matched.answer(ctx, req)).await
    }
}

impl Matched {
    /// The route label (`POST /api/members/orders/{id}/cancel/`) for logs and metrics, if any.
    pub fn label(&self) -> Option<String> {
        match self {
            Matched::Route { key, .. } => Some(format!("{} {}", key.method, key.template)),
            _ => None,
        }
    }

    /// The answer: the handler's once the caller is admitted (see [`Access`]), 405 with the allowed
    /// methods, or `route_not_found`.
    pub async fn answer(self, ctx: &AppContext, req: &Request) -> Answer {
        match self {
            Matched::Route {
                access,
                handler,
                params,
                ..
            } => {
                let caller = access.admit(ctx, req).await?;
                handler(ctx, req, &Call { params, caller }).await
            }
            Matched::WrongMethod { allowed } => {
                Err(RequestError::MethodNotAllowed { allowed }.into())
            }
            Matched::NoRoute => Err(AppError::route_not_found("route")),
        }
    }
}

fn method_order(method: &str) -> usize {
    [
        "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
    ]
    .iter()
    .position(|m| *m == method)
    .unwrap_or(usize::MAX)
}

fn match_segments(template: &[Segment], wanted: &[&str]) -> Option<PathParams> {
    if template.len() != wanted.len() {
        return None;
    }
    let mut params = Vec::new();
    for (segment, value) in template.iter().zip(wanted) {
        match segment {
            Segment::Literal(literal) if literal == value => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((*name, (*value).to_string())),
        }
    }
    Some(PathParams(params))
}

/// A function's API: its handlers listed once, each with who may call it (an [`Access`] constant),
/// which makes both its `#[derive(OpenApi)]` struct (with `paths(...)` of those handlers; the rest of
/// the `#[openapi]` attribute passes through), its document with each operation's `security` written
/// from the declared access ([`document`](#method.document)), and its [`Router`], built from that
/// document on first use.
///
/// ```ignore
/// shared::api! {
///     /// What members do.
///     pub struct MembersApi {
///         handlers: [browse_products: MEMBER, view_product: MEMBER],
///         components(schemas(ProductView)),
///         tags((name = "members", description = "What members do"))
///     }
/// }
/// ```
#[macro_export]
macro_rules! api {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            handlers: [$($handler:ident : $access:ident),+ $(,)?],
            $($rest:tt)*
        }
    ) => {
        $(#[$meta])*
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),+), $($rest)*)]
        $vis struct $name;

        impl $name {
            /// Each handler with who may call it, as declared.
            fn handlers() -> &'static [(&'static str, $crate::http::Access, $crate::http::Handler)] {
                &[$(
                    (
                        stringify!($handler),
                        $crate::http::Access::$access,
                        |ctx, req, call| ::std::boxed::Box::pin($handler(ctx, req, call)),
                    ),
                )+]
            }

            /// This function's part of the API document, each operation's `security` written from
            /// its declared access.
            pub fn document() -> utoipa::openapi::OpenApi {
                let mut document = <$name as utoipa::OpenApi>::openapi();
                $crate::http::write_security(&mut document, Self::handlers());
                document
            }

            /// This function's routes, built from its part of the API document once per process.
            pub fn router() -> &'static $crate::http::Router {
                static ROUTER: std::sync::LazyLock<$crate::http::Router> =
                    std::sync::LazyLock::new(|| {
                        $crate::http::Router::from_document(&$name::document(), $name::handlers())
                    });
                &ROUTER
            }
        }
    };
}

/// Sets each operation's `security` from the access its handler (named by `operationId`) declares.
pub fn write_security(
    document: &mut utoipa::openapi::OpenApi,
    handlers: &[(&'static str, Access, Handler)],
) {
    for item in document.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let id = operation.operation_id.as_deref().unwrap_or_default();
            if let Some((_, access, _)) = handlers.iter().find(|(name, _, _)| *name == id) {
                operation.security = access.security();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing<'a>(_: &'a AppContext, _: &'a Request, _: &'a Call) -> Pending<'a> {
        Box::pin(async { Err(AppError::route_not_found("route")) })
    }

    fn document(paths: &[(&str, &[(&str, &str)])]) -> utoipa::openapi::OpenApi {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
        let mut builder = utoipa::openapi::PathsBuilder::new();
        for (path, operations) in paths {
            for (method, id) in *operations {
                let method = match *method {
                    "GET" => HttpMethod::Get,
                    "POST" => HttpMethod::Post,
                    "PUT" => HttpMethod::Put,
                    _ => HttpMethod::Delete,
                };
                builder = builder.path(
                    *path,
                    PathItem::new(
                        method,
                        OperationBuilder::new().operation_id(Some(*id)).build(),
                    ),
                );
            }
        }
        utoipa::openapi::OpenApiBuilder::new()
            .paths(builder.build())
            .build()
    }

    fn router() -> Router {
        Router::from_document(
            &document(&[
                ("/api/orders/", &[("GET", "list"), ("POST", "create")]),
                ("/api/orders/{id}/", &[("GET", "get"), ("DELETE", "remove")]),
                ("/api/orders/mine/", &[("GET", "mine")]),
            ]),
            &[
                ("list", Access::PUBLIC, nothing),
                ("create", Access::PUBLIC, nothing),
                ("get", Access::PUBLIC, nothing),
                ("remove", Access::PUBLIC, nothing),
                ("mine", Access::PUBLIC, nothing),
            ],
        )
    }

    fn landed(router: &Router, method: Method, path: &str) -> Option<(String, PathParams)> {
        match router.find(&method, path) {
            Matched::Route { key, params, .. } => Some((key.template.to_string(), params)),
            _ => None,
        }
    }

    #[test]
    fn a_path_lands_on_its_template_with_its_parameters_slash_or_not() {
        let router = router();
        assert!(router.problems().is_empty(), "{:?}", router.problems());
        let (template, params) = landed(&router, Method::GET, "/api/orders/abc").unwrap();
        assert_eq!(template, "/api/orders/{id}/");
        assert_eq!(params.get("id"), "abc");
        assert_eq!(params.get("other"), "");
        let (template, _) = landed(&router, Method::HEAD, "/api/orders/").unwrap();
        assert_eq!(template, "/api/orders/");
        assert!(landed(&router, Method::GET, "/api/orders/a/b/").is_none());
    }

    #[test]
    fn a_literal_segment_beats_a_parameter() {
        let router = router();
        let (template, _) = landed(&router, Method::GET, "/api/orders/mine/").unwrap();
        assert_eq!(template, "/api/orders/mine/");
        // `mine` is a literal route for GET only; DELETE on it is not the `{id}` route's DELETE.
        assert!(matches!(
            router.find(&Method::DELETE, "/api/orders/mine/"),
            Matched::WrongMethod { allowed } if allowed == ["GET"]
        ));
    }

    #[test]
    fn a_served_path_with_another_method_lists_the_allowed_ones_in_order() {
        let router = router();
        match router.find(&Method::PATCH, "/api/orders/x/") {
            Matched::WrongMethod { allowed } => assert_eq!(allowed, ["GET", "DELETE"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            router.find(&Method::GET, "/api/nothing/"),
            Matched::NoRoute
        ));
        assert_eq!(
            router.find(&Method::POST, "/api/orders").label().as_deref(),
            Some("POST /api/orders/")
        );
    }

    #[test]
    fn operations_and_handlers_that_do_not_pair_up_are_reported() {
        let router = Router::from_document(
            &document(&[("/api/a/", &[("GET", "a"), ("POST", "unanswered")])]),
            &[
                ("a", Access::PUBLIC, nothing),
                ("stray", Access::PUBLIC, nothing),
            ],
        );
        assert_eq!(
            router.problems(),
            [
                "POST /api/a/: no handler named `unanswered` answers it".to_string(),
                "handler `stray` has no operation in the document".to_string(),
            ]
        );
        assert_eq!(router.keys().len(), 1);
    }
}

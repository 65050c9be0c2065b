//! A model of API Gateway HTTP APIs: which routes a template may declare, and which route (and so
//! which function) a request reaches. The local host routes every request through it, with the
//! routes read from `template.yaml` itself, and the template test proves every documented operation
//! lands on the function that serves it. It is deliberately strict: where AWS's documentation leaves
//! a case open, the model refuses rather than guesses kindly.
//!
//! Sources (AWS API Gateway developer guide and the CDK, as of 2026):
//! - "Create routes for HTTP APIs" (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>):
//!   a route is a method (or `ANY`, which matches every method not defined for that resource) and a
//!   path; `{name}` matches one path segment; a greedy `{proxy+}` catches all child resources and
//!   must be the last segment; `$default` catches what no other route matches. Routing: the stage is
//!   selected first (a request whose first segment names a stage goes to it, anything else to
//!   `$default`), then the route, by priority: (1) full match of route and method, (2) match with a
//!   greedy path variable, (3) `$default`; nothing matched answers `{"message":"Not Found"}`.
//!   "API Gateway decodes URL-encoded request parameters before passing them to your backend."
//! - The AWS CDK's `HttpRoute` refuses a path that does not start with `/` or that ends with `/`
//!   ("A route path must always start with a '/' and not end with a '/'"); SAM and CloudFormation pass
//!   such a path through and the deployed route never matches, so the model refuses it too.
//! - Payload format 2.0 (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>):
//!   the event carries `routeKey` (`"ANY /api/auth/{proxy+}"` or `"$default"`), `pathParameters`
//!   (decoded), `rawPath` (as sent, with the stage) and `requestContext.stage`.
//!
//! Choices where the documentation is silent, made strict: a greedy variable needs at least one
//! character after its prefix (`/api/auth/` alone does not match `/api/auth/{proxy+}`); a trailing
//! slash is a segment like any other (`/api/docs/` does not fully match `GET /api/docs`); among several
//! full matches the one with literal segments earliest wins; among greedy matches the longest prefix
//! wins; at equal specificity an explicit method beats `ANY`. Methods are compared exactly (`HEAD` is
//! not `GET`).

use std::collections::HashMap;

/// One route of the HTTP API and the function binary it invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `ANY` or an HTTP method, upper case. `ANY` for `$default`.
    pub method: String,
    /// `None` is the `$default` route.
    pub path: Option<String>,
    /// The function's binary (`fn-auth`, ...), from its `BuildProperties.Binary`.
    pub function: String,
}

impl Route {
    /// The `routeKey` API Gateway puts in the event.
    pub fn key(&self) -> String {
        match &self.path {
            None => "$default".to_string(),
            Some(path) => format!("{} {path}", self.method),
        }
    }
}

/// The route a request reached, with the path parameters API Gateway passes on (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    pub route: &'a Route,
    pub path_parameters: HashMap<String, String>,
}

const METHODS: [&str; 8] = [
    "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
];

/// Why API Gateway would not take a route path.
pub fn check_route(method: &str, path: &str) -> Result<(), String> {
    if !METHODS.contains(&method) {
        return Err(format!("{method} {path}: unknown method"));
    }
    if !path.starts_with('/') {
        return Err(format!("{method} {path}: a route path must start with '/'"));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!(
            "{method} {path}: a route path must not end with '/' (API Gateway never matches it)"
        ));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && path != "/" {
            return Err(format!("{method} {path}: empty path segment"));
        }
        let variable = segment.starts_with('{') || segment.ends_with('}');
        if variable && !(segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2) {
            return Err(format!(
                "{method} {path}: a path variable must be a whole segment"
            ));
        }
        if segment.ends_with("+}") && i + 1 != segments.len() {
            return Err(format!(
                "{method} {path}: a greedy path variable must be the last segment"
            ));
        }
    }
    Ok(())
}

/// Every API route `template.yaml` declares: each `HttpApi` event of each `AWS::Serverless::Function`
/// (an event with neither `Path` nor `Method` is the `$default` route, as SAM defines it). Errors name
/// each route API Gateway would not take, and duplicate route keys.
pub fn routes_from_template(template: &str) -> Result<Vec<Route>, String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
    let resources = doc["Resources"]
        .as_mapping()
        .ok_or("template.yaml has no Resources")?;
    let mut routes: Vec<Route> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for (name, resource) in resources {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        let Some(function) = resource["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            problems.push(format!("{name}: no Metadata.BuildProperties.Binary"));
            continue;
        };
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let props = &event["Properties"];
            let method = props["Method"].as_str().map(str::to_ascii_uppercase);
            let path = props["Path"].as_str().map(str::to_string);
            let route = match (method, path) {
                (None, None) => Route {
                    method: "ANY".into(),
                    path: None,
                    function: function.to_string(),
                },
                (method, Some(path)) => {
                    let method = method.unwrap_or_else(|| "ANY".into());
                    if let Err(problem) = check_route(&method, &path) {
                        problems.push(problem);
                        continue;
                    }
                    Route {
                        method,
                        path: Some(path),
                        function: function.to_string(),
                    }
                }
                (Some(method), None) => {
                    problems.push(format!("{name}: {method} route without a Path"));
                    continue;
                }
            };
            if routes.iter().any(|r| r.key() == route.key()) {
                problems.push(format!("route {} is declared twice", route.key()));
            }
            routes.push(route);
        }
    }
    if problems.is_empty() {
        Ok(routes)
    } else {
        Err(problems.join("; "))
    }
}

/// Splits a stage off a request path the way API Gateway selects stages: when the first segment
/// names one of `stages`, the request goes to that stage and the rest is the path routes see.
pub fn select_stage<'p>(path: &'p str, stages: &[&str]) -> (Option<String>, &'p str) {
    for stage in stages {
        if let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
            if rest.starts_with('/') {
                return (Some(stage.to_string()), rest);
            }
        }
    }
    (None, path)
}

/// How well a route path matches a request path, higher is better; `None` when it does not match.
enum Match {
    /// Literal-vs-variable pattern of the segments (true = literal), compared left to right.
    Full(Vec<bool>, HashMap<String, String>),
    /// Number of segments before the greedy variable.
    Greedy(usize, HashMap<String, String>),
}

fn match_path(template: &str, path: &str) -> Option<Match> {
    let wanted: Vec<&str> = path.split('/').skip(1).collect();
    let parts: Vec<&str> = template.split('/').skip(1).collect();
    let mut params = HashMap::new();
    let mut literal = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            // Greedy: everything after the prefix, at least one character.
            let rest = wanted[i.min(wanted.len())..].join("/");
            if i >= wanted.len() || rest.is_empty() {
                return None;
            }
            params.insert(name.to_string(), percent_decode(&rest)?);
            return Some(Match::Greedy(i, params));
        }
        let segment = wanted.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.insert(name.to_string(), percent_decode(segment)?);
            literal.push(false);
        } else if part == segment {
            literal.push(true);
        } else {
            return None;
        }
    }
    (parts.len() == wanted.len()).then_some(Match::Full(literal, params))
}

/// Selects the route for `method` and `path` (the path after stage selection), by the priorities
/// above. `None` is API Gateway's own `{"message":"Not Found"}`.
pub fn select<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<Selected<'a>> {
    // Candidates ranked by (is full match, specificity, explicit method); the best one wins.
    type Rank = (bool, Vec<usize>, bool);
    let mut best: Option<(Rank, Selected<'a>)> = None;
    for route in routes {
        let Some(template) = &route.path else {
            continue;
        };
        let explicit = route.method == method;
        if !(explicit || route.method == "ANY") {
            continue;
        }
        let (rank, path_parameters) = match match_path(template, path) {
            Some(Match::Full(literal, params)) => (
                (
                    true,
                    literal.iter().map(|&l| usize::from(l)).collect(),
                    explicit,
                ),
                params,
            ),
            Some(Match::Greedy(depth, params)) => ((false, vec![depth], explicit), params),
            None => continue,
        };
        if best.as_ref().is_none_or(|(b, _)| rank > *b) {
            best = Some((
                rank,
                Selected {
                    route,
                    path_parameters,
                },
            ));
        }
    }
    if let Some((_, selected)) = best {
        return Some(selected);
    }
    routes
        .iter()
        .find(|r| r.path.is_none())
        .map(|route| Selected {
            route,
            path_parameters: HashMap::new(),
        })
}

/// Percent-decoding of a path parameter; `None` for an invalid escape or non-UTF-8 result.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The routes of the `template.yaml` this binary was built with.
pub fn deployed_routes() -> &'static [Route] {
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        routes_from_template(include_str!("../../../template.yaml")).unwrap_or_else(|problem| {
            tracing::error!(%problem, "template.yaml declares routes API Gateway would refuse");
            Vec::new()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: Option<&str>, function: &str) -> Route {
        Route {
            method: method.into(),
            path: path.map(str::to_string),
            function: function.into(),
        }
    }

    fn routes() -> Vec<Route> {
        vec![
            route("GET", Some("/pets/dog/1"), "exact"),
            route("GET", Some("/pets/dog/{id}"), "variable"),
            route("GET", Some("/pets/{proxy+}"), "greedy-get"),
            route("ANY", Some("/{proxy+}"), "greedy-root"),
            route("ANY", None, "default"),
        ]
    }

    fn lands(method: &str, path: &str) -> String {
        let routes = routes();
        select(&routes, method, path)
            .map(|s| s.route.function.clone())
            .unwrap_or_else(|| "not found".into())
    }

    #[test]
    fn the_documented_priorities_hold() {
        // AWS's own example: full match first, then greedy, then $default.
        assert_eq!(lands("GET", "/pets/dog/1"), "exact");
        assert_eq!(lands("GET", "/pets/dog/2"), "variable");
        assert_eq!(lands("GET", "/pets/cat/1"), "greedy-get");
        assert_eq!(lands("POST", "/pets/cat/1"), "greedy-root");
        assert_eq!(lands("GET", "/"), "default");
        // A trailing slash is a segment: no full match, so the greedy route takes it.
        assert_eq!(lands("GET", "/pets/dog/1/"), "greedy-get");
    }

    #[test]
    fn greedy_variables_carry_the_decoded_rest_of_the_path() {
        let routes = routes();
        let selected = select(&routes, "GET", "/pets/a%20b/c/").unwrap();
        assert_eq!(selected.route.function, "greedy-get");
        assert_eq!(selected.path_parameters["proxy"], "a b/c/");
        // The prefix alone is not enough for a greedy variable.
        assert_eq!(lands("GET", "/pets/"), "greedy-root");
    }

    #[test]
    fn route_paths_api_gateway_refuses_are_refused() {
        assert!(check_route("GET", "/api/auth/login/").is_err());
        assert!(check_route("GET", "api/auth").is_err());
        assert!(check_route("GET", "/api/{proxy+}/x").is_err());
        assert!(check_route("GET", "/api//x").is_err());
        assert!(check_route("FETCH", "/api").is_err());
        assert!(check_route("ANY", "/api/auth/{proxy+}").is_ok());
        assert!(check_route("GET", "/api/orders/{id}").is_ok());
    }

    #[test]
    fn a_stage_segment_is_split_off_before_routing() {
        assert_eq!(
            select_stage("/prod/api/auth/me/", &["prod"]),
            (Some("prod".to_string()), "/api/auth/me/")
        );
        assert_eq!(
            select_stage("/production/x", &["prod"]),
            (None, "/production/x")
        );
    }
}

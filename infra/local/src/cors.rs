//! API Gateway's CORS for HTTP APIs, as the local host's front door: the `CorsConfiguration` of the
//! `HttpApi` in `template.yaml` (read from the template itself, so the two cannot drift), with the
//! allowed origins from `CORS_ALLOWED_ORIGINS` instead of the stack parameter.
//!
//! What AWS documents ("Configure CORS for HTTP APIs in API Gateway",
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html>), modelled here:
//! - "API Gateway automatically sends a response to preflight OPTIONS requests, even if there isn't
//!   an OPTIONS route configured": a preflight is answered here, for any path, and no function runs;
//! - "For a CORS request, API Gateway adds the configured CORS headers to the response from an
//!   integration", and "ignores CORS headers returned from your backend integration": a function's
//!   own `Access-Control-*` headers are dropped;
//! - "To return CORS headers, your request must contain an origin header. For the OPTIONS method,
//!   your request must contain an origin header and an Access-Control-Request-Method header";
//! - `allowOrigins` entries are an origin, `*`, or `https://*` / `http://*` (any origin of that
//!   scheme).
//!
//! Where the page is silent the model is strict: an origin not allowed gets no CORS header at all
//! (the browser then refuses the answer), and a preflight is answered `204 No Content` either way.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The default local origins: a Vite dev server on its usual port, by both names.
pub const DEFAULT_LOCAL_ORIGINS: [&str; 2] = ["http://localhost:5173", "http://127.0.0.1:5173"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
}

impl Cors {
    /// The `HttpApi`'s `CorsConfiguration` in `template` (its `AllowOrigins` is a parameter, so the
    /// origins are given: `origins`).
    pub fn from_template(template: &str, origins: Vec<String>) -> Result<Self, String> {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
        let resources = doc
            .get("Resources")
            .and_then(|r| r.as_mapping())
            .ok_or("template.yaml has no Resources")?;
        let api = resources
            .values()
            .find(|r| r.get("Type").and_then(|t| t.as_str()) == Some("AWS::Serverless::HttpApi"))
            .ok_or("template.yaml has no HttpApi")?;
        let cors = api
            .get("Properties")
            .and_then(|p| p.get("CorsConfiguration"))
            .ok_or("the HttpApi has no CorsConfiguration")?;
        let list = |name: &str| -> Vec<String> {
            cors.get(name)
                .and_then(|v| v.as_sequence())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Cors {
            allow_origins: origins,
            allow_methods: list("AllowMethods"),
            allow_headers: list("AllowHeaders"),
            expose_headers: list("ExposeHeaders"),
            max_age: cors.get("MaxAge").and_then(|m| m.as_u64()),
        })
    }

    /// The template this binary was built with, and `origins`.
    pub fn deployed(origins: Vec<String>) -> Self {
        Self::from_template(include_str!("../../../template.yaml"), origins).unwrap_or_else(
            |problem| {
                tracing::error!(%problem, "template.yaml has no CORS configuration the host can read");
                Cors {
                    allow_origins: Vec::new(),
                    allow_methods: Vec::new(),
                    allow_headers: Vec::new(),
                    expose_headers: Vec::new(),
                    max_age: None,
                }
            },
        )
    }

    /// Origins from `raw` (`CORS_ALLOWED_ORIGINS`: comma-separated), else the local defaults.
    pub fn origins_from(raw: Option<&str>) -> Vec<String> {
        match raw.map(str::trim).filter(|r| !r.is_empty()) {
            Some(raw) => raw
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            None => DEFAULT_LOCAL_ORIGINS
                .iter()
                .map(|o| o.to_string())
                .collect(),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|allowed| {
            allowed == "*"
                || allowed.eq_ignore_ascii_case(origin)
                || (allowed == "https://*" && origin.starts_with("https://"))
                || (allowed == "http://*" && origin.starts_with("http://"))
        })
    }

    /// API Gateway's own answer to a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` when `method`/`headers` are not one.
    pub fn preflight(&self, method: &http::Method, headers: &HeaderMap) -> Option<HeaderMap> {
        if method != http::Method::OPTIONS
            || !headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
        let mut answer = HeaderMap::new();
        if self.allows(origin) {
            put(
                &mut answer,
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                origin,
            );
            put(
                &mut answer,
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                &self.allow_methods.join(","),
            );
            put(
                &mut answer,
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                &self.allow_headers.join(","),
            );
            if let Some(max_age) = self.max_age {
                put(
                    &mut answer,
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    &max_age.to_string(),
                );
            }
        }
        Some(answer)
    }

    /// A function's answer as API Gateway passes it on: its own CORS headers dropped, the
    /// configured ones added when the request's `origin` is allowed.
    pub fn decorate(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        let own: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in own {
            headers.remove(name);
        }
        let Some(origin) = origin.filter(|o| self.allows(o)) else {
            return;
        };
        put(headers, http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if !self.expose_headers.is_empty() {
            put(
                headers,
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &self.expose_headers.join(","),
            );
        }
    }
}

fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors::deployed(Cors::origins_from(None))
    }

    #[test]
    fn the_template_configuration_is_read_and_origins_match_as_api_gateway_documents() {
        let cors = cors();
        assert!(cors.allow_methods.contains(&"OPTIONS".to_string()));
        assert!(cors.allow_headers.contains(&"idempotency-key".to_string()));
        assert!(cors.expose_headers.contains(&"x-request-id".to_string()));
        assert!(cors.allows("http://localhost:5173") && cors.allows("http://127.0.0.1:5173"));
        assert!(!cors.allows("http://localhost:5174") && !cors.allows("https://evil.example"));
        let any_https = Cors {
            allow_origins: vec!["https://*".into()],
            ..cors.clone()
        };
        assert!(
            any_https.allows("https://shop.example") && !any_https.allows("http://shop.example")
        );
        assert_eq!(
            Cors::origins_from(Some(" https://a.example/ ,https://b.example")),
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_preflight_needs_origin_and_request_method_and_a_foreign_origin_gets_no_header() {
        let cors = cors();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ORIGIN,
            HeaderValue::from_static("http://localhost:5173"),
        );
        assert!(
            cors.preflight(&http::Method::OPTIONS, &headers).is_none(),
            "no request method"
        );
        headers.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(cors.preflight(&http::Method::GET, &headers).is_none());
        let answer = cors.preflight(&http::Method::OPTIONS, &headers).unwrap();
        assert_eq!(
            answer[http::header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://localhost:5173"
        );
        assert_eq!(answer[http::header::ACCESS_CONTROL_MAX_AGE], "600");
        headers.insert(
            http::header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cors
            .preflight(&http::Method::OPTIONS, &headers)
            .unwrap()
            .is_empty());
        let mut own = HeaderMap::new();
        own.insert(
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        cors.decorate(Some("https://evil.example"), &mut own);
        assert!(own.is_empty(), "a function's own CORS headers are ignored");
    }
}

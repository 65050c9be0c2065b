//! The one application error type. Every failure a caller can cause or observe is a variant here;
//! `crate::http::error_response` is the only place that turns it into a status code and body.

use std::collections::BTreeMap;

/// Per-field problems of a rejected request, keyed by field name.
pub type FieldErrors = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body parsed but its values break the rules.
    #[error("{message}")]
    Validation {
        message: String,
        fields: FieldErrors,
    },
    /// The request cannot be understood at all (malformed JSON, bad query parameter, ...).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    /// Missing, invalid, expired or revoked credentials.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Authenticated, but the role may not use this route.
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request is valid but the current state refuses it (duplicate, stale version, ...).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// The store stayed contended or throttled after bounded retries; the client may retry.
    #[error("the service is busy, retry shortly")]
    Unavailable { retry_after_secs: u64 },
    /// More work is waiting than this process takes on (a burst of logins): refused at once,
    /// before it costs memory; the client may retry after `retry_after_secs`.
    #[error("the service is overloaded, retry shortly")]
    Overloaded { retry_after_secs: u64 },
    /// Refused at the HTTP edge before any use case ran (see [`RequestError`]).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A bug or an infrastructure failure. The cause (with its own causes) is logged, never
    /// returned.
    #[error("internal error: {source}")]
    Internal {
        #[source]
        source: BoxError,
    },
}

/// Any error, kept with its chain of causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What only the transport refuses: the method, the body's size or its media type. Services and the
/// store never produce these; [`crate::http`] does, and the one mapping renders them.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("this route does not accept that method")]
    MethodNotAllowed { allowed: Vec<&'static str> },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    /// The body did not arrive in time (only the local host reads bodies off a socket; on AWS,
    /// API Gateway receives them before any function runs).
    #[error("the request body did not arrive within {seconds} seconds")]
    BodyTimeout { seconds: u64 },
}

impl RequestError {
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            RequestError::MethodNotAllowed { .. } => "method_not_allowed",
            RequestError::PayloadTooLarge { .. } => "payload_too_large",
            RequestError::UnsupportedMediaType { .. } => "unsupported_media_type",
            RequestError::BodyTimeout { .. } => "request_timeout",
        }
    }
}

/// An internal failure with what was being done when it happened ("open payments: <cause>").
#[derive(Debug, thiserror::Error)]
#[error("{during}")]
struct During {
    during: &'static str,
    #[source]
    source: BoxError,
}

impl AppError {
    /// The HTTP status this error is answered with (the one mapping, used by `http::error_response`).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::Validation { .. } | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } | AppError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Request(refused) => refused.status(),
            AppError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error.code` of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_failed",
            AppError::BadRequest { code, .. }
            | AppError::Unauthenticated { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::Unprocessable { code, .. }
            | AppError::TooManyRequests { code, .. } => code,
            AppError::Forbidden { .. } => "forbidden",
            AppError::Unavailable { .. } => "service_unavailable",
            AppError::Overloaded { .. } => "overloaded",
            AppError::Request(refused) => refused.code(),
            AppError::Internal { .. } => "internal_error",
        }
    }

    pub fn validation(fields: FieldErrors) -> Self {
        AppError::Validation {
            message: "the request has invalid fields".to_string(),
            fields,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
            fields: FieldErrors::new(),
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        AppError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A path no route of this function serves (`what` says what was looked for).
    pub fn route_not_found(what: &str) -> Self {
        AppError::not_found("route_not_found", format!("no such {what}"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
            fields: FieldErrors::new(),
        }
    }

    /// An internal failure caused by `cause` (an error, kept with its own causes, or a message).
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        AppError::Internal {
            source: cause.into(),
        }
    }

    /// [`AppError::internal`], saying what was being done (`"open payments"`).
    pub fn internal_during(during: &'static str, cause: impl Into<BoxError>) -> Self {
        AppError::Internal {
            source: Box::new(During {
                during,
                source: cause.into(),
            }),
        }
    }

    /// The whole chain of causes of an internal error, outermost first, for the log (never for
    /// the client): `open payments: service error: ResourceNotFoundException: …`.
    pub fn cause_chain(&self) -> Option<String> {
        let AppError::Internal { source } = self else {
            return None;
        };
        let mut chain = source.to_string();
        let mut next = source.source();
        while let Some(cause) = next {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            next = cause.source();
        }
        Some(chain)
    }
}

/// The 404 answers for what a path names, each written once: a handler answers them when a path
/// segment is not even an id, a service when the id names nothing the caller may see.
pub mod not_found {
    use super::AppError;

    pub fn user() -> AppError {
        AppError::not_found("user_not_found", "no such user")
    }

    pub fn member() -> AppError {
        AppError::not_found("member_not_found", "no such member")
    }

    pub fn product() -> AppError {
        AppError::not_found("product_not_found", "no such product")
    }

    pub fn order() -> AppError {
        AppError::not_found("order_not_found", "no such order")
    }

    pub fn payment() -> AppError {
        AppError::not_found("payment_not_found", "no such payment")
    }

    pub fn address() -> AppError {
        AppError::not_found("address_not_found", "no such address of mine")
    }

    pub fn merchant() -> AppError {
        AppError::not_found("merchant_not_found", "no such merchant")
    }

    pub fn statement() -> AppError {
        AppError::not_found("statement_not_found", "no such statement")
    }

    pub fn webhook() -> AppError {
        AppError::not_found("webhook_not_found", "no such webhook of mine")
    }

    pub fn delivery() -> AppError {
        AppError::not_found("delivery_not_found", "no such delivery of this webhook")
    }
}

mod fields;
pub mod messages;
pub use fields::{FieldCheck, Missing, Required, RequiredFields};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_causes_for_the_log_and_tells_the_client_none_of_them() {
        let disk = std::io::Error::other("disk on fire");
        let err = AppError::internal_during("open payments", disk);
        assert_eq!(
            err.cause_chain().as_deref(),
            Some("open payments: disk on fire")
        );
        let during = std::error::Error::source(&err).expect("the context is the first cause");
        assert_eq!(
            during.source().map(ToString::to_string).as_deref(),
            Some("disk on fire")
        );
        let response = crate::http::error_response(&err);
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8_lossy(response.body().as_ref()).to_string();
        assert!(
            body.contains("internal_error") && !body.contains("disk"),
            "{body}"
        );
    }

    #[test]
    fn transport_refusals_map_to_their_own_statuses_and_codes() {
        let refused: AppError = RequestError::PayloadTooLarge { limit: 10 }.into();
        assert_eq!(refused.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.code(), "payload_too_large");
        let refused: AppError = RequestError::MethodNotAllowed {
            allowed: vec!["GET"],
        }
        .into();
        let response = crate::http::error_response(&refused);
        assert_eq!(response.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(http::header::ALLOW)
                .map(|v| v.as_bytes()),
            Some(&b"GET"[..])
        );
    }
}

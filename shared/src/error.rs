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
    #[error("method not allowed")]
    MethodNotAllowed { allowed: &'static [&'static str] },
    /// The request is valid but the current state refuses it (duplicate, stale version, ...).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        fields: FieldErrors,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
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
    /// A bug or an infrastructure failure. The detail is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
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
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } | AppError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType { .. } => "unsupported_media_type",
            AppError::Unavailable { .. } => "service_unavailable",
            AppError::Overloaded { .. } => "overloaded",
            AppError::Internal(_) => "internal_error",
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

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        AppError::Internal(detail.to_string())
    }
}

/// Collects field problems while a request is validated, so the client hears about all of them at once.
#[derive(Debug, Default)]
pub struct FieldCheck {
    fields: FieldErrors,
}

impl FieldCheck {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: &str, problem: impl Into<String>) {
        self.fields
            .entry(field.to_string())
            .or_insert_with(|| problem.into());
    }

    /// Takes a required field out of its `Option`, recording "is required" when it is absent.
    pub fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.fail(field, "is required");
        }
        value
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.fields))
        }
    }
}

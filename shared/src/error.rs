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

    /// A field the request must carry. Checks may look at it ([`Required::get`]) or parse it
    /// ([`Required::parse`]); [`FieldCheck::finish_with`] hands back the values.
    pub fn required<T>(&self, field: &'static str, value: Option<T>) -> Required<T> {
        Required { field, value }
    }

    /// Parses the field with `parse` if present, recording its problem if refused. `None` when
    /// absent or refused.
    pub fn parse<T, U>(
        &mut self,
        field: &str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Option<U> {
        match value.map(parse)? {
            Ok(parsed) => Some(parsed),
            Err(problem) => {
                self.fail(field, problem);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.fields.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.fields))
        }
    }

    /// The required values, once every one is present and no check failed; otherwise every
    /// problem at once, an absent field's being "is required". Total: there is no "validated but
    /// missing" case to handle after it ("parse, don't validate").
    pub fn finish_with<R: RequiredFields>(mut self, required: R) -> Result<R::Values, AppError> {
        match required.take() {
            Ok(values) => self.finish().map(|()| values),
            Err(Missing(missing)) => {
                for field in missing {
                    self.fail(field, "is required");
                }
                Err(AppError::validation(self.fields))
            }
        }
    }
}

/// A required field of a request: its value, or nothing if it was absent or refused by a check
/// (which recorded why).
#[must_use = "hand it to FieldCheck::finish_with"]
#[derive(Debug)]
pub struct Required<T> {
    field: &'static str,
    value: Option<T>,
}

impl<T> Required<T> {
    /// The value, for a check to look at.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// The value parsed by `parse`; a refusal is recorded in `check` under this field.
    pub fn parse<U>(
        self,
        check: &mut FieldCheck,
        parse: impl FnOnce(T) -> Result<U, String>,
    ) -> Required<U> {
        let field = self.field;
        Required {
            field,
            value: check.parse(field, self.value, parse),
        }
    }

    /// The value passed through `f` (a check that records its own problems and returns the
    /// value to keep, such as a trimmed name).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Required<U> {
        Required {
            field: self.field,
            value: self.value.map(f),
        }
    }

    fn take(self) -> Result<T, Missing> {
        self.value.ok_or(Missing(vec![self.field]))
    }
}

/// The names of required fields without a value; never empty.
#[derive(Debug)]
pub struct Missing(Vec<&'static str>);

/// Both values, or every missing field of either.
fn both<A, B>(a: Result<A, Missing>, b: Result<B, Missing>) -> Result<(A, B), Missing> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Missing(mut a)), Err(Missing(b))) => {
            a.extend(b);
            Err(Missing(a))
        }
        (Err(missing), Ok(_)) | (Ok(_), Err(missing)) => Err(missing),
    }
}

/// One [`Required`] field or a tuple of them, taken out together.
pub trait RequiredFields {
    type Values;
    fn take(self) -> Result<Self::Values, Missing>;
}

impl<A> RequiredFields for Required<A> {
    type Values = A;
    fn take(self) -> Result<A, Missing> {
        Required::take(self)
    }
}

impl<A, B> RequiredFields for (Required<A>, Required<B>) {
    type Values = (A, B);
    fn take(self) -> Result<(A, B), Missing> {
        both(self.0.take(), self.1.take())
    }
}

impl<A, B, C> RequiredFields for (Required<A>, Required<B>, Required<C>) {
    type Values = (A, B, C);
    fn take(self) -> Result<(A, B, C), Missing> {
        let ((a, b), c) = both(both(self.0.take(), self.1.take()), self.2.take())?;
        Ok((a, b, c))
    }
}

impl<A, B, C, D> RequiredFields for (Required<A>, Required<B>, Required<C>, Required<D>) {
    type Values = (A, B, C, D);
    fn take(self) -> Result<(A, B, C, D), Missing> {
        let ((a, b), (c, d)) = both(
            both(self.0.take(), self.1.take()),
            both(self.2.take(), self.3.take()),
        )?;
        Ok((a, b, c, d))
    }
}

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
    fn required_fields_come_out_together_or_every_problem_is_reported_at_once() {
        let check = FieldCheck::new();
        let a = check.required("a", Some(1));
        let b = check.required("b", Some("x"));
        assert_eq!(check.finish_with((a, b)).unwrap(), (1, "x"));

        let mut check = FieldCheck::new();
        let a = check.required("a", None::<i64>);
        let b = check
            .required("b", Some("x"))
            .parse(&mut check, |_| Err::<i64, _>("must be a number".into()));
        let c = check.required("c", Some(3));
        let d = check.required("d", None::<bool>);
        check.fail("e", "is too long");
        let AppError::Validation { fields, .. } = check.finish_with((a, b, c, d)).unwrap_err()
        else {
            panic!("expected a validation error");
        };
        assert_eq!(fields["a"], "is required");
        assert_eq!(
            fields["b"], "must be a number",
            "a refusal is not overwritten"
        );
        assert_eq!(fields["d"], "is required");
        assert_eq!(fields["e"], "is too long");
        assert!(!fields.contains_key("c"));

        // Every value present, but another check failed: still refused.
        let mut check = FieldCheck::new();
        let a = check.required("a", Some(1));
        check.fail("other", "is wrong");
        assert!(check.finish_with(a).is_err());
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

//! The error answers many routes share, described once for the API document: each set is a type
//! a route lists in its `responses(...)` beside its own answers, instead of retyping them.

use utoipa::IntoResponses;

use super::ErrorResponse;

/// A route for members: 401 without a valid access token, 403 for any other role.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its derived description is used.
pub enum MemberAccess {
    #[response(status = 401, description = "Missing or invalid access token")]
    Unauthenticated(ErrorResponse),
    #[response(status = 403, description = "Not a member")]
    Forbidden(ErrorResponse),
}

/// A route for merchants: 401 without a valid access token, 403 for any other role.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum MerchantAccess {
    #[response(status = 401, description = "Missing or invalid access token")]
    Unauthenticated(ErrorResponse),
    #[response(status = 403, description = "Not a merchant")]
    Forbidden(ErrorResponse),
}

/// A route for operators: 401 without a valid access token, 403 for any other role.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum OperatorAccess {
    #[response(status = 401, description = "Missing or invalid access token")]
    Unauthenticated(ErrorResponse),
    #[response(status = 403, description = "Not an operator")]
    Forbidden(ErrorResponse),
}

/// A route that reads a JSON body: refused when it is too large or not JSON.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum JsonBody {
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(ErrorResponse),
    #[response(status = 415, description = "Body is not JSON")]
    NotJson(ErrorResponse),
}

/// A write that may stay contended past its retry budget.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Contended {
    #[response(
        status = 503,
        description = "Contended; retry after `Retry-After` seconds"
    )]
    RetryLater(ErrorResponse),
}

/// A single write that stayed contended past its retry budget: nothing changed.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ContendedWrite {
    #[response(
        status = 503,
        description = "Contended (DynamoDB kept cancelling the write); nothing changed, retry after `Retry-After` seconds"
    )]
    RetryLater(ErrorResponse),
}

//! One `TransactWriteItems` attempt and what it came to: committed, refused by a condition (which
//! item, by position), or cancelled by contention; and how a DynamoDB failure becomes this service's
//! error (a size refusal caused by input is a 400, never a 500).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;

use super::Store;
use crate::error::AppError;

/// One attempt at a `TransactWriteItems`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransactionAttempt {
    Committed,
    /// A condition failed: nothing was written.
    Refused(Cancelled),
    /// Cancelled by contention (another transaction on an item, or throttling): nothing was written,
    /// and the same request may succeed later. `reasons` is empty when DynamoDB gave none.
    Contended(Cancelled),
}

/// The result of a transaction that DynamoDB did not commit because a condition failed: the
/// cancellation reason code of each item, in the order the items were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cancelled {
    pub reasons: Vec<String>,
}

impl Cancelled {
    pub fn condition_failed(&self, index: usize) -> bool {
        self.reasons
            .get(index)
            .is_some_and(|code| code == "ConditionalCheckFailed")
    }

    /// Whether the item at `index` was contended (or, when DynamoDB named no item, whether any was).
    pub fn contended_at(&self, index: usize) -> bool {
        match self.reasons.get(index) {
            Some(code) => is_contention(code),
            None => self.reasons.is_empty(),
        }
    }
}

impl Store {
    /// One `TransactWriteItems`, no retry: the service that asked decides what a contended or
    /// refused attempt means (a redemption moves to another stock shard; most writes read again
    /// and retry within their [`crate::services`] retry budget).
    ///
    /// The SDK gives each call a `ClientRequestToken` of its own and re-sends a call whose response
    /// was lost (a timeout, a 5xx) with that same token, so DynamoDB answers the replay with the first
    /// outcome instead of applying the writes twice (proved by a test that loses a response).
    pub(crate) async fn transact_once(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<TransactionAttempt, AppError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result.map_err(classify_transaction_error) {
            Ok(_) => Ok(TransactionAttempt::Committed),
            Err(TransactionFailure::Cancelled(cancelled))
                if cancelled.reasons.iter().any(|c| is_contention(c)) =>
            {
                Ok(TransactionAttempt::Contended(cancelled))
            }
            Err(TransactionFailure::Cancelled(cancelled)) => {
                Ok(TransactionAttempt::Refused(cancelled))
            }
            Err(TransactionFailure::Contention) => {
                Ok(TransactionAttempt::Contended(Cancelled { reasons: vec![] }))
            }
            Err(TransactionFailure::Other(err)) => Err(err),
        }
    }
}

enum TransactionFailure {
    Cancelled(Cancelled),
    Contention,
    Other(AppError),
}

fn is_contention(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
    )
}

fn classify_transaction_error(err: SdkError<TransactWriteItemsError>) -> TransactionFailure {
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            TransactionFailure::Cancelled(Cancelled {
                reasons: cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|reason| reason.code().unwrap_or("None").to_string())
                    .collect(),
            })
        }
        TransactWriteItemsError::TransactionInProgressException(_)
        | TransactWriteItemsError::ProvisionedThroughputExceededException(_)
        | TransactWriteItemsError::RequestLimitExceeded(_)
        | TransactWriteItemsError::ThrottlingException(_) => TransactionFailure::Contention,
        other => TransactionFailure::Other(dynamo_failure("transact_write_items", other)),
    }
}

/// A failed DynamoDB call as this service's error. DynamoDB refuses a key or an item over its size
/// limits (a partition key over 2,048 bytes, sort keys over 1,024, an item over 400 KB) with a
/// `ValidationException` that names the size: what makes a value that long is what a client sent,
/// so it is a 400 (`value_too_long`), never a 500. The domain checks lengths first (on the canonical
/// form, in bytes); this is the net under them. DynamoDB throttling the call, or failing or being
/// unreachable after the SDK's own retries, is nobody's mistake and passes: 503 with `Retry-After`
/// (counted as `DynamoDbUnavailable`). Any other failure is ours: 500, cause kept.
pub(crate) fn dynamo_failure<E>(during: &'static str, err: E) -> AppError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code().is_none_or(is_throttling_or_outage) {
        tracing::warn!(during, error = %err, code = err.code(), "DynamoDB throttled or failed the call: 503");
        crate::observe::count(crate::observe::Metric::DynamoDbUnavailable, 1.0);
        return AppError::Unavailable {
            retry_after_secs: 1,
        };
    }
    if err.code() == Some("ValidationException") && err.message().is_some_and(is_size_limit) {
        tracing::warn!(during, error = %err, "DynamoDB refused a value over its size limits");
        return AppError::bad_request(
            "value_too_long",
            "a value in the request is longer than the service can store",
        );
    }
    AppError::internal_during(during, err)
}

/// DynamoDB's throttling, contention and outage codes: the request may succeed later, unchanged.
/// A plain write to an item a transaction holds gets `TransactionConflictException` ("Transaction
/// conflict handling in DynamoDB"), which the SDK does not retry: it is contention, not a bug, so
/// it is a 503 too (the chaos bench found it answered 500). (No code at all is a transport
/// failure: a timeout, a connection refused.)
fn is_throttling_or_outage(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException"
    )
}

/// Whether a `ValidationException`'s message is DynamoDB's size refusal ("Size of hashkey has
/// exceeded the maximum size limit of 2048 bytes", "Aggregated size of all range keys has exceeded
/// the size limit of 1024 bytes", "Item size has exceeded the maximum allowed size", ...).
fn is_size_limit(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("size") && message.contains("exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodbs_size_refusals_are_told_from_other_validation_errors() {
        assert!(is_size_limit(
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of 2048 bytes"
        ));
        assert!(is_size_limit(
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
        ));
        assert!(is_size_limit(
            "Item size has exceeded the maximum allowed size"
        ));
        assert!(!is_size_limit(
            "Invalid UpdateExpression: An expression attribute value used in expression is not defined"
        ));
    }

    #[test]
    fn cancellation_reasons_are_read_by_index() {
        let cancelled = Cancelled {
            reasons: vec!["None".into(), "ConditionalCheckFailed".into()],
        };
        assert!(!cancelled.condition_failed(0));
        assert!(cancelled.condition_failed(1));
        assert!(!cancelled.condition_failed(7));
    }
}

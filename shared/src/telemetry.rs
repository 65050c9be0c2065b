/// Expected refusals (a failed condition, a missing table on first start) come back from DynamoDB as
/// 4xx responses, which the SDK would log as warnings on every request.
const DEFAULT_FILTER: &str =
    "info,aws_smithy_runtime=error,aws_smithy_runtime_api=error,dynoxide=error";

/// JSON logs to stdout (CloudWatch on Lambda), filtered by `RUST_LOG` (default above). Call once.
pub fn init_json_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        // An event inside a request (an internal error's cause) carries the request's ids.
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

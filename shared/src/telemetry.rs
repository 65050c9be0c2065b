//! The process's log output: one JSON object per line on stdout (CloudWatch Logs on Lambda), every
//! field of an event at the top level (`message`, `route`, `status`, …) so that Logs Insights queries
//! name them directly, and filtered by `RUST_LOG`.

use tracing_subscriber::fmt::MakeWriter;

/// Expected refusals (a failed condition, a missing table on first start) come back from DynamoDB as
/// 4xx responses, which the SDK would log as warnings on every request.
const DEFAULT_FILTER: &str =
    "info,aws_smithy_runtime=error,aws_smithy_runtime_api=error,dynoxide=error";

/// The JSON subscriber every process uses, writing to `writer` (stdout; a buffer in tests).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        // The event's fields at the top level, not under `fields`: the documented queries (and
        // anyone's) name `status`, not `fields.status`.
        .flatten_event(true)
        // An event inside a request (an internal error's cause) carries the request's ids.
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .finish()
}

/// JSON logs to stdout, for the process (call once, at init).
pub fn init_json_logging() {
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}

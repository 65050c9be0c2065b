use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ctx = shared::lambda::init("fn-reconcile").await?;
    let ctx = &ctx;
    // The schedule's event carries nothing the job needs.
    run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            let report = fn_reconcile::run(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "reconciliation failed");
                Error::from(err.to_string())
            })?;
            serde_json::to_value(report).map_err(Error::from)
        },
    ))
    .await
}

use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ctx = shared::lambda::init("fn-webhook-dispatcher").await?;
    let ctx = &ctx;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(fn_webhooks::dispatch(ctx, &event.payload).await)
        },
    ))
    .await
}

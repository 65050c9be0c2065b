use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ctx = shared::lambda::init("fn-admin").await?;
    let ctx = &ctx;
    run(service_fn(move |req| async move {
        Ok::<_, Error>(fn_admin::handle(ctx, req).await)
    }))
    .await
}

use lambda_http::{run, service_fn, Error};
use shared::{AppContext, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init_json_logging();
    let config = Config::from_env()?;
    let ctx = AppContext::connect(config).await;
    let ctx = &ctx;
    run(service_fn(move |req| async move {
        Ok::<_, Error>(fn_auth::handle(ctx, req).await)
    }))
    .await
}

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = shared::lambda::init_without_state("fn-front-door");
    let metrics = &metrics;
    run(service_fn(move |req| async move {
        Ok::<_, Error>(fn_front_door::handle(metrics, req).await)
    }))
    .await
}

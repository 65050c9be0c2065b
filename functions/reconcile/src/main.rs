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
            let pickups = fn_reconcile::run_fulfilment(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "pickup expiry failed");
                Error::from(err.to_string())
            })?;
            let refunds = fn_reconcile::run_refunds(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "refunds failed");
                Error::from(err.to_string())
            })?;
            let invoices = fn_reconcile::run_invoices(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "e-invoices failed");
                Error::from(err.to_string())
            })?;
            let expiry = fn_reconcile::run_expiry(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "promotional expiry failed");
                Error::from(err.to_string())
            })?;
            let statements = fn_reconcile::run_settlements(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "month-end settlement failed");
                Error::from(err.to_string())
            })?;
            let webhooks = fn_reconcile::run_webhooks(ctx).await.map_err(|err| {
                tracing::error!(error = %err, "webhook retries failed");
                Error::from(err.to_string())
            })?;
            let mut answer = serde_json::to_value(report).map_err(Error::from)?;
            if let Some(fields) = answer.as_object_mut() {
                fields.insert(
                    "fulfilment".into(),
                    serde_json::to_value(pickups).map_err(Error::from)?,
                );
                fields.insert(
                    "refunds".into(),
                    serde_json::to_value(refunds).map_err(Error::from)?,
                );
                fields.insert(
                    "invoices".into(),
                    serde_json::to_value(invoices).map_err(Error::from)?,
                );
                fields.insert(
                    "expiry".into(),
                    serde_json::to_value(expiry).map_err(Error::from)?,
                );
                fields.insert(
                    "settlements".into(),
                    serde_json::to_value(statements).map_err(Error::from)?,
                );
                fields.insert(
                    "webhooks".into(),
                    serde_json::to_value(webhooks).map_err(Error::from)?,
                );
            }
            Ok::<_, Error>(answer)
        },
    ))
    .await
}

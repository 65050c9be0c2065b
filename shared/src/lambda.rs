//! What every Lambda `main` does before serving: JSON logs, configuration (from the environment and,
//! when `SECRET_ID` is set, the Secrets Manager secret it names), and a DynamoDB client whose
//! connection is opened during init. Any problem stops init with one clear log line.

use crate::config::{Defaults, EnvSource};
use crate::secrets::{SecretValues, SECRET_KEYS};
use crate::{AppContext, Config};

/// `service` is the function's binary name (`fn-members`): the `service` of its log lines and
/// metric dimensions.
pub async fn init(service: &str) -> Result<AppContext, lambda_http::Error> {
    crate::telemetry::init_json_logging();
    crate::observe::set_service(service);
    let env = |name: &str| std::env::var(name).ok();
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    // The secret is read and the DynamoDB connection opened at once: init waits for the longer of
    // the two, not their sum. The table's name is not secret (`TABLE_NAME`, as the configuration
    // reads it).
    let table = env("TABLE_NAME")
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| crate::config::DEFAULT_TABLE_NAME.to_string());
    let connection = crate::store::Connection::new(&sdk_config, &table);
    let (loaded, ()) = tokio::join!(load_config(env, &sdk_config), connection.warm());
    match loaded {
        Ok(config) => {
            if config.payments.environment == crate::config::EcpayEnvironment::Stage {
                tracing::warn!(
                    "ECPAY_ENVIRONMENT=stage: ECPay's stage keys are public, so anyone can sign a \
                     payment notification; never take real money with this deployment"
                );
            }
            let queue = config.webhooks.queue_url.clone();
            let mut ctx = AppContext::over(config, connection);
            if let Some(url) = queue {
                ctx.webhook_queue =
                    std::sync::Arc::new(crate::webhook_queue::SqsQueue::new(&sdk_config, url));
            }
            Ok(ctx)
        }
        Err(problem) => {
            tracing::error!(error = %problem, "init failed: the function cannot start");
            Err(problem.into())
        }
    }
}

/// Init for a function that keeps no state and reads no secret and no table (the `$default` front
/// door): JSON logs, and the metrics sink (`METRICS_NAMESPACE`, as the configuration reads it).
pub fn init_without_state(service: &str) -> crate::observe::MetricsSink {
    crate::telemetry::init_json_logging();
    crate::observe::set_service(service);
    let namespace = std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| crate::observe::DEFAULT_NAMESPACE.to_string());
    crate::observe::MetricsSink::stdout(namespace)
}

/// The configuration a function starts with. With `SECRET_ID` set, the secret keys
/// ([`SECRET_KEYS`]) come from that secret only, never from the environment; without it (local runs
/// and tests) they come from the environment.
pub async fn load_config(
    env: impl Fn(&str) -> Option<String>,
    sdk_config: &aws_config::SdkConfig,
) -> Result<Config, String> {
    let secret_id = env("SECRET_ID").filter(|id| !id.trim().is_empty());
    let secrets: Option<SecretValues> = match &secret_id {
        Some(id) => Some(
            crate::secrets::fetch(sdk_config, id)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let lookup = |name: &str| match &secrets {
        Some(values) if SECRET_KEYS.contains(&name) => values.get(name),
        _ => env(name),
    };
    Config::from_source(&EnvSource(lookup), Defaults::lambda()).map_err(|err| match &secret_id {
        Some(id) => format!("{err} (secret keys are read from secret {id:?})"),
        None => err.to_string(),
    })
}

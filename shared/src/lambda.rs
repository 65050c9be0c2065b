//! What every Lambda `main` does before serving: JSON logs, configuration (refusing to start without
//! a proper `JWT_SECRET`), and a DynamoDB client whose connection is opened during init.

use crate::{AppContext, Config};

pub async fn init() -> Result<AppContext, lambda_http::Error> {
    crate::telemetry::init_json_logging();
    let config = Config::from_env()?;
    Ok(AppContext::connect(config).await)
}

//! Webhooks: where deliveries are queued, whether private addresses may receive them (local only),
//! and how fast the local host runs the retry schedule.

use super::env::EnvSource;
use super::ConfigError;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The SQS queue of deliveries (`WEBHOOK_QUEUE_URL`, set by the template on AWS; unset locally,
    /// where the host's own sender task is the queue).
    pub queue_url: Option<String>,
    /// `WEBHOOK_ALLOW_PRIVATE` (default false): lets URLs on loopback and private networks (and
    /// plain `http://`) receive messages, for the local host and tests. The cloud metadata
    /// addresses stay refused.
    pub allow_private: bool,
    /// `WEBHOOK_RETRY_SCALE` (default 1): the local host multiplies each retry delay by it (0.001
    /// turns the 10 hours between the last attempts into 36 seconds). Ignored on AWS.
    pub retry_scale: f64,
}

impl WebhookConfig {
    pub fn defaults() -> Self {
        WebhookConfig {
            queue_url: None,
            allow_private: false,
            retry_scale: 1.0,
        }
    }
}

pub(super) fn webhooks_from<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
) -> Result<WebhookConfig, ConfigError> {
    let retry_scale = match env.get("WEBHOOK_RETRY_SCALE") {
        None => 1.0,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 && scale <= 1.0 => scale,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "WEBHOOK_RETRY_SCALE",
                    problem: format!("expected a number above 0 and at most 1, got {raw:?}"),
                })
            }
        },
    };
    Ok(WebhookConfig {
        queue_url: env.url("WEBHOOK_QUEUE_URL")?,
        allow_private: env.flag_or("WEBHOOK_ALLOW_PRIVATE", false)?,
        retry_scale,
    })
}

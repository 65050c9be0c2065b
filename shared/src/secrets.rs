//! The functions' secrets, read once at init from AWS Secrets Manager.
//!
//! On AWS a secret must not sit in a function's environment: anyone allowed
//! `lambda:GetFunctionConfiguration` can read environment variables, and a `{{resolve:secretsmanager}}`
//! reference is only re-resolved when that one function's resource changes, so a rotation would reach
//! some functions and not others. Each function instead gets the secret's id (`SECRET_ID`) and reads
//! the JSON secret itself when it starts. The client honours the SDK's standard endpoint variables
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), which is how the tests point it at a fake.

use std::collections::BTreeMap;

use aws_smithy_types::error::display::DisplayErrorContext;

/// The keys a secret may carry. Anything else in it is ignored.
pub const SECRET_KEYS: [&str; 9] = [
    "JWT_SECRET",
    "JWT_PREVIOUS_SECRET",
    "ECPAY_MERCHANT_ID",
    "ECPAY_HASH_KEY",
    "ECPAY_HASH_IV",
    "ECPAY_CREDIT_CHECK_CODE",
    "ECPAY_INVOICE_MERCHANT_ID",
    "ECPAY_INVOICE_HASH_KEY",
    "ECPAY_INVOICE_HASH_IV",
];

/// The values read from the secret. `Debug` shows the key names only.
#[derive(Clone, Default)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    /// Parses a `SecretString`: a JSON object whose values for [`SECRET_KEYS`] are strings. No error
    /// message ever contains a value.
    pub fn parse(secret_string: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(secret_string)
            .map_err(|_| "its SecretString is not JSON".to_string())?;
        let object = value
            .as_object()
            .ok_or_else(|| "its SecretString is not a JSON object".to_string())?;
        let mut values = BTreeMap::new();
        for key in SECRET_KEYS {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(text)) => {
                    values.insert(key.to_string(), text.clone());
                }
                Some(_) => return Err(format!("its {key} is not a string")),
            }
        }
        Ok(SecretValues(values))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read secret {secret_id:?} from Secrets Manager: {problem}")]
pub struct SecretError {
    pub secret_id: String,
    pub problem: String,
}

/// Reads and parses the secret with one `GetSecretValue` call.
pub async fn fetch(
    sdk_config: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<SecretValues, SecretError> {
    let error = |problem: String| SecretError {
        secret_id: secret_id.to_string(),
        problem,
    };
    let client = aws_sdk_secretsmanager::Client::new(sdk_config);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| error(DisplayErrorContext(err.into_service_error()).to_string()))?;
    let text = output
        .secret_string()
        .ok_or_else(|| error("it has no SecretString (binary secrets are not supported)".into()))?;
    SecretValues::parse(text).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_string_keys_are_kept_and_no_value_reaches_an_error_or_debug() {
        let values = SecretValues::parse(
            r#"{"JWT_SECRET":"s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t","OTHER":"x","ECPAY_HASH_IV":null}"#,
        )
        .unwrap();
        assert_eq!(
            values.get("JWT_SECRET").as_deref(),
            Some("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")
        );
        assert_eq!(values.get("OTHER"), None);
        assert!(!format!("{values:?}").contains("s3cr3t"));
        let err = SecretValues::parse(r#"{"JWT_SECRET": 12345678901234567890}"#).unwrap_err();
        assert_eq!(err, "its JWT_SECRET is not a string");
        let err = SecretValues::parse("JWT_SECRET=hunter2").unwrap_err();
        assert!(!err.contains("hunter2"));
    }
}

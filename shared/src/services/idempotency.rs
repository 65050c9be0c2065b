//! Idempotency-Keys as services see them: the header's form, the request's hash a key is bound to,
//! and the rule that a key replays only the request it was first used with. (The store keeps the
//! record in the same transaction as the write it protects: `store::idempotency`.)

use sha2::{Digest, Sha256};

use crate::error::AppError;

/// How long an Idempotency-Key's outcome is kept (well past DynamoDB's 10-minute ClientRequestToken
/// window).
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
pub const IDEMPOTENCY_KEY_MAX: usize = 64;

pub fn check_idempotency_key(raw: &str) -> Result<(), AppError> {
    let well_formed = !raw.is_empty()
        && raw.len() <= IDEMPOTENCY_KEY_MAX
        && raw.bytes().all(|b| b.is_ascii_graphic());
    if well_formed {
        Ok(())
    } else {
        Err(invalid_idempotency_key())
    }
}

pub fn invalid_idempotency_key() -> AppError {
    let mut fields = crate::error::FieldErrors::new();
    fields.insert(
        "Idempotency-Key".into(),
        format!("must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
    );
    AppError::BadRequest {
        code: "invalid_header",
        message: "the Idempotency-Key header is invalid".into(),
        fields,
    }
}

/// An Idempotency-Key may only be replayed with the request it was first used for (422 otherwise).
pub(crate) fn same_request(stored_hash: &str, body_hash: &str) -> Result<(), AppError> {
    if stored_hash == body_hash {
        Ok(())
    } else {
        Err(AppError::Unprocessable {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request".into(),
        })
    }
}

/// What identifies a request under its Idempotency-Key: the SHA-256 (hex) of its canonical fields.
pub(crate) fn request_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The claim of `key` for a request hashed `body_hash` whose answer is `answer` (serialised as the
/// replay), made at `now` and kept [`IDEMPOTENCY_TTL_SECS`].
pub(crate) fn claim<T: serde::Serialize>(
    key: &str,
    body_hash: &str,
    answer: &T,
    now: crate::domain::Timestamp,
) -> Result<crate::store::IdempotencyClaim, AppError> {
    Ok(crate::store::IdempotencyClaim {
        key: key.to_string(),
        body_hash: body_hash.to_string(),
        response: serde_json::to_string(answer).map_err(AppError::internal)?,
        expires_at: now.timestamp() + IDEMPOTENCY_TTL_SECS,
        claimed_at: now.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert!(check_idempotency_key("order-2026-11-27-001").is_ok());
        assert!(check_idempotency_key(&"k".repeat(64)).is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key(&"k".repeat(65)).is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key("中文").is_err());
    }

    #[test]
    fn a_key_replays_only_its_own_request() {
        let first = request_hash("product\n1\n100");
        assert!(same_request(&first, &request_hash("product\n1\n100")).is_ok());
        let other = same_request(&first, &request_hash("product\n2\n100"));
        assert_eq!(other.map_err(|e| e.code()), Err("idempotency_key_reused"));
    }
}

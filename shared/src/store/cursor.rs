//! Opaque, integrity-protected pagination cursors. A cursor is the DynamoDB key to continue after,
//! plus the list it belongs to (its scope), MAC'd with a server key: a tampered cursor, or one taken
//! from another list or another user's partition, is refused instead of steering a query.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::pagination::MAX_CURSOR_LEN;
use crate::signing::{DerivedKey, HmacSha256};

#[derive(Serialize, Deserialize)]
struct CursorBody {
    /// The list this cursor continues.
    s: String,
    /// The exclusive start key; every key attribute of the table is a string.
    k: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct CursorCodec {
    key: DerivedKey,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(<key>)")
    }
}

pub(crate) fn invalid_cursor() -> AppError {
    let mut fields = crate::error::FieldErrors::new();
    fields.insert("cursor".into(), "is not a cursor this list issued".into());
    AppError::BadRequest {
        code: "invalid_cursor",
        message: "the cursor is invalid".into(),
        fields,
    }
}

impl CursorCodec {
    /// Derives the cursor key from a server secret, so cursors need no key of their own.
    pub fn from_secret(secret: &[u8]) -> Self {
        CursorCodec {
            key: DerivedKey::derive(secret, "points-redemption/pagination-cursor/v1"),
        }
    }

    fn mac(&self) -> HmacSha256 {
        self.key.mac()
    }

    pub fn encode(
        &self,
        scope: &str,
        key: &HashMap<String, AttributeValue>,
    ) -> Result<String, AppError> {
        let k = key
            .iter()
            .map(|(name, value)| match value {
                AttributeValue::S(s) => Ok((name.clone(), s.clone())),
                other => Err(AppError::internal(format!(
                    "non-string key attribute {name}: {other:?}"
                ))),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let body = serde_json::to_vec(&CursorBody {
            s: scope.to_string(),
            k,
        })
        .map_err(AppError::internal)?;
        let mut mac = self.mac();
        mac.update(&body);
        let tag = mac.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(body),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    pub fn decode(
        &self,
        scope: &str,
        cursor: &str,
    ) -> Result<HashMap<String, AttributeValue>, AppError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(invalid_cursor());
        }
        let (body_b64, tag_b64) = cursor.split_once('.').ok_or_else(invalid_cursor)?;
        let body = URL_SAFE_NO_PAD
            .decode(body_b64)
            .map_err(|_| invalid_cursor())?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| invalid_cursor())?;
        let mut mac = self.mac();
        mac.update(&body);
        mac.verify_slice(&tag).map_err(|_| invalid_cursor())?;
        let parsed: CursorBody = serde_json::from_slice(&body).map_err(|_| invalid_cursor())?;
        if parsed.s != scope {
            return Err(invalid_cursor());
        }
        Ok(parsed
            .k
            .into_iter()
            .map(|(name, value)| (name, AttributeValue::S(value)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S("PRODUCT#1".into())),
            ("sk".to_string(), AttributeValue::S("PRODUCT".into())),
        ])
    }

    #[test]
    fn a_cursor_round_trips_within_its_scope() {
        let codec = CursorCodec::from_secret(b"secret");
        let cursor = codec.encode("merchant:1", &key()).unwrap();
        assert_eq!(codec.decode("merchant:1", &cursor).unwrap(), key());
    }

    #[test]
    fn a_cursor_from_another_scope_or_key_is_refused() {
        let codec = CursorCodec::from_secret(b"secret");
        let cursor = codec.encode("merchant:1", &key()).unwrap();
        assert!(codec.decode("merchant:2", &cursor).is_err());
        assert!(CursorCodec::from_secret(b"other")
            .decode("merchant:1", &cursor)
            .is_err());
    }

    #[test]
    fn a_tampered_cursor_is_refused() {
        let codec = CursorCodec::from_secret(b"secret");
        let cursor = codec.encode("merchant:1", &key()).unwrap();
        let (body, tag) = cursor.split_once('.').unwrap();
        let mut forged_body = URL_SAFE_NO_PAD.decode(body).unwrap();
        let text = String::from_utf8(forged_body.clone())
            .unwrap()
            .replace("PRODUCT#1", "PRODUCT#2");
        forged_body = text.into_bytes();
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(forged_body), tag);
        assert!(codec.decode("merchant:1", &forged).is_err());
        for junk in ["", ".", "abc", "abc.def", &"x".repeat(5000)] {
            assert!(codec.decode("merchant:1", junk).is_err());
        }
    }
}
